"""Classification metrics: accuracy, ROC AUC, EER, ECE, per-class P/R, confusion, intervals.

ROC, confusion and precision/recall come from scikit-learn and Spearman from scipy (the
`train` extra); EER, ECE and the intervals are a few lines of numpy on top.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from sklearn import exceptions as sk_exceptions
from sklearn import metrics as sk


def _arrays(y_true, p_fake) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true, dtype=np.int64).ravel()
    p = np.asarray(p_fake, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and scores {p.shape} differ in length")
    return y, p


def accuracy(y_true, p_fake, threshold: float = 0.5) -> float:
    """Share of images whose verdict (fake iff p_fake > threshold) matches the label."""
    y, p = _arrays(y_true, p_fake)
    return float(np.mean((p > threshold).astype(np.int64) == y)) if len(y) else float("nan")


def roc_auc(y_true, p_fake) -> float:
    """ROC AUC (a tie counts one half, as in Mann-Whitney U); NaN if a class is absent."""
    y, p = _arrays(y_true, p_fake)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(sk.roc_auc_score(y, p))


def roc_curve(y_true, p_fake) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) over every distinct score, from (0,0) to (1,1); a rate whose class
    is absent reads 0."""
    y, p = _arrays(y_true, p_fake)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sk_exceptions.UndefinedMetricWarning)
        fpr, tpr, thresholds = sk.roc_curve(y, p, drop_intermediate=False)
    return np.nan_to_num(fpr), np.nan_to_num(tpr), thresholds


def eer(y_true, p_fake) -> float:
    """Equal error rate: where the false-positive rate equals the miss rate (interpolated)."""
    fpr, tpr, _ = roc_curve(y_true, p_fake)
    fnr = 1.0 - tpr
    diff = fpr - fnr  # rises from -1 to +1 along the curve
    i = int(np.argmax(diff >= 0))
    if i == 0:
        return float(fpr[0])
    # Linear interpolation between the two points that straddle fpr == fnr.
    d0, d1 = diff[i - 1], diff[i]
    w = 0.0 if d1 == d0 else -d0 / (d1 - d0)
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def ece(y_true, p_fake, n_bins: int = 15) -> float:
    """Expected calibration error on the predicted label's confidence, 15 equal-width bins."""
    # Confidence of the predicted label (max(p, 1-p)) against whether that label was right:
    # the usual definition (Guo et al. 2017); bins over [0.5, 1] are still equal-width on [0, 1].
    y, p = _arrays(y_true, p_fake)
    if not len(y):
        return float("nan")
    pred = (p > 0.5).astype(np.int64)
    conf = np.where(pred == 1, p, 1.0 - p)
    correct = (pred == y).astype(np.float64)
    bins = np.minimum((conf * n_bins).astype(np.int64), n_bins - 1)
    total = 0.0
    for b in np.unique(bins):
        m = bins == b
        total += m.sum() * abs(correct[m].mean() - conf[m].mean())
    return float(total / len(y))


def confusion(y_true, p_fake, threshold: float) -> dict:
    """Counts with 'fake' as the positive class: tp, fp, tn, fn."""
    y, p = _arrays(y_true, p_fake)
    tn, fp, fn, tp = sk.confusion_matrix(y, p > threshold, labels=[0, 1]).ravel()
    return {"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)}


def _per_class(y: np.ndarray, p: np.ndarray, threshold: float) -> dict:
    """Precision and recall of each class ({"precision": {"fake", "real"}, "recall": ...});
    NaN where nothing was predicted (precision) or present (recall)."""
    precision, recall, _, _ = sk.precision_recall_fscore_support(
        y, (p > threshold).astype(np.int64), labels=[0, 1], zero_division=np.nan)
    return {"precision": {"fake": float(precision[1]), "real": float(precision[0])},
            "recall": {"fake": float(recall[1]), "real": float(recall[0])}}


def report(y_true, p_fake, threshold: float) -> dict:
    """Every metric the card and `dfd-train evaluate` print, as one JSON-ready dict."""
    y, p = _arrays(y_true, p_fake)
    c = confusion(y, p, threshold)
    return {
        "n": int(len(y)), "n_real": int(np.sum(y == 0)), "n_fake": int(np.sum(y == 1)),
        "threshold": float(threshold),
        "accuracy": accuracy(y, p, threshold), "auc": roc_auc(y, p), "eer": eer(y, p),
        "ece": ece(y, p), **_per_class(y, p, threshold), "confusion": c,
        "mean_p_fake": {"real": float(p[y == 0].mean()) if np.any(y == 0) else float("nan"),
                        "fake": float(p[y == 1].mean()) if np.any(y == 1) else float("nan")},
    }


def auc_ci(y_true, p_fake, n_boot: int = 1000, level: float = 0.95, seed: int = 0
           ) -> tuple[float, float]:
    """Percentile interval of the ROC AUC over bootstrap resamples drawn within each class."""
    y, p = _arrays(y_true, p_fake)
    pos, neg = p[y == 1], p[y == 0]
    if not len(pos) or not len(neg):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.ones(len(pos)), np.zeros(len(neg))])
    aucs = [roc_auc(labels, np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))]))
            for _ in range(n_boot)]
    tail = (1 - level) / 2
    return float(np.quantile(aucs, tail)), float(np.quantile(aucs, 1 - tail))


def paired_auc_diff(y_true, p_a, p_b, n_boot: int = 1000, level: float = 0.95, seed: int = 0
                    ) -> dict:
    """AUC(b) - AUC(a) on the same files, with a percentile interval over bootstrap resamples
    drawn within each class and shared by both: two models scored on one set are compared
    with the set's own sampling noise taken out, which separate intervals cannot do."""
    y = np.asarray(y_true)
    a, b = np.asarray(p_a, np.float64), np.asarray(p_b, np.float64)
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(n_boot):
        idx = np.concatenate([rng.choice(pos, len(pos)), rng.choice(neg, len(neg))])
        diffs.append(roc_auc(y[idx], b[idx]) - roc_auc(y[idx], a[idx]))
    tail = (1 - level) / 2
    return {"auc_a": roc_auc(y, a), "auc_b": roc_auc(y, b),
            "diff": roc_auc(y, b) - roc_auc(y, a),
            "ci": [float(np.quantile(diffs, tail)), float(np.quantile(diffs, 1 - tail))]}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95% for z 1.96); NaNs when n is 0."""
    if n <= 0:
        return float("nan"), float("nan")
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))



def share(mask) -> dict:
    """How many of a boolean array are true: k, n, the share (None when n is 0) and its Wilson
    interval."""
    k, n = int(np.sum(mask)), int(np.size(mask))
    lo, hi = wilson(k, n)
    return {"k": k, "n": n, "share": k / n if n else None, "ci": [lo, hi]}

def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(stats.spearmanr(a, b).statistic)

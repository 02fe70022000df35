"""Classification metrics in plain numpy: accuracy, ROC AUC, EER, ECE, per-class P/R, confusion."""

from __future__ import annotations

import numpy as np


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


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with ties given their average rank (what Mann-Whitney U needs)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    # A run of equal values spans positions end - count + 1 .. end: its mean rank.
    ends = np.cumsum(counts)
    return ((ends - counts + 1 + ends) / 2.0)[inverse.ravel()]


def roc_auc(y_true, p_fake) -> float:
    """ROC AUC as the Mann-Whitney statistic (a tie counts one half); NaN if a class is absent."""
    y, p = _arrays(y_true, p_fake)
    n_pos, n_neg = int(y.sum()), int(len(y) - y.sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = _average_ranks(p)
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(y_true, p_fake) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds) over every distinct score, from (0,0) to (1,1)."""
    y, p = _arrays(y_true, p_fake)
    order = np.argsort(-p, kind="mergesort")
    p, y = p[order], y[order]
    # Cut only between distinct scores so tied images move together.
    last = np.concatenate([np.flatnonzero(np.diff(p)), [len(p) - 1]])
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(int(len(y) - y.sum()), 1)
    tpr = np.concatenate([[0.0], tps / n_pos])
    fpr = np.concatenate([[0.0], fps / n_neg])
    return fpr, tpr, np.concatenate([[np.inf], p[last]])


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
    pred = p > threshold
    return {"tp": int(np.sum(pred & (y == 1))), "fp": int(np.sum(pred & (y == 0))),
            "tn": int(np.sum(~pred & (y == 0))), "fn": int(np.sum(~pred & (y == 1)))}


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def report(y_true, p_fake, threshold: float) -> dict:
    """Every metric the card and `dfd-train evaluate` print, as one JSON-ready dict."""
    y, p = _arrays(y_true, p_fake)
    c = confusion(y, p, threshold)
    return {
        "n": int(len(y)), "n_real": int(np.sum(y == 0)), "n_fake": int(np.sum(y == 1)),
        "threshold": float(threshold),
        "accuracy": accuracy(y, p, threshold), "auc": roc_auc(y, p), "eer": eer(y, p),
        "ece": ece(y, p),
        "precision": {"fake": _ratio(c["tp"], c["tp"] + c["fp"]),
                      "real": _ratio(c["tn"], c["tn"] + c["fn"])},
        "recall": {"fake": _ratio(c["tp"], c["tp"] + c["fn"]),
                   "real": _ratio(c["tn"], c["tn"] + c["fp"])},
        "confusion": c,
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


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (95% for z 1.96); NaNs when n is 0."""
    if n <= 0:
        return float("nan"), float("nan")
    phat = k / n
    centre = (phat + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    ra, rb = _average_ranks(np.asarray(a, np.float64)), _average_ranks(np.asarray(b, np.float64))
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])

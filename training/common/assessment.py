"""The assessment a card carries, fitted for either generation: the bands (likely_real,
likely_fake), the smallest face the model judges, the stability check's margin and whether to
serve the variants' mean. The limits and rules are training.policy's.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from detector.assess import MAX_FACES, agree, band
from detector.chunks import in_chunks
from detector.stability import CHECKED
from training.common import metrics as M
from training.common.calibrate import logit
from training.policy import (
    CALIBRATION_BANDS_RULE,
    FACE_SIDES,
    MAX_AUC_DROP,
    MAX_FAKE_SHARE,
    MAX_MISSED_UNSTABLE,
    MAX_REAL_SHARE,
    MEAN_GAIN,
)


def fit_bands(by_source: dict[str, tuple[np.ndarray, np.ndarray]], threshold: float) -> dict:
    """Band edges from each source's (labels, served P(fake)) on the calibration split, on the
    label's side of `threshold` (detector.assess.agree): a card cannot contradict its label."""
    highs, lows = [], []
    for y, p in by_source.values():
        real, fake = np.sort(p[y == 0])[::-1], np.sort(p[y == 1])
        if len(real):  # at most floor(share * n) reals strictly above the k-th highest
            highs.append(float(np.nextafter(real[int(MAX_REAL_SHARE * len(real))], 2.0)))
        if len(fake):
            lows.append(float(fake[int(MAX_FAKE_SHARE * len(fake))]))
    # Rounded to 6 decimals outwards, so rounding never lets one more face into a band.
    high = math.ceil((max(highs) if highs else 1.0) * 1e6) / 1e6
    low = math.floor(min(min(lows) if lows else 0.0, high) * 1e6) / 1e6
    low, high = agree(low, high, threshold)
    return {"likely_real_below": low, "likely_fake_from": high}


def shrink(crops: np.ndarray, side: int) -> np.ndarray:
    """Crops as a face of `side` pixels would give them: down to side, back up to 224 (bilinear,
    as detector.crop.crop_resize enlarges a small face)."""
    size = crops.shape[1]
    return np.stack([np.asarray(Image.fromarray(c).resize((side, side), Image.BILINEAR)
                                .resize((size, size), Image.BILINEAR)) for c in crops])


def min_face_side(predict, crops: np.ndarray, y: np.ndarray) -> tuple[int, dict]:
    """(smallest judged face side, {side: AUC}) on pooled calibration crops."""
    full = M.roc_auc(y, predict(crops))
    curve = {int(s): M.roc_auc(y, predict(shrink(crops, s))) for s in FACE_SIDES}
    ok = [s for s in FACE_SIDES if curve[s] >= full - MAX_AUC_DROP]
    # The smallest side from which every larger one also holds up.
    side = next((s for s in FACE_SIDES if all(t in ok for t in FACE_SIDES if t >= s)), 224)
    return side, {"full": full, **{str(k): v for k, v in curve.items()}}


def stability_margin(p_var: np.ndarray, below: float, fake_from: float) -> tuple[float, int]:
    """(margin in logits, faces that left their band): the distance from the edge of their band
    within which all but MAX_MISSED_UNSTABLE of the calibration faces lie whose assessment
    ("Likely real" or "Likely fake", column 0) a version changes (detector.stability.to_check).
    below, fake_from: the bands under the label rule (detector.assess.agree)."""
    kind = band(p_var[:, 0], below, fake_from)
    moved = (kind != 0) & (band(p_var, below, fake_from) != kind[:, None]).any(axis=1)
    if not moved.any():
        return 0.0, 0
    edge = np.where(kind > 0, logit(fake_from), logit(below))
    dist = np.abs(logit(p_var[:, 0]) - edge)[moved]
    return float(np.quantile(dist, 1 - MAX_MISSED_UNSTABLE)), int(moved.sum())


def fit_assessment(predict, crops: np.ndarray, labels: np.ndarray, sources: np.ndarray,
                   variants_fn, threshold: float, bands: dict | None = None) -> dict:
    """The card's `assessment` entry. predict: crops -> served-scale P(fake) (calibrated).
    bands: edges fitted elsewhere (on left-out runs); by default fitted on these crops."""
    # In chunks: five variants of a few thousand crops would hold gigabytes at once.
    p_var = in_chunks(lambda part: predict(variants_fn(part, CHECKED)).reshape(-1, len(CHECKED)),
                      crops, 256)
    aucs = {m: float(np.nanmean([M.roc_auc(labels[sources == s], p[sources == s])
                                 for s in np.unique(sources)]))
            for m, p in (("original", p_var[:, 0]), ("mean of variants", p_var.mean(axis=1)))}
    served = "mean of variants" if aucs["mean of variants"] >= aucs["original"] + MEAN_GAIN \
        else "original"
    p = p_var.mean(axis=1) if served == "mean of variants" else p_var[:, 0]
    if bands is None:
        bands = fit_bands({s: (labels[sources == s], p[sources == s])
                           for s in np.unique(sources)}, threshold)
    margin, n_unstable = stability_margin(p_var, bands["likely_real_below"],
                                          bands["likely_fake_from"])
    both = np.isin(sources, [s for s in np.unique(sources)
                             if len(np.unique(labels[sources == s])) == 2])
    side, curve = min_face_side(predict, crops[both], labels[both])
    return {**bands, "min_face_px": side, "max_faces": MAX_FACES,
            "max_real_share": MAX_REAL_SHARE, "max_fake_share": MAX_FAKE_SHARE,
            "served": served, "stability_margin": round(margin, 4),
            "stability_calibration": {"faces": int(len(p_var)), "unstable": n_unstable,
                                      "max_missed_share": MAX_MISSED_UNSTABLE},
            "calibration_auc": aucs,
            "face_side_auc": curve, "rule": CALIBRATION_BANDS_RULE}

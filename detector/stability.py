"""Benign versions of a face crop, scored beside it: an assessment that changes under a JPEG
re-save or a flip says more about the model than about the photo.

Each version is a change an ordinary photo goes through on its way to us (shrunk and enlarged,
cropped a little differently, mirrored); none of them makes a real face fake. The check tests
the decision that is shown: only faces whose own assessment is "Likely real" or "Likely fake"
and lies near the edge of its band are scored again (to_check); a face between the bands reads
"Can't tell" whatever its versions score. A card that serves its versions' mean (the served
model's) scores them for every face as its score, and the check reads their spread for nothing.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from detector.assess import Bands, band, edges, judged_faces
from detector.model import logit

# Every version the check knows; the order is part of the contract: column 0 is always the
# crop as found. A JPEG re-save (quality 80) was a fifth until measured: on 1,500 calibration
# faces it added 2 of 144 label flips that the others missed, at the highest cost.
VARIANTS = ("original", "flip", "half_size", "shift")
# The versions served, chosen by training.policy.STABILITY_VERSIONS_RULE (docs/MODEL.md, "The
# stability check"): on 300 calibration faces the shift found 4 of 58 assessment flips the
# other two missed, but all three cost 0.78 model passes per face, over the budget of 0.5.
CHECKED = ("original", "flip", "half_size")
SHIFT_PX = 8  # the crop box moved by this many pixels of the 224 crop, and 4% tighter
BILINEAR = Image.Resampling.BILINEAR


def variants(crop: np.ndarray, names: tuple[str, ...] = VARIANTS) -> np.ndarray:
    """(len(names), 224, 224, 3) uint8: the crop's versions named, in that order."""
    crop = np.asarray(crop, np.uint8)
    size = crop.shape[0]
    img = Image.fromarray(crop)
    make = {
        "original": lambda: crop,
        "flip": lambda: crop[:, ::-1],
        "half_size": lambda: np.asarray(img.resize((size // 2, size // 2), BILINEAR)
                                        .resize((size, size), BILINEAR)),
        "shift": lambda: np.asarray(img.crop((SHIFT_PX, SHIFT_PX // 2, size, size - SHIFT_PX // 2))
                                    .resize((size, size), BILINEAR)),
    }
    return np.stack([make[n]() for n in names])


def all_variants(crops: np.ndarray, names: tuple[str, ...] = VARIANTS) -> np.ndarray:
    """(N * len(names), 224, 224, 3): variants() of every crop, crop after crop."""
    return np.concatenate([variants(c, names) for c in crops]) if len(crops) else \
        np.zeros((0, *np.shape(crops)[1:]), np.uint8)


def to_check(shown: np.ndarray, sides: list[float], threshold: float, bands: Bands,
             prior_fake: float, margin: float) -> np.ndarray:
    """Which faces of one image get their versions scored: the judged faces whose assessment
    could change, i.e. "Likely real" or "Likely fake" within `margin` logits of the edge of
    their band (the bar of a group photo for "Likely fake"). The label is shown only under
    those two, and the bands lie on its side of the threshold (assess.agree), so a version
    that moves the label also leaves the band: checking the band edge checks the label too.
    A face far inside its band, between the bands, or not judged keeps its decision whatever
    its versions score. The card's margin is fitted on calibration faces
    (training.common.assessment.stability_margin)."""
    judged = np.zeros(len(shown), bool)
    judged[judged_faces(sides, bands)] = True
    return judged & near_edge(shown, *edges(sides, threshold, bands, prior_fake), margin)


def near_edge(shown: np.ndarray, below: float, bar: float, margin: float) -> np.ndarray:
    """Which scores lie in a band ("Likely real" or "Likely fake") within `margin` logits of
    its edge (at the margin included: a margin fitted on one face reaches that face)."""
    shown = np.asarray(shown, np.float64)
    z = logit(shown)
    return ((shown < below) & (logit(below) - z <= margin)) | \
        ((shown >= bar) & (z - logit(bar) <= margin))


def summary(p_variants: np.ndarray, threshold: float, checked: bool = True,
            edges: tuple[float, float] | None = None) -> dict:
    """Spread of one face's P(fake) over its versions, and whether they disagree on the
    decision: the band, given the image's (likely_real_below, bar) as `edges`, else the label
    at `threshold`. checked False: only the crop itself was scored (see to_check)."""
    p = np.asarray(p_variants, np.float64)[: len(p_variants) if checked else 1]
    moved = len(np.unique(band(p, *edges))) > 1 if edges is not None else \
        bool(p.min() <= threshold < p.max())
    return {"checked": bool(checked), "variants": len(p), "p_fake_min": round(float(p.min()), 6),
            "p_fake_max": round(float(p.max()), 6),
            "spread": round(float(p.max() - p.min()), 6), "unstable": bool(moved)}

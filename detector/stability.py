"""Benign variants of a face crop, scored beside it: a verdict that flips under a JPEG re-save or
a flip says more about the model than about the photo.

Each variant is a change an ordinary photo goes through on its way to us (shrunk and enlarged,
cropped a little differently, mirrored); none of them makes a real face fake.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from detector.model import logit

# The order is part of the contract: column 0 is always the crop as found. A JPEG re-save
# (quality 80) was a fifth variant until measured: on 1,500 calibration faces it added 2 of
# 144 label flips that the others missed, and it was the costliest to make (docs/MODEL.md).
VARIANTS = ("original", "flip", "half_size", "shift")
SHIFT_PX = 8  # the crop box moved by this many pixels of the 224 crop, and 4% tighter


def variants(crop: np.ndarray) -> np.ndarray:
    """(len(VARIANTS), 224, 224, 3) uint8: the crop and its benign variants, in VARIANTS order."""
    crop = np.asarray(crop, np.uint8)
    size = crop.shape[0]
    img = Image.fromarray(crop)
    half = np.asarray(img.resize((size // 2, size // 2), Image.BILINEAR)
                      .resize((size, size), Image.BILINEAR))
    inner = size - SHIFT_PX
    shift = np.asarray(img.crop((SHIFT_PX, SHIFT_PX // 2, SHIFT_PX + inner, SHIFT_PX // 2 + inner))
                       .resize((size, size), Image.BILINEAR))
    return np.stack([crop, crop[:, ::-1], half, shift])


def all_variants(crops: np.ndarray) -> np.ndarray:
    """(N * V, 224, 224, 3): variants() of every crop, crop after crop (reshape to (N, V))."""
    return np.concatenate([variants(c) for c in crops]) if len(crops) else \
        np.zeros((0, *np.shape(crops)[1:]), np.uint8)


def near(p_fake: np.ndarray, threshold: float, margin: float) -> np.ndarray:
    """Which scores are within `margin` (in logits) of the threshold: only their variants are
    scored. The card's margin is as wide as all but 2% of the calibration faces whose label
    flipped under a variant (training.common.assessment.stability_margin): scoring only the faces
    near the threshold is what keeps the check affordable, at the price of missing a few flips."""
    return np.abs(logit(p_fake) - logit(threshold)) < margin


def summary(p_variants: np.ndarray, threshold: float, checked: bool = True) -> dict:
    """Spread of one face's P(fake) over its variants, and whether they disagree on the label;
    checked False: only the crop itself was scored (far from the threshold, see near())."""
    p = np.asarray(p_variants, np.float64)[: len(p_variants) if checked else 1]
    return {"checked": bool(checked), "variants": len(p), "p_fake_min": round(float(p.min()), 6),
            "p_fake_max": round(float(p.max()), 6),
            "spread": round(float(p.max() - p.min()), 6),
            "unstable": bool(p.min() <= threshold < p.max())}

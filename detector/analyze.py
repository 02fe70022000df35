"""The inference core: decoded image -> faces -> crops -> calibrated P(fake) -> result dict.

Plain functions with no Celery and no job store: the worker, training's evaluation and the
research tools all call these, so every number is measured on the path users get.
"""

from __future__ import annotations

import numpy as np

from detector.crop import face_crops
from detector.faces import as_image
from shared.schema import build_result

# JPEGs are decoded at reduced scale (libjpeg's draft mode) down to about this size; faces in
# a photo that size still give crops of 224 px or more. PNGs are always decoded whole.
DECODE_SIZE = 1024


def analyze(image, detector, model, threshold: float | None = None) -> dict:
    """The result for one decoded RGB image (array or PIL): every face scored, the most
    suspicious decides."""
    return analyze_many([image], detector, model, threshold)[0]


def analyze_many(images: list, detector, model, threshold: float | None = None,
                 per_call: int | None = None) -> list[dict]:
    """Results for several images, with all their crops scored together (score_crops)."""
    images = [as_image(im) for im in images]
    found = [face_crops(img, detector) for img in images]
    p_all = score_crops(model, np.concatenate([crops for crops, _ in found]), per_call)
    results, at = [], 0
    for img, (crops, faces) in zip(images, found, strict=True):
        p_fakes = p_all[at:at + len(crops)]
        at += len(crops)
        results.append(build_result(
            [float(p) for p in p_fakes], [f.box for f in faces], [f.score for f in faces],
            model.threshold if threshold is None else threshold,
            {"name": model.name, "version": model.version}, img.size))
    return results


def score_crops(model, crops: np.ndarray, per_call: int | None = None) -> np.ndarray:
    """Calibrated P(fake) per crop; per_call splits them into model calls of at most that many
    (None: one call, the fastest with LiteRT here, see docs/PERFORMANCE.md)."""
    if not per_call or len(crops) <= per_call:
        return model.predict(crops)
    return np.concatenate([model.predict(crops[s:s + per_call])
                           for s in range(0, len(crops), per_call)])

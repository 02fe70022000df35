"""The inference core: decoded image -> faces -> crops -> calibrated P(fake) -> result dict.

Plain functions with no Celery and no job store: the worker, training's evaluation and the
research tools all call these, so every number is measured on the path users get.
"""

from __future__ import annotations

import numpy as np

from detector.assess import MAX_FACES, assess, face_side
from detector.chunks import in_chunks
from detector.crop import face_crops
from detector.faces import as_image
from detector.stability import VARIANTS, all_variants, near, summary
from shared.schema import build_result

# JPEGs are decoded at reduced scale (libjpeg's draft mode) down to about this size; faces in
# a photo that size still give crops of 224 px or more. PNGs are always decoded whole.
DECODE_SIZE = 1024


def analyze(image, face_finder, model, threshold: float | None = None) -> dict:
    """The result for one decoded RGB image (array or PIL): every face scored, the most
    suspicious decides."""
    return analyze_many([image], face_finder, model, threshold)[0]


def analyze_many(images: list, face_finder, model, threshold: float | None = None,
                 per_call: int | None = None, stability: bool = True) -> list[dict]:
    """Results for several images: all crops scored in one model call, then, in a second call,
    the benign variants of every face whose score is near enough to the threshold for them to
    cross it (stability.near; stability=False skips them: the benchmark's comparison)."""
    images = [as_image(im) for im in images]
    # One face more than are judged, so that a crowd is known to be one.
    found = [face_crops(img, face_finder, MAX_FACES + 1) for img in images]
    crops = np.concatenate([c for c, _ in found])
    threshold = model.threshold if threshold is None else threshold
    p_all = np.repeat(score_crops(model, crops, per_call)[:, None], len(VARIANTS), axis=1)
    checked = near(p_all[:, 0], threshold, model.stability_margin) if stability else \
        np.zeros(len(crops), bool)
    if checked.any():
        p_all[checked] = score_crops(model, all_variants(crops[checked]), per_call).reshape(
            -1, len(VARIANTS))
    results, at = [], 0
    for img, (c, faces) in zip(images, found, strict=True):
        p, ok = p_all[at:at + len(c)], checked[at:at + len(c)]
        at += len(c)
        # Served P(fake): the crop as found, or the variants' mean where the card says that
        # measured better (then the margin is infinite and every face is checked).
        served = np.where(ok, p.mean(axis=1), p[:, 0]) if model.served_mean else p[:, 0]
        boxes = [f.box for f in faces]
        verdict = assess(p, [face_side(b) for b in boxes], threshold, model.bands, served,
                         model.prior_fake)
        faces_st = [summary(row, threshold, bool(k)) for row, k in zip(p, ok, strict=True)]
        top = p.max(axis=0) if faces else p[0]
        results.append(build_result(
            [float(v) for v in served], boxes, [f.score for f in faces], threshold,
            {"name": model.name, "version": model.version}, img.size,
            assessment=verdict, stability=faces_st,
            image_stability=summary(top, threshold, bool(ok.any())),
            prior_fake=model.prior_fake))
    return results


def score_crops(model, crops: np.ndarray, per_call: int | None = None) -> np.ndarray:
    """Calibrated P(fake) per crop; per_call splits them into model calls of at most that many
    (None: one call, the fastest with LiteRT here, see docs/PERFORMANCE.md)."""
    if not per_call or len(crops) <= per_call:
        return model.predict(crops)
    return in_chunks(model.predict, crops, per_call)

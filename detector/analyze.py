"""The inference core: decoded image -> faces -> crops -> calibrated P(fake) -> result dict.

Plain functions with no Celery and no job store: the worker, training's evaluation and the
research tools all call these, so every number is measured on the path users get.
"""

from __future__ import annotations

import numpy as np

from detector.assess import MAX_FACES, assess, edges, face_side, judged_faces
from detector.chunks import in_chunks
from detector.crop import face_crops
from detector.faces import as_image
from detector.stability import CHECKED, all_variants, summary, to_check
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
    """Results for several images: every crop scored with the versions the card needs (_scores;
    stability=False scores the crops alone: the benchmark's comparison)."""
    images = [as_image(im) for im in images]
    # One face more than are judged, so that a crowd is known to be one.
    found = [face_crops(img, face_finder, MAX_FACES + 1) for img in images]
    crops = np.concatenate([c for c, _ in found])
    threshold = model.threshold if threshold is None else threshold
    sides = [[face_side(f.box) for f in faces] for _, faces in found]
    p_all, checked = _scores(model, crops, found, sides, threshold, per_call, stability)
    results, at = [], 0
    for img, (c, faces), s in zip(images, found, sides, strict=True):
        p, ok = p_all[at:at + len(c)], checked[at:at + len(c)]
        at += len(c)
        results.append(_result(img, p, ok, faces, s, threshold, model))
    return results


def _scores(model, crops: np.ndarray, found: list, sides: list, threshold: float,
            per_call: int | None, stability: bool) -> tuple[np.ndarray, np.ndarray]:
    """(faces x versions P(fake), which faces had their versions scored). A card serving the
    versions' mean needs them for every face: all in one call. Otherwise the crops first, then
    the versions of the faces to_check picks, in a second call."""
    if stability and model.served_mean:
        p_all = score_crops(model, all_variants(crops, CHECKED), per_call)
        return p_all.reshape(-1, len(CHECKED)), np.ones(len(crops), bool)
    p_all = np.repeat(score_crops(model, crops, per_call)[:, None], len(CHECKED), axis=1)
    if not stability:
        return p_all, np.zeros(len(crops), bool)
    checked = _checked(p_all[:, 0], found, sides, threshold, model)
    if checked.any():
        # Column 0 stays the first call's score: each crop scores the same in any batch (the
        # ONNX tower runs one crop per call, LiteRT's MobileNetV2 is batch-independent).
        p_all[checked, 1:] = score_crops(model, all_variants(crops[checked], CHECKED[1:]),
                                         per_call).reshape(-1, len(CHECKED) - 1)
    return p_all, checked


def _checked(p0: np.ndarray, found: list, sides: list, threshold: float, model) -> np.ndarray:
    """Which crops get their versions scored: to_check, image by image."""
    parts, at = [], 0
    for (c, _), s in zip(found, sides, strict=True):
        parts.append(to_check(p0[at:at + len(c)], s, threshold, model.bands, model.prior_fake,
                              model.stability_margin) if s else np.zeros(len(c), bool))
        at += len(c)
    return np.concatenate(parts)


def _result(img, p: np.ndarray, ok: np.ndarray, faces: list, sides: list, threshold: float,
            model) -> dict:
    """One image's result from its faces' scores (faces x versions) and which were checked."""
    # Served P(fake): the crop as found, or the versions' mean where the card says that
    # measured better (then every face is checked).
    served = np.where(ok, p.mean(axis=1), p[:, 0]) if model.served_mean else p[:, 0]
    boxes = [f.box for f in faces]
    verdict = assess(p, sides, threshold, model.bands, served, model.prior_fake)
    cut = edges(sides, threshold, model.bands, model.prior_fake) if faces else None
    faces_st = [summary(row, threshold, bool(k), cut) for row, k in zip(p, ok, strict=True)]
    judged = judged_faces(sides, model.bands) if faces else []
    top = p[judged].max(axis=0) if judged else p.max(axis=0)
    return build_result(
        [float(v) for v in served], boxes, [f.score for f in faces], threshold,
        {"name": model.name, "version": model.version}, img.size,
        assessment=verdict, stability=faces_st,
        image_stability=summary(top, threshold, bool(ok[judged].any()) if judged else False,
                                cut),
        prior_fake=model.prior_fake)


def score_crops(model, crops: np.ndarray, per_call: int | None = None) -> np.ndarray:
    """Calibrated P(fake) per crop; per_call splits them into model calls of at most that many
    (None: one call, the fastest with LiteRT here, see docs/PERFORMANCE.md)."""
    if not per_call or len(crops) <= per_call:
        return model.predict(crops)
    return in_chunks(model.predict, crops, per_call)

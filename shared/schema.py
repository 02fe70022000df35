"""The job result: its names (labels, assessments, reasons) and the one function that builds it,
through the typed models of shared/result.py, so the worker never hand-writes JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import get_args

from shared.result import Assessment, FaceAssessment, Label, Provenance, Reason, Result

LABELS: tuple[str, ...] = get_args(Label)
ASSESSMENTS: tuple[str, ...] = get_args(Assessment)
REASONS: tuple[str, ...] = get_args(Reason)
FACE_ASSESSMENTS: tuple[str, ...] = get_args(FaceAssessment)
FINAL = ("done", "failed")


def build_result(p_fakes: Sequence[float], boxes: Sequence[Sequence[float]],
                 scores: Sequence[float], threshold: float, model: dict,
                 image_size: tuple[int, int], *, assessment: dict,
                 stability: Sequence[dict], image_stability: dict,
                 prior_fake: float = 0.5, video: dict | None = None) -> dict:
    """Result dict from per-crop P(fake); the seed's label: the most suspicious judged face
    decides (any face, when none is judged).

    assessment: {assessment, reasons, reason_text} and, from detector.assess, `faces` (each
    face's own assessment) and `bands` (what the image was judged against); stability: one
    summary per face (or one for the whole-image score); image_stability: the same over the
    image's label; prior_fake: the share of fakes the served P(fake) assumes; video: a video's
    frames, tracks and timeline (shared.result.Video), which makes it a video's result.
    """
    if not p_fakes:
        raise ValueError("build_result needs at least one score")
    if boxes and len(boxes) != len(p_fakes):
        raise ValueError("one box per face score, or no boxes for a whole-image score")
    if assessment.get("assessment") not in ASSESSMENTS:
        raise ValueError(f"unknown assessment {assessment.get('assessment')!r}")
    per_face = list(assessment.get("faces") or ["not_judged"] * len(boxes))
    if boxes and len(per_face) != len(boxes):
        raise ValueError("one assessment per face")
    # The label reads the faces the assessment judged (all, when none was), so that a face too
    # small to judge cannot put the label Fake under "Likely real".
    judged = [p for p, a in zip(p_fakes, per_face, strict=False) if a != "not_judged"]
    p_fake = max(float(p) for p in (judged if boxes and judged else p_fakes))
    fake = p_fake > threshold
    faces = [
        {"box": [round(float(v), 1) for v in box], "score": round(float(s), 4),
         "p_fake": round(float(p), 6), "stability": dict(st), "assessment": str(a)}
        for box, s, p, st, a in zip(boxes, scores, p_fakes, stability, per_face, strict=True)
    ] if boxes else []
    optional = {"bands": assessment["bands"]} if "bands" in assessment else {}
    if video is not None:
        optional["video"] = video
    return Result.model_validate({
        "label": LABELS[fake],
        "confidence": round(p_fake if fake else 1.0 - p_fake, 6),
        "p_fake": round(p_fake, 6),
        "threshold": float(threshold),
        "prior_fake": float(prior_fake),
        "face_found": bool(faces),
        "assessment": assessment["assessment"],
        "reasons": list(assessment["reasons"]),
        "reason_text": str(assessment["reason_text"]),
        "stability": dict(image_stability),
        "faces": faces,
        "image": {"width": int(image_size[0]), "height": int(image_size[1])},
        "model": {"name": str(model["name"]), "version": str(model["version"])},
        "media": "video" if video is not None else "image",
        **optional,
    }).dump()


def checked_provenance(found: dict) -> dict:
    """A provenance report (detector.provenance) as the result declares it; ValueError (a
    pydantic ValidationError) when it is not of that shape."""
    return Provenance.model_validate(found).dump()


def with_provenance(result: dict, provenance: dict) -> dict:
    """The result with the provenance of the file it was made from (read by the worker from the
    original bytes, beside the verdict)."""
    return Result.model_validate({**result, "provenance": provenance}).dump()

"""The job result schema: one function builds it, so the worker never hand-writes JSON."""

from __future__ import annotations

from collections.abc import Sequence

LABELS = ("Real", "Fake")
FINAL = ("done", "failed")


def build_result(p_fakes: Sequence[float], boxes: Sequence[Sequence[float]],
                 scores: Sequence[float], threshold: float, model: dict,
                 image_size: tuple[int, int]) -> dict:
    """Result dict from per-crop P(fake); with several faces the most suspicious face decides."""
    if not p_fakes:
        raise ValueError("build_result needs at least one score")
    if boxes and len(boxes) != len(p_fakes):
        raise ValueError("one box per face score, or no boxes for a whole-image score")
    p_fake = max(float(p) for p in p_fakes)
    fake = p_fake > threshold
    faces = [
        {"box": [round(float(v), 1) for v in box], "score": round(float(s), 4),
         "p_fake": round(float(p), 6)}
        for box, s, p in zip(boxes, scores, p_fakes, strict=True)
    ] if boxes else []
    return {
        "label": LABELS[fake],
        "confidence": round(p_fake if fake else 1.0 - p_fake, 6),
        "p_fake": round(p_fake, 6),
        "threshold": float(threshold),
        "face_found": bool(faces),
        "faces": faces,
        "image": {"width": int(image_size[0]), "height": int(image_size[1])},
        "model": {"name": str(model["name"]), "version": str(model["version"])},
    }

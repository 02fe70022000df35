"""The assessment beside the seed's label: what a person should take from the score.

`label` stays the seed's rule (Fake when P(fake) > threshold). The assessment adds what that rule
hides: a score in the middle band, a verdict that flips under benign changes, and images the
model was not made for. Its bands come from the model's card (fitted on the calibration split).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TEXT = {
    "low_score": "The face scores well inside the range where real faces land.",
    "high_score": "The face scores where few real faces land (at most {real_share:.0%} of "
                  "real faces held out from training).",
    "middle_score": "The score is between the bands where real and fake faces usually land: the "
                    "model cannot tell.",
    "unstable": "Benign changes to the photo (resizing, mirroring, a slightly "
                "different crop) move the score across the threshold: the verdict is not "
                "reliable.",
    "no_face": "No face was found: the model judges face crops, so this score (of the centre of "
               "the image) is not what it was made for.",
    "face_too_small": "Every face is smaller than {min_face_px} px, below which the model's "
                      "accuracy drops.",
    "too_many_faces": "More than {max_faces} faces: judging a crowd by its most suspicious face "
                      "would accuse too many genuine photos.",
    "small_faces_skipped": "Faces smaller than {min_face_px} px were not judged.",
}


@dataclass(frozen=True)
class Bands:
    """Where the assessment changes, from the card's `assessment` entry."""

    likely_real_below: float
    likely_fake_from: float
    min_face_px: float
    max_faces: int
    real_share: float  # the share of held-out real faces allowed at or above likely_fake_from

    @classmethod
    def from_card(cls, card: dict) -> Bands:
        """Read the bands; KeyError names what is missing."""
        a = card["assessment"]
        return cls(float(a["likely_real_below"]), float(a["likely_fake_from"]),
                   float(a["min_face_px"]), int(a["max_faces"]), float(a["max_real_share"]))


def face_side(box) -> float:
    """The shorter side of a face box, in pixels of the image the model's crop was cut from."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return min(x1 - x0, y1 - y0)


def assess(p_variants: np.ndarray, sides: list[float], threshold: float, bands: Bands,
           served: list[float] | None = None) -> dict:
    """{assessment, reasons, reason_text} for one image.

    p_variants: (faces, variants) P(fake), column 0 the crop as found; no faces: (1, V) for the
    centre square. sides: each face's shorter side in pixels (empty: no face found). served: the
    P(fake) each face is reported with (default column 0); the bands read it, so that a card
    serving the variants' mean is judged on the number the user sees.
    """
    p = np.asarray(p_variants, np.float64)
    shown = p[:, 0] if served is None else np.asarray(served, np.float64)
    reasons: list[str] = []
    if not sides:
        return _out("not_applicable", ["no_face"], bands)
    if len(sides) > bands.max_faces:
        return _out("not_applicable", ["too_many_faces"], bands)
    judged = [i for i, s in enumerate(sides) if s >= bands.min_face_px]
    if not judged:
        return _out("not_applicable", ["face_too_small"], bands)
    if len(judged) < len(sides):
        reasons.append("small_faces_skipped")
    # The image's label under each variant is decided by its most suspicious judged face.
    per_variant = p[judged].max(axis=0)
    if per_variant.min() <= threshold < per_variant.max():
        return _out("uncertain", ["unstable", *reasons], bands)
    top = float(shown[judged].max())
    if top >= bands.likely_fake_from:
        return _out("likely_fake", ["high_score", *reasons], bands)
    if top < bands.likely_real_below:
        return _out("likely_real", ["low_score", *reasons], bands)
    return _out("uncertain", ["middle_score", *reasons], bands)


def _out(assessment: str, reasons: list[str], bands: Bands) -> dict:
    words = {"min_face_px": int(bands.min_face_px), "max_faces": bands.max_faces,
             "real_share": bands.real_share}
    return {"assessment": assessment, "reasons": reasons,
            "reason_text": " ".join(TEXT[r].format(**words) for r in reasons)}

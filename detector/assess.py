"""The assessment beside the seed's label: what a person should take from the score.

`label` stays the seed's rule (Fake when P(fake) > threshold). The assessment adds what that rule
hides: a score in the middle band, a verdict that flips under benign changes, and images the
model was not made for. Its bands come from the model's card (fitted on the calibration split).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Faces judged one by one in an image; more is a crowd, `not_applicable`. Each extra face raises
# the bar for "Likely fake" (group_bar), so the limit is where that bar leaves almost no room:
# at the shipped model's 2% prior, 12 faces put it at P(fake) 0.96 (one face: 0.66).
MAX_FACES = 12

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
    "too_many_faces": "More than {max_faces} faces: the model judges portraits and small "
                      "groups, not crowds.",
    "small_faces_skipped": "Faces smaller than {min_face_px} px were not judged.",
    "several_faces": "Each of the {faces} faces was judged on its own. With more faces, a "
                     "genuine photo is more likely to hold one that scores high by chance, so "
                     "a face must reach P(fake) {bar:.2f} here to make the photo likely fake "
                     "(one face alone: {single:.2f}).",
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
        """Read the bands; KeyError names what is missing. The card's own `max_faces` (4: the
        limit of the rule before group_bar) gives way to MAX_FACES."""
        a = card["assessment"]
        return cls(float(a["likely_real_below"]), float(a["likely_fake_from"]),
                   float(a["min_face_px"]), MAX_FACES, float(a["max_real_share"]))


def _logit(p: float) -> float:
    p = min(max(float(p), 1e-7), 1 - 1e-7)
    return math.log(p) - math.log1p(-p)


def group_bar(single: float, prior_fake: float, faces: int) -> float:
    """The "Likely fake" bar for an image of `faces` judged faces (Sidak on the prior).

    The served P(fake) assumes a share `prior_fake` of fakes per face. For the image as a whole
    to keep that prior, each of n faces may be fake with 1 - (1 - prior)^(1/n) (about prior / n);
    re-reading every face's score under that smaller prior lowers its logit by the difference,
    which is the same as raising the bar by it. One face: the card's band, unchanged. Whether
    this keeps real group photos from being accused more often than portraits is measured
    (bench/group_photos.py, docs/MODEL.md "Group photos").
    """
    if faces <= 1:
        return float(single)
    per_face = 1.0 - (1.0 - prior_fake) ** (1.0 / faces)
    z = _logit(single) + _logit(prior_fake) - _logit(per_face)
    return 1.0 / (1.0 + math.exp(-z))


def face_side(box) -> float:
    """The shorter side of a face box, in pixels of the image the model's crop was cut from."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return min(x1 - x0, y1 - y0)


def assess(p_variants: np.ndarray, sides: list[float], threshold: float, bands: Bands,
           served: list[float] | None = None, prior_fake: float = 0.5) -> dict:
    """{assessment, reasons, reason_text, faces, bands} for one image.

    p_variants: (faces, variants) P(fake), column 0 the crop as found; no faces: (1, V) for the
    centre square. sides: each face's shorter side in pixels (empty: no face found). served: the
    P(fake) each face is reported with (default column 0); the bands read it, so that a card
    serving the variants' mean is judged on the number the user sees. prior_fake: the share of
    fakes the served P(fake) assumes (the card's), for the bar of a group photo (group_bar).
    faces: each face's own assessment (`not_judged` for one too small, or all in a crowd);
    bands: the bands this image was judged against.
    """
    p = np.asarray(p_variants, np.float64)
    shown = p[:, 0] if served is None else np.asarray(served, np.float64)
    judged = [i for i, s in enumerate(sides) if s >= bands.min_face_px]
    if len(sides) > bands.max_faces:
        judged = []
    bar = group_bar(bands.likely_fake_from, prior_fake, len(judged))
    words = {"min_face_px": int(bands.min_face_px), "max_faces": bands.max_faces,
             "real_share": bands.real_share, "faces": len(judged), "bar": bar,
             "single": bands.likely_fake_from}
    out = {"faces": [_face(p[i], shown[i], threshold, bands, bar) if i in judged
                     else "not_judged" for i in range(len(sides))],
           "bands": {"likely_real_below": bands.likely_real_below,
                     "likely_fake_from": round(bar, 6), "faces_judged": len(judged)}}
    kind, reasons = _image(p, shown, sides, judged, threshold, bands, bar)
    return {"assessment": kind, "reasons": reasons,
            "reason_text": " ".join(TEXT[r].format(**words) for r in reasons), **out}


def _image(p, shown, sides, judged, threshold, bands, bar) -> tuple[str, list[str]]:
    if not sides:
        return "not_applicable", ["no_face"]
    if len(sides) > bands.max_faces:
        return "not_applicable", ["too_many_faces"]
    if not judged:
        return "not_applicable", ["face_too_small"]
    reasons = ["small_faces_skipped"] if len(judged) < len(sides) else []
    if len(judged) > 1:
        reasons.append("several_faces")
    # The image's label under each variant is decided by its most suspicious judged face.
    per_variant = p[judged].max(axis=0)
    if per_variant.min() <= threshold < per_variant.max():
        return "uncertain", ["unstable", *reasons]
    top = float(shown[judged].max())
    if top >= bar:
        return "likely_fake", ["high_score", *reasons]
    if top < bands.likely_real_below:
        return "likely_real", ["low_score", *reasons]
    return "uncertain", ["middle_score", *reasons]


def _face(p_row: np.ndarray, shown: float, threshold: float, bands: Bands, bar: float) -> str:
    """One judged face's own assessment, against the image's bar (the page tags its box)."""
    if p_row.min() <= threshold < p_row.max():
        return "uncertain"
    if shown >= bar:
        return "likely_fake"
    return "likely_real" if shown < bands.likely_real_below else "uncertain"

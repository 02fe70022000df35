"""The assessment beside the seed's label: what a person should take from the score.

`label` stays the seed's rule (Fake when P(fake) > threshold). The assessment adds what that rule
hides: a score in the middle band, a verdict that flips under benign changes, and images the
model was not made for. Its bands come from the model's card (fitted on the calibration split)
and are read under the label's rule (`agree`), so "Likely fake" always sits over the label Fake
and "Likely real" over Real, whatever threshold the card or an operator sets.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np

# Faces judged one by one in an image; more is a crowd, `not_applicable`. Each extra face raises
# the bar for "Likely fake" (group_bar), so the limit is where that bar leaves almost no room:
# at the served model's 2% prior, 12 faces put it at P(fake) 0.84 (one face: 0.30).
MAX_FACES = 12

TEXT = {
    "low_score": "{who} scores P(fake) {p}, under {below}: few fake faces score that low.",
    "high_score": "{who} scores P(fake) {p}, at or above {bar}: few real faces score that high "
                  "(at most {real_share:.0%} of the real faces held out from training).",
    "middle_score": "{who} scores P(fake) {p}, between {below} (under which the model would say "
                    "likely real) and {bar} (from which it would say likely fake). Real and fake "
                    "faces both score there, so the model cannot tell.",
    "unstable": "{who} scores P(fake) {p}, but resizing, mirroring or a slightly different crop "
                "moves it to between {lo} and {hi}, out of the band that would decide it: the "
                "model cannot tell reliably.",
    "no_face": "No face was found: the model judges face crops, so this score (of the centre of "
               "the image) is not what it was made for.",
    "face_too_small": "Every face is smaller than {min_face_px} px, below which the model's "
                      "accuracy drops.",
    "too_many_faces": "More than {max_faces} faces: the model judges portraits and small "
                      "groups, not crowds.",
    "small_faces_skipped": "Faces smaller than {min_face_px} px were not judged.",
    "several_faces": "Each of the {faces} faces was judged on its own. With more faces, a "
                     "genuine photo is more likely to hold one that scores high by chance, so "
                     "a face must reach P(fake) {bar} here to make the photo likely fake "
                     "(one face alone: {single}).",
}


def agree(below: float, fake_from: float, threshold: float) -> tuple[float, float]:
    """(likely_real_below, likely_fake_from) that cannot contradict the label at `threshold`.

    The one rule tying the bands to the label: "Likely fake" starts above the threshold (a face
    there is labelled Fake) and "Likely real" ends at or under it (a face there is labelled
    Real). A fitted edge on the wrong side moves to the threshold; the other is kept. Used by
    the fitting (training.common.assessment.fit_bands) and at serving time (Bands.at)."""
    return min(float(below), float(threshold)), max(float(fake_from),
                                                    float(np.nextafter(threshold, 2.0)))


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

    def at(self, threshold: float) -> Bands:
        """These bands under the label rule at `threshold` (agree)."""
        below, fake_from = agree(self.likely_real_below, self.likely_fake_from, threshold)
        return replace(self, likely_real_below=below, likely_fake_from=fake_from)

    def contradiction(self, threshold: float) -> str | None:
        """What in these bands would put an assessment over the opposite label (None: nothing)."""
        if self.likely_fake_from <= threshold:
            return (f"likely_fake_from {self.likely_fake_from} is not above the label threshold "
                    f"{threshold}: a face between them would read 'Likely fake' over the label "
                    "Real")
        if self.likely_real_below > threshold:
            return (f"likely_real_below {self.likely_real_below} is above the label threshold "
                    f"{threshold}: a face between them would read 'Likely real' over the label "
                    "Fake")
        return None


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


def judged_faces(sides: list[float], bands: Bands) -> list[int]:
    """The faces an image is judged on: none in a crowd, else those at least min_face_px."""
    if len(sides) > bands.max_faces:
        return []
    return [i for i, s in enumerate(sides) if s >= bands.min_face_px]


def edges(sides: list[float], threshold: float, bands: Bands,
          prior_fake: float) -> tuple[float, float]:
    """(likely_real_below, likely_fake bar) an image of these faces is judged against."""
    b = bands.at(threshold)
    return b.likely_real_below, group_bar(b.likely_fake_from, prior_fake,
                                          len(judged_faces(sides, b)))


def band(p, below: float, bar: float) -> np.ndarray:
    """-1 likely real, 1 likely fake, 0 between, per score."""
    p = np.asarray(p, np.float64)
    return np.where(p >= bar, 1, np.where(p < below, -1, 0))


def p_text(p: float, digits: int = 2) -> str:
    """P(fake) as the page writes it: 0.41, 0.00053 (`digits` significant), 'under 0.000001'."""
    p = float(p)
    if p >= 0.01:
        return f"{p:.{digits}f}"
    if p < 1e-6:
        return "under 0.000001"
    return np.format_float_positional(p, precision=digits, unique=False, fractional=False,
                                      trim="-")


def _numbers(top: float, below: float, bar: float) -> dict:
    """The score and the edges in words, with digits enough that the score differs from both."""
    for digits in range(2, 8):
        words = {k: p_text(v, digits) for k, v in (("p", top), ("below", below), ("bar", bar))}
        if words["p"] not in (words["below"], words["bar"]):
            break
    return words


def assess(p_variants: np.ndarray, sides: list[float], threshold: float, bands: Bands,
           served: np.ndarray | None = None, prior_fake: float = 0.5) -> dict:
    """{assessment, reasons, reason_text, faces, bands} for one image.

    p_variants: (faces, versions) P(fake), column 0 the crop as found; no faces: (1, V) for the
    centre square; a face whose versions were not scored repeats its score (stable). sides: each
    face's shorter side in pixels (empty: no face found). served: the P(fake) each face is
    reported with (default column 0); the bands read it, so that a card serving the versions'
    mean is judged on the number the user sees. prior_fake: the share of fakes the served P(fake)
    assumes (the card's), for the bar of a group photo (group_bar). faces: each face's own
    assessment (`not_judged` for one too small, or all in a crowd); bands: the bands this image
    was judged against, under the label rule at `threshold` (Bands.at).
    """
    bands = bands.at(threshold)
    p = np.asarray(p_variants, np.float64)
    shown = p[:, 0] if served is None else np.asarray(served, np.float64)
    judged = judged_faces(sides, bands)
    below, bar = edges(sides, threshold, bands, prior_fake)
    top = float(shown[judged].max()) if judged else float(shown.max())
    per_variant = p[judged].max(axis=0) if judged else p.max(axis=0)
    words = {"min_face_px": int(bands.min_face_px), "max_faces": bands.max_faces,
             "real_share": bands.real_share, "faces": len(judged),
             "single": p_text(bands.likely_fake_from), **_numbers(top, below, bar),
             "lo": p_text(per_variant.min()), "hi": p_text(per_variant.max()),
             "who": "The most suspicious face" if len(judged) > 1 else "The face"}
    out = {"faces": [_face(p[i], shown[i], below, bar) if i in judged else "not_judged"
                     for i in range(len(sides))],
           "bands": {"likely_real_below": below, "likely_fake_from": round(bar, 6),
                     "faces_judged": len(judged)}}
    kind, reasons = _image(top, per_variant, sides, judged, below, bar,
                           len(sides) > bands.max_faces)
    return {"assessment": kind, "reasons": reasons,
            "reason_text": " ".join(TEXT[r].format(**words) for r in reasons), **out}


def _image(top, per_variant, sides, judged, below, bar, crowd) -> tuple[str, list[str]]:
    if not sides:
        return "not_applicable", ["no_face"]
    if crowd:
        return "not_applicable", ["too_many_faces"]
    if not judged:
        return "not_applicable", ["face_too_small"]
    reasons = ["small_faces_skipped"] if len(judged) < len(sides) else []
    if len(judged) > 1:
        reasons.append("several_faces")
    # The decision shown is the band of the most suspicious judged face. It stands only if
    # every version of the photo gives the same band (each version's most suspicious face).
    kind = int(band(top, below, bar))
    if kind == 0:
        return "uncertain", ["middle_score", *reasons]
    if (band(per_variant, below, bar) != kind).any():
        return "uncertain", ["unstable", *reasons]
    return ("likely_fake", ["high_score", *reasons]) if kind > 0 else \
        ("likely_real", ["low_score", *reasons])


def _face(p_row: np.ndarray, shown: float, below: float, bar: float) -> str:
    """One judged face's own assessment, against the image's bar (the page tags its box)."""
    kind = int(band(shown, below, bar))
    if kind == 0 or (band(p_row, below, bar) != kind).any():
        return "uncertain"
    return "likely_fake" if kind > 0 else "likely_real"

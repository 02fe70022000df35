"""Face tracks across a video's sampled frames, and what a track's scores add up to.

Faces in consecutive samples are linked by box overlap (IoU), greedily, best overlap first, if
their crops also look alike (a cut to another person at the same place starts a new track); a
track survives up to MAX_GAP samples without its face (a turn of the head, a missed detection).
A track's P(fake) is the mean of its frames' logits, turned back into a probability: one frame
cannot carry a track the way a max would, and a few confident frames count for more than under
a plain mean of probabilities (measured against the frame mean in docs/PERFORMANCE.md).
The video is judged by its most suspicious track, as a photo is by its most suspicious face.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from detector.assess import Bands, assess

IOU_LINK = 0.15  # at one sample a second a moving head overlaps its last box less
MAX_GAP = 2
# Correlation of two crops' 24x24 grey thumbnails: the same face a second later scored 0.74 to
# 1.0 on clips made from the shared data, another face cut in at the same place -0.4 to 0.57.
SAME_LOOK = 0.65
MIN_TRACK_FRAMES = 3  # fewer scored frames than this: too short to judge
_EPS = 1e-6
SHORT_TEXT = ("The most suspicious face is seen in only {n} of the sampled frames, too few to "
              "judge a video by.")
TEXT = {"short_track": SHORT_TEXT}  # the reasons only a video has, beside detector.assess.TEXT


@dataclass
class Track:
    """One face followed through the samples: (sample index, box, detector score, P(fake))."""

    id: int
    samples: list[int] = field(default_factory=list)
    boxes: list[tuple] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    p: list[float] = field(default_factory=list)

    def p_fake(self) -> float:
        """The track's P(fake): the mean logit of its frames, as a probability."""
        return aggregate(np.asarray(self.p))


def aggregate(p: np.ndarray) -> float:
    """Mean of logits, back to a probability (the track rule)."""
    q = np.clip(np.asarray(p, np.float64), _EPS, 1 - _EPS)
    return float(1.0 / (1.0 + np.exp(-np.mean(np.log(q / (1 - q))))))


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def look(crop: np.ndarray) -> np.ndarray:
    """A crop's appearance for linking: its 24x24 grey thumbnail, zero mean, unit norm."""
    from PIL import Image

    g = np.asarray(Image.fromarray(crop).convert("L").resize((24, 24)), np.float64)
    g -= g.mean()
    return g / (np.linalg.norm(g) + 1e-9)


def link(per_sample: list[list[tuple]], iou_min: float = IOU_LINK, max_gap: int = MAX_GAP,
         looks: list[list[np.ndarray]] | None = None) -> list[list[tuple[int, int]]]:
    """Tracks as lists of (sample index, face index), from each sample's face boxes (and, with
    looks, each face's look(): a pair must also correlate at SAME_LOOK or more)."""
    tracks: list[list[tuple[int, int]]] = []
    last: list[tuple] = []  # per track: (last sample index, last box, last look)

    def alike(t: int, s: int, f: int) -> bool:
        return looks is None or float((last[t][2] * looks[s][f]).sum()) >= SAME_LOOK

    for s, boxes in enumerate(per_sample):
        pairs = sorted(((iou(last[t][1], box), t, f) for t in range(len(tracks))
                        if s - last[t][0] <= max_gap + 1 for f, box in enumerate(boxes)
                        if alike(t, s, f)), reverse=True)
        used_t, used_f = set(), set()
        for overlap, t, f in pairs:
            if overlap < iou_min:
                break
            if t in used_t or f in used_f:
                continue
            used_t.add(t)
            used_f.add(f)
            tracks[t].append((s, f))
            last[t] = (s, boxes[f], looks[s][f] if looks else None)
        for f, box in enumerate(boxes):
            if f not in used_f:
                tracks.append([(s, f)])
                last.append((s, box, looks[s][f] if looks else None))
    return tracks


def assess_tracks(tracks: list[Track], sides: list[float], threshold: float,
                  bands: Bands, prior_fake: float = 0.5) -> dict:
    """{assessment, reasons, reason_text, faces, bands} for a video from its tracks (sides: each
    track's median face side in pixels; faces: each track's own assessment); no track: not
    applicable; the decisive track too short: uncertain, and so is that track."""
    if not tracks:
        return assess(np.zeros((1, 1)), [], threshold, bands, prior_fake=prior_fake)
    scores = np.array([[t.p_fake()] for t in tracks])
    verdict = assess(scores, sides, threshold, bands, prior_fake=prior_fake)
    if verdict["assessment"] == "not_applicable":
        return verdict
    judged = [i for i, s in enumerate(sides) if s >= bands.min_face_px]
    top = max(judged, key=lambda i: scores[i, 0])
    n = len(tracks[top].p)
    if n < MIN_TRACK_FRAMES:
        faces = list(verdict["faces"])
        faces[top] = "uncertain"
        return {**verdict, "assessment": "uncertain", "faces": faces,
                "reasons": ["short_track", *verdict["reasons"]],
                "reason_text": SHORT_TEXT.format(n=n) + " " + verdict["reason_text"]}
    return verdict

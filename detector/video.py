"""A video's sampled frames -> faces -> tracks -> calibrated P(fake) per crop -> result dict.

Beside analyze.py (stills) and as plain: no Celery, no job store, no decoding. The frames come
decoded already (the worker samples them in a bounded child process, worker/video_decode.py);
every face crop is scored in few batched model calls, and the tracks (tracks.py) decide.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from detector.analyze import score_crops
from detector.assess import face_side
from detector.crop import face_crops
from detector.stability import summary
from detector.tracks import Track, assess_tracks, link, look
from shared.schema import build_result

PER_CALL = 32  # crops per model call: a few calls for a video, memory bounded for a large trunk
Progress = Callable[[int, int], object]  # (frames looked at for faces so far, frames in all)


def find_faces(frames: np.ndarray, face_finder, progress: Progress | None = None) -> list:
    """Per sample: its crops and faces (no face: its centre-square crop and []); progress is
    told after each frame."""
    found = []
    for i, arr in enumerate(frames):
        found.append(face_crops(Image.fromarray(arr), face_finder))
        if progress is not None:
            progress(i + 1, len(frames))
    return found


def analyze_video(frames: np.ndarray, meta: dict, face_finder, model,
                  threshold: float | None = None, progress: Progress | None = None) -> dict:
    """The result for sampled frames (meta: their times, the duration and the frame size):
    tracks, their scores, the timeline, the assessment."""
    threshold = model.threshold if threshold is None else threshold
    found = find_faces(frames, face_finder, progress)
    with_faces = [i for i, (_, faces) in enumerate(found) if faces]
    # One batched scoring for the video: every face crop, or the centre squares when no
    # frame has a face (scored, then judged not applicable, as a photo without a face is).
    use = with_faces or list(range(len(found)))
    p_all = score_crops(model, np.concatenate([found[i][0] for i in use]), PER_CALL)
    at, p_of = 0, {}
    for i in use:
        n = len(found[i][0])
        p_of[i] = p_all[at:at + n]
        at += n
    boxes = [[f.box for f in found[i][1]] for i in range(len(found))]
    looks = [[look(c) for c in found[i][0]] if found[i][1] else [] for i in range(len(found))]
    tracks = []
    for k, members in enumerate(link(boxes, looks=looks)):
        t = Track(k + 1)
        for s, f in members:
            t.samples.append(s)
            t.boxes.append(boxes[s][f])
            t.scores.append(found[s][1][f].score)
            t.p.append(float(p_of[s][f]))
        tracks.append(t)
    tracks.sort(key=lambda t: t.p_fake(), reverse=True)
    return _result(tracks, p_of, with_faces, meta, threshold, model)


def _result(tracks: list[Track], p_of: dict, with_faces: list[int], meta: dict,
            threshold: float, model) -> dict:
    times = meta["times"]
    sides = [float(np.median([face_side(b) for b in t.boxes])) for t in tracks]
    verdict = assess_tracks(tracks, sides, threshold, model.bands, model.prior_fake)
    if tracks:
        p_fakes = [t.p_fake() for t in tracks]
        best = [int(np.argmax(t.p)) for t in tracks]
        boxes = [t.boxes[b] for t, b in zip(tracks, best, strict=True)]
        scores = [float(np.mean(t.scores)) for t in tracks]
        stab = [summary(np.array([p]), threshold, False) for p in p_fakes]
    else:
        p_fakes = [float(np.mean([p_of[i][0] for i in p_of]))]
        best, boxes, scores, stab = [], [], [], []
    video = {
        "duration_s": meta["duration_s"] and round(float(meta["duration_s"]), 3),
        "frames_sampled": len(times), "frames_scored": len(with_faces),
        "tracks": [_track_view(t, times, b, a)
                   for t, b, a in zip(tracks, best, verdict["faces"], strict=True)],
        "timeline": [{"t": times[i], "p_fake": round(float(max(p_of[i])), 6)}
                     for i in with_faces]}
    return build_result(p_fakes, boxes, scores, threshold,
                        {"name": model.name, "version": model.version},
                        (meta["width"], meta["height"]), assessment=verdict, stability=stab,
                        image_stability=summary(np.array([max(p_fakes)]), threshold, False),
                        prior_fake=model.prior_fake, video=video)


def _track_view(t: Track, times: list[float], best: int, assessment: str) -> dict:
    return {"id": t.id, "frames": len(t.p), "p_fake": round(t.p_fake(), 6),
            "assessment": assessment,
            "first_t": times[t.samples[0]], "last_t": times[t.samples[-1]],
            "best": {"t": times[t.samples[best]], "p_fake": round(t.p[best], 6),
                     "box": [round(float(v), 1) for v in t.boxes[best]]},
            "scores": [{"t": times[s], "p_fake": round(p, 6)}
                       for s, p in zip(t.samples, t.p, strict=True)]}

"""A video job: sample frames in a bounded child process, find faces, link them into tracks,
score every crop in few batched model calls, and build the result from the tracks."""

from __future__ import annotations

import json
import logging
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from detector.analyze import DECODE_SIZE, score_crops
from detector.assess import face_side
from detector.crop import face_crops
from detector.stability import summary
from detector.tracks import Track, assess_tracks, link, look
from shared.formats import kind_of_stored
from shared.images import ImageError
from shared.jobs import LEASED, READY, JobStore
from shared.schema import build_result, with_provenance

log = logging.getLogger(__name__)
# One BLAS thread in the decoding child: it does no maths, and each thread reserves memory.
_CHILD_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
PER_CALL = 32  # crops per model call: a few calls for a video, memory bounded for a large trunk


def sample_frames(path: Path, settings: dict) -> tuple[np.ndarray, dict]:
    """(frames, meta) from worker.video_decode in a child process held to DFD_VIDEO_DECODE_S
    seconds and DFD_VIDEO_DECODE_MB of memory; ImageError naming why it failed."""
    limit_b = settings.VIDEO_DECODE_MB * 1024 * 1024
    # Never more than half the task's own limit: the faces and the model need the rest.
    limit_s = min(settings.VIDEO_DECODE_S, settings.TASK_TIME_LIMIT / 2)

    def bound():  # runs in the child before exec: its address space is capped
        resource.setrlimit(resource.RLIMIT_AS, (limit_b, limit_b))

    with tempfile.TemporaryDirectory(prefix="dfd-video-") as tmp:
        args = [sys.executable, "-m", "worker.video_decode", str(path), tmp,
                str(settings.VIDEO_FPS), str(settings.VIDEO_MAX_FRAMES), str(DECODE_SIZE)]
        try:
            done = subprocess.run(args, capture_output=True, text=True, preexec_fn=bound,  # noqa: S603, PLW1509
                                  timeout=limit_s, check=False, env=_CHILD_ENV)
        except subprocess.TimeoutExpired:
            raise ImageError("video_decode_timeout", "decoding the video took longer than "
                             f"{limit_s:g} s; refused") from None
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
            if done.returncode < 0 or re.search(r"memory|alloc", why, re.I):
                why = f"it needs more than {settings.VIDEO_DECODE_MB} MB to decode ({why})"
            raise ImageError("corrupt_video", f"the video cannot be decoded: {why}")
        meta = json.loads((Path(tmp) / "meta.json").read_text())
        if not meta["times"]:
            raise ImageError("no_frames", "no frame of the video could be decoded")
        frames = np.load(Path(tmp) / "frames.npy", allow_pickle=False)
    return frames, meta


def _faces(frames: np.ndarray, detector, jobs: JobStore, job_id: str):
    """Per sample: its crops and faces (no face: its centre-square crop and [])."""
    found = []
    for i, arr in enumerate(frames):
        found.append(face_crops(Image.fromarray(arr), detector))
        jobs.r.hset(JobStore.key(job_id), "frames_done", i + 1)
    return found


def analyze_video(frames: np.ndarray, meta: dict, detector, model, threshold: float,
                  progress=None) -> dict:
    """The result for sampled frames: tracks, their scores, the timeline, the assessment."""
    found = progress(frames) if progress else [face_crops(Image.fromarray(a), detector)
                                               for a in frames]
    with_faces = [i for i, (_, faces) in enumerate(found) if faces]
    # One batched scoring for the video: every face crop, or the centre squares when no
    # frame has a face (scored, then judged not applicable, as a photo without a face is).
    use = with_faces or list(range(len(found)))
    crops = np.concatenate([found[i][0] for i in use])
    p_all = score_crops(model, crops, PER_CALL)
    at, p_of = 0, {}
    for i in use:
        n = len(found[i][0])
        p_of[i] = p_all[at:at + n]
        at += n
    times = meta["times"]
    boxes = [[f.box for f in found[i][1]] for i in range(len(found))]
    tracks = []
    looks = [[look(c) for c in found[i][0]] if found[i][1] else [] for i in range(len(found))]
    for k, members in enumerate(link(boxes, looks=looks)):
        t = Track(k + 1)
        for s, f in members:
            t.samples.append(s)
            t.boxes.append(boxes[s][f])
            t.scores.append(found[s][1][f].score)
            t.p.append(float(p_of[s][f]))
        tracks.append(t)
    tracks.sort(key=lambda t: t.p_fake(), reverse=True)
    return _result(tracks, p_of, with_faces, times, meta, threshold, model)


def _result(tracks, p_of, with_faces, times, meta, threshold, model) -> dict:
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


def run_video(job_id: str, rec: dict, jobs: JobStore, path: Path, detector, model,
              settings: dict, threshold: float) -> dict:
    """The result of one video job (ImageError when its file cannot be used)."""
    frames, meta = sample_frames(path, settings)
    jobs.r.hset(JobStore.key(job_id), mapping={"frames_total": len(frames), "frames_done": 0})
    return analyze_video(frames, meta, detector, model, threshold,
                         progress=lambda fr: _faces(fr, detector, jobs, job_id))


# Back to the queue, as one step and only while the record exists and is still running.
_REQUEUE = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('HDEL', KEYS[1], 'owner', 'lease_until')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], ARGV[2], ARGV[1])
return 1
"""


def requeue(jobs: JobStore, job_ids: list[str]) -> list[str]:
    """Give claimed video jobs back to the queue: a task runs one video, so that a batch of
    them stays well inside the task's time limit. The ids given back (each needs a task)."""
    back = []
    script = jobs.r.register_script(_REQUEUE)
    for job_id in job_ids:
        rec = jobs.get(job_id)
        if rec and script(keys=[jobs.key(job_id), LEASED, READY],
                          args=[job_id, rec["created_at"]]) == 1:
            back.append(job_id)
    return back


def is_video_job(rec: dict | None) -> bool:
    """A job whose upload is a video (the web stored it under a video suffix, after checking
    its content)."""
    return bool(rec and kind_of_stored(rec.get("stored", "")) == "video")


def video_job(job_id: str, jobs: JobStore, storage, detector, model, settings: dict,
              threshold: float, finish, provenance) -> str:
    """Run one claimed video job to its final state; its outcome ('done', 'failed')."""
    rec = jobs.get(job_id)
    if rec is None or rec["status"] in ("done", "failed"):
        return "skipped"
    try:
        path = storage.path(rec["stored"])
        result = run_video(job_id, rec, jobs, path, detector, model, settings, threshold)
        result = with_provenance(result, provenance(job_id, path.read_bytes()))
    except (ImageError, FileNotFoundError) as exc:
        why = f"{exc.code}: {exc}" if isinstance(exc, ImageError) else \
            "the uploaded video is no longer in storage"
        finish(jobs, job_id, rec["created_at"], error=why)
        log.warning("job %s client=%s failed: %s", job_id, rec["client"], why,
                    extra={"job_id": job_id})
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any failure ends the job, never strands it
        log.exception("job %s: video failed", job_id)
        finish(jobs, job_id, rec["created_at"],
               error=f"internal error while analysing the video ({type(exc).__name__})")
        return "failed"
    finish(jobs, job_id, rec["created_at"], result=result, sha256=rec["sha256"],
           client=rec["client"])
    log.info("job %s client=%s done: video %s p_fake=%.4f tracks=%d", job_id, rec["client"],
             result["label"], result["p_fake"], len(result["video"]["tracks"]),
             extra={"job_id": job_id})
    return "done"

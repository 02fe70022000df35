"""A video job: its frames sampled in a bounded child process (worker/video_decode.py), then
scored by detector.video with its progress written to the job record, then recorded."""

from __future__ import annotations

import logging

from detector.analyze import DECODE_SIZE
from detector.video import analyze_video
from shared.images import ImageError
from shared.schema import with_provenance
from worker.common import fail, finish, gone, open_job, provenance_of
from worker.context import WorkerContext
from worker.video_decode import sample_frames

log = logging.getLogger(__name__)


def video_result(ctx: WorkerContext, job_id: str, rec: dict) -> dict:
    """The result of one video job, progress told as it goes; ImageError when its file cannot
    be used, FileNotFoundError when it is gone."""
    path = ctx.storage.path(rec["stored"])
    frames, meta = sample_frames(path, ctx.settings, DECODE_SIZE)
    ctx.jobs.set_progress(job_id, 0, len(frames))
    result = analyze_video(frames, meta, ctx.face_finder, ctx.model,
                           progress=lambda done, total: ctx.jobs.set_progress(job_id, done, total))
    return with_provenance(result, provenance_of(job_id, path.read_bytes()))


def video_job(ctx: WorkerContext, job_id: str) -> str:
    """Run one claimed video job to its final state; its outcome ('done', 'failed', 'skipped')."""
    rec = open_job(ctx, job_id)
    if rec is None:
        return "skipped"
    try:
        result = video_result(ctx, job_id, rec)
    except ImageError as exc:
        return fail(ctx, job_id, rec, f"{exc.code}: {exc}")
    except FileNotFoundError:
        return fail(ctx, job_id, rec, gone("video"))
    except Exception as exc:  # noqa: BLE001 - any failure ends the job, never strands it
        log.exception("job %s: video failed", job_id)
        return fail(ctx, job_id, rec,
                    f"internal error while analysing the video ({type(exc).__name__})")
    finish(ctx, job_id, rec, result=result)
    log.info("job %s client=%s done: video %s p_fake=%.4f tracks=%d", job_id, rec["client"],
             result["label"], result["p_fake"], len(result["video"]["tracks"]),
             extra={"job_id": job_id})
    return "done"

"""A claimed batch of jobs: stills scored together in one detector call, a video on its own
(worker/video.py); each final state recorded, then each upload deleted. It is never needed
again, except by a still sent with explain=1: its "Why?" map is made after the verdict is
recorded (worker/explain.py, a task of its own), which deletes the upload when it is done."""

from __future__ import annotations

import logging
import time

from detector.analyze import analyze_many
from shared import metrics
from shared.images import ImageError
from shared.schema import with_provenance
from worker.common import fail, finish, forget_uploads, gone, open_job, provenance_of, read_image
from worker.context import WorkerContext
from worker.video import video_job

log = logging.getLogger(__name__)


def run_jobs(ctx: WorkerContext, job_ids: list[str]) -> dict[str, str]:
    """Run claimed jobs to their final states, delete the uploads no longer needed; id ->
    outcome ('done', 'failed', 'skipped'). The store claims a video alone, never with stills."""
    try:
        stills, outcomes = [], {}
        for job_id in job_ids:
            rec = ctx.jobs.get(job_id)
            if rec is not None and rec["media"] == "video":
                outcomes[job_id] = video_job(ctx, job_id)
            else:
                stills.append(job_id)
        outcomes.update(_run_stills(ctx, stills))
        return outcomes
    finally:
        forget_uploads(ctx, job_ids)


def _load(ctx: WorkerContext, job_id: str):
    """(record, decoded image, provenance) of a claimed still, or its outcome when it cannot
    go on."""
    rec = open_job(ctx, job_id)
    if rec is None:
        return "skipped"
    try:
        data, image = read_image(ctx, rec)
    except ImageError as exc:  # first: an ImageError is a ValueError too
        return fail(ctx, job_id, rec, f"{exc.code}: {exc}", exc.code)
    except (FileNotFoundError, ValueError):
        return fail(ctx, job_id, rec, gone("image"), "upload missing from storage")
    return rec, image, provenance_of(job_id, data)


def _run_stills(ctx: WorkerContext, job_ids: list[str]) -> dict[str, str]:
    loaded, outcomes = {}, {}
    for job_id in job_ids:
        try:
            got = _load(ctx, job_id)
        except Exception:  # noqa: BLE001 - one bad job must not strand the batch
            log.exception("job %s: could not be loaded", job_id)
            got = fail(ctx, job_id, None, "internal error while reading the image")
        if isinstance(got, str):
            outcomes[job_id] = got
        else:
            loaded[job_id] = got
    if not loaded:
        return outcomes
    model = ctx.model
    started = time.perf_counter()
    try:
        results = analyze_many([img for _, img, _ in loaded.values()], ctx.face_finder, model)
    except Exception as exc:  # noqa: BLE001 - any failure must end the jobs, never strand them
        log.exception("batch of %d failed", len(loaded))
        for job_id, (rec, _, _) in loaded.items():
            finish(ctx, job_id, rec,
                   error=f"internal error while classifying ({type(exc).__name__})")
            outcomes[job_id] = "failed"
        return outcomes
    per_image = (time.perf_counter() - started) / len(loaded)
    for _ in loaded:
        metrics.MODEL_SECONDS.labels(getattr(model, "version", "unknown")).observe(per_image)
    for (job_id, (rec, _, prov)), result in zip(loaded.items(), results, strict=True):
        result = with_provenance(result, prov)  # beside the verdict, which it never changes
        finish(ctx, job_id, rec, result=result)
        outcomes[job_id] = "done"
        log.info("job %s client=%s done: %s p_fake=%.4f", job_id, rec["client"],
                 result["label"], result["p_fake"], extra={"job_id": job_id})
    return outcomes

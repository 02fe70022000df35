"""A batch of jobs: load each upload, run the detector on all of them, record each final state,
then delete each upload (it is never needed again: a reused result reads nothing from it)."""

from __future__ import annotations

import logging
import time

from detector.analyze import DECODE_SIZE, analyze_many
from shared import metrics
from shared.images import ImageError, decode_pil
from shared.jobs import JobStore
from shared.schema import FINAL
from shared.storage import Storage

log = logging.getLogger(__name__)


def _load(jobs: JobStore, storage: Storage, job_id: str, max_pixels: int):
    """(record, decoded image) for a claimed job, or the outcome when it cannot go on."""
    rec = jobs.get(job_id)
    if rec is None or rec["status"] in FINAL:
        return "skipped"  # deleted, expired, or finished by another worker's batch
    try:
        data = storage.read(rec["stored"])
    except (FileNotFoundError, ValueError):
        _finish(jobs, job_id, rec["created_at"],
                error="the uploaded image is no longer in storage")
        log.warning("job %s client=%s failed: upload missing from storage", job_id,
                    rec["client"], extra={"job_id": job_id})
        return "failed"
    try:
        # Re-verify on this side too: the web's check is not the only line of defence.
        return rec, decode_pil(data, max_pixels=max_pixels, reduce_to=DECODE_SIZE)
    except ImageError as exc:
        _finish(jobs, job_id, rec["created_at"], error=f"{exc.code}: {exc}")
        log.warning("job %s client=%s failed: %s", job_id, rec["client"], exc.code,
                    extra={"job_id": job_id})
        return "failed"


def _finish(jobs: JobStore, job_id: str, created_at: float | None, **final) -> bool:
    """Record a final state once, and count it (status, time since upload, assessment)."""
    if not jobs.finish(job_id, **final):
        return False
    result = final.get("result")
    status = "done" if result is not None else "failed"
    metrics.JOBS_FINISHED.labels(status).inc()
    if created_at:
        metrics.UPLOAD_TO_RESULT.labels(status).observe(max(0.0, time.time() - created_at))
    if result is not None:
        metrics.ASSESSMENTS.labels(result["assessment"], result["model"]["version"]).inc()
    return True


def _forget_uploads(jobs: JobStore, storage: Storage, job_ids: list[str]) -> None:
    """Delete the upload of every job that is final (or gone): privacy, not an hour later."""
    for job_id in job_ids:
        rec = jobs.get(job_id)
        stored = rec["stored"] if rec else None
        if rec is not None and rec["status"] not in FINAL:
            continue  # another worker holds it; it deletes the upload when it is done
        try:
            if stored:
                storage.delete(stored)
        except (OSError, ValueError):
            log.warning("job %s: could not delete its upload", job_id)


def run_jobs(job_ids: list[str], jobs: JobStore, storage: Storage, detector, model, *,
             max_pixels: int, threshold: float | None = None) -> dict[str, str]:
    """Process jobs as one batch, record each final state, delete the uploads; id -> outcome."""
    try:
        return _run(job_ids, jobs, storage, detector, model, max_pixels, threshold)
    finally:
        _forget_uploads(jobs, storage, job_ids)


def _run(job_ids, jobs, storage, detector, model, max_pixels, threshold) -> dict[str, str]:
    loaded, outcomes = {}, {}
    for job_id in job_ids:
        try:
            got = _load(jobs, storage, job_id, max_pixels)
        except Exception:  # noqa: BLE001 - one bad job must not strand the batch
            log.exception("job %s: could not be loaded", job_id)
            _finish(jobs, job_id, None, error="internal error while reading the image")
            got = "failed"
        if isinstance(got, str):
            outcomes[job_id] = got
        else:
            loaded[job_id] = got
    if not loaded:
        return outcomes
    started = time.perf_counter()
    try:
        results = analyze_many([img for _, img in loaded.values()], detector, model, threshold)
    except Exception as exc:  # noqa: BLE001 - any failure must end the jobs, never strand them
        log.exception("batch of %d failed", len(loaded))
        for job_id in loaded:
            _finish(jobs, job_id, loaded[job_id][0]["created_at"],
                    error=f"internal error while classifying ({type(exc).__name__})")
            outcomes[job_id] = "failed"
        return outcomes
    per_image = (time.perf_counter() - started) / len(loaded)
    for _ in loaded:
        metrics.MODEL_SECONDS.labels(getattr(model, "version", "unknown")).observe(per_image)
    for (job_id, (rec, _)), result in zip(loaded.items(), results, strict=True):
        _finish(jobs, job_id, rec["created_at"], result=result, sha256=rec["sha256"],
                client=rec["client"])
        outcomes[job_id] = "done"
        log.info("job %s client=%s done: %s p_fake=%.4f", job_id, rec["client"],
                 result["label"], result["p_fake"], extra={"job_id": job_id})
    return outcomes

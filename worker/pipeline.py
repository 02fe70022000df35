"""A batch of jobs: load each upload, run the detector on all of them, record each final state,
then delete each upload. It is never needed again: a job that asked for an explanation
(explain=1) has it computed from the decoded image and cached before it is final, and a reused
result reads nothing from it."""

from __future__ import annotations

import logging
import time

from detector.analyze import DECODE_SIZE, analyze_many
from detector.provenance import provenance
from shared import metrics
from shared.images import ImageError, decode_pil
from shared.jobs import JobStore
from shared.schema import FINAL, checked_provenance, with_provenance
from shared.storage import Storage
from worker.explain import explain_image_of
from worker.video import is_video_job, requeue, video_job

log = logging.getLogger(__name__)


def _provenance(job_id: str, data: bytes) -> dict:
    # Read from the stored bytes exactly as uploaded, before any decoding: a re-encode would
    # drop the metadata. provenance() reports bad metadata itself; this only guards the job.
    try:
        # Of the declared shape too: a crafted manifest's fields must not reach clients as is.
        return checked_provenance(provenance(data))
    except Exception:  # noqa: BLE001 - provenance is beside the verdict and must never fail it
        log.exception("job %s: provenance could not be read", job_id)
        return {"c2pa": {"present": False, "state": "unreadable"}, "markers": [],
                "summary": "The file's provenance could not be read."}


def _load(jobs: JobStore, storage: Storage, job_id: str, max_pixels: int):
    """(record, decoded image, provenance) for a claimed job, or the outcome when it cannot go
    on."""
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
        image = decode_pil(data, max_pixels=max_pixels, reduce_to=DECODE_SIZE)
    except ImageError as exc:
        _finish(jobs, job_id, rec["created_at"], error=f"{exc.code}: {exc}")
        log.warning("job %s client=%s failed: %s", job_id, rec["client"], exc.code,
                    extra={"job_id": job_id})
        return "failed"
    return rec, image, _provenance(job_id, data)


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
        if rec is not None and rec["status"] not in FINAL:  # running elsewhere, or requeued
            continue  # another worker holds it; it deletes the upload when it is done
        try:
            if stored:
                storage.delete(stored)
        except (OSError, ValueError):
            log.warning("job %s: could not delete its upload", job_id)


def run_jobs(job_ids: list[str], jobs: JobStore, storage: Storage, face_finder, model, *,
             max_pixels: int, threshold: float | None = None,
             settings=None) -> dict[str, str]:
    """Process jobs as one batch, record each final state, delete the uploads; id -> outcome.
    Videos (with settings: the DFD_VIDEO_* limits) run one by one after the stills."""
    try:
        videos = [j for j in job_ids if is_video_job(jobs.get(j))] if settings else []
        outcomes = _run([j for j in job_ids if j not in videos], jobs, storage, face_finder,
                        model, max_pixels, threshold)
        for job_id in videos[:1]:
            outcomes[job_id] = video_job(job_id, jobs, storage, face_finder, model, settings,
                                         model.threshold if threshold is None else threshold,
                                         _finish, _provenance)
        for job_id in requeue(jobs, videos[1:]):  # one video a task (worker/video.py)
            outcomes[job_id] = "requeued"
        return outcomes
    finally:
        _forget_uploads(jobs, storage, job_ids)


def _run(job_ids, jobs, storage, face_finder, model, max_pixels, threshold) -> dict[str, str]:
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
        results = analyze_many([img for _, img, _ in loaded.values()], face_finder, model,
                               threshold)
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
    done = list(zip(loaded.items(), results, strict=True))
    # Jobs that asked for an explanation last, so their batch mates are not held up by it.
    done.sort(key=lambda item: bool(item[0][1][0].get("explain")))
    for (job_id, (rec, image, prov)), result in done:
        result = with_provenance(result, prov)  # beside the verdict, which it never changes
        if rec.get("explain"):
            # Asked for with the upload (explain=1): computed now, while the image is at hand,
            # and cached before the job is final, because the upload is deleted then.
            explain_image_of(job_id, image, jobs, face_finder, model)
        _finish(jobs, job_id, rec["created_at"], result=result, sha256=rec["sha256"],
                client=rec["client"])
        outcomes[job_id] = "done"
        log.info("job %s client=%s done: %s p_fake=%.4f", job_id, rec["client"],
                 result["label"], result["p_fake"], extra={"job_id": job_id})
    return outcomes

"""A batch of jobs: load each upload, run the detector on all of them, record each final state."""

from __future__ import annotations

import logging

from detector.analyze import DECODE_SIZE, analyze_many
from detector.provenance import provenance
from shared.images import ImageError, decode_pil
from shared.jobs import JobStore
from shared.storage import Storage

log = logging.getLogger(__name__)


def _provenance(job_id: str, data: bytes) -> dict:
    # Read from the stored bytes exactly as uploaded, before any decoding: a re-encode would
    # drop the metadata. provenance() reports bad metadata itself; this only guards the job.
    try:
        return provenance(data)
    except Exception:  # noqa: BLE001 - provenance is beside the verdict and must never fail it
        log.exception("job %s: provenance could not be read", job_id)
        return {"c2pa": {"present": False, "state": "unreadable"}, "markers": [],
                "summary": "The file's provenance could not be read."}


def _load(jobs: JobStore, storage: Storage, job_id: str, max_pixels: int):
    """(record, decoded image, provenance) for a job, or the outcome when it cannot go on."""
    rec = jobs.mark_running(job_id)
    if rec is None:
        return "skipped"  # unknown, expired, or finished by another worker's batch
    try:
        data = storage.read(rec["stored"])
    except (FileNotFoundError, ValueError):
        jobs.finish(job_id, error="the uploaded image is no longer in storage")
        log.warning("job %s client=%s failed: upload missing from storage", job_id,
                    rec["client"])
        return "failed"
    try:
        # Re-verify on this side too: the web's check is not the only line of defence.
        image = decode_pil(data, max_pixels=max_pixels, reduce_to=DECODE_SIZE)
    except ImageError as exc:
        jobs.finish(job_id, error=f"{exc.code}: {exc}")
        log.warning("job %s client=%s failed: %s", job_id, rec["client"], exc.code)
        return "failed"
    return rec, image, _provenance(job_id, data)


def run_jobs(job_ids: list[str], jobs: JobStore, storage: Storage, detector, model, *,
             max_pixels: int, threshold: float | None = None) -> dict[str, str]:
    """Process jobs as one batch and record each final state; returns id -> outcome."""
    loaded, outcomes = {}, {}
    for job_id in job_ids:
        try:
            got = _load(jobs, storage, job_id, max_pixels)
        except Exception:  # noqa: BLE001 - one bad job must not strand the batch
            log.exception("job %s: could not be loaded", job_id)
            jobs.finish(job_id, error="internal error while reading the image")
            got = "failed"
        if isinstance(got, str):
            outcomes[job_id] = got
        else:
            loaded[job_id] = got
    if not loaded:
        return outcomes
    try:
        results = analyze_many([img for _, img, _ in loaded.values()], detector, model, threshold)
    except Exception as exc:  # noqa: BLE001 - any failure must end the jobs, never strand them
        log.exception("batch of %d failed", len(loaded))
        for job_id in loaded:
            jobs.finish(job_id, error=f"internal error while classifying ({type(exc).__name__})")
            outcomes[job_id] = "failed"
        return outcomes
    for (job_id, (rec, _, prov)), result in zip(loaded.items(), results, strict=True):
        result["provenance"] = prov  # beside the verdict: label, p_fake and assessment as is
        jobs.finish(job_id, result=result, sha256=rec["sha256"])
        outcomes[job_id] = "done"
        log.info("job %s client=%s done: %s p_fake=%.4f", job_id, rec["client"],
                 result["label"], result["p_fake"])
    return outcomes

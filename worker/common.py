"""What the image, video and "Why?" jobs share: reading a claimed job's upload, its provenance,
recording its final state once (with the metrics), and deleting uploads no longer needed."""

from __future__ import annotations

import logging
import os
import time
from typing import NamedTuple

from detector.analyze import DECODE_SIZE
from detector.provenance import provenance
from shared import metrics
from shared.attempts import Lapsed
from shared.images import decode_pil
from shared.job_outbox import ABANDONED
from shared.job_view import explanation_state
from shared.schema import FINAL, checked_provenance
from shared.tasks import follow_up_priority
from worker.context import WorkerContext

log = logging.getLogger(__name__)


def gone(media: str) -> str:
    """Why a job failed whose upload vanished (swept, or deleted by hand)."""
    return f"the uploaded {media} is no longer in storage"


def open_job(ctx: WorkerContext, job_id: str) -> dict | None:
    """The record of a claimed job still to be run; None when deleted, expired, or finished
    by another worker's batch meanwhile."""
    rec = ctx.jobs.get(job_id)
    return None if rec is None or rec["status"] in FINAL else rec


def read_image(ctx: WorkerContext, rec: dict):
    """(bytes as uploaded, decoded image) of a still's upload; FileNotFoundError or ValueError
    when it is gone, ImageError when it does not decode."""
    data = ctx.storage.read(rec["stored"])
    # Re-verified on this side too: the web's check is not the only line of defence.
    return data, decode_pil(data, max_pixels=ctx.settings.MAX_PIXELS, reduce_to=DECODE_SIZE)


def provenance_of(job_id: str, data: bytes) -> dict:
    """The provenance of the stored bytes exactly as uploaded, before any decoding (a re-encode
    would drop the metadata); never an exception, since it stands beside the verdict."""
    try:
        # Of the declared shape too: a crafted manifest's fields must not reach clients as is.
        return checked_provenance(provenance(data))
    except Exception:  # noqa: BLE001 - provenance is beside the verdict and must never fail it
        log.exception("job %s: provenance could not be read", job_id)
        return {"c2pa": {"present": False, "state": "unreadable"}, "markers": [],
                "summary": "The file's provenance could not be read."}


def finish(ctx: WorkerContext, job_id: str, rec: dict | None, *, result: dict | None = None,
           error: str | None = None) -> bool:
    """Record a final state once (a done result indexed for reuse by its client), and count it:
    status, time since upload, assessment. False when it was final already or is gone."""
    if result is not None and rec is not None:
        recorded = ctx.jobs.finish(job_id, result=result, sha256=rec["sha256"],
                                   client=rec["client"])
    else:
        recorded = ctx.jobs.finish(job_id, result=result, error=error)
    if recorded:
        _count(rec, result)
    return recorded


def _count(rec: dict | None, result: dict | None) -> None:
    """The metrics of one job that reached its final state here (a result, or else failed)."""
    status = "done" if result is not None else "failed"
    metrics.JOBS_FINISHED.labels(status).inc()
    if rec is not None and rec.get("created_at"):
        metrics.UPLOAD_TO_RESULT.labels(status).observe(max(0.0, time.time() - rec["created_at"]))
    if result is not None:
        metrics.ASSESSMENTS.labels(result["assessment"], result["model"]["version"]).inc()


def gave_up(ctx: WorkerContext, job_ids: list[str]) -> dict[str, str]:
    """Jobs the store failed for using up their attempts (a claim or the sweep found them):
    counted and logged as any failure, their uploads deleted; id -> 'failed', for follow_ups
    (their webhooks)."""
    for job_id in job_ids:
        rec = ctx.jobs.get(job_id)
        _count(rec, None)
        log.warning("job %s client=%s failed: %s", job_id, rec["client"] if rec else "?",
                    rec["error"] if rec else "gave up", extra={"job_id": job_id})
    forget_uploads(ctx, job_ids)
    return dict.fromkeys(job_ids, "failed")


def fail(ctx: WorkerContext, job_id: str, rec: dict | None, why: str, log_as: str = "") -> str:
    """Fail a job for a reason the client reads (`why`), logged as `log_as` (default: why)."""
    finish(ctx, job_id, rec, error=why)
    log.warning("job %s client=%s failed: %s", job_id, rec["client"] if rec else "?",
                log_as or why, extra={"job_id": job_id})
    return "failed"


def delete_upload(ctx: WorkerContext, job_id: str, stored: str) -> None:
    """Delete one upload, logging (not raising) when the disk refuses."""
    try:
        if stored:
            ctx.storage.delete(stored)
    except (OSError, ValueError):
        log.warning("job %s: could not delete its upload", job_id)


def forget_uploads(ctx: WorkerContext, job_ids: list[str]) -> None:
    """Delete the upload of every job that is final (or gone) and whose "Why?" map is not
    still to be made from it: privacy, not an hour later."""
    for job_id in job_ids:
        rec = ctx.jobs.get(job_id)
        if rec is not None and (rec["status"] not in FINAL
                                or explanation_state(rec) == "pending"):
            continue  # another worker holds it, or the map task deletes it when done
        delete_upload(ctx, job_id, rec["stored"] if rec else "")


def follow_ups(ctx: WorkerContext, outcomes: dict[str, str]) -> tuple[list, list]:
    """What recorded verdicts call for: (ids whose webhook is due, (id, priority) of each
    "Why?" map due). A map goes at the step after its job's own priority, so that it never
    overtakes a verdict of its class."""
    hooks, maps = [], []
    for job_id, outcome in outcomes.items():
        if outcome not in ("done", "failed"):
            continue
        if ctx.jobs.has_callback(job_id):
            hooks.append(job_id)
        rec = ctx.jobs.get(job_id)
        if rec is not None and explanation_state(rec) == "pending":
            maps.append((job_id, follow_up_priority(rec["priority"])))
    return hooks, maps


class Swept(NamedTuple):
    """What one sweep found: the store's lapsed jobs and maps, and the ids of the jobs whose
    webhook is still owed a lease after it fell due (JobStore.webhooks.lapsed)."""

    lapsed: Lapsed
    webhooks: list[str]


def sweep(ctx: WorkerContext) -> Swept:
    """One sweep per DFD_SWEEP_EVERY seconds across all workers (JobStore.sweep_turn is the
    lock): old uploads deleted, and the jobs whose task never came back (their lease lapsed):
    queued again, for the caller to send their tasks again at their own priority, or failed
    when they have used up their attempts (the caller passes those to gave_up); "Why?" maps
    whose lease lapsed, and webhooks still owed a lease on, for the caller to send again (or
    given up on, logged and counted, once sent again DFD_MAX_ATTEMPTS times)."""
    now, every = time.time(), ctx.settings.SWEEP_EVERY
    if now - ctx.swept < every:
        return Swept(Lapsed([], [], []), [])
    ctx.swept = now
    if not ctx.jobs.sweep_turn(str(os.getpid()), every):
        return Swept(Lapsed([], [], []), [])
    removed = ctx.storage.sweep(ctx.settings.RETENTION)
    if removed:
        log.info("swept %d uploads older than %ss", removed, ctx.settings.RETENTION)
    lapsed = ctx.jobs.release_lapsed(grace=ctx.lease)
    for job_id, _ in lapsed.again:
        log.warning("job %s: its task never came back (or was never sent); sent again", job_id,
                    extra={"job_id": job_id})
    for job_id, _ in lapsed.maps:
        log.warning("job %s: its map's task never came back; sent again", job_id,
                    extra={"job_id": job_id})
    # The same lease as a job's: past it, the task that owed the delivery is surely gone.
    webhooks = ctx.jobs.webhooks.lapsed(ctx.lease)
    for job_id in webhooks.again:
        log.warning("job %s: its webhook has no outcome a lease after it was due; sent again",
                    job_id, extra={"job_id": job_id})
    for job_id in webhooks.gave_up:
        log.warning("job %s: its webhook was sent again %d times (DFD_MAX_ATTEMPTS) and never "
                    "reached an outcome; given up (%s)", job_id, ctx.jobs.webhooks.most,
                    ABANDONED, extra={"job_id": job_id})
        metrics.WEBHOOKS.labels(ABANDONED).inc()
    return Swept(lapsed, webhooks.again)

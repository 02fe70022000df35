"""The "Why?" map of a done job, made after its verdict is recorded: a follow-up task reads the
upload the verdict came from (kept for it, decoded the same way, so the faces and crops are the
ones scored), caches an occlusion map per face in the job record, then deletes the upload.

A failure is cached for the client (the web answers 500) and never touches the verdict. Each
task claims the map first (JobStore.claim_map), counting an attempt: a map whose worker died or
ran out of time on it DFD_MAX_ATTEMPTS times is recorded as failed, saying so, not tried again."""

from __future__ import annotations

import json
import logging

from detector.explain import explain_image, grid_of, method
from shared.job_view import explanation_state
from shared.jobs import new_job_id
from worker.common import delete_upload, read_image
from worker.context import WorkerContext

log = logging.getLogger(__name__)


def explain_job(ctx: WorkerContext, job_id: str, owner: str | None = None) -> str:
    """Claim one done job's map for owner (the task id), make and cache it, then delete its
    upload; what happened ('done', 'failed', or 'skipped' when the job is gone, needs none, or
    another live task has it)."""
    claim = ctx.jobs.claim_map(job_id, owner or new_job_id(), ctx.lease)
    rec = ctx.jobs.get(job_id)
    if claim == "skip" or rec is None:
        return "skipped"  # deleted meanwhile (the web removed its upload), or made already
    if claim == "gave_up":
        log.warning("job %s: explanation failed: %s", job_id,
                    json.loads(rec["explanation"])["reason"], extra={"job_id": job_id})
        delete_upload(ctx, job_id, rec["stored"])
        return "failed"
    try:
        _, image = read_image(ctx, rec)
        faces = explain_image(image, ctx.face_finder, ctx.model)
    except Exception:  # noqa: BLE001 - a failure is recorded for the client, not lost
        log.exception("job %s: explanation failed", job_id, extra={"job_id": job_id})
        ctx.jobs.set_explanation(job_id, {"error": "failed"})
        return "failed"
    finally:
        delete_upload(ctx, job_id, rec["stored"])
    model = ctx.model  # the verdict's model: a worker process serves one
    ctx.jobs.set_explanation(job_id, {"method": method(grid_of(model)),
                                      "model": {"name": model.name, "version": model.version},
                                      "faces": faces})
    log.info("job %s explained: %d face(s)", job_id, len(faces), extra={"job_id": job_id})
    return "done"


def give_up(ctx: WorkerContext, job_id: str) -> None:
    """The map cannot be asked for (its task could not be sent): say so, drop the upload."""
    rec = ctx.jobs.get(job_id)
    if rec is not None and explanation_state(rec) == "pending":
        ctx.jobs.set_explanation(job_id, {"error": "failed"})
        delete_upload(ctx, job_id, rec["stored"])

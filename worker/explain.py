"""The explain task's work: an occlusion map per face of a done job, cached in its record."""

from __future__ import annotations

import logging

from detector.analyze import DECODE_SIZE
from detector.explain import METHOD, explain_image
from shared.images import decode_pil
from shared.jobs import JobStore
from shared.storage import Storage

log = logging.getLogger(__name__)


def explain_job(job_id: str, jobs: JobStore, storage: Storage, detector, model, *,
                max_pixels: int) -> str:
    """Compute and cache the explanation of one done job; returns what happened."""
    rec = jobs.get(job_id)
    if rec is None or rec["status"] != "done":
        return "skipped"
    if rec.get("explanation"):
        return "cached"  # a second request raced the first: the work is done
    try:
        data = storage.read(rec["stored"])
    except (FileNotFoundError, ValueError):
        # The upload was swept (DFD_RETENTION) or never kept (a reused result): the web says 410.
        jobs.set_explanation(job_id, {"error": "upload_gone"})
        return "gone"
    try:
        # Decoded exactly as for the verdict, so the faces and crops are the ones it scored.
        image = decode_pil(data, max_pixels=max_pixels, reduce_to=DECODE_SIZE)
        faces = explain_image(image, detector, model)
    except Exception:  # noqa: BLE001 - a failure is recorded for the waiting client, not lost
        log.exception("job %s: explanation failed", job_id)
        jobs.set_explanation(job_id, {"error": "failed"})
        return "failed"
    # The model that made the map, which is not the verdict's when the workers were upgraded
    # in between: a client can see that the two differ.
    jobs.set_explanation(job_id, {"method": METHOD,
                                  "model": {"name": model.name, "version": model.version},
                                  "faces": faces})
    log.info("job %s explained: %d face(s)", job_id, len(faces))
    return "done"

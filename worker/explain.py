"""The "Why?" map of a job's faces: an occlusion map per face, computed by the worker right
after the verdict from the image it already decoded (only for uploads sent with explain=1, since
the upload is deleted as soon as the job is final) and cached in the job record."""

from __future__ import annotations

import logging

from detector.explain import explain_image, grid_of, method
from shared.jobs import JobStore

log = logging.getLogger(__name__)


def explain_image_of(job_id: str, image, jobs: JobStore, face_finder, model) -> str:
    """Compute and cache the explanation of one job from its decoded image; what happened.

    `image` is the upload decoded exactly as for the verdict, so the faces and crops are the
    ones it scored. A failure is cached for the client (the web answers 500) and never fails
    the job: the verdict stands without its explanation.
    """
    try:
        faces = explain_image(image, face_finder, model)
    except Exception:  # noqa: BLE001 - a failure is recorded for the client, not lost
        log.exception("job %s: explanation failed", job_id, extra={"job_id": job_id})
        jobs.set_explanation(job_id, {"error": "failed"})
        return "failed"
    # The model that made the map (the verdict's, since both come from this one pass).
    jobs.set_explanation(job_id, {"method": method(grid_of(model)),
                                  "model": {"name": model.name, "version": model.version},
                                  "faces": faces})
    log.info("job %s explained: %d face(s)", job_id, len(faces), extra={"job_id": job_id})
    return "done"

"""Load image -> find faces -> classify crops -> result: plain functions the task and tests call."""

from __future__ import annotations

import logging

import numpy as np

from shared.images import ImageError, decode_image
from shared.jobs import JobStore
from shared.schema import build_result
from shared.storage import Storage
from worker.crop import face_crops

log = logging.getLogger(__name__)


def analyze(rgb: np.ndarray, detector, model, threshold: float | None = None) -> dict:
    """The result for one decoded RGB image: every face scored, the most suspicious decides."""
    crops, faces = face_crops(rgb, detector)
    p_fakes = model.predict(crops)
    return build_result(
        [float(p) for p in p_fakes],
        [f.box for f in faces],
        [f.score for f in faces],
        model.threshold if threshold is None else threshold,
        {"name": model.name, "version": model.version},
        (rgb.shape[1], rgb.shape[0]),
    )


def run_job(job_id: str, jobs: JobStore, storage: Storage, detector, model, *,
            max_pixels: int, threshold: float | None = None) -> str:
    """Process one job end to end and record its final state; returns that state."""
    rec = jobs.mark_running(job_id)
    if rec is None:
        log.info("job %s: unknown or already final, skipped", job_id)
        return "skipped"
    try:
        data = storage.read(rec["stored"])
    except (FileNotFoundError, ValueError):
        jobs.finish(job_id, error="the uploaded image is no longer in storage")
        return "failed"
    try:
        # Re-verify on this side too: the web's check is not the only line of defence.
        rgb = decode_image(data, max_pixels=max_pixels)
        result = analyze(rgb, detector, model, threshold)
    except ImageError as exc:
        jobs.finish(job_id, error=f"{exc.code}: {exc}")
        return "failed"
    except Exception as exc:  # noqa: BLE001 - any failure must end the job, never strand it
        log.exception("job %s failed", job_id)
        jobs.finish(job_id, error=f"internal error while classifying ({type(exc).__name__})")
        return "failed"
    if jobs.finish(job_id, result=result):
        jobs.remember_result(model.version, rec["sha256"], job_id)
    log.info("job %s client=%s done: %s p_fake=%.4f", job_id, rec["client"], result["label"],
             result["p_fake"])
    return "done"

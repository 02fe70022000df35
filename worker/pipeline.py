"""Load image -> find faces -> classify crops -> result: plain functions the task and tests call."""

from __future__ import annotations

import logging

import numpy as np

from shared.images import ImageError, decode_pil
from shared.jobs import JobStore
from shared.schema import build_result
from shared.storage import Storage
from worker.crop import face_crops
from worker.faces import as_image

log = logging.getLogger(__name__)
# JPEGs are decoded at reduced scale (libjpeg's draft mode) down to about this size; faces in
# a photo that size still give crops of 224 px or more. PNGs are always decoded whole.
DECODE_SIZE = 1024
# Crops per LiteRT call; None: every crop of a batch in one call (see docs/PERFORMANCE.md).
TFLITE_CROPS_PER_CALL: int | None = None


def analyze(image, detector, model, threshold: float | None = None) -> dict:
    """The result for one decoded RGB image (array or PIL): every face scored, the most
    suspicious decides."""
    return analyze_many([image], detector, model, threshold)[0]


def analyze_many(images: list, detector, model,
                 threshold: float | None = None) -> list[dict]:
    """Results for several images, with all their crops scored together (score_crops)."""
    images = [as_image(im) for im in images]
    found = [face_crops(img, detector) for img in images]
    p_all = score_crops(model, np.concatenate([crops for crops, _ in found]))
    results, at = [], 0
    for img, (crops, faces) in zip(images, found, strict=True):
        p_fakes = p_all[at:at + len(crops)]
        at += len(crops)
        results.append(build_result(
            [float(p) for p in p_fakes], [f.box for f in faces], [f.score for f in faces],
            model.threshold if threshold is None else threshold,
            {"name": model.name, "version": model.version}, img.size))
    return results


def score_crops(model, crops: np.ndarray) -> np.ndarray:
    """Calibrated P(fake) per crop, in as many model calls as is fastest for the runtime."""
    step = TFLITE_CROPS_PER_CALL if getattr(model, "runtime", None) == "tflite" else None
    if not step or len(crops) <= step:
        return model.predict(crops)
    return np.concatenate([model.predict(crops[s:s + step]) for s in range(0, len(crops), step)])


def _load(jobs: JobStore, storage: Storage, job_id: str, max_pixels: int):
    """(record, decoded image) for a job, or the outcome when it cannot go on."""
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
        return rec, decode_pil(data, max_pixels=max_pixels, reduce_to=DECODE_SIZE)
    except ImageError as exc:
        jobs.finish(job_id, error=f"{exc.code}: {exc}")
        log.warning("job %s client=%s failed: %s", job_id, rec["client"], exc.code)
        return "failed"


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
        results = analyze_many([img for _, img in loaded.values()], detector, model, threshold)
    except Exception as exc:  # noqa: BLE001 - any failure must end the jobs, never strand them
        log.exception("batch of %d failed", len(loaded))
        for job_id in loaded:
            jobs.finish(job_id, error=f"internal error while classifying ({type(exc).__name__})")
            outcomes[job_id] = "failed"
        return outcomes
    for (job_id, (rec, _)), result in zip(loaded.items(), results, strict=True):
        jobs.finish(job_id, result=result, sha256=rec["sha256"])
        outcomes[job_id] = "done"
        log.info("job %s client=%s done: %s p_fake=%.4f", job_id, rec["client"],
                 result["label"], result["p_fake"])
    return outcomes


def run_job(job_id: str, jobs: JobStore, storage: Storage, detector, model, *,
            max_pixels: int, threshold: float | None = None) -> str:
    """Process one job end to end and record its final state; returns that state."""
    return run_jobs([job_id], jobs, storage, detector, model, max_pixels=max_pixels,
                    threshold=threshold)[job_id]

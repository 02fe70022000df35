"""The Celery worker app: checks the model before forking, loads it once per child process."""

from __future__ import annotations

import logging
import os
import time

from celery import signals

from detector.model import check_model
from shared import logs, metrics
from shared import settings as settings_mod
from shared.jobs import JobStore
from shared.queue import make_celery, redis_client
from shared.storage import Storage
from shared.tasks import DETECT, QUEUE
from shared.webhooks import WEBHOOK

log = logging.getLogger("worker")
SETTINGS = settings_mod.load()
celery = make_celery(SETTINGS, "dfd-worker")
_state: dict = {}
# Seconds a job in flight keeps retrying Redis during an outage (well inside the time limit).
REDIS_RIDE_OUT = min(30.0, SETTINGS["TASK_TIME_LIMIT"] / 4)
# A claim outlives the task's hard time limit: past it, the claiming process is surely gone.
LEASE_S = SETTINGS["TASK_TIME_LIMIT"] + 30


@signals.setup_logging.connect
def _logging(**_):
    """Our logging, configured once (Celery then leaves logging alone)."""
    logs.configure(SETTINGS["LOG_FORMAT"])


@signals.worker_init.connect
def _check_model_before_fork(**_):
    """Refuse to start on a missing or broken model, in the parent, without importing TF."""
    logs.configure(SETTINGS["LOG_FORMAT"])  # worker_init comes before Celery's setup_logging
    card = check_model(SETTINGS["MODEL_PATH"])  # raises ModelError with the fix in its message
    apply_trust_anchors(SETTINGS)
    jobs = JobStore(redis_client(SETTINGS), SETTINGS["JOB_TTL"])
    jobs.set_model({"name": card["name"], "version": card["version"],
                    "threshold": _threshold(card)})
    if SETTINGS["METRICS_PORT"]:
        # For workers on a host without the web: this host's pool children, summed.
        metrics.serve(SETTINGS["METRICS_PORT"])
        log.info("metrics on :%d/metrics", SETTINGS["METRICS_PORT"])


def apply_trust_anchors(settings: dict) -> None:
    """C2PA signers to report as trusted, read once in the parent (only workers need the file);
    SettingsError naming DFD_C2PA_TRUST_ANCHORS when it cannot be used."""
    from detector.credentials import read_trust_anchors, set_trust_anchors

    path = settings["C2PA_TRUST_ANCHORS"]
    if not path:
        return
    try:
        set_trust_anchors(read_trust_anchors(path))
    except ValueError as exc:
        raise settings_mod.SettingsError(f"{settings_mod.PREFIX}C2PA_TRUST_ANCHORS: {exc}") \
            from None
    log.info("C2PA trust anchors from %s", path)


def _threshold(card: dict) -> float:
    return SETTINGS["THRESHOLD"] if SETTINGS["THRESHOLD"] is not None else float(card["threshold"])


def state() -> dict:
    """Per-process resources, created on first use after the fork and kept for its life."""
    if _state.get("pid") != os.getpid():
        from detector.faces import FaceDetector
        from detector.model import load_model

        _state.clear()
        model = load_model(SETTINGS["MODEL_PATH"], device=SETTINGS["DEVICE"])
        _state.update(
            pid=os.getpid(), model=model, detector=FaceDetector(),
            # A Redis restart mid-job is ridden out, so the job still records its result.
            jobs=JobStore(redis_client(SETTINGS, ride_out=REDIS_RIDE_OUT), SETTINGS["JOB_TTL"]),
            storage=Storage(SETTINGS["UPLOAD_DIR"]), threshold=_threshold(model.card),
            swept=0.0,
        )
        log.info("process %d loaded model %s %s (%s)", os.getpid(), model.name, model.version,
                 model.runtime)
    return _state


@signals.worker_process_init.connect
def _warm(**_):
    """Load the model right after the fork so the first job does not pay for it."""
    state()


def _maybe_sweep(st: dict) -> None:
    # One sweep a minute across all workers: the Redis key is the cluster-wide lock.
    now = time.time()
    if now - st["swept"] < 60:
        return
    st["swept"] = now
    if st["jobs"].r.set("dfd:sweep", os.getpid(), nx=True, ex=60):
        removed = st["storage"].sweep(SETTINGS["RETENTION"])
        if removed:
            log.info("swept %d uploads older than %ss", removed, SETTINGS["RETENTION"])


@celery.task(name=DETECT, bind=True)
def detect(self, job_id: str) -> str:
    """Classify the upload of one job (and of others waiting) and record the results."""
    from worker.pipeline import run_jobs

    logs.JOB_ID.set(job_id)
    st = state()
    # Take what else is waiting, up to the batch size: a lone job is never held back. The task
    # id owns the claim; a redelivery of this task (its worker died) takes the batch back.
    batch = st["jobs"].claim_ready(job_id, SETTINGS["BATCH_SIZE"] - 1, owner=self.request.id,
                                   lease=LEASE_S)
    outcomes = run_jobs(batch, st["jobs"], st["storage"], st["detector"], st["model"],
                        max_pixels=SETTINGS["MAX_PIXELS"], threshold=st["threshold"],
                        settings=SETTINGS)
    _maybe_sweep(st)
    for again in (j for j, outcome in outcomes.items() if outcome == "requeued"):
        detect.apply_async(args=[again], queue=QUEUE)  # its own task: one video a task
    for done_id, outcome in outcomes.items():
        if outcome in ("done", "failed") and st["jobs"].r.hexists(st["jobs"].key(done_id),
                                                                   "callback"):
            webhook.apply_async(args=[done_id])
    # Not in the batch: final already, deleted, or in another live worker's batch.
    return outcomes.get(job_id, "skipped")


@celery.task(name=WEBHOOK, bind=True, max_retries=SETTINGS["WEBHOOK_RETRIES"])
def webhook(self, job_id: str) -> str:
    """POST a final job's view to its callback_url, signed; retried with exponential backoff."""
    from worker.webhooks import DeliveryError, backoff, deliver, gave_up

    logs.JOB_ID.set(job_id)
    jobs = state()["jobs"]
    try:
        return deliver(SETTINGS, jobs, job_id)
    except DeliveryError as exc:
        if self.request.retries >= self.max_retries:
            return gave_up(jobs, job_id, str(exc))
        log.info("job %s webhook attempt %d failed (%s); retrying", job_id,
                 self.request.retries + 1, exc)
        raise self.retry(countdown=backoff(self.request.retries, SETTINGS["WEBHOOK_BACKOFF"]),
                         exc=exc) from None

"""The Celery worker app: `create_worker()` builds it from settings; the model is checked before
the fork and loaded once per child process."""

from __future__ import annotations

import logging
import os
import time

from celery import Celery, shared_task, signals
from celery import current_app as current_celery

from detector.model import check_model
from shared import logs, metrics
from shared import settings as settings_mod
from shared.jobs import JobStore
from shared.queue import make_celery, redis_client
from shared.storage import Storage
from shared.tasks import DETECT, QUEUE
from shared.webhooks import WEBHOOK

log = logging.getLogger("worker")
_state: dict = {}


def create_worker(settings: settings_mod.Settings | None = None) -> Celery:
    """The worker's Celery app, configured from settings (default: DFD_* from the environment);
    the tasks below are shared tasks, so they bind to it."""
    settings = settings or settings_mod.load()
    app = make_celery(settings.REDIS_URL, settings.TASK_TIME_LIMIT, "dfd-worker")
    app.conf.dfd = settings
    return app


def _settings() -> settings_mod.Settings:
    """The settings of the app this process runs (create_worker made it the current app)."""
    return current_celery.conf.dfd


def _ride_out(settings: settings_mod.Settings) -> float:
    # Seconds a job in flight keeps retrying Redis during an outage (well inside the time limit).
    return min(30.0, settings.TASK_TIME_LIMIT / 4)


def _lease(settings: settings_mod.Settings) -> float:
    # A claim outlives the task's hard time limit: past it, the claiming process is surely gone.
    return settings.TASK_TIME_LIMIT + 30


@signals.setup_logging.connect
def _logging(**_):
    """Our logging, configured once (Celery then leaves logging alone)."""
    logs.configure(_settings().LOG_FORMAT)


@signals.worker_init.connect
def _check_model_before_fork(sender=None, **_):
    """Refuse to start on a missing or broken model, in the parent, without importing TF."""
    settings = sender.app.conf.dfd if sender is not None else _settings()
    logs.configure(settings.LOG_FORMAT)  # worker_init comes before Celery's setup_logging
    check_model(settings.MODEL_PATH)  # raises ModelError with the fix in its message
    apply_trust_anchors(settings)
    if settings.METRICS_PORT:
        # For workers on a host without the web: this host's pool children, summed.
        metrics.serve(settings.METRICS_PORT)
        log.info("metrics on :%d/metrics", settings.METRICS_PORT)


def apply_trust_anchors(settings: settings_mod.Settings) -> None:
    """C2PA signers to report as trusted, read once in the parent (only workers need the file);
    SettingsError naming DFD_C2PA_TRUST_ANCHORS when it cannot be used."""
    from detector.credentials import read_trust_anchors, set_trust_anchors

    path = settings.C2PA_TRUST_ANCHORS
    if not path:
        return
    try:
        set_trust_anchors(read_trust_anchors(path))
    except ValueError as exc:
        raise settings_mod.SettingsError(f"{settings_mod.PREFIX}C2PA_TRUST_ANCHORS: {exc}") \
            from None
    log.info("C2PA trust anchors from %s", path)


def state() -> dict:
    """Per-process resources, created on first use after the fork and kept for its life."""
    if _state.get("pid") != os.getpid():
        from detector.faces import FaceDetector
        from detector.model import load_model

        settings = _settings()
        _state.clear()
        model = load_model(settings.MODEL_PATH, device=settings.DEVICE)
        if settings.THRESHOLD is not None:
            model.threshold = settings.THRESHOLD  # the operator's override, resolved once here
        # A Redis restart mid-job is ridden out, so the job still records its result.
        jobs = JobStore(redis_client(settings.REDIS_URL, ride_out=_ride_out(settings)),
                        settings.JOB_TTL)
        jobs.set_model(model.info())  # the model this worker serves, for the web's result reuse
        _state.update(pid=os.getpid(), settings=settings, model=model,
                      face_finder=FaceDetector(), jobs=jobs,
                      storage=Storage(settings.UPLOAD_DIR), swept=0.0)
        metrics.record_runtime(model.runtime.describe())
        log.info("process %d loaded model %s %s (%s)", os.getpid(), model.name, model.version,
                 model.runtime.name)
    return _state


@signals.worker_process_init.connect
def _warm(**_):
    """Load the model right after the fork so the first job does not pay for it."""
    state()


def _maybe_sweep(st: dict) -> None:
    # One sweep a minute across all workers (JobStore.sweep_turn is the cluster-wide lock).
    now = time.time()
    if now - st["swept"] < 60:
        return
    st["swept"] = now
    if st["jobs"].sweep_turn(str(os.getpid()), 60):
        retention = st["settings"].RETENTION
        removed = st["storage"].sweep(retention)
        if removed:
            log.info("swept %d uploads older than %ss", removed, retention)


@shared_task(name=DETECT, bind=True)
def detect(self, job_id: str) -> str:
    """Classify the upload of one job (and of others waiting) and record the results."""
    from worker.pipeline import run_jobs

    logs.JOB_ID.set(job_id)
    st = state()
    settings = st["settings"]
    # Take what else is waiting, up to the batch size: a lone job is never held back. The task
    # id owns the claim; a redelivery of this task (its worker died) takes the batch back.
    claimed = st["jobs"].claim_ready(job_id, settings.BATCH_SIZE - 1, owner=self.request.id,
                                     lease=_lease(settings))
    outcomes = run_jobs(claimed, st["jobs"], st["storage"], st["face_finder"], st["model"],
                        max_pixels=settings.MAX_PIXELS, settings=settings)
    _maybe_sweep(st)
    for again in (j for j, outcome in outcomes.items() if outcome == "requeued"):
        detect.apply_async(args=[again], queue=QUEUE)  # its own task: one video a task
    for done_id, outcome in outcomes.items():
        if outcome in ("done", "failed") and st["jobs"].has_callback(done_id):
            webhook.apply_async(args=[done_id])
    # Not in the batch: final already, deleted, or in another live worker's batch.
    return outcomes.get(job_id, "skipped")


@shared_task(name=WEBHOOK, bind=True)
def webhook(self, job_id: str) -> str:
    """POST a final job's view to its callback_url, signed; retried with exponential backoff."""
    from worker.webhooks import DeliveryError, backoff, deliver, gave_up

    logs.JOB_ID.set(job_id)
    st = state()
    settings, jobs = st["settings"], st["jobs"]
    try:
        return deliver(settings, jobs, job_id)
    except DeliveryError as exc:
        if self.request.retries >= settings.WEBHOOK_RETRIES:
            return gave_up(jobs, job_id, str(exc))
        log.info("job %s webhook attempt %d failed (%s); retrying", job_id,
                 self.request.retries + 1, exc)
        raise self.retry(countdown=backoff(self.request.retries, settings.WEBHOOK_BACKOFF),
                         exc=exc, max_retries=settings.WEBHOOK_RETRIES) from None

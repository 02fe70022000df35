"""The Celery worker app: `create_worker()` builds it from settings; the model is checked before
the fork and loaded once per child process."""

from __future__ import annotations

import logging
import os
import threading
import time

import redis
from celery import Celery, shared_task, signals
from celery import current_app as current_celery

from detector.model import check_model
from shared import logs, metrics
from shared import settings as settings_mod
from shared.queue import make_celery
from shared.tasks import DEFAULT_PRIORITY, DETECT, EXPLAIN, QUEUE
from shared.webhooks import WEBHOOK
from worker.common import follow_ups, gave_up, sweep
from worker.context import WorkerContext
from worker.context import context as build_context

log = logging.getLogger("worker")


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


def context() -> WorkerContext:
    """This process's resources, built once after the fork (worker.context), and its sweeper."""
    ctx = build_context(_settings())
    _start_sweeper(ctx)
    return ctx


@signals.worker_process_init.connect
def _warm(**_):
    """Load the model right after the fork so the first job does not pay for it."""
    context()


_sweeping: int | None = None  # the process whose sweeper thread runs (a fork inherits none)


def _start_sweeper(ctx: WorkerContext) -> None:
    """Sweep on a timer in every worker process, not only when a task comes: with no uploads
    arriving, a job whose lease lapsed would otherwise stay running for ever. The store's lock
    lets one process across all workers sweep per DFD_SWEEP_EVERY."""
    global _sweeping
    if _sweeping == os.getpid():
        return
    _sweeping = os.getpid()
    app = detect.app  # the current app, which the thread sends its tasks through
    threading.Thread(target=_sweep_forever, args=(ctx, app), name="dfd-sweep",
                     daemon=True).start()


def _sweep_forever(ctx: WorkerContext, app: Celery) -> None:
    """The sweeper thread's loop: a turn every DFD_SWEEP_EVERY seconds, for the process's life."""
    app.set_current()
    while True:
        time.sleep(ctx.settings.SWEEP_EVERY)
        try:
            sweep_and_send(ctx)
        except redis.RedisError as exc:  # an outage: the next turn tries again
            log.warning("sweep skipped: %s", exc)
        except Exception:  # noqa: BLE001 - the thread must outlive one bad turn
            log.exception("sweep failed")


def sweep_and_send(ctx: WorkerContext) -> None:
    """This process's turn at the sweep (worker.common.sweep), and what it calls for: the tasks
    of lapsed jobs and maps sent again, the webhooks of the jobs it failed, and the webhooks
    still owed a lease after they fell due sent again."""
    lapsed, webhooks = sweep(ctx)
    _send_again(lapsed.again)
    _send_maps(ctx, lapsed.maps)
    _send_follow_ups(ctx, gave_up(ctx, lapsed.gave_up))
    _send_webhooks(webhooks)


def _send_again(jobs: list[tuple[str, int]]) -> None:
    """Send the task of each job given back to its pool again, at the job's own priority."""
    for job_id, priority in jobs:
        try:
            detect.apply_async(args=(job_id,), queue=QUEUE, priority=priority)
        except Exception:  # noqa: BLE001 - the store's resend set has it: a sweep sends it
            log.exception("job %s: could not be sent again now; a sweep will", job_id)


def _send_follow_ups(ctx: WorkerContext, outcomes: dict[str, str]) -> None:
    """After the verdicts are recorded: the webhooks and "Why?" maps they call for."""
    hooks, maps = follow_ups(ctx, outcomes)
    _send_webhooks(hooks)
    _send_maps(ctx, maps)


def _send_webhooks(job_ids: list[str]) -> None:
    """Send the webhook task of each job, by name; one that cannot be sent now stays owed in
    the store's outbox (recorded with the verdict), and a sweep sends it a lease later."""
    for job_id in job_ids:
        try:
            webhook.app.send_task(WEBHOOK, args=(job_id,), queue=QUEUE,
                                  priority=DEFAULT_PRIORITY)
        except Exception:  # noqa: BLE001 - the outbox has it: a sweep sends it
            log.exception("job %s: its webhook could not be sent now; a sweep will", job_id)


def _send_maps(ctx: WorkerContext, maps: list[tuple[str, int]]) -> None:
    """Send the task of each "Why?" map at its priority; one that cannot be sent is failed."""
    from worker.explain import give_up

    for job_id, priority in maps:
        try:
            explain.apply_async(args=(job_id,), queue=QUEUE, priority=priority)
        except Exception:  # noqa: BLE001 - the verdict stands; the map is reported as failed
            log.exception("job %s: the map could not be asked for", job_id)
            give_up(ctx, job_id)


@shared_task(name=DETECT, bind=True)
def detect(self, job_id: str) -> str:
    """Classify the upload of one job (and of stills waiting) and record the results."""
    from worker.pipeline import run_jobs

    logs.JOB_ID.set(job_id)
    ctx = context()
    # A still's task takes what else is waiting, up to the batch size: a lone job is never
    # held back; a video's takes its video alone. The task id owns the claim; a redelivery of
    # this task (its worker died) takes its own job back, alone, and gives the rest of its
    # batch back, each sent again in a task of its own, so that an upload that kills its
    # worker fails alone. A job whose attempts are used up (its workers kept dying or running
    # out of time) is failed by the claim instead of handed out, and gets its webhook like any
    # failed job.
    claim = ctx.jobs.claim_ready(job_id, ctx.settings.BATCH_SIZE - 1, owner=self.request.id,
                                 lease=ctx.lease)
    _send_again(claim.again)
    outcomes = {**gave_up(ctx, claim.gave_up), **run_jobs(ctx, claim.running)}
    _send_follow_ups(ctx, outcomes)
    # Not in the batch: final already, deleted, or in another live worker's batch.
    return outcomes.get(job_id, "skipped")


@shared_task(name=EXPLAIN, bind=True)
def explain(self, job_id: str) -> str:
    """Make a done job's "Why?" map from its kept upload, then delete the upload; the task id
    owns the map's claim, so a redelivery (its worker died) takes it back."""
    from worker.explain import explain_job

    logs.JOB_ID.set(job_id)
    return explain_job(context(), job_id, owner=self.request.id)


@shared_task(name=WEBHOOK, bind=True)
def webhook(self, job_id: str) -> str:
    """POST a final job's view to its callback_url, signed; retried with exponential backoff."""
    from worker.webhooks import DeliveryError, backoff, deliver, gave_up

    logs.JOB_ID.set(job_id)
    ctx = context()
    settings, jobs = ctx.settings, ctx.jobs
    try:
        return deliver(settings, jobs, job_id)
    except DeliveryError as exc:
        if self.request.retries >= settings.WEBHOOK_RETRIES:
            return gave_up(jobs, job_id, str(exc))
        log.info("job %s webhook attempt %d failed (%s); retrying", job_id,
                 self.request.retries + 1, exc)
        wait = backoff(self.request.retries, settings.WEBHOOK_BACKOFF)
        jobs.webhooks.retry_in(job_id, wait)  # no sweep sends it again while the retry waits
        raise self.retry(countdown=wait, exc=exc, max_retries=settings.WEBHOOK_RETRIES) from None

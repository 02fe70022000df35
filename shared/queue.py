"""Celery and Redis clients; used by the web (to send) and the worker."""

from __future__ import annotations

import redis
from celery import Celery
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from shared.tasks import DEFAULT_PRIORITY, PRIORITY_STEPS, QUEUE


def redis_client(url: str, ride_out: float = 0) -> redis.Redis:
    """A Redis client with timeouts, so an outage surfaces as an error rather than a hang.

    The read timeout stays above the longest ?wait= long-poll (10 s), which blocks in BLPOP.
    ride_out > 0 (the worker): a command that cannot reach Redis is retried for about that many
    seconds, so a job in flight survives a Redis restart and records its result, instead of
    failing with its task message left unacknowledged (redelivered only after the visibility
    timeout). The web keeps 0: it answers 503 at once.
    """
    extra = {}
    if ride_out > 0:
        backoff = ExponentialBackoff(cap=2.0, base=0.1)
        retries, waited = 0, 0.0
        while waited < ride_out:
            retries += 1
            waited += backoff.compute(retries)
        extra = {"retry": Retry(backoff, retries),
                 "retry_on_error": [redis.ConnectionError, redis.TimeoutError]}
    return redis.Redis.from_url(url, socket_connect_timeout=2,
                                socket_timeout=15, health_check_interval=30, **extra)


def celery_config(redis_url: str, time_limit: int) -> dict:
    """Celery settings: JSON only, late acks with requeue on a lost worker, prefetch 1."""
    limit = int(time_limit)
    return {
        "broker_url": redis_url,
        "broker_connection_retry_on_startup": True,
        # A task's hard limit stays well under the visibility timeout, so a slow task is never
        # handed to a second worker while the first is still on it.
        # Priorities (shared.tasks.PRIORITIES): one Redis list per step, served in order.
        "broker_transport_options": {"visibility_timeout": max(3600, 4 * limit),
                                     "socket_connect_timeout": 2, "socket_timeout": 10,
                                     "priority_steps": PRIORITY_STEPS, "sep": ":",
                                     "queue_order_strategy": "priority"},
        "task_default_priority": DEFAULT_PRIORITY,
        "task_serializer": "json",
        "accept_content": ["json"],
        "result_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": limit,
        "task_soft_time_limit": max(limit - 5, 1),
        "task_default_queue": QUEUE,
        # Task events for Flower and `celery events` (docs/OPERATIONS.md).
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
    }


def make_celery(redis_url: str, time_limit: int, name: str = "dfd") -> Celery:
    """A Celery app on the broker at redis_url (DFD_REDIS_URL, DFD_TASK_TIME_LIMIT); no tasks
    registered here."""
    app = Celery(name)
    app.conf.update(celery_config(redis_url, time_limit))
    return app

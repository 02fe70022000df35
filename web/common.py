"""What the API's views share: the app's parts and settings, the status limit, a job looked up
(or 404) and the ?wait= argument with its cap (also the OpenAPI document's maximum)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypedDict

from flask import abort, current_app, request

if TYPE_CHECKING:
    import redis
    from celery import Celery

    from shared.jobs import JobStore
    from shared.settings import Settings
    from shared.storage import Storage

MAX_WAIT = 10.0  # seconds a request may hold for a job to be final


class Parts(TypedDict):
    """The app's parts (web/__init__.py's register_extensions)."""

    redis: redis.Redis
    jobs: JobStore
    storage: Storage
    celery: Celery


def ext() -> Parts:
    """The app's parts: redis, jobs (the store), storage, celery."""
    return current_app.extensions["dfd"]


def settings() -> Settings:
    """The app's settings (DFD_*, parsed once by web/__init__.py)."""
    return current_app.config["DFD"]


def status_limit() -> str:
    """The rate limit of the status routes (DFD_STATUS_LIMIT)."""
    return settings().STATUS_LIMIT


def wait_arg() -> float:
    """The ?wait= seconds of a request (0 when absent); 400 when not a number in range."""
    try:
        wait = float(request.args.get("wait", 0))
    except ValueError:
        abort(400, description="wait must be a number of seconds")
    if not 0 <= wait <= MAX_WAIT:  # also refuses nan
        abort(400, description=f"wait must be between 0 and {MAX_WAIT:g} seconds")
    return wait


def job_or_404(job_id: str, gone: str = "unknown or expired") -> dict:
    """The record of a job; 404 naming the id when there is none (gone says why it may be)."""
    rec = ext()["jobs"].get(job_id) if len(job_id) == 32 else None
    if rec is None:
        abort(404, description=f"no job {job_id[:64]!r} ({gone})")
    return rec

"""The upload page and the health endpoints."""

from __future__ import annotations

from flask import Blueprint, jsonify, render_template

from shared import formats
from web.common import ext, settings
from web.extensions import limiter

bp = Blueprint("pages", __name__)


@bp.get("/")
@limiter.exempt
def index():
    """The upload page (its accept list, words and the script's list of formats come from
    shared/formats)."""
    dfd = settings()
    return render_template("index.html", accept=formats.page_accept(),
                           page_formats=formats.for_page(), still_words=formats.listed("still"),
                           video_words=formats.listed("video"), upload_limit=dfd.UPLOAD_LIMIT,
                           max_upload_mb=dfd.MAX_UPLOAD_MB,
                           video_max_mb=dfd.VIDEO_MAX_MB, video_max_s=dfd.VIDEO_MAX_S,
                           job_ttl=duration_text(dfd.JOB_TTL),
                           feedback_ttl=duration_text(dfd.FEEDBACK_TTL))


def duration_text(seconds: float) -> str:
    """'24 hours', '15 minutes', '90 seconds', '7 days': the largest whole unit (days from 2)."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= max(size, 2 * 86400 if unit == "day" else 0) and seconds % size == 0:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n != 1 else ''}"
    n = round(seconds)
    return f"{n} second{'s' if n != 1 else ''}"


@bp.get("/healthz")
@limiter.exempt
def healthz():
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
@limiter.exempt
def readyz():
    """Redis answers and at least one worker replies to a ping; else 503."""
    parts = ext()
    redis_ok, workers = False, 0
    error: dict[str, str] = {}
    try:
        redis_ok = bool(parts["redis"].ping())
        workers = len(parts["celery"].control.ping(timeout=1.0) or [])
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        error = {"error": type(exc).__name__}
    ready = redis_ok and workers > 0
    return (jsonify(status="ready" if ready else "not ready", redis=redis_ok, workers=workers,
                    **error), 200 if ready else 503)

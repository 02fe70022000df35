"""The upload page and the health endpoints."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, render_template

from web.extensions import limiter

bp = Blueprint("pages", __name__)


@bp.get("/")
@limiter.exempt
def index():
    """The upload page."""
    dfd = current_app.config["DFD"]
    return render_template("index.html", upload_limit=dfd["UPLOAD_LIMIT"],
                           max_upload_mb=dfd["MAX_UPLOAD_MB"])


@bp.get("/healthz")
@limiter.exempt
def healthz():
    """The process is up."""
    return jsonify(status="ok")


@bp.get("/readyz")
@limiter.exempt
def readyz():
    """Redis answers and at least one worker replies to a ping; else 503."""
    ext = current_app.extensions["dfd"]
    checks = {"redis": False, "workers": 0}
    try:
        checks["redis"] = bool(ext["redis"].ping())
        replies = ext["celery"].control.ping(timeout=1.0)
        checks["workers"] = len(replies or [])
    except Exception as exc:  # noqa: BLE001 - readiness reports, it does not raise
        checks["error"] = type(exc).__name__
    ready = checks["redis"] and checks["workers"] > 0
    return jsonify(status="ready" if ready else "not ready", **checks), 200 if ready else 503

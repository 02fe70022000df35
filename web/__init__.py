"""Flask web app: the upload page and the JSON job API. Never imports TensorFlow."""

from __future__ import annotations

import sys
from pathlib import Path

from flask import Flask, request
from flask.json.provider import DefaultJSONProvider
from werkzeug.middleware.proxy_fix import ProxyFix

from shared import logs
from shared import settings as settings_mod
from shared.jobs import JobStore
from shared.queue import make_celery, redis_client
from shared.storage import Storage

# The page templates: templates/ at the top of the source tree, else where the wheel installs
# them (its data files, as for the model: <prefix>/share/dfd/templates).
_ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = next((p for p in (_ROOT / "templates", Path(sys.prefix) / "share" / "dfd" / "templates")
                  if p.is_dir()), _ROOT / "templates")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
        "media-src 'self' blob:; "  # the page previews a chosen video from the local file
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


class _OrderedJSON(DefaultJSONProvider):
    """Flask's JSON with the keys in the documented order (id, status, ...), not sorted."""

    sort_keys = False


def create_app(test_config: dict | None = None) -> Flask:
    """Build the app: settings from DFD_* (test_config: 'ENV' instead of os.environ, 'DFD' to
    replace parsed settings), extensions, blueprints."""
    # web/static is package data; the templates are the wheel's data files (TEMPLATES).
    app = Flask(__name__, template_folder=str(TEMPLATES))
    test_config = dict(test_config or {})
    dfd = settings_mod.load(test_config.pop("ENV", None)).replace(**test_config.pop("DFD", {}))
    app.config.from_mapping(
        DFD=dfd,
        # The larger of the two: images are held to DFD_MAX_UPLOAD_MB each (web/uploads.py).
        MAX_CONTENT_LENGTH=int(max(dfd.MAX_UPLOAD_MB, dfd.VIDEO_MAX_MB) * 1_000_000),
        MAX_FORM_PARTS=dfd.MAX_FILES + 10,
        RATELIMIT_STORAGE_URI=dfd.REDIS_URL,
        RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 2, "socket_timeout": 5},
        RATELIMIT_STRATEGY="moving-window",
        RATELIMIT_HEADERS_ENABLED=True,
    )
    app.config.update(test_config)
    app.json = _OrderedJSON(app)
    register_extensions(app)
    register_blueprints(app)
    from web.errors import register_errorhandlers

    register_errorhandlers(app)
    if dfd.TRUSTED_PROXIES:
        # Only then is X-Forwarded-For believed, and only for that many hops. Flask's documented
        # way to add a middleware, though its types declare wsgi_app a method.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=dfd.TRUSTED_PROXIES)  # type: ignore[method-assign]
    app.after_request(_security_headers)
    app.before_request(_job_in_logs)
    logs.configure(dfd.LOG_FORMAT)
    return app


def _job_in_logs():
    # Every log line of a request about one job carries its id (shared.logs).
    logs.JOB_ID.set((request.view_args or {}).get("job_id", "-")[:64])


def register_extensions(app: Flask) -> None:
    """Redis-backed job store, storage, Celery sender and the rate limiter."""
    from web.extensions import limiter

    dfd = app.config["DFD"]
    client = redis_client(dfd.REDIS_URL)
    app.extensions["dfd"] = {
        "redis": client,
        "jobs": JobStore(client, dfd.JOB_TTL),
        "storage": Storage(dfd.UPLOAD_DIR),
        "celery": make_celery(dfd.REDIS_URL, dfd.TASK_TIME_LIMIT, "dfd-web"),
    }
    # Registered before the limiter's own hook so that it runs after it (Flask runs them in
    # reverse): the limiter rounds Retry-After down, which sends clients back a second early.
    app.after_request(_retry_after_header)
    limiter.init_app(app)


def register_blueprints(app: Flask) -> None:
    """Pages at /, the API at /api/v1, health at /healthz and /readyz."""
    from web.api import bp as api_bp
    from web.evidence import bp as evidence_bp
    from web.metrics import bp as metrics_bp
    from web.pages import bp as pages_bp

    app.register_blueprint(pages_bp)
    app.register_blueprint(metrics_bp)
    app.register_blueprint(api_bp, url_prefix="/api/v1")
    app.register_blueprint(evidence_bp, url_prefix="/api/v1")


def _retry_after_header(response):
    # The limiter's header hook ran just before this one and stamped Retry-After (its own,
    # rounded-down value) on every limited response. It means "wait" only on a 429 or 503, or
    # on a 202 whose body says when to ask again (a "Why?" map on its way): there the value
    # the body states is put back (web.errors computes a 429's, once).
    retry = None
    if response.status_code in (202, 429) and response.is_json:
        body = response.get_json(silent=True) or {}
        retry = (body.get("error") or {}).get("retry_after") if response.status_code == 429 \
            else body.get("retry_after")
    if retry:
        response.headers["Retry-After"] = str(retry)
    elif response.status_code not in (429, 503):
        response.headers.pop("Retry-After", None)
    return response


def _security_headers(response):
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response

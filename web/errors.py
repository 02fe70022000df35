"""One JSON error shape for every failure: {"error": {"code", "message"}}."""

from __future__ import annotations

import logging
import math
import time

import redis
from flask import Flask, abort, jsonify
from kombu.exceptions import OperationalError
from werkzeug.exceptions import HTTPException

from shared.errors import InputError
from web.extensions import limiter

log = logging.getLogger(__name__)
CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
         405: "method_not_allowed", 409: "conflict", 410: "gone", 413: "too_large",
         415: "unsupported_type", 422: "idempotency_key_reused", 429: "rate_limited",
         503: "unavailable"}


def error_response(status: int, code: str, message: str, **extra):
    """The JSON error body with its status code."""
    body = {"error": {"code": code, "message": message, **extra}}
    return jsonify(body), status


def abort_with(status: int, code: str, message: str):
    """Stop the request with an error of a specific code (abort() only gives the generic one)."""
    response, status = error_response(status, code, message)
    response.status_code = status
    abort(response)


def _http_error(exc: HTTPException):
    status = exc.code or 500
    if status == 413:
        return error_response(413, "too_large", _too_large_message())
    if status == 429:
        return _rate_limited(exc)
    message = exc.description or exc.name
    response, status = error_response(status, CODES.get(status, exc.name.lower().replace(" ", "_")),
                                      message)
    if status == 405 and exc.get_response().headers.get("Allow"):
        response.headers["Allow"] = exc.get_response().headers["Allow"]
    return response, status


def _max_mb() -> str:
    from flask import current_app

    return f"{current_app.config['MAX_CONTENT_LENGTH'] / 1e6:g}"


def _too_large_message() -> str:
    # Werkzeug raises the same bare 413 for a body over MAX_CONTENT_LENGTH and for a form with
    # too many parts (or an oversized text field); the declared length tells them apart.
    from flask import current_app, request

    size = f"the upload is larger than the limit of {_max_mb()} MB"
    parts = (f"the form has more than {current_app.config['MAX_FORM_PARTS']} parts or a text "
             f"field over {current_app.config['MAX_FORM_MEMORY_SIZE'] / 1e3:g} kB")
    length = request.content_length
    if length is None:  # chunked: the total was not declared
        return f"{size}, or {parts}"
    return size if length > current_app.config["MAX_CONTENT_LENGTH"] else parts


def retry_seconds(rate, reset_at: float) -> int:
    """Retry-After for a limit whose oldest hit leaves the window at reset_at: rounded up, and
    never past the window, so a client that waits this long gets through."""
    return min(rate.get_expiry(), max(1, math.ceil(reset_at - time.time())))


def _rate_limited(exc: HTTPException):
    limit = limiter.current_limit
    retry = retry_seconds(limit.limit, limit.reset_at) if limit else 60
    what = str(limit.limit) if limit else "the rate limit"
    response, status = error_response(
        429, "rate_limited", f"rate limit reached ({what}); try again in {retry} s",
        retry_after=retry)
    response.headers["Retry-After"] = str(retry)
    return response, status


def _input_error(exc: InputError):
    return error_response(exc.status, exc.code, str(exc))


def _unavailable(exc: Exception):
    log.warning("backend unavailable: %s", type(exc).__name__)
    response, status = error_response(503, "unavailable",
                                      "the job store is unreachable; try again shortly")
    response.headers["Retry-After"] = "5"
    return response, status


def _internal(exc: Exception):
    log.exception("unhandled error")
    return error_response(500, "internal_error", "an internal error occurred")


def register_errorhandlers(app: Flask) -> None:
    """Attach the JSON handlers for HTTP errors, refused input, outages and everything else."""
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(InputError, _input_error)
    for exc_type in (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
                     OperationalError):
        app.register_error_handler(exc_type, _unavailable)
    app.register_error_handler(Exception, _internal)

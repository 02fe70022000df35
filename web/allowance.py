"""Per-client upload allowances on Redis (the limiter's storage, one moving window each).

- Judged files count against the upload limit: DFD_UPLOAD_LIMIT, or the API key's own rate.
- Refused requests (a wrong type, a bad field: any 4xx before anything is queued) count against
  their own, higher DFD_REFUSAL_LIMIT (an API key's refusals against its own rate), so a wrong
  pick does not cost a person a real photo's turn while abuse stays bounded.
- Videos count against DFD_VIDEO_LIMIT as well.
The allowance is only charged once the files passed their checks, with an atomic hit: a request
held open by ?wait= cannot let another past the limit, since nothing is charged at answer time.
"""

from __future__ import annotations

import math

from flask import abort, after_this_request
from limits import parse

from web.common import settings
from web.errors import error_response, retry_seconds
from web.extensions import api_key_entry, client_id, limiter

SCOPES = {"upload": "upload limit", "refused": "limit on refused uploads",
          "video": "video limit"}


def _rate(scope: str):
    dfd, entry = settings(), api_key_entry()
    if scope == "video":
        return parse(dfd.VIDEO_LIMIT)
    if entry is not None:
        return parse(entry["limit"])
    return parse(dfd.UPLOAD_LIMIT if scope == "upload" else dfd.REFUSAL_LIMIT)


def _refuse(scope: str, rate) -> None:
    """429 with Retry-After: the seconds until the oldest hit leaves the window, rounded up."""
    reset, _ = limiter.limiter.get_window_stats(rate, scope, client_id())
    retry = retry_seconds(rate, reset)
    response, status = error_response(
        429, "rate_limited", f"{SCOPES[scope]} reached ({rate}); try again in {retry} s",
        retry_after=retry)
    response.status_code = status
    _headers(response, rate, 0, reset, retry)
    abort(response)


def _headers(response, rate, remaining: int, reset: float, retry: int | None = None) -> None:
    response.headers["X-RateLimit-Limit"] = str(rate.amount)
    response.headers["X-RateLimit-Remaining"] = str(max(0, remaining))
    response.headers["X-RateLimit-Reset"] = str(math.ceil(reset))
    if retry is not None:
        response.headers["Retry-After"] = str(retry)


def ensure_open() -> None:
    """Before the body is checked: 429 when the upload or refusal allowance is already spent."""
    for scope in ("upload", "refused"):
        rate = _rate(scope)
        if not limiter.limiter.test(rate, scope, client_id()):
            _refuse(scope, rate)


def charge(costs: dict[str, int]) -> None:
    """Count each scope's cost against its allowance; a 429 (nothing charged) when any is short.
    Every scope is tested before any is hit, so a request refused by one limit spends no other."""
    costs = {scope: n for scope, n in costs.items() if n > 0}
    who = client_id()
    rates = {scope: _rate(scope) for scope in costs}
    for scope, n in costs.items():
        if not limiter.limiter.test(rates[scope], scope, who, cost=n):
            _refuse(scope, rates[scope])
    for scope, n in costs.items():
        # Atomic: of two requests that both tested fine, the one that no longer fits is refused.
        if not limiter.limiter.hit(rates[scope], scope, who, cost=n):
            _refuse(scope, rates[scope])
    if "upload" in costs:
        reset, remaining = limiter.limiter.get_window_stats(rates["upload"], "upload", who)

        @after_this_request
        def stamp(response):
            _headers(response, rates["upload"], remaining, reset)
            return response


def refused() -> None:
    """Count one refused request (its error is answered all the same)."""
    limiter.limiter.hit(_rate("refused"), "refused", client_id())

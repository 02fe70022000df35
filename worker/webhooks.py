"""Delivering a job's webhook: POST its public view, signed, once the job is final."""

from __future__ import annotations

import json
import logging

import urllib3

from shared import metrics
from shared.fetch import FetchError, check_target, request
from shared.job_view import public_view
from shared.jobs import JobStore
from shared.schema import FINAL
from shared.settings import Settings
from shared.webhooks import CallbackError, check_url, sign

log = logging.getLogger(__name__)
TIMEOUT_S = 10


class DeliveryError(RuntimeError):
    """This attempt failed in a way worth retrying (no answer, 5xx, 429, 408)."""


def backoff(retries: int, base: float) -> float:
    """Seconds before retry number retries + 1: base, 2 base, 4 base, ... at most 10 minutes."""
    return min(600.0, base * 2 ** retries)


def deliver(settings: Settings, jobs: JobStore, job_id: str) -> str:
    """One attempt: 'delivered', 'gone' (job or callback gone), 'refused' (URL not allowed
    now, or the receiver answered 4xx for good), or the outcome an earlier message for it
    reached; raises DeliveryError to be retried."""
    rec = jobs.get(job_id)
    if rec is None or not rec.get("callback") or rec["status"] not in FINAL:
        return "gone"
    if rec.get("webhook"):
        # A second message for one already settled (the sweep sent it again while the first
        # waited in a long queue): the receiver need not hear it twice.
        return rec["webhook"]
    try:
        # Checked again here (the name may resolve elsewhere now than at upload time), and the
        # connection goes to the address checked: no second lookup between check and call.
        url = check_url(rec["callback"], allow_http=settings.WEBHOOK_ALLOW_HTTP,
                        allow_private=True)
        target = check_target(url, allow_http=settings.WEBHOOK_ALLOW_HTTP,
                              allow_private=settings.WEBHOOK_ALLOW_PRIVATE)
    except (CallbackError, FetchError) as exc:
        log.warning("job %s webhook refused: %s", job_id, exc, extra={"job_id": job_id})
        return _record(jobs, job_id, "refused")
    body = json.dumps(public_view(rec), separators=(",", ":")).encode()
    headers = {"Content-Type": "application/json", "User-Agent": "dfd-webhook",
               "X-DFD-Job": job_id, "X-DFD-Signature": sign(settings.WEBHOOK_SECRET, body)}
    try:
        resp = request("POST", target, body=body, headers=headers, timeout=TIMEOUT_S)
        resp.read(64 * 1024, decode_content=False)  # the receiver's answer is not used
        resp.release_conn()
    except urllib3.exceptions.HTTPError as exc:
        raise DeliveryError(f"no answer: {type(exc).__name__}") from None
    code = resp.status
    if 200 <= code < 300:
        log.info("job %s webhook delivered (%d)", job_id, code,
                 extra={"job_id": job_id})
        return _record(jobs, job_id, "delivered")
    if code >= 500 or code in (408, 429):
        raise DeliveryError(f"HTTP {code}")
    log.warning("job %s webhook refused by the receiver (HTTP %d)", job_id, code,
                extra={"job_id": job_id})
    return _record(jobs, job_id, "refused")


def _record(jobs: JobStore, job_id: str, outcome: str) -> str:
    jobs.webhooks.set_outcome(job_id, outcome)
    metrics.WEBHOOKS.labels(outcome).inc()
    return outcome


def gave_up(jobs: JobStore, job_id: str, reason: str) -> str:
    """Every retry failed: say so in the record and the log."""
    log.warning("job %s webhook failed for good: %s", job_id, reason, extra={"job_id": job_id})
    return _record(jobs, job_id, "failed")

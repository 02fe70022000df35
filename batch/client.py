"""Job API client and its retry rules, behind `dfd submit`."""

from __future__ import annotations

import email.utils
import math
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from batch.rows import make_row, row_from_job

MAX_WAIT_S = 10  # the server holds ?wait= for at most 10 s (docs/API.md)
# 409: the same Idempotency-Key is still being answered (a retry raced the first try).
RETRYABLE = frozenset({409, 500, 502, 503, 504})
MAX_ATTEMPTS = 5  # for connection errors and 5xx; a 429 is waited out however often it comes
RETRY_CAP_S = 30.0  # longest wait between two attempts, a server's Retry-After included


class _Retry(Retry):
    """urllib3's retries of connection errors and RETRYABLE answers, with a capped Retry-After.

    429 is not retried here: ApiClient waits it out itself, pausing every thread, as often as it
    comes. Every method is retried: each upload carries an Idempotency-Key."""

    RETRY_AFTER_STATUS_CODES = frozenset({503})

    def get_retry_after(self, response) -> float | None:
        hinted = super().get_retry_after(response)
        return None if hinted is None else min(hinted, RETRY_CAP_S)


RETRY = _Retry(total=MAX_ATTEMPTS - 1, status_forcelist=RETRYABLE, allowed_methods=None,
               backoff_factor=0.5, backoff_max=RETRY_CAP_S, raise_on_status=False)


class ApiError(Exception):
    """A request that failed for good; the message is the server's when it sent one."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status  # HTTP status, None when there was no response


@dataclass(frozen=True)
class Decision:
    """What to do after one HTTP outcome: ok, wait (429, not an attempt) or fail."""

    action: str
    delay: float = 0.0
    message: str = ""


def retry_after(headers: Mapping[str, str] | None, body: Any, default: float | None):
    """Seconds the server asked to wait: Retry-After (seconds or HTTP date), error.retry_after."""
    value = (headers or {}).get("Retry-After")
    if value:
        try:
            return max(0.0, float(value))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                return max(0.0, when.timestamp() - time.time())
            except (TypeError, ValueError):
                pass
    if isinstance(body, dict):
        try:
            return max(0.0, float(body["error"]["retry_after"]))
        except (KeyError, TypeError, ValueError):
            pass
    return default


def error_message(status: int | None, body: Any) -> str:
    """The server's error.message if the body has one, else a generic description."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    if status is None:
        return f"connection error: {body}" if body else "connection error"
    return f"HTTP {status}"


def decide(status: int | None, headers: Mapping[str, str] | None = None,
           body: Any = None) -> Decision:
    """Map one HTTP outcome (status None means no response) to the client's next step, after
    urllib3 has retried what RETRY retries: ok, wait (429) or fail."""
    if status is not None and status < 400:
        return Decision("ok")
    message = error_message(status, body)
    if status == 429:
        # A floor keeps a "Retry-After: 0" from turning into a tight request loop.
        return Decision("wait", max(0.1, retry_after(headers, body, 1.0) or 0.0), message)
    return Decision("fail", 0.0, message)


class ApiClient:
    """Thread-safe client of the job API: uploads one image per request and long-polls results."""

    def __init__(self, url: str, api_key: str | None = None):
        self.base, self.api_key = url.rstrip("/"), api_key
        self.stopping = threading.Event()
        self.rate_limited = 0  # 429 answers seen, for the progress bar
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pause_until: dict[str, float] = {}
        # Told (kind, seconds) when a 429 pauses requests, so the progress line can say so.
        self.on_wait: Callable[[str, float], None] | None = None

    def _session(self) -> requests.Session:
        # requests.Session is not documented as thread-safe, so each worker thread gets its own.
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.mount("http://", HTTPAdapter(max_retries=RETRY))
            session.mount("https://", HTTPAdapter(max_retries=RETRY))
            session.headers["User-Agent"] = "dfd-batch"
            if self.api_key:
                session.headers["Authorization"] = f"Bearer {self.api_key}"
            self._local.session = session
        return session

    def _sleep(self, seconds: float) -> None:
        if seconds > 0 and self.stopping.wait(seconds):
            raise ApiError("interrupted")

    def _pause(self, kind: str, seconds: float) -> None:
        # One 429 pauses every thread's requests of that kind, not just the one that got it,
        # so a pool of workers does not keep hammering a limit that is already exhausted.
        with self._lock:
            self.rate_limited += 1
            until = max(self._pause_until.get(kind, 0.0), time.monotonic() + seconds)
            self._pause_until[kind] = until
        if self.on_wait is not None:
            self.on_wait(kind, until - time.monotonic())
        self._sleep(until - time.monotonic())

    def request(self, method: str, path: str, kind: str, timeout: float, **kwargs: Any) -> dict:
        """Send one API request, waiting out 429s (transient failures are retried by RETRY);
        the JSON body back."""
        while True:
            with self._lock:
                pending = self._pause_until.get(kind, 0.0) - time.monotonic()
            self._sleep(pending)
            status: int | None
            headers: Mapping[str, str]
            try:
                resp = self._session().request(method, self.base + path, timeout=timeout, **kwargs)
                status, headers = resp.status_code, resp.headers
                try:
                    body: Any = resp.json()
                except ValueError:
                    body = None
            except requests.RequestException as exc:  # refused, reset, timed out: retried
                status, headers, body = None, {}, str(exc)
            decision = decide(status, headers, body)
            if decision.action == "ok":
                return body if isinstance(body, dict) else {}
            if decision.action == "fail":
                raise ApiError(decision.message, status)
            self._pause(kind, decision.delay)

    def submit(self, path: Path, wait: float = 0) -> dict:
        """Upload one image; returns its entry from the response's jobs list (with wait > 0,
        the server holds the answer up to that many seconds for the result)."""
        # A hint only: the server decides the type by content.
        mime = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg"}.get(
            path.suffix.lower(), "application/octet-stream")
        # Bytes rather than an open file, so a retried request sends the whole file again.
        files = {"image": (path.name, path.read_bytes(), mime)}
        params = {"wait": wait} if wait > 0 else None
        # One key per file, the same on every retry: a retry whose first try did reach the
        # server gets that try's job back instead of a second job.
        headers = {"Idempotency-Key": f"dfd-{uuid.uuid4().hex}"}
        # Batch work yields to people at the page and to interactive API clients.
        body = self.request("POST", "/api/v1/jobs", "upload", timeout=120 + wait, files=files,
                            params=params, headers=headers, data={"priority": "batch"})
        jobs = body.get("jobs") or []
        if not jobs or not jobs[0].get("id"):
            raise ApiError("upload accepted but the response names no job")
        return jobs[0]

    def wait(self, job_id: str, timeout: float) -> dict:
        """Long-poll a job until it is done or failed; ApiError after timeout seconds."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            wait = max(0, min(MAX_WAIT_S, math.ceil(left)))
            started = time.monotonic()
            job = self.request("GET", f"/api/v1/jobs/{job_id}", "status", timeout=wait + 30,
                               params={"wait": wait})
            if job.get("status") in ("done", "failed"):
                return job
            if time.monotonic() >= deadline:
                raise ApiError(f"timed out after {timeout:g} s (job still {job.get('status')})")
            if time.monotonic() - started < min(wait, 0.5):
                self._sleep(0.5)  # a server that ignores ?wait= must not make this a busy loop

    def process(self, path: Path, timeout: float) -> dict:
        """Submit one image and wait for its verdict; always returns a row (done or failed)."""
        job_id = ""
        started = time.monotonic()
        try:
            # One request when the verdict comes within the upload's own wait (the usual case).
            job = self.submit(path, wait=max(0, min(MAX_WAIT_S, math.floor(timeout))))
            job_id = str(job["id"])
            if job.get("status") == "failed" or isinstance(job.get("result"), dict):
                return row_from_job(path, job)
            return row_from_job(path, self.wait(job_id, timeout - (time.monotonic() - started)))
        except ApiError as exc:
            return make_row(path, job_id, error=str(exc))
        except OSError as exc:  # the file vanished or is unreadable
            return make_row(path, job_id, error=f"cannot read file: {exc.strerror or exc}")

"""`Idempotency-Key` on POST /api/v1/jobs: a retried request gets the first request's jobs."""

from __future__ import annotations

import hashlib
import json
import re

import redis
from flask import abort

HEADER = "Idempotency-Key"
_VALID = re.compile(r"[\x21-\x7e]{1,200}")  # printable ASCII, no spaces
PENDING_S = 120  # longer than any upload request takes (body, checks, ?wait= of 10 s)


def fingerprint(checked: list[tuple[str, bytes, dict]], callback: str = "") -> str:
    """What makes two requests the same: each file's name and bytes, in order; the callback."""
    h = hashlib.sha256(callback.encode() + b"\0")
    for name, data, _ in checked:
        h.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return h.hexdigest()


class Idempotency:
    """One client's key: claimed before the jobs are made, holding their ids once made."""

    def __init__(self, r: redis.Redis, client: str, key: str, fp: str, ttl: float):
        if not _VALID.fullmatch(key):
            abort(400, description=f"{HEADER} must be 1 to 200 printable ASCII characters "
                                   "without spaces")
        # Scoped to the client: another client's key never replays this one's jobs.
        digest = hashlib.sha256(f"{client}\n{key}".encode()).hexdigest()
        self.r, self.key, self.fp, self.ttl = r, f"dfd:idem:{digest}", fp, int(ttl)

    def begin(self) -> list[dict] | None:
        """None: first use, go on. Else the first request's jobs (a replay); 409 while that
        request is still in progress, 422 when the key came with a different request."""
        if self.r.set(self.key, json.dumps({"fp": self.fp}), nx=True, ex=PENDING_S):
            return None
        raw = self.r.get(self.key)
        saved = json.loads(raw) if raw else {}
        if saved.get("fp") not in (None, self.fp):
            abort(422, description=f"this {HEADER} was already used for a different request")
        if "jobs" not in saved:
            abort(409, description=f"a request with this {HEADER} is still in progress; "
                                   "retry in a few seconds")
        return saved["jobs"]

    def done(self, jobs: list[dict]) -> None:
        """Keep the jobs made under this key as long as the jobs themselves."""
        stubs = [{k: j[k] for k in ("id", "filename", "location", "created_at", "reused")
                  if k in j} for j in jobs]
        self.r.set(self.key, json.dumps({"fp": self.fp, "jobs": stubs}), ex=self.ttl)

    def abandon(self) -> None:
        """The request failed: the key may be used again."""
        self.r.delete(self.key)

"""Verdict feedback in Redis: one entry per job and client, kept with the verdict it disputes."""

from __future__ import annotations

import hashlib
import json
import time
from typing import cast

import redis

PREFIX = "dfd:feedback"
NOTE_MAX = 500
DEFAULT_TTL = 90 * 86400.0
# Set-if-absent with its expiry and index in one step, so a crash never leaves an entry the
# export cannot see; index members older than the expiry are dropped on the way.
_ADD = """
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[2] - ARGV[3])
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[3]) then
  redis.call('ZADD', KEYS[2], ARGV[2], KEYS[1])
  return 1
end
return 0
"""


def client_tag(client: str) -> str:
    """A stable pseudonym for a client: one feedback per client without storing its address."""
    return hashlib.sha256(f"dfd-feedback:{client}".encode()).hexdigest()[:16]


class FeedbackStore:
    """Feedback entries, written by the web, exported for review by key holders. Each expires
    `ttl` seconds after it was written (DFD_FEEDBACK_TTL): a note is free text from a user and
    is not kept for ever."""

    def __init__(self, client: redis.Redis, ttl: float = DEFAULT_TTL):
        self.r = client
        self.ttl = max(1, int(ttl))
        self._add = client.register_script(_ADD)

    def add(self, job_id: str, client: str, result: dict, label: str,
            note: str | None) -> dict | None:
        """Store one entry; None when this client already sent feedback on this job."""
        now = time.time()
        entry = {"job_id": job_id, "label": label, "note": note or "",
                 "verdict": {"label": result["label"], "p_fake": result["p_fake"],
                             "assessment": result["assessment"]},
                 "model": dict(result["model"]), "client": client_tag(client),
                 "created_at": round(now, 3)}
        key = f"{PREFIX}:{job_id}:{entry['client']}"
        done = self._add(keys=[key, PREFIX], args=[json.dumps(entry), now, self.ttl])
        return entry if done == 1 else None

    def export(self, limit: int, offset: int = 0) -> list[dict]:
        """Entries oldest first, `limit` of them after `offset`."""
        self._prune()
        # redis-py types zrange for withscores=True too; without it, it is the members.
        keys = cast(list[bytes], self.r.zrange(PREFIX, offset, offset + limit - 1))
        raws = self.r.mget(keys) if keys else []
        return [json.loads(raw) for raw in raws if raw]

    def count(self) -> int:
        """How many entries are stored."""
        self._prune()
        return int(self.r.zcard(PREFIX))

    def _prune(self) -> None:
        """Drop index members whose entry has expired (Redis removed the entry itself)."""
        self.r.zremrangebyscore(PREFIX, "-inf", time.time() - self.ttl)

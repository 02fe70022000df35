"""Job records in Redis: the single source of truth for a job's status (not Celery's state)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from typing import Any

import redis
from redis.typing import EncodableT, FieldT

from shared import job_scripts
from shared.attempts import GAVE_UP, MAP_GAVE_UP, Claim, Lapsed
from shared.formats import kind_of_stored
from shared.job_outbox import WebhookOutbox
from shared.settings import read as read_setting
from shared.tasks import DEFAULT_PRIORITY, follow_up_priority

PREFIX = "dfd:"
# Queued job ids by age, one pool per kind of media: not a queue (Celery's priority lists are:
# order and priority live there alone), the pools a task fills its micro-batch from. A still's
# task claims its own job plus the oldest other stills waiting, up to DFD_BATCH_SIZE; a video's
# task claims its own video alone (README, "How it fits together").
READY = f"{PREFIX}ready"
READY_VIDEO = f"{PREFIX}ready:video"
# Claimed (running) job ids by lease expiry, per kind. A lease past its time means the claiming
# worker died without its task coming back: release_lapsed (the sweep) gives such a job back to
# be sent again, or fails it once it has used up its attempts (GAVE_UP). Done jobs whose "Why?"
# map is being made, by the map's lease expiry, the same way.
LEASED = f"{PREFIX}leased"
LEASED_VIDEO = f"{PREFIX}leased:video"
LEASED_MAP = f"{PREFIX}leased:map"
# Jobs given back to their pool and sent again, by when a claim should have taken them: the
# sweep sends any still queued then once more (job_scripts.RELEASE_LAPSED).
RESEND = f"{PREFIX}resend"
# Final jobs whose webhook is owed, by when its lease began (the outbox, shared/job_outbox.py):
# written in the step that records the final state, left when the delivery has an outcome.
WEBHOOKS = f"{PREFIX}webhooks"
POOLS = (READY, LEASED, READY_VIDEO, LEASED_VIDEO)
MEDIA = ("image", "video")
def _pairs(flat: list, priority=int) -> list[tuple[str, int]]:
    """[id, priority, id, priority, ...] from a script as (id, priority) pairs."""
    return [(_text(flat[i]), priority(int(flat[i + 1] or DEFAULT_PRIORITY)))
            for i in range(0, len(flat), 2)]


def new_job_id() -> str:
    """A 128-bit random, unguessable job id as 32 hex characters."""
    return secrets.token_hex(16)


def _text(value: bytes | str) -> str:
    # redis-py types a reply as bytes or str (decode_responses); this store's client's are bytes.
    return value.decode() if isinstance(value, bytes) else value


class JobStore:
    """Create, update and read job records; every record expires after ttl seconds. The one
    owner of the job keys in Redis: nothing outside shared/ uses its client.

    max_attempts (DFD_MAX_ATTEMPTS; its default when not given, for a store that never claims):
    how many times a job may be claimed before a claim or release_lapsed fails it instead, and
    its webhook sent again by the sweep before it is given up on (shared/job_outbox.py)."""

    def __init__(self, client: redis.Redis, ttl: float = 86400, max_attempts: int | None = None):
        self._redis = client
        self.ttl = int(ttl)
        self.max_attempts = max_attempts or read_setting("MAX_ATTEMPTS", {})
        self._finish = client.register_script(job_scripts.FINISH)
        self._claim = client.register_script(job_scripts.CLAIM)
        self._set_if_exists = client.register_script(job_scripts.SET_IF_EXISTS)
        self._release = client.register_script(job_scripts.RELEASE_LAPSED)
        self._claim_map = client.register_script(job_scripts.CLAIM_MAP)
        self.webhooks = WebhookOutbox(client, WEBHOOKS, self.key(""), self.max_attempts)

    @staticmethod
    def key(job_id: str) -> str:
        """Redis key of a job record."""
        return f"{PREFIX}job:{job_id}"

    def create(self, job_id: str, *, filename: str, stored: str, sha256: str, client: str,
               callback: str = "", explain: bool = False, media: str = "image",
               priority: int = DEFAULT_PRIORITY) -> float:
        """Write a queued job record, in its kind's ready pool by age; its created_at.

        callback: a checked webhook URL, or none; explain: the worker makes the job's "Why?" map
        after the verdict, from the upload it keeps until then; media: "image" or "video";
        priority: the Celery priority its message was sent at, which any message sent for it
        again keeps (shared.tasks.PRIORITIES)."""
        if media not in MEDIA:
            raise ValueError(f"media must be one of {MEDIA}, not {media!r}")
        now = time.time()
        fields: dict[FieldT, EncodableT] = {
            "id": job_id, "status": "queued", "created_at": now, "filename": filename,
            "stored": stored, "sha256": sha256, "client": client, "attempts": 0, "media": media,
            "priority": int(priority), **({"callback": callback} if callback else {}),
            **({"explain": 1} if explain else {})}
        pipe = self._redis.pipeline()
        pipe.hset(self.key(job_id), mapping=fields)
        pipe.expire(self.key(job_id), self.ttl)
        pipe.zadd(READY_VIDEO if media == "video" else READY, {job_id: now})
        pipe.execute()
        return now

    def discard(self, job_id: str) -> None:
        """Remove a job that never got its task (the send failed): record and ready entry."""
        pipe = self._redis.pipeline()
        pipe.delete(self.key(job_id))
        for pool in (*POOLS, RESEND, WEBHOOKS):
            pipe.zrem(pool, job_id)
        pipe.execute()

    def create_reused(self, job_id: str, *, filename: str, sha256: str, client: str,
                      result: dict, callback: str = "", source: str = "") -> float:
        """Write a job that is done at once with an earlier result for the same bytes and model
        (source: that earlier job, whose explanation this one shares); its created_at. With a
        callback, its webhook is owed (WEBHOOKS) from the same MULTI/EXEC step."""
        now = time.time()
        fields: dict[FieldT, EncodableT] = {
            "id": job_id, "status": "done", "created_at": now, "started_at": now,
            "finished_at": now, "filename": filename, "stored": "", "sha256": sha256,
            "client": client, "attempts": 0, "finishes": 1, "reused": 1,
            "result": json.dumps(result), "source": source,
            **({"callback": callback} if callback else {})}
        pipe = self._redis.pipeline()
        pipe.hset(self.key(job_id), mapping=fields)
        pipe.expire(self.key(job_id), self.ttl)
        if callback:
            pipe.zadd(WEBHOOKS, {job_id: now})
        pipe.execute()
        return now

    def delete(self, job_id: str) -> dict | None:
        """Remove a job's record, result, ready entry and reuse index; the record it had, or None.

        The caller deletes the stored upload; a worker that is on the job finds no record when it
        finishes and writes nothing back (the finish script refuses an unknown job).
        """
        rec = self.get(job_id)
        if rec is None:
            return None
        pipe = self._redis.pipeline()
        pipe.delete(self.key(job_id), f"{PREFIX}done:{job_id}")
        for pool in (*POOLS, LEASED_MAP, RESEND, WEBHOOKS):
            pipe.zrem(pool, job_id)
        sha_key = None
        if rec["result"] and not rec["reused"]:
            sha_key = self._sha_key(rec["result"]["model"]["version"], rec["client"],
                                    rec["sha256"])
            pipe.get(sha_key)
        got = pipe.execute()
        if sha_key and got[-1] is not None and got[-1].decode() == job_id:
            self._redis.delete(sha_key)
        return rec

    def get(self, job_id: str) -> dict | None:
        """The raw record with decoded fields, or None for an unknown or expired id."""
        raw = self._redis.hgetall(self.key(job_id))
        if not raw:
            return None
        rec: dict[str, Any] = {_text(k): _text(v) for k, v in raw.items()}
        for name in ("created_at", "started_at", "finished_at", "explained_at"):
            rec[name] = float(rec[name]) if rec.get(name) else None
        for name in ("attempts", "finishes", "reused"):
            rec[name] = int(rec.get(name) or 0)
        rec["priority"] = int(rec.get("priority") or DEFAULT_PRIORITY)
        # A record without one (written before jobs kept it) is told by its stored name.
        rec["media"] = rec.get("media") or (
            "video" if kind_of_stored(rec.get("stored", "")) == "video" else "image")
        rec["result"] = json.loads(rec["result"]) if rec.get("result") else None
        return rec

    def claim_ready(self, job_id: str, extra: int, owner: str | None = None,
                    lease: float = 300) -> Claim:
        """Claim job_id plus up to `extra` others of its kind for `owner`, atomically.

        Each claimed job is marked running with attempts + 1 and leased to owner for `lease`
        seconds. job_id is left out when it is final, unknown, or leased to another owner whose
        lease is still good. A still's others come from their pool, oldest first, never tried
        before; a video, or a job tried before, is claimed alone, and a redelivered task gives
        the rest of its batch back (job_scripts.CLAIM). A job it would take that has had
        max_attempts already is failed (GAVE_UP) and never handed out.
        """
        owner = owner or new_job_id()
        running, gave_up, again = self._claim(
            keys=[*POOLS, f"{PREFIX}owner:{owner}", RESEND, WEBHOOKS],
            args=[PREFIX, owner, job_id, max(extra, 0), time.time(), lease, self.max_attempts,
                  GAVE_UP])
        return Claim([_text(g) for g in running], [_text(g) for g in gave_up], _pairs(again))

    def release_lapsed(self, grace: float = 300) -> Lapsed:
        """Jobs whose lease lapsed: queued again in their pool, or failed (GAVE_UP) when they
        have had max_attempts; jobs given back whose task no claim took within `grace` seconds;
        "Why?" maps whose lease lapsed. The caller sends the tasks of those to be sent again
        (job_scripts.RELEASE_LAPSED)."""
        again, gave_up, maps = self._release(
            keys=[LEASED, READY, LEASED_VIDEO, READY_VIDEO, LEASED_MAP, RESEND, WEBHOOKS],
            args=[PREFIX, time.time(), self.max_attempts, GAVE_UP, grace])
        return Lapsed(_pairs(again), [_text(g) for g in gave_up],
                      _pairs(maps, follow_up_priority))

    def claim_map(self, job_id: str, owner: str, lease: float) -> str:
        """Claim a done job's "Why?" map for owner (the task id), counting one attempt: 'run',
        'skip' (gone, made, not asked for, or another live task's), or 'gave_up' when it has had
        max_attempts already: then recorded as failed, saying why (job_scripts.CLAIM_MAP)."""
        failed = json.dumps({"error": "failed", "reason": MAP_GAVE_UP % self.max_attempts})
        return _text(self._claim_map(keys=[self.key(job_id), LEASED_MAP],
                                     args=[job_id, owner, time.time(), lease,
                                           self.max_attempts, failed]))

    def finish(self, job_id: str, *, result: dict | None = None, error: str | None = None,
               sha256: str | None = None, client: str = "") -> bool:
        """Record the final state once; False if the job was already final or is unknown.

        With sha256, a done result is indexed for reuse by the same client in the same atomic
        step, so a client that sees "done" and re-sends the same bytes always finds it; a job
        with a callback is owed its webhook (WEBHOOKS) from that step on.
        """
        if result is not None and error is None:
            status, field, value = "done", "result", json.dumps(result)
        elif error is not None and result is None:
            status, field, value = "failed", "error", error
        else:
            raise ValueError("finish takes exactly one of result or error")
        keys = [self.key(job_id), f"{PREFIX}done:{job_id}", LEASED, LEASED_VIDEO, WEBHOOKS]
        args: list[EncodableT] = [status, field, value, time.time(), job_id, self.ttl, job_id]
        if result is not None and sha256:
            keys.append(self._sha_key(result["model"]["version"], client, sha256))
        return self._finish(keys=keys, args=args) == 1

    def _set(self, job_id: str, **fields) -> bool:
        args = [v for pair in fields.items() for v in pair]
        return self._set_if_exists(keys=[self.key(job_id)], args=args) == 1

    def set_explanation(self, job_id: str, explanation: dict) -> bool:
        """Cache a job's explanation in its record, with when it was made; never creating a
        record (a job deleted or expired meanwhile stays gone). False when there is none."""
        self._redis.zrem(LEASED_MAP, job_id)
        return self._set(job_id, explanation=json.dumps(explanation), explained_at=time.time())

    def set_progress(self, job_id: str, done: int, total: int) -> bool:
        """How far a video job is: `done` of its `total` sampled frames looked at for faces."""
        return self._set(job_id, frames_done=int(done), frames_total=int(total))

    def wait(self, job_id: str, timeout: float) -> None:
        """Block up to timeout seconds for a job to finish (returns early when it does)."""
        key = f"{PREFIX}done:{job_id}"
        got = self._redis.blpop([key], timeout=max(timeout, 0.01))
        if got:
            # Put the token back so that other waiters on the same job wake up too.
            self._redis.rpush(key, "1")

    @staticmethod
    def _sha_key(version: str, client: str, sha256: str) -> str:
        # Scoped to the client: another client never learns that these bytes were sent before.
        who = hashlib.sha256(client.encode()).hexdigest()[:32]
        return f"{PREFIX}sha:{version}:{who}:{sha256}"

    def reusable_job(self, version: str | None, client: str, sha256: str) -> dict | None:
        """The same client's earlier done record for the same bytes and model version, if
        still stored."""
        if not version:
            return None
        job_id = self._redis.get(self._sha_key(version, client, sha256))
        rec = self.get(_text(job_id)) if job_id else None
        return rec if rec and rec["status"] == "done" else None

    def has_callback(self, job_id: str) -> bool:
        """The job was sent with a callback_url (a webhook is due when it is final)."""
        return bool(self._redis.hexists(self.key(job_id), "callback"))

    def counts(self) -> tuple[int, int]:
        """(jobs queued, jobs running) of every kind, in one round trip."""
        pipe = self._redis.pipeline()
        for pool in POOLS:
            pipe.zcard(pool)
        ready, leased, ready_video, leased_video = pipe.execute()
        return ready + ready_video, leased + leased_video

    def sweep_turn(self, holder: str, every: float) -> bool:
        """True for one caller per `every` seconds across all workers: its turn to sweep."""
        return bool(self._redis.set(f"{PREFIX}sweep", holder, nx=True, ex=int(every)))

    def set_model(self, info: dict) -> None:
        """Announce the model the workers serve (name, version, threshold) for the web side."""
        self._redis.set(f"{PREFIX}model", json.dumps(info), ex=self.ttl)

    def current_model(self) -> dict | None:
        """The model the workers last announced, or None."""
        raw = self._redis.get(f"{PREFIX}model")
        return json.loads(raw) if raw else None

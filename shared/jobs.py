"""Job records in Redis: the single source of truth for a job's status (not Celery's state)."""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from datetime import UTC, datetime

import redis

from shared.schema import FINAL

PREFIX = "dfd:"
# Queued job ids by age: not a queue (Celery's priority lists are: order and priority live there
# alone), the pool a task fills its micro-batch from. A task claims its own job plus the oldest
# others waiting, up to DFD_BATCH_SIZE (README, "How it fits together").
READY = f"{PREFIX}ready"
# Claimed (running) job ids by lease expiry. A lease past its time means the claiming worker
# died without its task coming back; any later claim takes such a job over.
LEASED = f"{PREFIX}leased"

# Claiming is one atomic step with an owner (the Celery task id) and a lease. A job leased to
# another live owner is left alone, so a job claimed into one worker's batch never runs again
# when its own task reaches another worker. A task redelivered after its worker died (same task
# id) takes back its whole batch: those jobs, and only those, run twice. (Job keys are built
# inside the script from the prefix: fine on one Redis, not on a Redis Cluster.)
_CLAIM = """
local prefix, owner, own = ARGV[1], ARGV[2], ARGV[3]
local extra, now, lease = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local claimed, seen = {}, {}
local function take(id)
  if seen[id] then return end
  seen[id] = true
  local k = prefix .. 'job:' .. id
  local st = redis.call('HGET', k, 'status')
  if (not st) or st == 'done' or st == 'failed' then
    redis.call('ZREM', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
    return
  end
  if st == 'running' then
    local holder = redis.call('HGET', k, 'owner')
    local till = tonumber(redis.call('HGET', k, 'lease_until') or '0')
    if holder ~= owner and till > now then return end
  end
  redis.call('HSET', k, 'status', 'running', 'started_at', now, 'owner', owner,
             'lease_until', now + lease)
  redis.call('HINCRBY', k, 'attempts', 1)
  redis.call('ZREM', KEYS[1], id)
  redis.call('ZADD', KEYS[2], now + lease, id)
  redis.call('SADD', KEYS[3], id)
  table.insert(claimed, id)
end
take(own)
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do take(id) end
local want = extra - (#claimed - 1)
if want > 0 then
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, want)) do
    take(id)
  end
end
want = extra - (#claimed - 1)
if want > 0 then
  for _, id in ipairs(redis.call('ZRANGE', KEYS[1], 0, want - 1)) do take(id) end
end
if #claimed > 0 then redis.call('EXPIRE', KEYS[3], math.ceil(lease) + 60) end
return claimed
"""

# Finishing is atomic and happens once: a redelivered task that finds the job final does nothing.
_FINISH = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status then return -1 end
if status == 'done' or status == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], ARGV[2], ARGV[3], 'finished_at', ARGV[4])
redis.call('HINCRBY', KEYS[1], 'finishes', 1)
redis.call('ZREM', KEYS[3], ARGV[7])
redis.call('RPUSH', KEYS[2], '1')
redis.call('EXPIRE', KEYS[2], 120)
if KEYS[4] then redis.call('SET', KEYS[4], ARGV[5], 'EX', ARGV[6]) end
return 1
"""

# An explanation is written only into a record that exists (as one step: a DELETE in between
# must not leave a record holding nothing but the explanation).
_SET_EXPLANATION = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'explanation', ARGV[1])
return 1
"""


def new_job_id() -> str:
    """A 128-bit random, unguessable job id as 32 hex characters."""
    return secrets.token_hex(16)


def iso(ts: float | None) -> str | None:
    """Epoch seconds to an ISO 8601 UTC string with milliseconds."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JobStore:
    """Create, update and read job records; every record expires after ttl seconds."""

    def __init__(self, client: redis.Redis, ttl: float = 86400):
        self.r = client
        self.ttl = int(ttl)
        self._finish = client.register_script(_FINISH)
        self._claim = client.register_script(_CLAIM)
        self._explained = client.register_script(_SET_EXPLANATION)

    @staticmethod
    def key(job_id: str) -> str:
        """Redis key of a job record."""
        return f"{PREFIX}job:{job_id}"

    def create(self, job_id: str, *, filename: str, stored: str, sha256: str, client: str,
               callback: str = "", explain: bool = False) -> dict:
        """Write a new queued job record (callback: a checked webhook URL, or none; explain: the
        worker caches the job's explanation before the upload is deleted) and put it in the
        ready set, by age."""
        now = time.time()
        fields = {"id": job_id, "status": "queued", "created_at": now, "filename": filename,
                  "stored": stored, "sha256": sha256, "client": client, "attempts": 0,
                  **({"callback": callback} if callback else {}),
                  **({"explain": 1} if explain else {})}
        pipe = self.r.pipeline()
        pipe.hset(self.key(job_id), mapping=fields)
        pipe.expire(self.key(job_id), self.ttl)
        pipe.zadd(READY, {job_id: now})
        pipe.execute()
        return fields

    def discard(self, job_id: str) -> None:
        """Remove a job that never got its task (the send failed): record and ready entry."""
        pipe = self.r.pipeline()
        pipe.delete(self.key(job_id))
        pipe.zrem(READY, job_id)
        pipe.zrem(LEASED, job_id)
        pipe.execute()

    def create_reused(self, job_id: str, *, filename: str, sha256: str, client: str,
                      result: dict, callback: str = "", source: str = "") -> None:
        """Write a job that is done at once with an earlier result for the same bytes and model
        (source: that earlier job, whose explanation this one shares)."""
        now = time.time()
        fields = {"id": job_id, "status": "done", "created_at": now, "started_at": now,
                  "finished_at": now, "filename": filename, "stored": "", "sha256": sha256,
                  "client": client, "attempts": 0, "finishes": 1, "reused": 1,
                  "result": json.dumps(result), "source": source,
                  **({"callback": callback} if callback else {})}
        pipe = self.r.pipeline()
        pipe.hset(self.key(job_id), mapping=fields)
        pipe.expire(self.key(job_id), self.ttl)
        pipe.execute()

    def delete(self, job_id: str) -> dict | None:
        """Remove a job's record, result, ready entry and reuse index; the record it had, or None.

        The caller deletes the stored upload; a worker that is on the job finds no record when it
        finishes and writes nothing back (the finish script refuses an unknown job).
        """
        rec = self.get(job_id)
        if rec is None:
            return None
        pipe = self.r.pipeline()
        pipe.delete(self.key(job_id), f"{PREFIX}done:{job_id}")
        pipe.zrem(READY, job_id)
        pipe.zrem(LEASED, job_id)
        if rec["result"] and not rec["reused"]:
            sha_key = self._sha_key(rec["result"]["model"]["version"], rec["client"],
                                    rec["sha256"])
            pipe.get(sha_key)
        got = pipe.execute()
        if len(got) == 4 and got[3] is not None and got[3].decode() == job_id:
            self.r.delete(sha_key)
        return rec

    def get(self, job_id: str) -> dict | None:
        """The raw record with decoded fields, or None for an unknown or expired id."""
        raw = self.r.hgetall(self.key(job_id))
        if not raw:
            return None
        rec = {k.decode(): v.decode() for k, v in raw.items()}
        for name in ("created_at", "started_at", "finished_at"):
            rec[name] = float(rec[name]) if rec.get(name) else None
        for name in ("attempts", "finishes", "reused"):
            rec[name] = int(rec.get(name) or 0)
        rec["result"] = json.loads(rec["result"]) if rec.get("result") else None
        return rec

    def claim_ready(self, job_id: str, extra: int, owner: str | None = None,
                    lease: float = 300) -> list[str]:
        """Claim job_id plus up to `extra` others for `owner`, atomically; the ids now running.

        Each claimed job is marked running with attempts + 1 and leased to owner for `lease`
        seconds. job_id is left out when it is final, unknown, or leased to another owner whose
        lease is still good. Others come from lapsed leases first, then the queue, oldest first.
        """
        owner = owner or new_job_id()
        got = self._claim(keys=[READY, LEASED, f"{PREFIX}owner:{owner}"],
                          args=[PREFIX, owner, job_id, max(extra, 0), time.time(), lease])
        return [g.decode() for g in got]

    def finish(self, job_id: str, *, result: dict | None = None, error: str | None = None,
               sha256: str | None = None, client: str = "") -> bool:
        """Record the final state once; False if the job was already final or is unknown.

        With sha256, a done result is indexed for reuse by the same client in the same atomic
        step, so a client that sees "done" and re-sends the same bytes always finds it.
        """
        if (result is None) == (error is None):
            raise ValueError("finish takes exactly one of result or error")
        status, field, value = (("done", "result", json.dumps(result)) if result is not None
                                else ("failed", "error", error))
        keys = [self.key(job_id), f"{PREFIX}done:{job_id}", LEASED]
        args = [status, field, value, time.time(), job_id, self.ttl, job_id]
        if result is not None and sha256:
            keys.append(self._sha_key(result["model"]["version"], client, sha256))
        return self._finish(keys=keys, args=args) == 1

    def set_explanation(self, job_id: str, explanation: dict) -> bool:
        """Cache a job's explanation in its record; never creating one (a job deleted or
        expired meanwhile stays gone). False when there is no record."""
        return self._explained(keys=[self.key(job_id)], args=[json.dumps(explanation)]) == 1

    def wait(self, job_id: str, timeout: float) -> None:
        """Block up to timeout seconds for a job to finish (returns early when it does)."""
        key = f"{PREFIX}done:{job_id}"
        got = self.r.blpop([key], timeout=max(timeout, 0.01))
        if got:
            # Put the token back so that other waiters on the same job wake up too.
            self.r.rpush(key, "1")

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
        job_id = self.r.get(self._sha_key(version, client, sha256))
        rec = self.get(job_id.decode()) if job_id else None
        return rec if rec and rec["status"] == "done" else None

    def has_callback(self, job_id: str) -> bool:
        """The job was sent with a callback_url (a webhook is due when it is final)."""
        return bool(self.r.hexists(self.key(job_id), "callback"))

    def set_webhook_outcome(self, job_id: str, outcome: str) -> None:
        """Note how the job's webhook delivery ended (delivered, refused, failed)."""
        self.r.hset(self.key(job_id), "webhook", outcome)

    def sweep_turn(self, holder: str, every: float) -> bool:
        """True for one caller per `every` seconds across all workers: its turn to sweep."""
        return bool(self.r.set(f"{PREFIX}sweep", holder, nx=True, ex=int(every)))

    def set_model(self, info: dict) -> None:
        """Announce the model the workers serve (name, version, threshold) for the web side."""
        self.r.set(f"{PREFIX}model", json.dumps(info), ex=self.ttl)

    def current_model(self) -> dict | None:
        """The model the workers last announced, or None."""
        raw = self.r.get(f"{PREFIX}model")
        return json.loads(raw) if raw else None


def public_view(rec: dict, now: float | None = None, deadline: float | None = None) -> dict:
    """The API's view of a record: ISO times, result or error, age; never internal fields.

    A job not final after `deadline` seconds (DFD_QUEUE_DEADLINE) is flagged `"stale": true`,
    so a job stuck in the queue or on a lost worker is visible as such, not silently waiting.
    """
    now = time.time() if now is None else now
    out = {"id": rec["id"], "status": rec["status"], "created_at": iso(rec["created_at"]),
           "started_at": iso(rec["started_at"]), "finished_at": iso(rec["finished_at"]),
           "age_s": round((rec["finished_at"] or now) - rec["created_at"], 3)}
    if deadline is not None and rec["status"] not in FINAL and out["age_s"] > deadline:
        out["stale"] = True
    if rec.get("reused"):
        out["reused"] = True
    if rec.get("frames_total") and rec["status"] not in FINAL:
        # A video job reports how far it is (frames sampled, and faces looked for so far).
        out["progress"] = {"frames_done": int(rec.get("frames_done") or 0),
                           "frames_total": int(rec["frames_total"])}
    if rec["status"] == "done":
        out["result"] = rec["result"]
    elif rec["status"] == "failed":
        out["error"] = rec.get("error") or "unknown error"
    return out

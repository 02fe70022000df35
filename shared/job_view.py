"""What clients are shown of a job record (the API's JSON, a webhook's body, the page), read
off the record shared.jobs.JobStore.get returns: times in ISO 8601, result or error, never the
internal fields."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

from shared.schema import FINAL


def iso(ts: float | None) -> str | None:
    """Epoch seconds to an ISO 8601 UTC string with milliseconds."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def explanation_state(rec: dict) -> str:
    """Where a done job's "Why?" map is: "done" or "failed" (cached in the record), "pending"
    (asked for with the upload and made after the verdict), or "none" (never asked for)."""
    if rec.get("explanation"):
        return "failed" if json.loads(rec["explanation"]).get("error") else "done"
    return "pending" if rec.get("explain") and rec["status"] == "done" else "none"


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

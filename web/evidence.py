"""Evidence beside a verdict: the per-face explanation (made by the worker after the verdict for
uploads sent with explain=1, before the upload is deleted), and feedback on a verdict with its
export for key holders."""

from __future__ import annotations

import json
import logging

from flask import Blueprint, abort, jsonify, request

import web.common as common
from shared.feedback import NOTE_MAX, FeedbackStore
from shared.job_view import explanation_state
from shared.schema import LABELS
from web.common import job_or_404, status_limit
from web.errors import abort_with, error_response
from web.extensions import api_key_entry, client_id, limiter

bp = Blueprint("evidence", __name__)
log = logging.getLogger(__name__)
EXPORT_MAX = 10_000
OFFSET_MAX = 10**12  # far past any store; beyond it Redis refuses the range (a 500, not a 400)


def _store() -> FeedbackStore:
    return FeedbackStore(common.ext()["redis"], common.settings().FEEDBACK_TTL)


def _done_job(job_id: str) -> dict:
    """The record of a done job; 404 unknown, 409 not done (nothing to explain or dispute)."""
    rec = job_or_404(job_id)
    if rec["status"] != "done":
        abort_with(409, "job_not_done", f"job {job_id} is {rec['status']}, not done: there is "
                   "no verdict to explain or dispute")
    return rec


def _gone(job_id: str):
    return error_response(410, "upload_gone", f"job {job_id} has no explanation: its upload is "
                          "deleted as soon as the job finishes, so its faces can only be "
                          "explained when the upload asks for it: send explain=1 with the "
                          "image (POST /api/v1/jobs; videos have none)")


@bp.get("/jobs/<job_id>/explanation")
@limiter.limit(status_limit, scope="status")
def explanation(job_id: str):
    """Occlusion map per face, made by the worker after the verdict when the upload came with
    explain=1 and cached in the job record; 202 while it is still being made, 410 without it."""
    rec = _done_job(job_id)
    if rec.get("reused") and rec.get("source"):
        # A reused result is the earlier job's verdict on the same bytes: its explanation, if
        # that job has one.
        rec = common.ext()["jobs"].get(rec["source"]) or rec
    state = explanation_state(rec)
    if state == "none":
        return _gone(job_id)
    if state == "pending":
        # The verdict never waits for the map: it follows, about a second a face later.
        return jsonify(id=job_id, status="pending", retry_after=1), 202
    if state == "failed":
        why = json.loads(rec["explanation"]).get("reason")  # a map given up after its attempts
        return error_response(500, "explanation_failed", "the worker could not compute the "
                              "explanation of this job" + (f": {why}" if why else ""))
    return jsonify(id=job_id, status="done", **json.loads(rec["explanation"]))


def _feedback_body() -> tuple[str, str | None]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        abort(400, description='send a JSON object: {"label": "Real" or "Fake", "note": ...}')
    unknown = sorted(set(body) - {"label", "note"})
    if unknown:
        abort(400, description=f"unknown field(s): {', '.join(unknown)[:200]}")
    label, note = body.get("label"), body.get("note")
    if label not in LABELS:
        abort(400, description='label must be "Real" or "Fake"')
    if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
        abort(400, description=f"note must be text of at most {NOTE_MAX} characters")
    return label, note


@bp.post("/jobs/<job_id>/feedback")
@limiter.limit(status_limit, scope="status")
def feedback(job_id: str):
    """Record what the client says the image really is; one per job and client."""
    label, note = _feedback_body()
    rec = _done_job(job_id)
    entry = _store().add(job_id, client_id(), rec["result"], label, note)
    if entry is None:
        return error_response(409, "feedback_exists",
                              f"feedback on job {job_id} from this client is already recorded")
    log.info("job %s feedback %s (verdict %s)", job_id, label, rec["result"]["label"])
    return jsonify({k: v for k, v in entry.items() if k != "client"}), 201


@bp.get("/feedback")
@limiter.limit(status_limit, scope="status")
def export_feedback():
    """Every feedback entry, oldest first (API key required)."""
    if api_key_entry() is None:
        abort(401, description="exporting feedback needs an API key (Authorization: Bearer)")
    try:
        limit = int(request.args.get("limit", 1000))
        offset = int(request.args.get("offset", 0))
    except ValueError:
        abort(400, description="limit and offset must be whole numbers")
    if not (1 <= limit <= EXPORT_MAX and 0 <= offset <= OFFSET_MAX):
        abort(400, description=f"limit must be 1 to {EXPORT_MAX}, offset 0 to {OFFSET_MAX}")
    store = _store()
    return jsonify(total=store.count(), offset=offset, feedback=store.export(limit, offset))

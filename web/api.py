"""The JSON job API under /api/v1: submit images, read job status, the OpenAPI document."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, abort, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

import web.allowance as allowance
import web.common as common
from shared.errors import InputError
from shared.job_view import public_view
from shared.schema import FINAL
from shared.tasks import PRIORITIES
from shared.webhooks import check_url
from web.common import job_or_404, status_limit, wait_arg
from web.extensions import api_key_entry, client_id, limiter
from web.idempotency import HEADER, Idempotency, fingerprint
from web.openapi import spec
from web.queueing import queue_all
from web.uploads import checked_files

bp = Blueprint("api", __name__)
log = logging.getLogger(__name__)


@bp.post("/jobs")
def submit():
    """Queue one job per uploaded image or video (or the file of `url`); 202 with the job ids
    (?wait=S: 200 with the results when every job is final within S seconds)."""
    ext, client = common.ext(), client_id()
    allowance.ensure_open()
    wait, checked, callback, priority, explain = _checked_request()
    videos = sum(info["media"] == "video" for _, _, info in checked)
    allowance.charge({"video": videos, "upload": len(checked)})
    idem, replayed = None, None
    if request.headers.get(HEADER) is not None:
        idem = Idempotency(ext["redis"], client, request.headers[HEADER],
                           fingerprint(checked, callback), common.settings().JOB_TTL)
        replayed = idem.begin()
    if replayed is not None:
        jobs = _current(replayed)
    else:
        try:
            jobs = [_located(job)
                    for job in queue_all(ext, client, checked, callback, priority, explain)]
        except BaseException:
            if idem is not None:
                idem.abandon()
            raise
        if idem is not None:
            idem.done(jobs)
    final = _wait_all(jobs, wait) if wait else False
    response = jsonify(jobs=jobs)
    response.status_code = 200 if final else 202
    if len(jobs) == 1:
        response.headers["Location"] = jobs[0]["location"]
    if replayed is not None:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _checked_request() -> tuple:
    """(wait, files, callback, priority, explain) of a request that passes every check; a refused
    one counts against the refusal allowance (web.allowance), not the upload one."""
    try:
        if common.settings().REQUIRE_API_KEY and api_key_entry() is None:
            abort(401, description="this service requires an API key: send "
                                   "'Authorization: Bearer <api key>'")
        return wait_arg(), checked_files(), _callback_arg(), _priority_arg(), _explain_arg()
    except (HTTPException, InputError) as exc:
        if isinstance(exc, InputError):
            status = exc.status
        else:  # abort(response) leaves code None: the response has the status
            status = exc.code or (exc.response.status_code if exc.response is not None else 0)
        if 400 <= status < 500 and status != 429:
            allowance.refused()
        raise


def _located(stub: dict) -> dict:
    """A queued job's stub with its status URL, after its filename (the documented order)."""
    return {"id": stub["id"], "status": stub["status"], "filename": stub["filename"],
            "location": url_for("api.job", job_id=stub["id"]), **stub}


def _current(stubs: list[dict]) -> list[dict]:
    """The jobs of a replayed request, each with its status now (as it was, if gone since)."""
    store, out = common.ext()["jobs"], []
    for stub in stubs:
        rec = store.get(stub["id"])
        out.append({**stub, "status": rec["status"] if rec else "deleted"})
    return out


def _callback_arg() -> str:
    """The form's callback_url, checked (https, a public address) or 400; '' when absent."""
    if "callback_url" not in request.form:
        return ""
    url = request.form["callback_url"].strip()
    if not url:
        abort(400, description="callback_url is empty: leave the field out for no webhook")
    dfd = common.settings()
    if not dfd.WEBHOOK_SECRET:
        abort(400, description="callback_url is not available here: the operator has not "
                               "set DFD_WEBHOOK_SECRET")
    return check_url(url, allow_http=dfd.WEBHOOK_ALLOW_HTTP,
                     allow_private=dfd.WEBHOOK_ALLOW_PRIVATE)  # CallbackError: a 400


def _priority_arg() -> int:
    """Page uploads (no key, tightly limited) first, then API keys, then batches. A client may
    ask for a lower class with the form field `priority`, never a higher one."""
    asked = (request.form.get("priority") or "").strip().lower()
    if asked and asked not in PRIORITIES:
        abort(400, description=f"priority must be one of {', '.join(PRIORITIES)}")
    own = PRIORITIES["page" if api_key_entry() is None else "api"]
    return max(own, PRIORITIES.get(asked, own))


def _explain_arg() -> bool:
    """The form's explain flag: compute the "Why?" map while the upload is still at hand."""
    if "explain" not in request.form:
        return False
    asked = request.form["explain"]
    if asked not in ("0", "1", "true", "false"):
        abort(400, description="explain must be 1 (or true) to ask for the explanation, "
                               "0 (or false) not to")
    return asked in ("1", "true")


def _wait_all(jobs: list[dict], wait: float) -> bool:
    """Hold until every job is final or `wait` seconds pass; fill in their views. All final?"""
    # One round trip instead of two for a script that wants the verdict: the upload's own
    # response carries the result (measured in docs/PERFORMANCE.md).
    store, deadline = common.ext()["jobs"], time.monotonic() + wait
    limit = common.settings().QUEUE_DEADLINE
    for item in jobs:
        left = deadline - time.monotonic()
        if item["status"] not in (*FINAL, "deleted") and left >= 0.01:  # BLPOP's shortest timeout
            store.wait(item["id"], left)
        rec = store.get(item["id"])  # also for a reused result, which is final already
        if rec is not None:
            item.update(public_view(rec, deadline=limit))
    return all(item["status"] in (*FINAL, "deleted") for item in jobs)


@bp.get("/jobs/<job_id>")
@limiter.limit(status_limit, scope="status")
def job(job_id: str):
    """A job's status and, when done, its result; ?wait=S holds until final or S seconds."""
    wait = wait_arg()
    jobs = common.ext()["jobs"]
    rec = job_or_404(job_id)
    if wait and rec["status"] not in FINAL:
        jobs.wait(job_id, wait)
        rec = jobs.get(job_id) or rec
    return jsonify(public_view(rec, deadline=common.settings().QUEUE_DEADLINE))


@bp.delete("/jobs/<job_id>")
@limiter.limit(status_limit, scope="status")
def delete_job(job_id: str):
    """Delete a job: its record, result and any stored upload; only its own client may."""
    ext = common.ext()
    rec = job_or_404(job_id, "unknown, expired or deleted")
    if rec["client"] != client_id():
        abort(403, description="only the client that created a job may delete it (the same "
                               "API key, or the same address without one)")
    ext["jobs"].delete(job_id)
    if rec["stored"]:
        ext["storage"].delete(rec["stored"])
    log.info("job %s deleted client=%s", job_id, rec["client"])
    return jsonify(id=job_id, status="deleted")


@bp.get("/openapi.json")
@limiter.exempt
def openapi():
    """The OpenAPI 3 document of this API."""
    return jsonify(spec(webhooks=bool(common.settings().WEBHOOK_SECRET)))

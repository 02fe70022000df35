"""Queueing the jobs of one upload request, all or nothing: reuse an earlier result or store
the upload, write the job records, send their tasks, and undo all of it if a send fails.

A service used by the API view (web/api.py); it takes the app's extensions explicitly."""

from __future__ import annotations

import hashlib
import logging

from shared.job_view import explanation_state, iso
from shared.jobs import JobStore, new_job_id
from shared.tasks import DETECT, QUEUE
from shared.webhooks import WEBHOOK
from web.common import Parts
from web.uploads import suffix_of

log = logging.getLogger(__name__)


def _reusable(store: JobStore, version: str | None, client: str, sha: str,
              explain: bool) -> dict | None:
    """The client's earlier done job for these bytes and model, if its result may be reused: a
    request for an explanation reuses only a job that has one, made or on its way (else the
    bytes are run again)."""
    earlier = store.reusable_job(version, client, sha)
    if earlier is not None and explain and explanation_state(earlier) not in ("done", "pending"):
        return None
    return earlier


def _make_job(ext: Parts, version: str | None, client: str, upload: tuple[str, bytes, dict],
              options: dict, made: list[tuple[str, str]],
              to_send: list[tuple[str, str]]) -> dict:
    """One job: done at once with a reused result, or stored and queued; its stub for the
    answer. `made` and `to_send` collect what to undo and what to send."""
    store = ext["jobs"]
    name, data, info = upload
    job_id, sha = new_job_id(), hashlib.sha256(data).hexdigest()
    # A "Why?" map is made for stills only: a video's explain=1 asks for nothing.
    explain = options["explain"] and info["media"] == "image"
    earlier = _reusable(store, version, client, sha, explain)
    reused = earlier["result"] if earlier is not None else None
    if earlier is not None and reused is not None:
        made.append((job_id, ""))
        # source: the job that made the result, whose explanation this one shares.
        created = store.create_reused(job_id, filename=name, sha256=sha, client=client,
                                      result=reused, callback=options["callback"],
                                      source=earlier["id"])
        if options["callback"]:
            to_send.append((WEBHOOK, job_id))
    else:
        stored = ext["storage"].save(data, suffix_of(info))
        made.append((job_id, stored))
        created = store.create(job_id, filename=name, stored=stored, sha256=sha, client=client,
                               callback=options["callback"], explain=explain,
                               media=info["media"], priority=options["priority"])
        to_send.append((DETECT, job_id))
    return {"id": job_id, "status": "done" if reused is not None else "queued",
            "filename": name, "created_at": iso(created),
            **({"reused": True} if reused is not None else {})}


def _undo(ext: Parts, made: list[tuple[str, str]]) -> None:
    # Nothing half-made survives: no record without a task, no file without a record.
    for _, stored in made:
        if stored:
            ext["storage"].delete(stored)  # first: the disk works even if Redis does not
    for job_id, _ in made:
        ext["jobs"].discard(job_id)


def queue_all(ext: Parts, client: str, checked: list[tuple[str, bytes, dict]],
              callback: str = "", priority: int = 0, explain: bool = False) -> list[dict]:
    """Create every job, then send their tasks at `priority` (shared.tasks.PRIORITIES); all or
    nothing. The stubs of the jobs.

    If any send fails, every job of the request is removed again (records, files) before the
    error propagates (the API answers 503): a task already sent finds no record and does
    nothing.
    """
    model = ext["jobs"].current_model()
    options = {"callback": callback, "explain": explain, "priority": priority}
    jobs: list[dict] = []
    made: list[tuple[str, str]] = []  # (job id, stored file or "")
    to_send: list[tuple[str, str]] = []  # (task name, job id)
    try:
        for upload in checked:
            jobs.append(_make_job(ext, model["version"] if model else None, client, upload,
                                  options, made, to_send))
        for task, job_id in to_send:
            ext["celery"].send_task(task, args=[job_id], queue=QUEUE, priority=priority)
    except Exception:
        _undo(ext, made)
        raise
    for job in jobs:
        log.info("job %s queued client=%s reused=%s", job["id"], client, "reused" in job,
                 extra={"job_id": job["id"]})
    return jobs

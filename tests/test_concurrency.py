"""Correct work under concurrency: an atomic claim with an owner and a lease, so a job runs once
unless its worker dies; checked on the job store and with two real worker processes."""

from __future__ import annotations

import time

import pytest
import redis

from harness.services import consumers_paused, wait_queue_drained
from shared.jobs import LEASED, READY, JobStore, new_job_id
from tests.test_faults import Stack, batch_jpegs


@pytest.fixture
def store(clean_redis):
    # A flushed database: owner names are reused across these tests (Celery's are unique).
    return JobStore(clean_redis, ttl=60)


def _queue(store: JobStore, n: int) -> list[str]:
    ids = [new_job_id() for _ in range(n)]
    for job_id in ids:
        store.create(job_id, filename="x.jpg", stored="", sha256="", client="t")
    return ids


def test_a_job_in_another_workers_batch_is_not_run_again(store, clean_redis):
    a, b, c = _queue(store, 3)
    assert store.claim_ready(a, 2, owner="task-a").running == [a, b, c]
    # b's own task reaches another worker while task-a's lease is good: nothing to do.
    assert store.claim_ready(b, 2, owner="task-b").running == []
    recs = [store.get(i) for i in (a, b, c)]
    assert [(r["status"], r["attempts"], r["owner"]) for r in recs] == [
        ("running", 1, "task-a")] * 3
    assert clean_redis.zcard(READY) == 0 and clean_redis.zcard(LEASED) == 3
    store.finish(b, error="x")
    assert clean_redis.zscore(LEASED, b) is None


def test_a_redelivered_task_runs_its_own_job_alone_and_gives_back_the_rest(store):
    a, b, c = _queue(store, 3)
    assert store.claim_ready(a, 2, owner="task-a").running == [a, b, c]
    store.finish(c, error="done before the worker died")
    # task-a's worker died; Celery redelivers task-a (same id): a runs again, alone, and b
    # goes back to its pool, for its task to be sent again (its own message may be gone).
    assert store.claim_ready(a, 2, owner="task-a") == ([a], [], [(b, 3)])
    assert [store.get(i)["attempts"] for i in (a, b, c)] == [2, 1, 1]
    # Tried before, b joins no other task's batch; its own task runs it alone.
    d = _queue(store, 1)[0]
    assert store.claim_ready(d, 5, owner="task-d").running == [d]
    assert store.claim_ready(b, 5, owner="task-b").running == [b]


def test_a_lapsed_lease_goes_back_at_the_sweep_and_its_jobs_run_alone(store):
    a, b, d = _queue(store, 3)
    assert store.claim_ready(a, 1, owner="task-a", lease=0.3).running == [a, b]
    assert store.claim_ready(d, 5, owner="task-d").running == [d]  # leases still good
    time.sleep(0.4)
    # task-a was killed at the time limit: a later claim's batch leaves its jobs alone ...
    e = _queue(store, 1)[0]
    assert store.claim_ready(e, 5, owner="task-e").running == [e]
    # ... the sweep gives them back, each to be sent again, and each runs alone.
    lapsed = store.release_lapsed()
    assert sorted(lapsed.again) == sorted([(a, 3), (b, 3)]) and not lapsed.gave_up
    assert store.claim_ready(b, 5, owner="task-b").running == [b]
    assert [store.get(i)["attempts"] for i in (a, b)] == [1, 2]


@pytest.mark.slow
def test_two_workers_run_each_of_200_jobs_exactly_once(tmp_path, model_dir):
    """200 jobs queued while two worker processes wait; then both batch from the same queue.
    Every job's own task reaches one of them, often after the job was claimed into the other's
    batch: each job still runs once (attempts == 1) and finishes once."""
    stack = Stack(tmp_path, model_dir, concurrency=1)
    try:
        stack.start_redis()
        stack.start_worker()
        first = stack.procs.pop("worker")
        stack.start_worker()
        stack.procs["worker-1"] = first
        stack.start_web()
        blobs = batch_jpegs(200, seed=7, size=(512, 384))
        with consumers_paused(stack.redis_url):
            ids = stack.submit(blobs)
        assert len(ids) == 200
        stack.wait_all_final(ids, timeout=240)
        recs = stack.records(ids)
        assert [r["status"] for r in recs] == ["done"] * 200, [r.get("error") for r in recs]
        assert [r["finishes"] for r in recs] == [1] * 200
        ran_twice = [r["id"] for r in recs if r["attempts"] != 1]
        assert ran_twice == [], f"{len(ran_twice)} jobs ran more than once"
        owners = {r["owner"] for r in recs}
        assert len(owners) < 200  # jobs were batched: some tasks claimed others' jobs
        assert stack.redis.zcard(LEASED) == 0 and stack.redis.zcard(READY) == 0
    finally:
        for name in ("web", "worker", "worker-1", "redis"):
            if name in stack.procs:
                from harness import services

                services.stop(stack.procs[name], timeout=20)


def test_a_multi_file_upload_is_all_or_nothing_when_a_later_send_fails(live_server,
                                                                       monkeypatch):
    """Three files; the first task is really sent, the second send fails: 503, and nothing of
    the request remains (no record, no ready entry, no file), nor does the first job ever run."""
    import io
    import os

    from kombu.exceptions import OperationalError

    from tests.conftest import API_KEY
    from web import create_app

    app = create_app({"ENV": dict(live_server.env)})
    celery = app.extensions["dfd"]["celery"]
    real_send, sent = celery.send_task, []

    def flaky(name, args, **kw):
        if sent:
            raise OperationalError("broker connection lost")
        sent.append(args[0])
        return real_send(name, args=args, **kw)

    monkeypatch.setattr(celery, "send_task", flaky)
    r = redis.Redis.from_url(live_server.redis_url)
    uploads = live_server.upload_dir

    def footprint():
        return (sorted(r.scan_iter("dfd:job:*")), r.zcard(READY),
                sorted(os.listdir(uploads)) if uploads.is_dir() else [])

    before = footprint()
    files = [(io.BytesIO(b), f"m{i}.jpg", "image/jpeg")
             for i, b in enumerate(batch_jpegs(3, seed=91, size=(256, 192)))]
    resp = app.test_client().post("/api/v1/jobs", data={"image": files},
                                  headers={"Authorization": f"Bearer {API_KEY}"})
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == "unavailable"
    assert len(sent) == 1
    assert footprint() == before
    # The task that did go out reaches the worker, which finds no record and writes nothing.
    wait_queue_drained(live_server.redis_url)
    assert JobStore(r).get(sent[0]) is None and footprint() == before

"""Every job reaches a final state (the guide's standing rule 4), even one whose worker always
runs out of time or dies on it: it is tried DFD_MAX_ATTEMPTS times, then failed with a reason,
never sent again or claimed again for ever. Checked on the store (the real redis-server) and on
a real worker whose child is SIGKILLed on the job each time it runs."""

from __future__ import annotations

import json
import signal
import time

import psutil
import pytest
import requests

from shared.jobs import GAVE_UP, POOLS, JobStore, new_job_id
from shared.settings import SettingsError, load
from tests.conftest import API_KEY, WEBHOOK_SECRET
from tests.test_faults import Stack, heavy_png, worker_children
from tests.test_webhooks import receiver  # noqa: F401 - a fixture, used by name


@pytest.fixture
def store(clean_redis):
    return JobStore(clean_redis, ttl=60, max_attempts=2)


def _queue(store: JobStore, n: int, media: str = "image") -> list[str]:
    ids = [new_job_id() for _ in range(n)]
    for job_id in ids:
        store.create(job_id, filename="x", stored="", sha256="", client="t", media=media)
    return ids


def _gave_up_on(store: JobStore, clean_redis, job_id: str, attempts: int) -> None:
    """The job is failed once, with the reason, out of every pool, its waiters woken."""
    rec = store.get(job_id)
    assert (rec["status"], rec["attempts"], rec["finishes"]) == ("failed", attempts, 1)
    assert rec["error"] == GAVE_UP % attempts
    assert f"tried {attempts} times" in rec["error"] and "DFD_TASK_TIME_LIMIT" in rec["error"]
    assert all(clean_redis.zscore(pool, job_id) is None for pool in POOLS)
    t0 = time.monotonic()
    store.wait(job_id, 5)
    assert time.monotonic() - t0 < 1


def test_the_cap_is_one_setting_checked_at_start(clean_redis):
    assert load({}).MAX_ATTEMPTS == 3 == JobStore(clean_redis).max_attempts
    assert load({"DFD_MAX_ATTEMPTS": "5"}).MAX_ATTEMPTS == 5
    for bad, words in (("0", "DFD_MAX_ATTEMPTS=0: must be between 1"),
                       ("three", "DFD_MAX_ATTEMPTS='three': expected a whole number")):
        with pytest.raises(SettingsError, match=words):
            load({"DFD_MAX_ATTEMPTS": bad})


def test_a_lapsed_video_is_sent_again_until_its_attempts_are_used_up(store, clean_redis):
    video = _queue(store, 1, "video")[0]
    # Its task is killed at the hard time limit (never redelivered): the lease lapses.
    assert store.claim_ready(video, 0, owner="task-1", lease=-1) == ([video], [])
    assert store.release_lapsed() == ([(video, 3)], [])  # under the cap: sent again
    assert (store.get(video)["status"], store.get(video)["attempts"]) == ("queued", 1)
    assert store.claim_ready(video, 0, owner="task-2", lease=-1) == ([video], [])
    # At the cap: failed, not released.
    assert store.release_lapsed() == ([], [video])
    _gave_up_on(store, clean_redis, video, 2)
    assert store.release_lapsed() == ([], [])
    # A message of it that still arrives claims nothing, and a late finish changes nothing.
    assert store.claim_ready(video, 0, owner="task-3") == ([], [])
    assert store.finish(video, error="late") is False


def test_a_still_past_its_cap_is_never_claimed(store, clean_redis):
    a, b, c = _queue(store, 3)
    # task-a's worker dies on its batch (a, b) twice: Celery redelivers it each time.
    assert store.claim_ready(a, 1, owner="task-a").running == [a, b]
    assert store.claim_ready(a, 1, owner="task-a").running == [a, b]
    # Its third delivery fails both instead, and fills its batch from the pool.
    assert store.claim_ready(a, 1, owner="task-a") == ([c], [a, b])
    _gave_up_on(store, clean_redis, a, 2)
    _gave_up_on(store, clean_redis, b, 2)
    assert store.claim_ready(b, 1, owner="task-b") == ([], [])


def test_a_lapsed_still_past_its_cap_is_not_taken_over(store, clean_redis):
    x, y, z = _queue(store, 3)
    # x's task is killed at the time limit twice: first its own, then the one that took it over.
    assert store.claim_ready(x, 0, owner="task-x", lease=-1).running == [x]
    assert store.claim_ready(y, 1, owner="task-y", lease=-1).running == [y, x]
    # The next claim takes over y (one attempt left) but fails x.
    assert store.claim_ready(z, 5, owner="task-z") == ([z, y], [x])
    _gave_up_on(store, clean_redis, x, 2)
    assert [store.get(i)["attempts"] for i in (y, z)] == [2, 1]


def test_a_last_attempt_still_running_is_left_alone(store):
    job_id = _queue(store, 1)[0]
    store.claim_ready(job_id, 0, owner="task-1")
    assert store.claim_ready(job_id, 0, owner="task-1").running == [job_id]  # attempt 2 of 2
    # Its own message reaching another worker meanwhile neither runs nor fails it.
    assert store.claim_ready(job_id, 0, owner="task-2") == ([], [])
    assert store.get(job_id)["status"] == "running"
    assert store.finish(job_id, error="its own outcome") is True


def _running_child(stack: Stack, job_id: str, attempt: int, timeout: float) -> psutil.Process:
    """The worker's (only) child once it is on `attempt` of the job."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, attempts, _ = stack.statuses([job_id])[0]
        assert status in ("queued", "running"), (status, attempts)
        if status == "running" and attempts == attempt:
            children = worker_children(stack.procs["worker"])
            assert len(children) == 1, children
            return children[0]
        time.sleep(0.01)
    raise AssertionError(f"attempt {attempt} never started: {stack.worker_log_tail()}")


@pytest.mark.slow
def test_a_job_that_kills_its_worker_every_time_ends_failed(tmp_path, model_dir,
                                                            receiver):  # noqa: F811
    """A still whose worker child dies on it each time (SIGKILL, as an upload that crashes the
    decoder would): Celery redelivers its task each time; after DFD_MAX_ATTEMPTS the claim
    fails it, its webhook reports the failure, and the worker lives on."""
    url, handler = receiver
    stack = Stack(tmp_path, model_dir, concurrency=1)
    stack.env.update({"DFD_MAX_ATTEMPTS": "2", "DFD_WEBHOOK_SECRET": WEBHOOK_SECRET,
                      "DFD_WEBHOOK_ALLOW_HTTP": "true", "DFD_WEBHOOK_ALLOW_PRIVATE": "true"})
    try:
        stack.start_redis()
        stack.start_worker()
        stack.start_web()
        r = requests.post(f"{stack.url}/api/v1/jobs", data={"callback_url": url}, timeout=60,
                          headers={"Authorization": f"Bearer {API_KEY}"},
                          files=[("image", ("big.png", heavy_png(7), "image/png"))])
        assert r.status_code == 202, r.text
        job_id = r.json()["jobs"][0]["id"]
        for attempt in (1, 2):
            child = _running_child(stack, job_id, attempt, timeout=90)
            child.send_signal(signal.SIGKILL)
            child.wait(5)
        stack.wait_all_final([job_id], timeout=90)
        rec = stack.records([job_id])[0]
        assert (rec["status"], rec["attempts"], rec["finishes"]) == ("failed", 2, 1)
        assert rec["error"] == GAVE_UP % 2
        deadline = time.monotonic() + 30
        while not handler.got:
            assert time.monotonic() < deadline, stack.worker_log_tail()
            time.sleep(0.05)
        sent = json.loads(handler.got[0][1])
        assert (sent["id"], sent["status"], sent["error"]) == (job_id, "failed", rec["error"])
        assert stack.procs["worker"].poll() is None
        assert stack.worker_log_tail(10_000_000).count("WorkerLostError") >= 2
        assert not (tmp_path / "uploads" / rec["stored"]).exists()  # deleted, as on any failure
    finally:
        stack.stop()

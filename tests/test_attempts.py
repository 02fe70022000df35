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

from harness.services import consumers_paused
from shared.attempts import GAVE_UP, MAP_GAVE_UP
from shared.job_view import explanation_state
from shared.jobs import LEASED_MAP, POOLS, JobStore, new_job_id
from shared.settings import SettingsError, load
from tests.conftest import API_KEY, LOCAL_WEBHOOKS
from tests.test_faults import Stack, batch_jpegs, heavy_png, worker_children
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
    assert store.claim_ready(video, 0, owner="task-1", lease=-1) == ([video], [], [])
    assert store.release_lapsed() == ([(video, 3)], [], [])  # under the cap: sent again
    assert (store.get(video)["status"], store.get(video)["attempts"]) == ("queued", 1)
    assert store.claim_ready(video, 0, owner="task-2", lease=-1) == ([video], [], [])
    # At the cap: failed, not released.
    assert store.release_lapsed() == ([], [video], [])
    _gave_up_on(store, clean_redis, video, 2)
    assert store.release_lapsed() == ([], [], [])
    # A message of it that still arrives claims nothing, and a late finish changes nothing.
    assert store.claim_ready(video, 0, owner="task-3") == ([], [], [])
    assert store.finish(video, error="late") is False


def test_a_still_past_its_cap_is_never_claimed_and_takes_no_batch_mate_with_it(store,
                                                                               clean_redis):
    a, b, c, d = _queue(store, 4)
    # task-a claims a and b; b's own message finds b taken and runs the next job waiting.
    assert store.claim_ready(a, 1, owner="task-a").running == [a, b]
    assert store.claim_ready(b, 0, owner="task-b").running == [c]
    # task-a's worker dies: Celery redelivers it, which takes a back alone and gives b back
    # to its pool, for its task to be sent again (its own message is spent).
    assert store.claim_ready(a, 1, owner="task-a") == ([a], [], [(b, 3)])
    assert (store.get(b)["status"], store.get(b)["attempts"]) == ("queued", 1)
    # Its worker dies on a again: the next delivery fails a instead and, a being out of the
    # batch, fills it from the pool with a job never tried (not b, which waits for its task).
    assert store.claim_ready(a, 1, owner="task-a") == ([d], [a], [])
    _gave_up_on(store, clean_redis, a, 2)
    assert store.claim_ready(b, 1, owner="task-b2") == ([b], [], [])  # alone: tried before
    assert store.finish(b, error="its own outcome")
    assert store.claim_ready(a, 1, owner="task-a2") == ([], [], [])


def test_a_lapsed_still_goes_back_alone_and_fails_at_its_cap(store, clean_redis):
    x, y, z = _queue(store, 3)
    # x's task is killed at the time limit: a later claim's batch does not take x over.
    assert store.claim_ready(x, 0, owner="task-x", lease=-1).running == [x]
    assert store.claim_ready(y, 1, owner="task-y").running == [y, z]
    # The sweep gives x back, to be sent again; killed at the limit again, it is failed.
    assert store.release_lapsed() == ([(x, 3)], [], [])
    assert store.claim_ready(x, 5, owner="task-x2", lease=-1) == ([x], [], [])
    assert store.release_lapsed() == ([], [x], [])
    _gave_up_on(store, clean_redis, x, 2)
    assert [store.get(i)["attempts"] for i in (y, z)] == [1, 1]


def test_a_job_given_back_whose_task_is_lost_is_sent_again_by_the_sweep(store):
    a, b = _queue(store, 2)
    assert store.claim_ready(a, 1, owner="task-a").running == [a, b]
    # task-a is redelivered and gives b back; its process dies before b's task is sent, and
    # then the lease of a runs out too (lease=-1: as if that time had passed).
    assert store.claim_ready(a, 1, owner="task-a", lease=-1).again == [(b, 3)]
    # The sweep sends b again, as no claim took it in time (and fails a, at its cap).
    assert store.release_lapsed(grace=60) == ([(b, 3)], [a], [])
    assert store.release_lapsed(grace=60) == ([], [], [])  # not again before the grace
    assert store.claim_ready(b, 1, owner="task-b").running == [b]
    assert store.get(b)["attempts"] == 2


def _done_with_map(store: JobStore) -> str:
    """A done job whose "Why?" map is still to be made."""
    job_id = new_job_id()
    store.create(job_id, filename="x", stored="", sha256="", client="t", explain=True)
    store.claim_ready(job_id, 0, owner=f"task-{job_id}")
    assert store.finish(job_id, result={"label": "Real"})
    return job_id


def test_a_map_is_tried_at_most_max_attempts_times(store, clean_redis):
    """The "Why?" map counts its attempts as a job does: a redelivery (its worker died) or a
    lapsed lease (killed at the time limit; the sweep sends it again) is one more; at the cap
    it is recorded as failed with the reason, the verdict untouched."""
    died, timed_out = _done_with_map(store), _done_with_map(store)
    assert store.claim_map(died, "map-1", 60) == "run"
    assert store.claim_map(died, "map-2", 60) == "skip"  # its first task is live on it
    assert store.claim_map(died, "map-1", 60) == "run"  # redelivered: attempt 2 of 2
    assert store.claim_map(died, "map-1", 60) == "gave_up"
    assert store.claim_map(timed_out, "map-a", -1) == "run"
    assert store.release_lapsed() == ([], [], [(timed_out, 6)])  # API class 3: maps at 6
    assert store.claim_map(timed_out, "map-b", -1) == "run"
    assert store.release_lapsed().maps == [(timed_out, 6)]
    assert store.claim_map(timed_out, "map-c", 60) == "gave_up"
    assert store.release_lapsed() == ([], [], [])
    for job_id in (died, timed_out):
        rec = store.get(job_id)
        assert json.loads(rec["explanation"]) == {"error": "failed", "reason": MAP_GAVE_UP % 2}
        assert "the map was tried 2 times" in MAP_GAVE_UP % 2
        assert explanation_state(rec) == "failed"
        assert (rec["status"], rec["result"], rec["finishes"]) == ("done", {"label": "Real"}, 1)
        assert store.claim_map(job_id, "map-late", 60) == "skip"
    # A map made (or failed) in time leaves no lease behind for the sweep.
    made = _done_with_map(store)
    assert store.claim_map(made, "map-m", -1) == "run"
    store.set_explanation(made, {"faces": []})
    assert store.release_lapsed() == ([], [], []) and not clean_redis.zcard(LEASED_MAP)


def test_a_last_attempt_still_running_is_left_alone(store):
    job_id = _queue(store, 1)[0]
    store.claim_ready(job_id, 0, owner="task-1")
    assert store.claim_ready(job_id, 0, owner="task-1").running == [job_id]  # attempt 2 of 2
    # Its own message reaching another worker meanwhile neither runs nor fails it.
    assert store.claim_ready(job_id, 0, owner="task-2") == ([], [], [])
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
    stack.env.update({"DFD_MAX_ATTEMPTS": "2", **LOCAL_WEBHOOKS})
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


@pytest.mark.slow
def test_a_poison_upload_fails_alone_and_its_batch_mates_are_done(tmp_path, model_dir):
    """A batch of four stills, one of which kills its worker each time it runs (SIGKILL, as an
    upload that crashes the decoder would): after the first death each job runs alone, so the
    poison one reaches the cap and fails by itself while its batch-mates are done."""
    stack = Stack(tmp_path, model_dir, concurrency=1)
    # A short lease and sweep: a batch-mate whose task was lost with a killed process (the
    # kill can land before the redelivered task has sent them) is sent again within a minute.
    stack.env.update({"DFD_MAX_ATTEMPTS": "2", "DFD_TASK_TIME_LIMIT": "20",
                      "DFD_SWEEP_EVERY": "1"})
    try:
        stack.start_redis()
        stack.start_worker()
        stack.start_web()
        blobs = batch_jpegs(3, seed=4)
        blobs.insert(1, heavy_png(9))
        with consumers_paused(stack.redis_url):  # all four wait: the first task takes them all
            ids = stack.submit(blobs)
        poison, mates = ids[1], [ids[0], *ids[2:]]
        child = _running_child(stack, poison, 1, timeout=90)
        assert [s[:2] for s in stack.statuses(ids)] == [("running", 1)] * 4  # one batch
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        child = _running_child(stack, poison, 2, timeout=90)
        assert "running" not in [s for s, *_ in stack.statuses(mates)]  # it runs alone
        time.sleep(0.3)  # into the decoding, where a poison upload would kill it
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        stack.wait_all_final(ids, timeout=90)
        recs = {r["id"]: r for r in stack.records(ids)}
        assert (recs[poison]["status"], recs[poison]["error"]) == ("failed", GAVE_UP % 2)
        # Each mate ran in the batch that died, then once more on its own.
        assert [(recs[m]["status"], recs[m]["attempts"], recs[m]["finishes"])
                for m in mates] == [("done", 2, 1)] * 3
        assert stack.procs["worker"].poll() is None
    finally:
        stack.stop()


def _map_attempts(stack: Stack, job_id: str) -> int:
    return int(stack.redis.hget(JobStore.key(job_id), "map_attempts") or 0)


@pytest.mark.slow
def test_a_map_that_kills_its_worker_every_time_fails_with_its_reason(tmp_path, model_dir):
    """The "Why?" map of a still whose worker child dies on it each time: Celery redelivers
    its task each time; after DFD_MAX_ATTEMPTS the map is failed with the reason (the web
    answers 500 saying it), the verdict stands and the upload is deleted."""
    stack = Stack(tmp_path, model_dir, concurrency=1)
    stack.env["DFD_MAX_ATTEMPTS"] = "2"
    try:
        stack.start_redis()
        stack.start_worker()
        stack.start_web()
        r = requests.post(f"{stack.url}/api/v1/jobs?wait=10", data={"explain": "1"},
                          headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60,
                          files=[("image", ("big.png", heavy_png(8), "image/png"))])
        job_id = r.json()["jobs"][0]["id"]
        for attempt in (1, 2):
            deadline = time.monotonic() + 90
            while _map_attempts(stack, job_id) < attempt:
                assert time.monotonic() < deadline, stack.worker_log_tail()
                time.sleep(0.01)
            children = worker_children(stack.procs["worker"])
            assert len(children) == 1, children
            children[0].send_signal(signal.SIGKILL)
            children[0].wait(5)
        deadline, url = time.monotonic() + 90, f"{stack.url}/api/v1/jobs/{job_id}/explanation"
        while (got := requests.get(url, timeout=10)).status_code == 202:
            assert time.monotonic() < deadline, stack.worker_log_tail()
            time.sleep(0.1)
        assert got.status_code == 500, got.text
        error = got.json()["error"]
        assert error["code"] == "explanation_failed" and error["message"].endswith(
            MAP_GAVE_UP % 2), error
        rec = stack.records([job_id])[0]
        assert (rec["status"], rec["finishes"], _map_attempts(stack, job_id)) == ("done", 1, 2)
        assert rec["result"]["label"] in ("Real", "Fake")
        assert not (tmp_path / "uploads" / rec["stored"]).exists()
    finally:
        stack.stop()

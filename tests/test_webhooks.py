"""Webhooks: the callback URL rules (https, no internal addresses), the signature, delivery with
retries from the real worker to a real HTTP receiver on this machine, and the outbox that keeps
a webhook owed from the step that records the verdict until its delivery has an outcome (the
guide's rule 4: a worker dying in between loses no webhook)."""

from __future__ import annotations

import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
import requests

from shared.jobs import WEBHOOKS, JobStore, new_job_id
from shared.webhooks import CallbackError, check_url, sign, verify
from tests.conftest import LOCAL_WEBHOOKS, WEBHOOK_SECRET, make_jpeg
from tests.test_faults import Stack


@pytest.mark.parametrize("url,words", [
    ("ftp://example.com/hook", "https"),
    ("http://93.184.216.34/hook", "must use https"),
    ("https://127.0.0.1/hook", "internal"),
    ("https://10.1.2.3/hook", "internal"),
    ("https://192.168.0.7:8443/hook", "internal"),
    ("https://169.254.169.254/latest/meta-data", "internal"),  # cloud metadata
    ("https://[::1]/hook", "internal"),
    ("https://[::ffff:127.0.0.1]/hook", "internal"),
    ("https://0.0.0.0/hook", "internal"),
    ("https://localhost/hook", "internal"),
    ("https://user:pw@93.184.216.34/hook", "user name"),
    ("https:///nohost", "host"),
])
def test_callback_urls_that_are_refused(url, words):
    with pytest.raises(CallbackError, match=words):
        check_url(url, allow_http=False, allow_private=False)


def test_callback_urls_that_are_allowed():
    assert check_url("https://93.184.216.34/hook?x=1", allow_http=False, allow_private=False)
    assert check_url("http://127.0.0.1:9/hook", allow_http=True, allow_private=True)
    with pytest.raises(CallbackError, match="internal"):  # http allowed, loopback still not
        check_url("http://127.0.0.1:9/hook", allow_http=True, allow_private=False)


def test_signature_verifies_and_refuses_tampering_and_replays():
    body = b'{"id":"x","status":"done"}'
    header = sign("s" * 20, body)
    assert verify("s" * 20, header, body)
    assert not verify("s" * 20, header, body + b" ")
    assert not verify("t" * 20, header, body)
    assert not verify("s" * 20, sign("s" * 20, body, ts=int(time.time()) - 3600), body)
    assert not verify("s" * 20, "garbage", body)


class Receiver(BaseHTTPRequestHandler):
    """Records each POST; answers the statuses in `plan` in turn, then 200."""

    got: list
    plan: list
    times: list

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.got.append((dict(self.headers), body))
        self.times.append(time.monotonic())
        status = self.plan.pop(0) if self.plan else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def receiver():
    handler = type("R", (Receiver,), {"got": [], "plan": [], "times": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler
    server.shutdown()


def _submit(server, url: str, seed: int) -> str:
    r = requests.post(f"{server.url}/api/v1/jobs", timeout=30,
                      headers={"Authorization": f"Bearer {server.api_key}"},
                      data={"callback_url": url},
                      files=[("image", ("w.jpg", make_jpeg(seed=seed), "image/jpeg"))])
    assert r.status_code == 202, r.text
    return r.json()["jobs"][0]["id"]


def _wait_for(check, timeout=15):
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_final_job_is_posted_signed_and_retried_after_a_5xx(live_server, receiver):
    url, handler = receiver
    handler.plan = [503]  # the receiver is down once: the worker tries again after a backoff
    job_id = _submit(live_server, url, seed=601)
    final = live_server.wait_final(job_id)
    _wait_for(lambda: len(handler.got) == 2)
    for headers, body in handler.got:
        assert verify(WEBHOOK_SECRET, headers["X-DFD-Signature"], body), headers
        assert headers["X-DFD-Job"] == job_id and headers["Content-Type"] == "application/json"
    sent = json.loads(handler.got[1][1])
    assert sent["id"] == job_id and sent["status"] == "done"
    assert sent["result"] == final["result"]
    r = redis.Redis.from_url(live_server.redis_url)
    _wait_for(lambda: r.hget(JobStore.key(job_id), "webhook") == b"delivered")
    time.sleep(0.5)
    assert len(handler.got) == 2  # delivered once: no more calls


def test_a_receiver_that_keeps_failing_is_given_up_on(live_server, receiver):
    url, handler = receiver
    handler.plan = [500] * 10
    job_id = _submit(live_server, url, seed=602)
    live_server.wait_final(job_id)
    r = redis.Redis.from_url(live_server.redis_url)
    _wait_for(lambda: r.hget(JobStore.key(job_id), "webhook") == b"failed", timeout=30)
    assert len(handler.got) == 4  # the first try and DFD_WEBHOOK_RETRIES=3 retries
    # Exponential backoff from DFD_WEBHOOK_BACKOFF=0.2 s: 0.2, 0.4, 0.8 s between the tries.
    gaps = [b - a for a, b in zip(handler.times, handler.times[1:], strict=False)]
    assert [round(g, 1) >= want for g, want in zip(gaps, (0.2, 0.4, 0.8), strict=True)] == [
        True] * 3, gaps
    assert gaps[2] > gaps[0], gaps


@pytest.mark.parametrize("env,url,words", [
    ({"DFD_WEBHOOK_ALLOW_HTTP": "false"}, "http://127.0.0.1:9/h", "must use https"),
    ({"DFD_WEBHOOK_ALLOW_PRIVATE": "false"}, "http://127.0.0.1:9/h", "internal"),
    ({"DFD_WEBHOOK_SECRET": ""}, "https://93.184.216.34/h", "DFD_WEBHOOK_SECRET"),
    ({}, "  ", "empty"),  # found by the contract test: a blank field was taken as "none"
])
def test_refused_callbacks_are_400_and_queue_nothing(live_server, env, url, words):
    from web import create_app

    client = create_app({"ENV": {**live_server.env, **env}}).test_client()
    r = redis.Redis.from_url(live_server.redis_url)
    before = sum(1 for _ in r.scan_iter("dfd:job:*"))
    resp = client.post("/api/v1/jobs", headers={"Authorization": f"Bearer {live_server.api_key}"},
                       data={"callback_url": url,
                             "image": (io.BytesIO(make_jpeg(seed=603)), "c.jpg", "image/jpeg")})
    assert resp.status_code == 400, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == "bad_request"
    assert words in resp.get_json()["error"]["message"]
    assert sum(1 for _ in r.scan_iter("dfd:job:*")) == before


def test_a_final_job_owes_its_webhook_until_the_delivery_has_an_outcome(clean_redis):
    """Every step that records a final state with a callback owes the webhook in that step
    (finish, a give-up at the cap, a reused result); an outcome settles it; one still owed a
    lease after it fell due is due again, and a gone job's is dropped. The real redis-server."""
    store = JobStore(clean_redis, ttl=60, max_attempts=1)
    url = "https://example.com/hook"

    def queued(callback: str = url) -> str:
        job_id = new_job_id()
        store.create(job_id, filename="x", stored="", sha256="", client="t", callback=callback)
        return job_id

    def owed() -> dict[str, float]:
        return {k.decode(): v for k, v in clean_redis.zrange(WEBHOOKS, 0, -1, withscores=True)}

    done, failed, spent, silent = queued(), queued(), queued(), queued("")
    assert owed() == {}  # queued: nothing owed yet
    assert store.finish(done, result={"label": "Real"}) and store.finish(failed, error="boom")
    assert store.finish(silent, error="boom")  # no callback: no webhook owed
    assert store.claim_ready(spent, 0, owner="killed", lease=-1).running == [spent]
    assert store.release_lapsed().gave_up == [spent]  # at its cap: failed by the sweep
    reused = new_job_id()
    store.create_reused(reused, filename="x", sha256="", client="t", result={}, callback=url)
    # One step: the score is the very time the script recorded as the job's finished_at.
    assert owed() == {j: store.get(j)["finished_at"] for j in (done, failed, spent, reused)}
    assert not store.finish(done, error="late duplicate") and owed()[done] == \
        store.get(done)["finished_at"]
    store.webhooks.set_outcome(done, "delivered")
    assert store.get(done)["webhook"] == "delivered" and done not in owed()
    assert store.webhooks.lapsed(lease=60) == ([], [])  # none is a lease old
    store.webhooks.retry_in(failed, 3600)  # its retry waits an hour: not sent again meanwhile
    store.webhooks.retry_in(done, 3600)  # settled: stays out
    assert sorted(store.webhooks.lapsed(lease=0).again) == sorted([spent, reused])
    assert done not in owed() and store.webhooks.lapsed(lease=60) == ([], [])  # due from now
    store.delete(reused)
    clean_redis.delete(JobStore.key(spent))  # expired meanwhile
    assert store.webhooks.lapsed(lease=0) == ([], []) and list(owed()) == [failed]
    store.webhooks.set_outcome(spent, "failed")  # never makes a record of a gone job
    assert store.get(spent) is None


def test_a_webhook_that_never_settles_is_sent_again_at_most_max_attempts_times(clean_redis):
    """A webhook task that dies short of an outcome every time (an unexpected exception): the
    sweep sends it again DFD_MAX_ATTEMPTS times, then settles it as given up ('abandoned') and
    it leaves the outbox, in one step; before, it was sent every lease until the record expired.
    The count lives in the record: a deleted job leaves nothing of it. The real redis-server."""
    store = JobStore(clean_redis, ttl=60, max_attempts=3)
    stuck, deleted, late = new_job_id(), new_job_id(), new_job_id()
    for job_id in (stuck, deleted, late):
        store.create(job_id, filename="x", stored="", sha256="", client="t",
                     callback="https://example.com/hook")
        assert store.finish(job_id, error="boom")
    resent: list[str] = []
    for n in range(store.max_attempts):
        again, gave_up = store.webhooks.lapsed(lease=0)
        assert gave_up == [] and store.get(stuck).get("webhook") is None
        resent += again
        if n == 0:
            store.delete(deleted)  # sent again once: its count goes with its record
            assert [k for k in clean_redis.scan_iter() if deleted.encode() in k] == []
    assert sorted(resent) == sorted([stuck, late] * 3 + [deleted])
    store.webhooks.set_outcome(late, "delivered")  # its last resend reached the receiver
    assert store.webhooks.lapsed(lease=0) == ([], [stuck])  # the cap: given up, not sent
    rec = store.get(stuck)
    assert (rec["webhook"], rec["webhook_resends"]) == ("abandoned", "3")
    assert clean_redis.zscore(WEBHOOKS, stuck) is None and clean_redis.zcard(WEBHOOKS) == 0
    assert store.webhooks.lapsed(lease=0) == ([], [])  # and never again
    assert store.get(late)["webhook"] == "delivered"


@pytest.mark.slow
def test_a_webhook_owed_by_a_dead_worker_is_sent_by_the_sweep(tmp_path, model_dir, receiver):
    """A worker recorded a verdict and died before it sent the webhook task: the real worker's
    sweeper sends the task again, by name, once the webhook's lease has lapsed, and the receiver
    gets it, signed, once."""
    url, handler = receiver
    stack = Stack(tmp_path, model_dir, concurrency=1)
    stack.env.update({"DFD_SWEEP_EVERY": "1", **LOCAL_WEBHOOKS})
    try:
        stack.start_redis()
        stack.start_worker()
        store, job_id = JobStore(stack.redis), new_job_id()
        store.create(job_id, filename="a.jpg", stored="", sha256="s", client="t", callback=url)
        # The worker that dies: its claim and its final state, through the store; no task sent.
        assert store.claim_ready(job_id, 0, owner="dead-worker").running == [job_id]
        assert store.finish(job_id, error="recorded by a worker that then died")
        time.sleep(2.5)  # sweeps come and go: the webhook is owed, but not a lease yet
        assert handler.got == [] and stack.redis.zscore(WEBHOOKS, job_id) is not None
        # A lease (DFD_TASK_TIME_LIMIT + 30 s) passes: as if the verdict was an hour old.
        assert stack.redis.zadd(WEBHOOKS, {job_id: time.time() - 3600}, xx=True, ch=True) == 1
        _wait_for(lambda: handler.got, timeout=30)
        headers, body = handler.got[0]
        assert verify(WEBHOOK_SECRET, headers["X-DFD-Signature"], body)
        sent = json.loads(body)
        assert (sent["id"], sent["status"], headers["X-DFD-Job"]) == (job_id, "failed", job_id)
        _wait_for(lambda: stack.redis.hget(JobStore.key(job_id), "webhook") == b"delivered")
        assert stack.redis.zscore(WEBHOOKS, job_id) is None
        log = stack.worker_log_tail(10_000_000)
        assert "its webhook has no outcome a lease after it was due; sent again" in log
        time.sleep(2.5)  # later sweeps send it no more
        assert len(handler.got) == 1 and store.get(job_id)["attempts"] == 1
    finally:
        stack.stop()

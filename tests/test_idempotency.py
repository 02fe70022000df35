"""Idempotency-Key on POST /api/v1/jobs through the real web, worker and redis-server, and the
batch client's use of it across a lost response (a real proxy that drops the first answer)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import redis
import requests

from batch.client import ApiClient
from tests.conftest import make_jpeg
from web.idempotency import Idempotency, fingerprint


def _post(server, blob, key=None, idem=None, name="i.jpg"):
    headers = {"Authorization": f"Bearer {server.api_key}"} if key else {}
    if idem is not None:
        headers["Idempotency-Key"] = idem
    return requests.post(f"{server.url}/api/v1/jobs", headers=headers, timeout=30,
                         files=[("image", (name, blob, "image/jpeg"))])


def _job_count(server) -> int:
    return sum(1 for _ in redis.Redis.from_url(server.redis_url).scan_iter("dfd:job:*"))


def test_a_retried_request_returns_the_first_answer(live_server, reset_limits):
    blob = make_jpeg(seed=401)
    first = _post(live_server, blob, key=True, idem="order-401")
    assert first.status_code == 202, first.text
    job_id = first.json()["jobs"][0]["id"]
    count = _job_count(live_server)
    again = _post(live_server, blob, key=True, idem="order-401")
    assert again.status_code in (200, 202), again.text
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [j["id"] for j in again.json()["jobs"]] == [job_id]
    assert again.headers["Location"] == f"/api/v1/jobs/{job_id}"
    assert _job_count(live_server) == count  # no second job
    # Another key is another request; so is the same key from another client.
    other = _post(live_server, blob, key=True, idem="order-402")
    assert other.json()["jobs"][0]["id"] != job_id and "Idempotent-Replayed" not in other.headers
    stranger = _post(live_server, blob, idem="order-401")
    assert stranger.status_code == 202 and stranger.json()["jobs"][0]["id"] != job_id
    # The same key with different content is refused, not silently answered with the old jobs.
    reused = _post(live_server, make_jpeg(seed=403), key=True, idem="order-401")
    assert reused.status_code == 422, reused.text
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    bad = _post(live_server, blob, key=True, idem="has space")
    assert bad.status_code == 400 and "Idempotency-Key" in bad.json()["error"]["message"]


def test_a_key_still_in_progress_is_409(live_server):
    blob = make_jpeg(seed=404)
    r = redis.Redis.from_url(live_server.redis_url)
    # The first request with this key is mid-way (claimed, jobs not yet recorded).
    pending = Idempotency(r, "key:tests", "order-404", fingerprint([("i.jpg", blob, {})]), 60)
    assert pending.begin() is None
    resp = _post(live_server, blob, key=True, idem="order-404")
    assert resp.status_code == 409 and resp.json()["error"]["code"] == "conflict", resp.text


class _LoseFirstAnswer(BaseHTTPRequestHandler):
    """Forwards to the real server; the first POST's answer is dropped on the floor."""

    upstream = ""
    posts: list = []

    def log_message(self, *args):
        pass

    def _forward(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host",)}
        resp = requests.request(method, self.upstream + self.path, data=body, headers=headers,
                                timeout=60)
        if method == "POST":
            self.posts.append(self.headers.get("Idempotency-Key"))
            if len(self.posts) == 1:  # the server did the work; the client never hears of it
                self.close_connection = True
                return
        self.send_response(resp.status_code)
        for k in ("Content-Type", "Retry-After", "Idempotent-Replayed"):
            if k in resp.headers:
                self.send_header(k, resp.headers[k])
        self.send_header("Content-Length", str(len(resp.content)))
        self.end_headers()
        self.wfile.write(resp.content)

    def do_GET(self):
        self._forward("GET")

    def do_POST(self):
        self._forward("POST")


@pytest.fixture
def lossy_proxy(live_server):
    handler = type("Handler", (_LoseFirstAnswer,), {"upstream": live_server.url, "posts": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()


def test_batch_client_retry_after_a_lost_answer_makes_one_job(live_server, lossy_proxy,
                                                               tmp_path):
    url, handler = lossy_proxy
    photo = tmp_path / "lost.jpg"
    photo.write_bytes(make_jpeg(seed=405))
    before = _job_count(live_server)
    row = ApiClient(url, live_server.api_key).process(photo, timeout=60)
    assert row["status"] == "done", row
    assert len(handler.posts) == 2 and handler.posts[0] == handler.posts[1]  # one key, resent
    assert handler.posts[0].startswith("dfd-")
    assert _job_count(live_server) == before + 1

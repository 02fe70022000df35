"""Fixtures: a real redis-server, a real Celery worker and a real gunicorn server per session."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import redis
import requests
from PIL import Image

from harness import services

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
API_KEY = "test-key-0123456789abcdef"
# A second client, for resources that the client under test must not be able to delete.
OTHER_KEY = "other-key-0123456789abcdef"
WEBHOOK_SECRET = "test-webhook-secret-0123456789"
# Webhooks to a receiver on this machine (plain http on loopback), signed.
LOCAL_WEBHOOKS = {"DFD_WEBHOOK_SECRET": WEBHOOK_SECRET, "DFD_WEBHOOK_ALLOW_HTTP": "true",
                  "DFD_WEBHOOK_ALLOW_PRIVATE": "true"}
IN_CI = os.environ.get("CI") == "true"


@dataclass
class LiveServer:
    """A running service: web URL, API key, and the parts behind it."""

    url: str
    api_key: str
    redis_url: str
    upload_dir: Path
    env: dict
    logs: Path

    def get_job(self, job_id: str, wait: float = 10) -> dict:
        """One status call with long-polling."""
        r = requests.get(f"{self.url}/api/v1/jobs/{job_id}", params={"wait": wait}, timeout=30)
        r.raise_for_status()
        return r.json()

    def wait_final(self, job_id: str, timeout: float = 60) -> dict:
        """Poll until the job is done or failed."""
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get_job(job_id, wait=5)
            if job["status"] in ("done", "failed"):
                return job
        raise AssertionError(f"job {job_id} not final after {timeout} s: {job}")

    def explanation(self, job_id: str, timeout: float = 30) -> requests.Response:
        """GET a done job's explanation, again while it answers 202: the map follows the
        verdict (made by the worker after it is recorded)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            r = requests.get(f"{self.url}/api/v1/jobs/{job_id}/explanation", timeout=10)
            if r.status_code != 202 or time.monotonic() > deadline:
                return r
            assert r.json() == {"id": job_id, "status": "pending", "retry_after": 1}, r.text
            assert r.headers["Retry-After"] == "1"
            time.sleep(0.1)


@pytest.fixture(scope="session")
def tmp_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dfd")


@pytest.fixture(scope="session")
def redis_url(tmp_root):
    proc, url = services.start_redis(tmp_root)
    yield url
    services.stop(proc)


@pytest.fixture(scope="session")
def model_dir(tmp_root) -> Path:
    """A small real model saved as .keras plus its TFLite export (not the trained detector)."""
    from tests.tiny_model import build_tiny_model_dir

    return build_tiny_model_dir(tmp_root / "tiny-model")


@pytest.fixture(scope="session")
def service_env(redis_url, model_dir, tmp_root) -> dict:
    # As scripts/run.sh does: one empty folder for the web's and the workers' metric samples.
    metrics = tmp_root / "metrics"
    metrics.mkdir(exist_ok=True)
    return {"DFD_REDIS_URL": redis_url, "DFD_MODEL_PATH": str(model_dir),
            "DFD_UPLOAD_DIR": str(tmp_root / "uploads"),
            "DFD_API_KEYS": f"tests:{API_KEY}:10000/minute,others:{OTHER_KEY}:10000/minute",
            "PROMETHEUS_MULTIPROC_DIR": str(metrics),
            **LOCAL_WEBHOOKS, "DFD_WEBHOOK_RETRIES": "3", "DFD_WEBHOOK_BACKOFF": "0.2",
            # Links from local test servers on 127.0.0.2 only (plain http), with short timeouts;
            # videos not held to the per-client video limit (tests/test_video.py checks it).
            "DFD_FETCH_ALLOW_HTTP": "true", "DFD_FETCH_ALLOW_PRIVATE": "127.0.0.2/32",
            "DFD_FETCH_TIMEOUT": "3s", "DFD_VIDEO_LIMIT": "1000/minute",
            "DFD_VIDEO_DECODE_S": "20"}


@pytest.fixture(scope="session")
def worker(service_env, tmp_root):
    """A real Celery worker process, ready when it answers a ping."""
    from shared.queue import make_celery

    log = tmp_root / "worker.log"
    proc = services.start_worker(service_env, log)
    app = make_celery(service_env["DFD_REDIS_URL"], 60)
    services.wait_for(lambda: bool(app.control.ping(timeout=0.5)), 90, "celery worker", proc)
    yield proc
    services.stop(proc, timeout=20)


@pytest.fixture(scope="session")
def live_server(service_env, worker, tmp_root) -> LiveServer:
    """The real web server (gunicorn) in front of the real worker and redis-server."""
    log = tmp_root / "web.log"
    proc, url = services.start_web(service_env, log)
    yield LiveServer(url, API_KEY, service_env["DFD_REDIS_URL"], tmp_root / "uploads",
                     service_env, tmp_root)
    services.stop(proc)


@pytest.fixture
def clean_redis(redis_url) -> redis.Redis:
    """Database 1 of the session's redis-server, emptied before and after the test: for tests of
    the job store that need a clean state (the live service and its worker use database 0)."""
    client = redis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/1")
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def reset_limits(redis_url):
    """Forget rate-limit counters so each limit test starts from a full allowance."""
    r = redis.Redis.from_url(redis_url)
    for key in r.scan_iter("*LIMITER*"):
        r.delete(key)
    yield
    for key in r.scan_iter("*LIMITER*"):
        r.delete(key)


def make_jpeg(size=(320, 240), seed: int = 0, quality: int = 90) -> bytes:
    """A JPEG of seeded noise and shapes (bytes)."""
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


@pytest.fixture(scope="session")
def sample_jpeg() -> bytes:
    """A real face photo from ../shared/data when present, else a generated JPEG."""
    faces = sorted((DATA / "stylegan-faces" / "real").glob("*.jpg"))[:1]
    return faces[0].read_bytes() if faces else make_jpeg()

"""Faults with real processes: SIGKILLed worker children, a Redis crash, a bad model, a lost file.

The two batch tests run on a private stack (their own redis-server, worker and gunicorn) so the
session fixtures are never disturbed; the rest use the session stack or no stack at all.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import pytest
import redis
import requests
from PIL import Image

from harness import services
from harness.services import consumers_paused
from shared.jobs import READY, JobStore
from shared.queue import make_celery
from tests.conftest import API_KEY

ROOT = Path(__file__).resolve().parents[1]
AUTH = {"Authorization": f"Bearer {API_KEY}"}


def record_figures(name: str, figures: dict) -> None:
    """With DFD_RELIABILITY_OUT set, leave this test's figures for scripts/reliability_report.py."""
    out = os.environ.get("DFD_RELIABILITY_OUT")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, f"fault-{name}.json").write_text(json.dumps(figures, indent=1))


def batch_jpegs(count: int, seed: int, size=(1024, 768)) -> list[bytes]:
    """Distinct, smooth (so small) JPEGs big enough that a job takes a few tens of ms."""
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // w, y * 255 // h, (x ^ y) & 255], axis=-1).astype(np.uint8)
    out = []
    for i in range(count):
        arr = base.copy()
        arr[(i * 7) % (h - 40):][:40, (i * 13) % (w - 40):][:, :40] = (i * 37 + seed) % 256
        arr[0, 0] = [i % 256, i // 256, seed % 256]
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=80)
        out.append(buf.getvalue())
    return out


@dataclass
class Stack:
    """A private redis-server (AOF, fsync always), worker and gunicorn for one test."""

    root: Path
    model_dir: Path
    concurrency: int = 2
    env: dict = field(default_factory=dict)
    port: int = 0
    procs: dict = field(default_factory=dict)

    def __post_init__(self):
        self.port = services.free_port()
        self.env = {"DFD_REDIS_URL": f"redis://127.0.0.1:{self.port}/0",
                    "DFD_MODEL_PATH": str(self.model_dir),
                    "DFD_UPLOAD_DIR": str(self.root / "uploads"),
                    "DFD_API_KEYS": f"tests:{API_KEY}:100000/minute"}
        (self.root / "redis").mkdir(parents=True, exist_ok=True)

    @property
    def redis_url(self) -> str:
        return self.env["DFD_REDIS_URL"]

    @property
    def redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.env["DFD_REDIS_URL"], socket_timeout=5)

    def start_redis(self) -> None:
        # As docker-compose.yml runs it (AOF on), with every write fsynced before the reply, so
        # a crash (SIGKILL) loses nothing Redis acknowledged.
        args = [services.redis_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", str(self.root / "redis"), "--save", "", "--appendonly", "yes",
                "--appendfsync", "always", "--maxmemory-policy", "noeviction"]
        self.procs["redis"] = subprocess.Popen(args, stdout=subprocess.DEVNULL,
                                               stderr=subprocess.STDOUT, start_new_session=True)
        services.wait_for(self._redis_up, 10, "redis-server", self.procs["redis"])

    def _redis_up(self) -> bool:
        try:
            return bool(self.redis.ping())
        except redis.RedisError:
            return False

    def start_worker(self) -> None:
        self.procs["worker"] = services.start_worker(self.env, self.root / "worker.log",
                                                     concurrency=self.concurrency)
        app = make_celery(self.env["DFD_REDIS_URL"], 60)
        services.wait_for(lambda: bool(app.control.ping(timeout=0.5)), 90, "worker",
                          self.procs["worker"])

    def start_web(self) -> None:
        self.procs["web"], self.url = services.start_web(self.env, self.root / "web.log")

    def stop(self) -> None:
        for name in ("web", "worker", "redis"):
            if name in self.procs:
                services.stop(self.procs[name], timeout=20)

    def submit(self, blobs: list[bytes], per_request: int = 20) -> list[str]:
        ids = []
        for i in range(0, len(blobs), per_request):
            files = [("image", (f"b{i + j}.jpg", b, "image/jpeg"))
                     for j, b in enumerate(blobs[i:i + per_request])]
            r = requests.post(f"{self.url}/api/v1/jobs", files=files, headers=AUTH, timeout=60)
            assert r.status_code == 202, r.text
            ids += [j["id"] for j in r.json()["jobs"]]
        return ids

    def records(self, ids: list[str]) -> list[dict]:
        store = JobStore(self.redis)
        return [store.get(i) for i in ids]

    def statuses(self, ids: list[str]) -> list[tuple[str, int, float]]:
        """(status, attempts, started_at or 0) of each job, in one round trip."""
        pipe = self.redis.pipeline()
        for i in ids:
            pipe.hmget(JobStore.key(i), "status", "attempts", "started_at")
        return [((s or b"missing").decode(), int(a or 0), float(t or 0))
                for s, a, t in pipe.execute()]

    def wait_all_final(self, ids: list[str], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = [s for s, *_ in self.statuses(ids) if s not in ("done", "failed")]
            if not left:
                return
            time.sleep(0.2)
        raise AssertionError(f"{len(left)} of {len(ids)} jobs not final after {timeout} s: "
                             f"{self.worker_log_tail()}")

    def worker_log_tail(self, n: int = 3000) -> str:
        return (self.root / "worker.log").read_text(errors="replace")[-n:]


@pytest.fixture
def stack(tmp_path, model_dir):
    s = Stack(tmp_path, model_dir)
    yield s
    s.stop()


def worker_children(proc: subprocess.Popen) -> list[psutil.Process]:
    return psutil.Process(proc.pid).children()


# SIGKILL of prefork children ----------------------------------------------------------------

def heavy_png(seed: int, side: int = 5600) -> bytes:
    """A 31 Mpx greyscale PNG (under the 40 Mpx cap, decoded whole): its job takes about a
    second, a wide target for a kill."""
    row = (np.arange(side, dtype=np.uint32) * 255 // side).astype(np.uint8)
    arr = np.broadcast_to(row[None, :], (side, side)).copy()
    arr[:16, :16] = seed
    buf = io.BytesIO()
    Image.fromarray(arr, "L").save(buf, "PNG")
    return buf.getvalue()


@pytest.mark.slow
def test_sigkilled_worker_children_lose_no_job(stack):
    """200 queued jobs; the worker's child SIGKILLed 3 times, each in the middle of a batch:
    200 results, each job finished exactly once, and exactly the interrupted jobs re-run."""
    stack.concurrency = 1  # one child: when a job is running, we know which process runs it
    stack.start_redis()
    stack.start_worker()
    stack.start_web()
    worker = stack.procs["worker"]
    blobs = batch_jpegs(197, seed=1)
    # With batching (DFD_BATCH_SIZE, default 8) a task runs its own job plus others it claims
    # from the ready set. The first kill hits a task in the middle of its own job (recovered by
    # Celery redelivering the task: acks_late + reject_on_worker_lost); the later two hit jobs
    # claimed into other tasks' batches (recovered by their own queued tasks).
    targets = (0, 100, 160)
    for n, at in enumerate(targets):
        blobs.insert(at, heavy_png(n + 1))
    t0 = time.monotonic()
    with consumers_paused(stack.redis_url):  # the whole batch is queued before the first job starts
        ids = stack.submit(blobs)
    assert len(ids) == 200
    kills, interrupted = [], set()
    for at in targets:
        child = _wait_running(stack, worker, ids[at], timeout=60)
        killed_at = time.time()
        child.send_signal(signal.SIGKILL)
        child.wait(5)
        time.sleep(0.3)
        states = dict(zip(ids, stack.statuses(ids), strict=True))
        # The dead child never finished the job it was on: it is still running (waiting for
        # redelivery) or already being run again.
        status, attempts, _ = states[ids[at]]
        assert status == "running" or attempts > 1, states[ids[at]]
        # Its batch: every job it had started and not finished (a fresh child may be busy
        # with jobs started after the kill; those are not counted).
        hit = {j for j, (status, attempts, started) in states.items()
               if attempts > 1 or (status == "running" and started < killed_at)}
        kills.append({"pid": child.pid, "target": ids[at],
                      "batch_interrupted": len(hit - interrupted)})
        interrupted |= hit
    stack.wait_all_final(ids, timeout=90)
    elapsed = time.monotonic() - t0
    recs = stack.records(ids)
    assert [r["status"] for r in recs] == ["done"] * 200, [r.get("error") for r in recs]
    assert [r["finishes"] for r in recs] == [1] * 200
    # Re-run were exactly the jobs the kills interrupted, each once more; the others ran once.
    redelivered = {r["id"] for r in recs if r["attempts"] > 1}
    assert redelivered == interrupted and {ids[at] for at in targets} <= redelivered
    assert all(r["attempts"] == (2 if r["id"] in redelivered else 1) for r in recs)
    # The worker lived on and replaced its child each time.
    assert worker.poll() is None
    children = worker_children(worker)
    assert len(children) == 1 and children[0].pid not in {k["pid"] for k in kills}
    assert stack.worker_log_tail(10_000_000).count("WorkerLostError") >= 3
    record_figures("sigkill", {"jobs_submitted": len(ids),
                               "jobs_done": sum(r["status"] == "done" for r in recs),
                               "finished_once": sum(r["finishes"] == 1 for r in recs),
                               "kills": len(kills), "jobs_interrupted": len(interrupted),
                               "seconds": round(elapsed, 1), "kill_log": kills})


def _wait_running(stack: Stack, worker: subprocess.Popen, job_id: str,
                  timeout: float) -> psutil.Process:
    """The worker's (only) child, as soon as it is in the middle of job_id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if stack.statuses([job_id])[0][0] == "running":
            children = worker_children(worker)
            assert len(children) == 1, children
            return children[0]
        time.sleep(0.01)
    raise AssertionError(f"job {job_id} never ran: {stack.worker_log_tail()}")


# Redis crash and restart ---------------------------------------------------------------------

def _outage_answer(method: str, url: str, **kw) -> tuple[requests.Response, float]:
    t0 = time.monotonic()
    r = requests.request(method, url, timeout=30, **kw)
    return r, time.monotonic() - t0


OUTAGE_S = 12


@pytest.mark.slow
def test_redis_crash_and_restart_lose_no_job(stack):
    """Redis (AOF, fsync always) SIGKILLed mid-batch: while it is down the web answers 503 JSON
    at once; when it is back, everything recovers by itself and every accepted job finishes."""
    stack.start_redis()
    stack.start_worker()
    stack.start_web()
    blobs = batch_jpegs(40, seed=2)
    for n, at in enumerate(range(0, 40, 5)):
        blobs[at] = heavy_png(10 + n)  # slow jobs, so the crash comes while many are queued
    with consumers_paused(stack.redis_url):
        ids = stack.submit(blobs)
    deadline = time.monotonic() + 60
    while sum(s == "done" for s, *_ in stack.statuses(ids)) < 3:
        assert time.monotonic() < deadline, stack.worker_log_tail()
        time.sleep(0.05)
    before = [s for s, *_ in stack.statuses(ids)]
    stack.procs["redis"].send_signal(signal.SIGKILL)
    stack.procs["redis"].wait(5)
    t_down = time.monotonic()
    url = stack.url
    timings = {}
    try:
        for name, method, path, kw in [
            ("upload_with_key", "POST", "/api/v1/jobs",
             {"files": [("image", ("x.jpg", batch_jpegs(1, seed=99)[0], "image/jpeg"))],
              "headers": AUTH}),
            ("upload_anonymous", "POST", "/api/v1/jobs",
             {"files": [("image", ("x.jpg", batch_jpegs(1, seed=98)[0], "image/jpeg"))]}),
            ("status", "GET", f"/api/v1/jobs/{ids[-1]}", {}),
            ("status_wait", "GET", f"/api/v1/jobs/{ids[-1]}?wait=5", {}),
        ]:
            r, took = _outage_answer(method, url + path, **kw)
            timings[name] = round(took, 2)
            assert r.status_code == 503, (name, r.status_code, r.text)
            assert r.json()["error"]["code"] == "unavailable", r.text
            assert r.headers.get("Retry-After"), r.headers
            assert took < 8, (name, took)
        ready, took = _outage_answer("GET", url + "/readyz")
        assert ready.status_code == 503 and ready.json()["redis"] is False
        assert requests.get(url + "/healthz", timeout=5).status_code == 200
        # Stay down long enough for every client's own retries (redis-py, kombu) to give up.
        while time.monotonic() - t_down < OUTAGE_S:
            r, took = _outage_answer("GET", f"{url}/api/v1/jobs/{ids[0]}")
            assert r.status_code == 503 and took < 8, (r.status_code, took)
            time.sleep(0.5)
        down_for = time.monotonic() - t_down
    finally:
        stack.start_redis()  # same port, same AOF file
    t_up = time.monotonic()
    # The web recovers on its own: no restart, the next request simply works.
    deadline = time.monotonic() + 20
    after = [("image", ("after.jpg", batch_jpegs(1, seed=97)[0], "image/jpeg"))]
    while True:
        r = requests.post(f"{url}/api/v1/jobs", headers=AUTH, timeout=30, files=after)
        if r.status_code == 202:
            break
        assert r.status_code == 503 and time.monotonic() < deadline, r.text
        time.sleep(0.5)
    recovered_in = time.monotonic() - t_up
    ids.append(r.json()["jobs"][0]["id"])
    # Every job accepted before the crash was persisted and finishes, once.
    stack.wait_all_final(ids, timeout=90)
    recs = stack.records(ids)
    assert [r["status"] for r in recs] == ["done"] * len(ids), [r.get("error") for r in recs]
    assert [r["finishes"] for r in recs] == [1] * len(ids)
    record_figures("redis_restart", {
        "jobs_submitted": len(ids), "jobs_done": len(recs),
        "queued_at_crash": before.count("queued"), "running_at_crash": before.count("running"),
        "done_at_crash": before.count("done"), "down_s": round(down_for, 1),
        "answer_s_while_down": timings, "web_recovered_s": round(recovered_in, 1),
        "all_done_s_after_restart": round(time.monotonic() - t_up, 1)})


# A bad model: the worker refuses to start ----------------------------------------------------

def _bad_models(model_dir: Path, root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (model path, words the refusal must contain), each built from the tiny model."""
    card = (model_dir / "card.json").read_text()
    tflite = (model_dir / "model.tflite").read_bytes()
    out = {"missing_dir": (root / "no-such-model", "does not exist")}

    def make(name: str, files: dict[str, bytes | str]) -> Path:
        d = root / name
        d.mkdir(parents=True)
        for fname, data in files.items():
            (d / fname).write_bytes(data.encode() if isinstance(data, str) else data)
        return d

    out["no_card"] = (make("no_card", {"model.tflite": tflite}), "card.json is missing")
    out["card_not_json"] = (make("card_not_json", {"card.json": "{name: oops",
                                                   "model.tflite": tflite}), "not valid JSON")
    out["no_model_file"] = (make("no_model_file", {"card.json": card}), "holds neither")
    out["tflite_truncated"] = (make("tflite_truncated", {"card.json": card,
                                                         "model.tflite": tflite[:6]}),
                               "not a TFLite model")
    out["tflite_garbage_body"] = (make("tflite_garbage_body", {
        "card.json": card, "model.tflite": tflite[:8] + bytes(len(tflite) - 8)}),
        "cannot load the model")
    keras_card = json.dumps({**json.loads(card), "files": {"keras": "model.keras"}})
    out["keras_not_zip"] = (make("keras_not_zip", {"card.json": keras_card,
                                                   "model.keras": b"PK\x03\x04 not really"}),
                            "not a .keras archive")
    return out


@pytest.fixture(scope="module")
def bad_models(model_dir, tmp_path_factory):
    return _bad_models(model_dir, tmp_path_factory.mktemp("bad-models"))


BAD_MODEL_CASES = ["missing_dir", "no_card", "card_not_json", "no_model_file",
                   "tflite_truncated", "tflite_garbage_body", "keras_not_zip"]


@pytest.mark.parametrize("case", BAD_MODEL_CASES)
def test_worker_refuses_to_start_on_a_bad_model(bad_models, case):
    path, words = bad_models[case]
    env = services.service_env({"DFD_MODEL_PATH": str(path),
                                "DFD_REDIS_URL": "redis://127.0.0.1:1/0"})
    proc = subprocess.run([sys.executable, "-m", "worker", "--concurrency=1"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert "dfd worker: cannot start:" in proc.stderr and words in proc.stderr, proc.stderr
    assert "DFD_MODEL_PATH" in proc.stderr  # and it says how to fix it
    assert "celery@" not in proc.stdout + proc.stderr  # Celery never started


def test_worker_refuses_to_start_on_unusable_trust_anchors(model_dir, tmp_path):
    (tmp_path / "anchors.pem").write_text("not a certificate")
    for path, words in ((tmp_path / "anchors.pem", "holds no PEM certificate"),
                        (tmp_path / "missing.pem", "cannot read")):
        env = services.service_env({"DFD_MODEL_PATH": str(model_dir),
                                    "DFD_C2PA_TRUST_ANCHORS": str(path),
                                    "DFD_REDIS_URL": "redis://127.0.0.1:1/0"})
        proc = subprocess.run([sys.executable, "-m", "worker", "--concurrency=1"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
        assert "DFD_C2PA_TRUST_ANCHORS" in proc.stderr and words in proc.stderr, proc.stderr
        assert "celery@" not in proc.stdout + proc.stderr


# A job whose upload vanished -----------------------------------------------------------------

def test_job_whose_image_vanished_fails_with_a_reason(live_server):
    store = JobStore(redis.Redis.from_url(live_server.redis_url))
    with consumers_paused(live_server.redis_url):
        r = requests.post(f"{live_server.url}/api/v1/jobs", headers=AUTH, timeout=30,
                          files=[("image", ("gone.jpg", batch_jpegs(1, seed=55)[0],
                                            "image/jpeg"))])
        assert r.status_code == 202, r.text
        job_id = r.json()["jobs"][0]["id"]
        (live_server.upload_dir / store.get(job_id)["stored"]).unlink()  # swept, or deleted
    final = live_server.wait_final(job_id, timeout=30)
    assert final["status"] == "failed", final
    assert "no longer in storage" in final["error"]
    assert store.get(job_id)["finishes"] == 1
    line = f"job {job_id} client=key:tests failed: upload missing from storage"
    assert line in services.log_text_when(live_server.logs / "worker.log", line)


# Jobs that wait too long are flagged, not silent ---------------------------------------------

def test_job_past_the_queue_deadline_is_flagged_stale(live_server, tmp_path):
    """A web with DFD_QUEUE_DEADLINE=1s over the session stack, workers paused: the waiting
    job's status says `stale`; once a worker finishes it, the flag is gone."""
    env = {**live_server.env, "DFD_QUEUE_DEADLINE": "1s"}
    web, url = services.start_web(env, tmp_path / "web-deadline.log")
    try:
        with consumers_paused(live_server.redis_url):
            r = requests.post(f"{url}/api/v1/jobs", headers=AUTH, timeout=30,
                              files=[("image", ("late.jpg", batch_jpegs(1, seed=56)[0],
                                                "image/jpeg"))])
            job_id = r.json()["jobs"][0]["id"]
            fresh = requests.get(f"{url}/api/v1/jobs/{job_id}", timeout=10).json()
            assert fresh["status"] == "queued" and "stale" not in fresh, fresh
            time.sleep(1.3)
            late = requests.get(f"{url}/api/v1/jobs/{job_id}", timeout=10).json()
            assert late["status"] == "queued" and late["stale"] is True, late
            assert late["age_s"] > 1.0
            # The session web runs with the default 5-minute deadline: not stale there.
            assert "stale" not in live_server.get_job(job_id, wait=0)
        done = requests.get(f"{url}/api/v1/jobs/{job_id}", params={"wait": 10}, timeout=30)
        assert done.json()["status"] == "done" and "stale" not in done.json()
    finally:
        services.stop(web)


# Publishing a task while the broker is gone --------------------------------------------------

def test_publishing_to_a_dead_broker_fails_fast():
    """kombu's publish retries are bounded: a send to a dead broker gives up within seconds,
    so an upload never hangs on it (it becomes a 503, see the next test)."""
    from kombu.exceptions import OperationalError

    app = make_celery(f"redis://127.0.0.1:{services.free_port()}/0", 60)
    t0 = time.monotonic()
    with pytest.raises(OperationalError):
        app.send_task("dfd.detect", args=["0" * 32], queue="dfd")
    assert time.monotonic() - t0 < 3


def test_failed_publish_is_a_503_and_leaves_nothing_behind(live_server, monkeypatch):
    """Redis answers but the task cannot be sent: 503 JSON, and no record or file remains."""
    from kombu.exceptions import OperationalError

    from web import create_app

    app = create_app({"ENV": dict(live_server.env)})

    def refuse(*args, **kwargs):
        raise OperationalError("broker connection lost")

    monkeypatch.setattr(app.extensions["dfd"]["celery"], "send_task", refuse)
    r = redis.Redis.from_url(live_server.redis_url)

    def footprint():
        uploads = live_server.upload_dir
        return (sum(1 for _ in r.scan_iter("dfd:job:*")), r.zcard(READY),
                sorted(os.listdir(uploads)) if uploads.is_dir() else [])

    before = footprint()
    resp = app.test_client().post(
        "/api/v1/jobs", headers=AUTH,
        data={"image": (io.BytesIO(batch_jpegs(1, seed=57)[0]), "lost.jpg", "image/jpeg")})
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.get_json()["error"]["code"] == "unavailable" and resp.headers["Retry-After"]
    assert footprint() == before

"""End to end on this machine: real redis-server, Celery worker(s), gunicorn web, HTTP clients.

Load is closed-loop: `clients` threads, each uploading one image (`POST /api/v1/jobs?wait=10`
with an API key, as `dfd submit` and the page do: the answer carries the verdict) and, only if
that answer is not final, long-polling its job (`GET /api/v1/jobs/<id>?wait=10`), then taking
the next image. With upload_wait=False the upload is a plain POST and every job is polled.
Latency is upload start -> final result received. Throughput is images finished / (last finish
- first upload). Only 127.0.0.1 is ever contacted; every run is
bounded by a count and a deadline.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

import requests

from bench.measure import RssSampler, cpu_per_image, percentiles
from harness.services import ROOT, free_port, service_env, start_redis, stop, wait_for

BIN = Path(sys.executable).parent


class HttpClient:
    """A lean keep-alive HTTP/1.1 client for the load (http.client, not requests).

    The load generator shares the CPU with what it measures, so it should cost as little as
    possible: `requests` spends about 2.7 ms of CPU per image here, this about a third of that.
    Both the service and the naive app are driven by this same client.
    """

    def __init__(self, base_url: str, timeout: float = 60):
        parts = urllib.parse.urlsplit(base_url)
        self.host, self.port, self.timeout = parts.hostname, parts.port, timeout
        self.conn: http.client.HTTPConnection | None = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.conn is not None:
            self.conn.close()

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict | None = None) -> tuple[int, dict]:
        """(status, JSON body); reconnects once if the server closed the kept-alive socket."""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port,
                                                       timeout=self.timeout)
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                resp = self.conn.getresponse()
                data = resp.read()
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, json.loads(data) if data else {}
            except (http.client.RemoteDisconnected, ConnectionError, http.client.BadStatusLine):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def upload(self, path: str, field: str, filename: str, data: bytes,
               headers: dict | None = None, fields: dict | None = None) -> tuple[int, dict]:
        """POST one file, then any plain form fields, as multipart/form-data."""
        boundary = secrets.token_hex(12)
        extra = [f"\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n"
                 f"{v}".encode() for k, v in (fields or {}).items()]
        body = b"".join([
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{filename}\"\r\nContent-Type: image/jpeg\r\n\r\n".encode(),
            data, *extra, f"\r\n--{boundary}--\r\n".encode()])
        hdrs = {"Content-Type": f"multipart/form-data; boundary={boundary}", **(headers or {})}
        return self.request("POST", path, body, hdrs)


def run_load(submit, photos: list[Path], clients: int, deadline_s: float) -> dict:
    """Closed-loop load: `clients` threads push the photos through submit(client, i, path).

    submit returns (final_status, reused) once the image's result is in hand.
    """
    lock = threading.Lock()
    nxt = [0]
    lat, starts, ends, statuses, reused, errors = [], [], [], {}, [0], []
    stop_at = time.monotonic() + deadline_s

    def client():
        with HttpClient(submit.base_url) as s:
            while time.monotonic() < stop_at:
                with lock:
                    i = nxt[0]
                    nxt[0] += 1
                if i >= len(photos):
                    return
                t0 = time.perf_counter()
                try:
                    status, was_reused = submit(s, i, photos[i])
                except Exception as exc:  # noqa: BLE001 - report, keep the load going
                    status, was_reused = "error", False
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}"[:200])
                t1 = time.perf_counter()
                with lock:
                    starts.append(t0)
                    ends.append(t1)
                    statuses[status] = statuses.get(status, 0) + 1
                    reused[0] += int(was_reused)
                    if status == "done":
                        lat.append(t1 - t0)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    done = statuses.get("done", 0)
    wall = (max(ends) - min(starts)) if ends else float("nan")
    return {"images": len(ends), "done": done, "statuses": statuses, "reused": reused[0],
            "clients": clients, "seconds": wall, "images_per_s": done / wall if ends else 0.0,
            "latency_ms": percentiles(lat), "errors": errors[:5]}


def run_sequential(submit, photos: list[Path], pause: float = 0.05) -> dict:
    """One image at a time on an otherwise idle service (latency of a lone request)."""
    lat = []
    with HttpClient(submit.base_url) as s:
        for i, p in enumerate(photos):
            time.sleep(pause)
            t0 = time.perf_counter()
            status, _ = submit(s, i, p)
            if status == "done":
                lat.append(time.perf_counter() - t0)
    return {"images": len(photos), "done": len(lat), **percentiles(lat)}


def passed_on() -> dict:
    """The bench's own trunk cache for the processes it starts (service_env drops DFD_*): one
    cut of the tower, built once, not again by each process."""
    return {k: os.environ[k] for k in ("DFD_TRUNK_CACHE",) if k in os.environ}


@contextmanager
def service(model_dir: str, workdir: Path, *, worker_procs: int, batch_size: int,
            web_workers: int, web_threads: int):
    """Redis, worker and web running with an API key; yields (url, key, {role: pid})."""
    key = secrets.token_hex(16)
    redis_proc, redis_url = start_redis(workdir)
    # The page's uploads carry no key: their per-client allowance is lifted too, so the idle
    # series is never held back by it.
    env = {"DFD_REDIS_URL": redis_url, "DFD_MODEL_PATH": model_dir,
           "DFD_UPLOAD_DIR": str(workdir / "uploads"),
           "DFD_API_KEYS": f"bench:{key}:1000000/minute", "DFD_UPLOAD_LIMIT": "1000000/minute",
           "DFD_STATUS_LIMIT": "1000000/minute", "DFD_BATCH_SIZE": str(batch_size),
           "DFD_DEVICE": "cpu", **passed_on()}
    procs = {"redis": redis_proc}
    try:
        log = open(workdir / "worker.log", "ab")  # noqa: SIM115 - closed with the process
        procs["worker"] = subprocess.Popen(
            [sys.executable, "-m", "worker", f"--concurrency={worker_procs}", "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-n", f"bench{free_port()}@%h"],
            cwd=ROOT, env=service_env(env), stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
        port = free_port()
        procs["web"] = subprocess.Popen(
            [str(BIN / "gunicorn"), "-k", "gthread", "-w", str(web_workers), "--threads",
             str(web_threads), "-b", f"127.0.0.1:{port}", "--graceful-timeout", "2",
             "web.wsgi:app"],
            cwd=ROOT, env=service_env(env), stdout=open(workdir / "web.log", "ab"),  # noqa: SIM115
            stderr=subprocess.STDOUT, start_new_session=True)
        url = f"http://127.0.0.1:{port}"
        # A trunk model takes its worker processes a while to load on a busy machine.
        wait_for(lambda: _ok(url + "/readyz"), 240, "web + worker (/readyz)", procs["web"])
        # /readyz needs one worker to answer; wait until every child has loaded its model.
        wait_for(lambda: _loaded(workdir / "worker.log") >= worker_procs, 180,
                 "worker processes loading the model", procs["worker"])
        yield url, key, {"web": procs["web"].pid, "worker": procs["worker"].pid,
                         "redis": redis_proc.pid}
    finally:
        for name in ("web", "worker", "redis"):
            if name in procs:
                stop(procs[name])


def _ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _loaded(log: Path) -> int:
    try:
        return log.read_text(errors="replace").count("loaded model")
    except OSError:
        return 0


def job_submitter(url: str, key: str, upload_wait: bool = True):
    """submit(client, i, path) for the job API: upload (held for the verdict when upload_wait),
    then long-poll until final if it is not yet."""
    headers = {"Authorization": f"Bearer {key}"}
    path_ = "/api/v1/jobs?wait=10" if upload_wait else "/api/v1/jobs"

    def submit(c: HttpClient, i: int, path: Path):
        status, body = c.upload(path_, "image", path.name, path.read_bytes(), headers)
        if status not in (200, 202):
            raise RuntimeError(f"upload answered {status}: {body}")
        job = body["jobs"][0]
        reused = bool(job.get("reused"))
        while job["status"] not in ("done", "failed"):
            status, job = c.request("GET", f"/api/v1/jobs/{job['id']}?wait=10", None, headers)
            if status != 200:
                raise RuntimeError(f"status answered {status}: {job}")
        return job["status"], reused

    submit.base_url = url
    return submit


def idle_series(url: str, photos: list[Path], idle: int) -> dict:
    """The idle single-photo latency through the page's own request, first as the page sends
    it, then with the "Why?" flag the other way; distinct photos for each."""
    from bench.page import page_request, page_submitter

    req = page_request()
    out = {"page_asks_why": req["explain"], "request": req}
    for k, explain in enumerate((req["explain"], not req["explain"])):
        key = "with_why" if explain else "without_why"
        out[key] = run_sequential(page_submitter(url, explain, req),
                                  photos[k * idle:(k + 1) * idle])
    out["page"] = out["with_why" if req["explain"] else "without_why"]
    return out


def run_e2e(model_dir: str, photos: list[Path], *, worker_procs: int, batch_size: int,
            web_workers: int, web_threads: int, clients: int, warmup: int, idle: int,
            deadline_s: float, upload_wait: bool = True) -> dict:
    """One configuration: idle single-photo latency through the page's request (with and
    without "Why?"), then the load run (the API as `dfd submit` uses it); peak RSS throughout.

    photos: distinct images; the first `warmup + 2 * idle` are used for warm-up and the idle
    latency, the rest for the load run, so no bytes are sent twice.
    """
    workdir = Path(tempfile.mkdtemp(prefix="dfd-bench-"))
    try:
        with service(model_dir, workdir, worker_procs=worker_procs, batch_size=batch_size,
                     web_workers=web_workers, web_threads=web_threads) as (url, key, pids):
            submit = job_submitter(url, key, upload_wait)
            with RssSampler(pids) as rss:
                run_load(submit, photos[:warmup], clients, 120)
                idle_res = idle_series(url, photos[warmup:warmup + 2 * idle], idle) \
                    if idle else None
                cpu0, own0 = rss.cpu_s(), time.process_time()
                load = run_load(submit, photos[warmup + 2 * idle:], clients, deadline_s)
                load["cpu_ms_per_image"] = cpu_per_image(rss, cpu0, own0, load["done"])
            load.update(config={"worker_processes": worker_procs, "batch_size": batch_size,
                                "web_workers": web_workers, "web_threads": web_threads,
                                "upload_wait": upload_wait},
                        idle=idle_res,
                        idle_latency_ms=idle_res["page"] if idle_res else None,
                        rss_mb={"web": rss.max_mb("web"), "worker": rss.max_mb("worker"),
                                "worker_all": rss.sum_mb("worker")})
            return load
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

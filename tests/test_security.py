"""Security basics, each checked against the running service or the code itself: headers,
uploads never served, constant-time key checks, unguessable ids, no pickle, safe model loading,
and logs that name jobs and clients but never keys or file contents."""

from __future__ import annotations

import http.client
import io
import json
import pickle  # only to craft the hostile message the worker must refuse
import re
import secrets
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import redis
import requests
from PIL import Image

from harness import services
from harness.services import consumers_paused
from shared.jobs import JobStore, new_job_id
from shared.queue import celery_config, make_celery
from shared.tasks import DETECT, QUEUE
from tests.conftest import make_jpeg

ROOT = Path(__file__).resolve().parents[1]
SERVICE_CODE = ["web", "worker", "shared", "training", "batch"]


def raw_get(url: str, path: str) -> tuple[int, bytes]:
    """GET a path byte for byte (no client-side normalising of '..' or escapes)."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


# Headers ------------------------------------------------------------------------------------

def test_security_headers_on_every_kind_of_response(live_server):
    url, auth = live_server.url, {"Authorization": f"Bearer {live_server.api_key}"}
    responses = {
        "page": requests.get(url + "/", timeout=10),
        "static js": requests.get(url + "/static/js/main.js", timeout=10),
        "static css": requests.get(url + "/static/style.css", timeout=10),
        "health": requests.get(url + "/healthz", timeout=10),
        "ready": requests.get(url + "/readyz", timeout=10),
        "openapi": requests.get(url + "/api/v1/openapi.json", timeout=10),
        "job 404": requests.get(f"{url}/api/v1/jobs/{'0' * 32}", timeout=10),
        "no route": requests.get(url + "/no/such/page", timeout=10),
        "405": requests.delete(url + "/api/v1/jobs", timeout=10),
        "401": requests.post(url + "/api/v1/jobs", timeout=10,
                             headers={"Authorization": "Bearer wrong-wrong-wrong-wrong"}),
        "415": requests.post(url + "/api/v1/jobs", headers=auth, timeout=10,
                             files=[("image", ("x.jpg", b"text", "image/jpeg"))]),
        "202": requests.post(url + "/api/v1/jobs", headers=auth, timeout=10,
                             files=[("image", ("x.jpg", make_jpeg(seed=71), "image/jpeg"))]),
    }
    for name, r in responses.items():
        h = r.headers
        csp = h.get("Content-Security-Policy", "")
        directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in csp.split(";") if d.strip())
        assert directives.get("script-src") == "'self'", (name, csp)  # no inline script at all
        assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (name, csp)
        assert directives.get("frame-ancestors") == "'none'", (name, csp)
        assert directives.get("object-src") == "'none'", (name, csp)
        assert h.get("X-Content-Type-Options") == "nosniff", name
        assert h.get("X-Frame-Options") == "DENY", name
        assert h.get("Referrer-Policy") == "no-referrer", name
    # The page itself needs none of what the policy forbids: no inline script or handlers.
    page = responses["page"].text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline <script> in the page"
    assert not re.search(r"\son[a-z]+\s*=", page), "inline event handler in the page"
    assert "javascript:" not in page
    # The page loads its script as an ES module, which browsers run only when it is served with
    # a JavaScript MIME type (and nosniff forbids guessing).
    js_type = responses["static js"].headers.get("Content-Type", "").split(";")[0].strip()
    assert responses["static js"].status_code == 200
    assert js_type in ("text/javascript", "application/javascript"), js_type


# Uploads are never served back ---------------------------------------------------------------

def test_uploads_are_never_served(live_server):
    from web import create_app

    app = create_app({"ENV": dict(live_server.env)})
    get_routes = sorted(r.rule for r in app.url_map.iter_rules() if "GET" in r.methods)
    # The explanation returns numbers and a colour map drawn from them, never upload pixels;
    # the feedback export returns what users typed.
    assert get_routes == ["/", "/api/v1/feedback", "/api/v1/jobs/<job_id>",
                          "/api/v1/jobs/<job_id>/explanation", "/api/v1/openapi.json",
                          "/healthz", "/metrics", "/readyz", "/static/<path:filename>"], get_routes
    static = Path(app.static_folder).resolve()
    uploads = Path(live_server.upload_dir).resolve()
    assert static not in uploads.parents and uploads != static and uploads not in static.parents
    # A real stored upload, asked for by every path that might lead to it while it is queued
    # (once the job is final the upload is deleted: tests/test_privacy.py).
    with consumers_paused(live_server.redis_url):
        r = requests.post(f"{live_server.url}/api/v1/jobs", timeout=10,
                          headers={"Authorization": f"Bearer {live_server.api_key}"},
                          files=[("image", ("s.png", _png(seed=72), "image/png"))])
        job_id = r.json()["jobs"][0]["id"]
        stored = JobStore(redis.Redis.from_url(live_server.redis_url)).get(job_id)["stored"]
        assert (uploads / stored).is_file()
        head = (uploads / stored).read_bytes()[:64]
        rel = Path("..") / uploads.relative_to(Path("/"))
        for path in [f"/{stored}", f"/uploads/{stored}", f"/static/{stored}",
                     f"/var/uploads/{stored}", f"/static/../var/uploads/{stored}",
                     f"/static/%2e%2e/var/uploads/{stored}",
                     f"/static/..%2fvar%2fuploads%2f{stored}",
                     "/static/" + "../" * 12 + str(rel.relative_to("..")) + f"/{stored}",
                     f"/api/v1/jobs/{job_id}/image", f"/api/v1/jobs/{stored}"]:
            status, body = raw_get(live_server.url, path)
            assert status in (400, 404, 405), (path, status)
            assert head not in body, path
    final = live_server.wait_final(job_id)
    assert set(final) <= {"id", "status", "created_at", "started_at", "finished_at", "age_s",
                          "result", "error", "reused", "stale"}


def _png(seed: int) -> bytes:
    buf = io.BytesIO()
    rgb = np.random.default_rng(seed).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


# API keys --------------------------------------------------------------------------------------

def test_api_keys_are_compared_in_constant_time(live_server, monkeypatch):
    """Every configured key is compared with hmac.compare_digest, whether or not one matched
    early: a lookup or == on the token would reveal by timing how much of a key was right."""
    import web.extensions as ext
    from web import create_app

    keys = [f"key{i}-{secrets.token_hex(10)}" for i in range(5)]
    env = {**live_server.env, "DFD_API_KEYS": ",".join(f"k{i}:{k}" for i, k in enumerate(keys))}
    app = create_app({"ENV": env})
    calls = []
    real = ext.hmac.compare_digest

    def counting(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(ext.hmac, "compare_digest", counting)
    for token, expect in [(keys[0], "k0"), (keys[4], "k4"), (keys[2][:-1] + "x", None)]:
        calls.clear()
        with app.test_request_context(headers={"Authorization": f"Bearer {token}"}):
            if expect is None:
                with pytest.raises(Exception) as err:
                    ext.api_key_entry()
                assert getattr(err.value, "code", None) == 401
            else:
                assert ext.api_key_entry()["name"] == expect
        assert len(calls) == len(keys), (token, len(calls))
        assert all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in calls)


# Job ids ------------------------------------------------------------------------------------

def test_job_ids_are_unguessable(live_server, monkeypatch):
    # 128 bits from the operating system's CSPRNG, not a counter, a clock or random.random.
    monkeypatch.setattr(secrets, "token_hex", lambda n: f"from-secrets-{n}")
    assert new_job_id() == "from-secrets-16"
    monkeypatch.undo()
    ids = {new_job_id() for _ in range(2000)}
    assert len(ids) == 2000 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    # An id is the only way to a result: no listing, and a near miss is a plain 404.
    r = requests.post(f"{live_server.url}/api/v1/jobs", timeout=10,
                      headers={"Authorization": f"Bearer {live_server.api_key}"},
                      files=[("image", ("g.jpg", make_jpeg(seed=73), "image/jpeg"))])
    job_id = r.json()["jobs"][0]["id"]
    assert requests.get(f"{live_server.url}/api/v1/jobs", timeout=10).status_code == 405
    near = job_id[:-1] + ("0" if job_id[-1] != "0" else "1")
    miss = requests.get(f"{live_server.url}/api/v1/jobs/{near}", timeout=10)
    assert miss.status_code == 404 and job_id not in miss.text


# No pickle, anywhere ---------------------------------------------------------------------------

BANNED = [
    (r"^\s*(import|from)\s+(pickle|cPickle|_pickle|dill|joblib|shelve|cloudpickle)\b", "pickle"),
    (r"\bpickle\.(loads?|Unpickler)\b", "pickle"),
    (r"allow_pickle\s*=\s*True", "numpy allow_pickle"),
    (r"safe_mode\s*=\s*False", "keras unsafe load"),
    (r"""['"](pickle|application/x-python-serialize)['"]""", "pickle serializer"),
    (r"\bmarshal\.loads?\b", "marshal"),
    (r"\byaml\.(unsafe_)?load\(", "yaml load"),
    (r"\btorch\.load\(", "torch.load"),
    (r"enable_unsafe_deserialization", "keras unsafe deserialization"),
]


def test_no_pickle_or_unsafe_loading_in_the_code():
    found = []
    files = [p for d in SERVICE_CODE for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 20
    for path in files:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for pattern, what in BANNED:
                if re.search(pattern, line):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {what}: {line.strip()}")
    assert not found, "\n".join(found)


def test_celery_speaks_json_only():
    conf = celery_config("redis://127.0.0.1:1/0", 120)
    assert conf["accept_content"] == ["json"]
    assert conf["task_serializer"] == conf["result_serializer"] == "json"
    from shared.settings import load
    from worker.app import create_worker

    worker_app = create_worker(load({}))

    assert list(worker_app.conf.accept_content) == ["json"]
    assert worker_app.conf.task_serializer == "json"
    assert worker_app.conf.result_accept_content in (None, ["json"])
    assert worker_app.conf.event_serializer == "json"


class _Touch:
    """Unpickling this creates a file: proof that a pickle was deserialised."""

    def __init__(self, path: Path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_worker_refuses_a_pickled_task_message(live_server, tmp_path):
    """A pickle sent straight to the queue (as an attacker with broker access could) is refused
    by the real worker without being deserialised, and the worker carries on."""
    marker = tmp_path / "unpickled"
    app = make_celery(live_server.redis_url, 60)
    task_id = str(uuid.uuid4())
    body = pickle.dumps(((_Touch(marker),), {}, {"callbacks": None, "errbacks": None,
                                                   "chain": None, "chord": None}))
    with app.connection_for_write() as conn:
        conn.default_channel.basic_publish(
            conn.default_channel.prepare_message(
                body, content_type="application/x-python-serialize", content_encoding="binary",
                headers={"lang": "py", "task": DETECT, "id": task_id, "root_id": task_id,
                         "parent_id": None, "group": None, "argsrepr": "", "kwargsrepr": "",
                         "retries": 0, "eta": None, "expires": None}),
            exchange=QUEUE, routing_key=QUEUE)
    log = live_server.logs / "worker.log"
    deadline = time.monotonic() + 15
    while "untrusted content" not in log.read_text(errors="replace"):
        assert time.monotonic() < deadline, "the worker never reported refusing the message"
        time.sleep(0.2)
    assert not marker.exists(), "the worker deserialised a pickle"
    # It is still working.
    r = requests.post(f"{live_server.url}/api/v1/jobs", timeout=10,
                      headers={"Authorization": f"Bearer {live_server.api_key}"},
                      files=[("image", ("after.jpg", make_jpeg(seed=74), "image/jpeg"))])
    assert live_server.wait_final(r.json()["jobs"][0]["id"])["status"] == "done"


def test_keras_model_with_code_in_it_is_refused(model_dir, tmp_path):
    """A .keras file carrying a Lambda layer (arbitrary Python) is refused: safe mode."""
    import keras

    from detector.model import ModelError, load_model

    inp = keras.Input((224, 224, 3))
    out = keras.layers.Dense(1, activation="sigmoid")(
        keras.layers.GlobalAveragePooling2D()(keras.layers.Lambda(lambda x: x * 2.0)(inp)))
    d = tmp_path / "lambda-model"
    d.mkdir()
    keras.Model(inp, out).save(d / "model.keras")
    card = json.loads((model_dir / "card.json").read_text())
    card["files"] = {"keras": "model.keras"}
    (d / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="(?i)lambda|safe_mode|unsafe"):
        load_model(d, runtime="keras")


# Logs -----------------------------------------------------------------------------------------

def test_logs_name_job_and_client_never_key_or_content(live_server):
    secret_bytes = b"CONTENT-MARKER-" + secrets.token_hex(8).encode()
    img = Image.fromarray(np.full((40, 60, 3), 120, np.uint8))
    buf = io.BytesIO()
    img.save(buf, "JPEG", comment=secret_bytes)
    data = buf.getvalue()
    assert secret_bytes in data
    key = live_server.api_key
    r = requests.post(f"{live_server.url}/api/v1/jobs", timeout=10,
                      headers={"Authorization": f"Bearer {key}"},
                      files=[("image", ("logged.jpg", data, "image/jpeg"))])
    job_id = r.json()["jobs"][0]["id"]
    anon = requests.post(f"{live_server.url}/api/v1/jobs", timeout=10,
                         files=[("image", ("anon.jpg", make_jpeg(seed=75), "image/jpeg"))])
    wrong_key = "wrong-" + secrets.token_hex(12)
    requests.post(f"{live_server.url}/api/v1/jobs", timeout=10,
                  headers={"Authorization": f"Bearer {wrong_key}"},
                  files=[("image", ("w.jpg", data, "image/jpeg"))])
    live_server.wait_final(job_id)
    # Each process flushes its log when it will: poll for this job's lines.
    web_log = services.log_text_when(live_server.logs / "web.log", f"job {job_id} queued")
    worker_log = services.log_text_when(live_server.logs / "worker.log", f"job {job_id} client=")
    for name, text in (("web", web_log), ("worker", worker_log)):
        assert re.search(rf"job {job_id} .*client=key:tests", text), name
        assert key not in text and wrong_key not in text, name
        assert secret_bytes.decode() not in text, name
    if anon.status_code == 202:  # (unless this address used its anonymous allowance already)
        assert re.search(rf"job {anon.json()['jobs'][0]['id']} .*client=ip:127\.0\.0\.1",
                         web_log)

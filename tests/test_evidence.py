"""Provenance, explanation and feedback through the real service: redis-server, `python -m
worker` (Celery) and gunicorn (the session's live_server), with bad input of each kind."""

from __future__ import annotations

import base64
import io
import json
import time

import pytest
import redis
import requests
from PIL import Image

from tests.conftest import make_jpeg
from tests.provenance_files import png_with_text, signed_jpeg, xmp_packet

pytestmark = pytest.mark.slow


def _submit(live_server, data: bytes, name: str = "x.jpg", headers=None,
            explain: str | None = None) -> dict:
    kind = "image/png" if name.endswith(".png") else "image/jpeg"
    r = requests.post(f"{live_server.url}/api/v1/jobs?wait=10", timeout=60,
                      headers=headers or {"Authorization": f"Bearer {live_server.api_key}"},
                      files={"image": (name, data, kind)},
                      data={"explain": explain} if explain is not None else None)
    assert r.status_code in (200, 202), r.text
    job = r.json()["jobs"][0]
    return live_server.wait_final(job["id"]) if job["status"] != "done" else job


def _error(r: requests.Response, status: int, code: str) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body


def test_provenance_is_beside_an_unchanged_verdict(live_server, reset_limits):
    plain = make_jpeg((256, 192), seed=7)
    signed = signed_jpeg(image=plain)
    a, b = _submit(live_server, plain)["result"], _submit(live_server, signed)["result"]
    # Same pixels, so the same verdict: provenance is never folded into the score.
    for key in ("label", "p_fake", "assessment", "reasons", "confidence"):
        assert a[key] == b[key], key
    assert a["provenance"]["c2pa"] == {"present": False, "state": "absent"}
    assert "proves nothing" in a["provenance"]["summary"]
    c2pa = b["provenance"]["c2pa"]
    assert c2pa["present"] and c2pa["ai_generated"] and c2pa["signer_trusted"] is False
    comfy = _submit(live_server, png_with_text({"prompt": "{}"}), "c.png")["result"]
    assert [m["name"] for m in comfy["provenance"]["markers"]] == ["ComfyUI"]


def test_hostile_metadata_still_finishes_the_job(live_server, reset_limits):
    huge = png_with_text({}, itxt={"XML:com.adobe.xmp": xmp_packet(
        "<a>" + "x" * 400_000 + "</a>").decode()})
    broken = signed_jpeg()
    broken = broken[:broken.index(b"c2pa") + 40] + b"\xee" * 400 + \
        broken[broken.index(b"c2pa") + 440:]
    for data, name in ((huge, "huge.png"), (broken, "broken.jpg")):
        job = _submit(live_server, data, name)
        assert job["status"] == "done", job
        prov = job["result"]["provenance"]
        assert prov["c2pa"]["state"] == "unreadable" or any(
            m["kind"] == "unreadable" for m in prov["markers"]), prov


def _stored(live_server, job_id: str):
    name = redis.Redis.from_url(live_server.redis_url).hget(f"dfd:job:{job_id}", "stored")
    return live_server.upload_dir / name.decode()


def _deleted(path, timeout: float = 5) -> bool:
    """The worker deletes the upload just after recording the final state: poll briefly."""
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not path.exists()


def test_explanation_through_the_worker(live_server, reset_limits, sample_jpeg):
    # explain=1: the verdict is recorded first; the worker makes the map after it, from the
    # upload it kept for that, and then deletes the upload.
    job = _submit(live_server, sample_jpeg, explain="1")
    r = live_server.explanation(job["id"])
    assert r.status_code == 200, r.text
    assert _deleted(_stored(live_server, job["id"]))
    raw = redis.Redis.from_url(live_server.redis_url)
    made, finished = (float(v) for v in raw.hmget(f"dfd:job:{job['id']}", "explained_at",
                                                 "finished_at"))
    assert finished <= made  # the verdict was recorded before the map was made
    got = r.json()
    faces = job["result"]["faces"]
    assert len(got["faces"]) == max(len(faces), 1)
    first = got["faces"][0]
    assert len(first["delta"]) == 7 and all(len(row) == 7 for row in first["delta"])
    assert got["method"]["name"] == "occlusion" and got["model"] == job["result"]["model"]
    png = Image.open(io.BytesIO(base64.b64decode(first["overlay_png"].split(",", 1)[1])))
    assert png.format == "PNG" and png.mode == "RGBA"
    # Cached in the job record: the second answer is the same document.
    url = f"{live_server.url}/api/v1/jobs/{job['id']}/explanation"
    assert requests.get(url, timeout=30).json() == got
    assert json.loads(raw.hget(f"dfd:job:{job['id']}", "explanation"))["faces"] == got["faces"]
    # The same bytes again reuse the verdict, and the explanation of the job that made it.
    again = _submit(live_server, sample_jpeg, explain="1")
    assert again.get("reused") and again["id"] != job["id"]
    reply = requests.get(f"{live_server.url}/api/v1/jobs/{again['id']}/explanation", timeout=30)
    assert reply.status_code == 200 and reply.json()["faces"] == got["faces"]


def test_the_map_arrives_after_the_verdict_and_a_failed_one_says_so(service_env, clean_redis):
    """Through the web's own route, on a store of its own (no worker on it): a done job whose
    map is still to be made answers 202 until the worker caches the map, then 200; a reused
    result waits on its source's map the same way; a failed map is a 500, the verdict intact."""
    from shared.jobs import JobStore, new_job_id
    from web import create_app

    db = clean_redis.connection_pool.connection_kwargs["db"]
    url = service_env["DFD_REDIS_URL"].rsplit("/", 1)[0] + f"/{db}"
    client = create_app({"ENV": {**service_env, "DFD_REDIS_URL": url}}).test_client()
    store = JobStore(clean_redis, 60)
    result = {"label": "Real", "p_fake": 0.2, "model": {"name": "m", "version": "v1"}}
    job_id, reuser = new_job_id(), new_job_id()
    store.create(job_id, filename="x.jpg", stored="x.jpg", sha256="s", client="c", explain=True)
    assert store.claim_ready(job_id, 0, owner="t").running == [job_id]
    assert store.finish(job_id, result=result, sha256="s", client="c")
    store.create_reused(reuser, filename="x.jpg", sha256="s", client="c", result=result,
                        source=job_id)
    assert client.get(f"/api/v1/jobs/{job_id}").get_json()["result"] == result  # the verdict
    for one in (job_id, reuser):
        pending = client.get(f"/api/v1/jobs/{one}/explanation")
        assert pending.status_code == 202 and pending.headers["Retry-After"] == "1"
        assert pending.get_json() == {"id": one, "status": "pending", "retry_after": 1}
    store.set_explanation(job_id, {"method": {"name": "occlusion"}, "faces": []})
    for one in (job_id, reuser):
        made = client.get(f"/api/v1/jobs/{one}/explanation")
        assert made.status_code == 200 and made.get_json()["method"]["name"] == "occlusion"
    store.set_explanation(job_id, {"error": "failed"})
    failed = client.get(f"/api/v1/jobs/{job_id}/explanation")
    assert failed.status_code == 500
    assert failed.get_json()["error"]["code"] == "explanation_failed"
    assert store.get(job_id)["result"] == result
    # A map given up after its attempts says why.
    store.set_explanation(job_id, {"error": "failed", "reason": "tried 3 times (...)"})
    message = client.get(f"/api/v1/jobs/{job_id}/explanation").get_json()["error"]["message"]
    assert message.endswith("explanation of this job: tried 3 times (...)"), message


def test_explain_asked_of_an_earlier_result_without_one_runs_again(live_server, reset_limits):
    data = make_jpeg(seed=14)
    plain = _submit(live_server, data)
    assert requests.get(f"{live_server.url}/api/v1/jobs/{plain['id']}/explanation",
                        timeout=10).status_code == 410
    # Without explain=1 the repeat reuses the result (and has no explanation either) ...
    reused = _submit(live_server, data, explain="0")
    assert reused.get("reused") and reused["id"] != plain["id"]
    _error(requests.get(f"{live_server.url}/api/v1/jobs/{reused['id']}/explanation",
                        timeout=10), 410, "upload_gone")
    # ... with it, the bytes are analysed again, so the map can be made.
    fresh = _submit(live_server, data, explain="1")
    assert "reused" not in fresh and fresh["status"] == "done", fresh
    # From then on a repeat with explain=1 reuses that job and its explanation, made or on
    # its way.
    last = _submit(live_server, data, explain="1")
    assert last.get("reused")
    r = live_server.explanation(fresh["id"])
    assert r.status_code == 200, r.text
    r2 = live_server.explanation(last["id"])
    assert r2.status_code == 200 and r2.json()["faces"] == r.json()["faces"]


def test_explanation_errors(live_server, reset_limits):
    base = f"{live_server.url}/api/v1/jobs"
    _error(requests.get(f"{base}/{'0' * 32}/explanation", timeout=10), 404, "not_found")
    job = _submit(live_server, make_jpeg(seed=11))  # without explain=1
    r = redis.Redis.from_url(live_server.redis_url)
    body = _error(requests.get(f"{base}/{job['id']}/explanation", timeout=10), 410,
                  "upload_gone")
    message = body["error"]["message"]
    assert "deleted as soon as the job finishes" in message and "explain=1" in message, message
    bad = requests.post(f"{base}?wait=0", files={"image": ("e.jpg", make_jpeg(seed=11),
                                                           "image/jpeg")},
                        data={"explain": "yes"},
                        headers={"Authorization": f"Bearer {live_server.api_key}"}, timeout=10)
    assert _error(bad, 400, "bad_request")["error"]["message"].startswith("explain must be")
    # ?wait= is gone from this endpoint (it never waited): an old client's is ignored.
    assert requests.get(f"{base}/{job['id']}/explanation?wait=x", timeout=10).status_code != 400
    r.hset(f"dfd:job:{job['id']}", "status", "running")
    _error(requests.get(f"{base}/{job['id']}/explanation", timeout=10), 409, "job_not_done")
    # Feedback on a job that exists but is not done: 409 naming its state, never a 404.
    got = _error(requests.post(f"{base}/{job['id']}/feedback", json={"label": "Real"},
                               timeout=10), 409, "job_not_done")
    assert "is running, not done" in got["error"]["message"]


def test_feedback_once_per_client_and_export(live_server, reset_limits):
    # Bytes no other test sends: a reused result would have no upload of its own to check.
    job = _submit(live_server, make_jpeg(seed=4242))
    url = f"{live_server.url}/api/v1/jobs/{job['id']}/feedback"
    for body, status, code in (
            ({"label": "maybe"}, 400, "bad_request"), ({"label": "Real", "note": "x" * 501},
                                                       400, "bad_request"),
            ({"label": "Real", "extra": 1}, 400, "bad_request"), ([1], 400, "bad_request")):
        _error(requests.post(url, json=body, timeout=10), status, code)
    _error(requests.post(url, data="{", headers={"Content-Type": "application/json"},
                         timeout=10), 400, "bad_request")
    _error(requests.post(f"{live_server.url}/api/v1/jobs/{'0' * 32}/feedback",
                         json={"label": "Real"}, timeout=10), 404, "not_found")
    other = "Real" if job["result"]["label"] == "Fake" else "Fake"
    stored = _stored(live_server, job["id"])
    assert _deleted(stored)  # the job is final: its upload is gone before any feedback
    r = requests.post(url, json={"label": other, "note": "my own photo"}, timeout=10)
    assert r.status_code == 201, r.text
    entry = r.json()
    assert entry["verdict"] == {k: job["result"][k] for k in ("label", "p_fake", "assessment")}
    assert entry["model"] == job["result"]["model"] and "client" not in entry
    _error(requests.post(url, json={"label": other}, timeout=10), 409, "feedback_exists")
    # Another client (the API key) may still give its own.
    auth = {"Authorization": f"Bearer {live_server.api_key}"}
    assert requests.post(url, json={"label": other}, headers=auth, timeout=10).status_code == 201
    export = f"{live_server.url}/api/v1/feedback"
    _error(requests.get(export, timeout=10), 401, "unauthorized")
    got = requests.get(export, headers=auth, timeout=10).json()
    # An offset past what Redis takes is a 400, not a 500 (found by the contract test).
    _error(requests.get(export, headers=auth, params={"offset": 10**30}, timeout=10), 400,
           "bad_request")
    mine = [e for e in got["feedback"] if e["job_id"] == job["id"]]
    assert len(mine) == 2 and len({e["client"] for e in mine}) == 2
    assert {e["note"] for e in mine} == {"my own photo", ""}
    # Feedback never brings the upload back, and nothing about feedback is written into the
    # job record.
    assert not stored.exists()
    rec = redis.Redis.from_url(live_server.redis_url).hgetall(f"dfd:job:{job['id']}")
    assert not any(b"feedback" in k for k in rec)


def test_feedback_export_and_agreement_by_model_version(live_server, reset_limits, tmp_path,
                                                        capsys):
    from batch.cli import main as dfd
    from training.cli import main as dfd_train

    job = _submit(live_server, make_jpeg(seed=13))
    verdict = job["result"]["label"]
    r = requests.post(f"{live_server.url}/api/v1/jobs/{job['id']}/feedback",
                      json={"label": verdict}, timeout=10)  # this user agrees after all
    assert r.status_code == 201, r.text
    out = tmp_path / "feedback.jsonl"
    assert dfd(["feedback", "export", "--url", live_server.url, "--out", str(out)]) == 2
    assert dfd(["feedback", "export", "--url", live_server.url, "--api-key",
                "wrong-key-0123456789", "--out", str(out)]) == 1
    assert dfd(["feedback", "export", "--url", live_server.url, "--api-key",
                live_server.api_key, "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert job["id"] in {row["job_id"] for row in rows}
    capsys.readouterr()
    report = tmp_path / "agreement.json"
    assert dfd_train(["evaluate", "--feedback", str(out), "--json", str(report)]) == 0
    table = json.loads(report.read_text())["feedback"]
    version = job["result"]["model"]["version"]
    expect = sum(row["verdict"]["label"] == row["label"] for row in rows) / len(rows)
    assert table[version]["n"] == len(rows) and table[version]["label_agreement"] == round(
        expect, 4)
    assert version in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"label": "Maybe"}\n')
    assert dfd_train(["evaluate", "--feedback", str(bad)]) == 2

"""Every case of the hostile corpus (tests/hostile.py) through the real gunicorn, Redis and worker.

Refused cases must get a 4xx JSON error of the one shape naming the problem, with nothing stored
or queued; accepted ones must end `done` with the displayed size and the verdict of a plain RGB
copy of their pixels. No case may ever get a 5xx. Worker-side re-verification is proven by
swapping a stored upload for something hostile after the web accepted it.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest
import redis
import requests
from PIL import Image

from harness import services
from harness.services import consumers_paused
from shared.jobs import READY, JobStore
from tests import hostile

CASES = hostile.cases()
STORED_NAME = re.compile(r"^[0-9a-f]{32}\.(jpg|png|gif|webp)$")
RESULTS: list[dict] = []


def send(url: str, case: hostile.Case, key: str) -> requests.Response:
    """Post one case exactly as it is defined (chunked when the case says so)."""
    headers, body = case.request()
    headers = {**headers, "Authorization": f"Bearer {key}"}
    data = (body[i:i + 65536] for i in range(0, len(body), 65536)) if case.chunked else body
    return requests.post(f"{url}/api/v1/jobs", data=data, headers=headers, timeout=60)


def footprint(server) -> tuple[int, int, list[str]]:
    """Job records and ready entries in Redis, and the files in the upload folder."""
    r = redis.Redis.from_url(server.redis_url)
    records = sum(1 for _ in r.scan_iter("dfd:job:*", count=1000))
    files = sorted(os.listdir(server.upload_dir)) if server.upload_dir.is_dir() else []
    return records, r.zcard(READY), files


def upload_png(server, data: bytes, name: str) -> str:
    r = requests.post(f"{server.url}/api/v1/jobs", timeout=30,
                      headers={"Authorization": f"Bearer {server.api_key}"},
                      files=[("image", (name, data, "image/png"))])
    assert r.status_code == 202, r.text
    return r.json()["jobs"][0]["id"]


def assert_error_shape(r: requests.Response) -> dict:
    assert r.headers.get("Content-Type", "").startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"}, body
    err = body["error"]
    assert isinstance(err.get("code"), str) and isinstance(err.get("message"), str), body
    assert set(err) <= {"code", "message", "retry_after"}, body
    return err


@pytest.fixture(scope="module", autouse=True)
def write_results():
    """With DFD_RELIABILITY_OUT set, leave the outcome of every case for the report script."""
    yield
    out = os.environ.get("DFD_RELIABILITY_OUT")
    if out and RESULTS:
        Path(out).mkdir(parents=True, exist_ok=True)
        Path(out, "hostile.json").write_text(json.dumps(RESULTS, indent=1, ensure_ascii=False))


def test_corpus_is_big_and_varied():
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names)
    refused = [c for c in CASES if not c.accepted]
    assert len(refused) >= 30 and len(CASES) - len(refused) >= 15
    assert all(400 <= c.status < 500 and c.code for c in refused)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_case(live_server, case: hostile.Case):
    before = footprint(live_server)
    t0 = time.monotonic()
    r = send(live_server.url, case, live_server.api_key)
    took = time.monotonic() - t0
    row = {"name": case.name, "what": case.what, "bytes": case.nbytes(), "expected": case.status,
           "status": r.status_code, "code": None, "message": None, "ms": round(took * 1000)}
    RESULTS.append(row)
    assert r.status_code < 500, r.text
    if not case.accepted:
        err = assert_error_shape(r)
        row.update(code=err["code"], message=err["message"])
        assert (r.status_code, err["code"]) == (case.status, case.code), err
        for words in case.mention:
            assert words in err["message"], (words, err)
        # A refusal leaves nothing behind: no job record, no stored file.
        assert footprint(live_server) == before
        return
    assert r.status_code == 202, r.text
    job = r.json()["jobs"][0]
    if case.echo is not None:
        assert job["filename"] == case.echo
    final = live_server.wait_final(job["id"])
    assert not final.get("reused"), "the corpus sends fresh bytes: this case must be classified"
    row.update(code=final["status"], message=_summary(final))
    assert final["status"] == "done", final
    result = final["result"]
    assert (result["image"]["width"], result["image"]["height"]) == case.size, result["image"]
    # Classified as the same pixels sent as a plain RGB PNG would be: same score, same verdict.
    ref = live_server.wait_final(upload_png(live_server, case.reference, f"ref-{case.name}.png"))
    assert ref["result"]["image"] == result["image"]
    assert ref["result"]["p_fake"] == pytest.approx(result["p_fake"], abs=1e-6), (ref, final)
    assert ref["result"]["label"] == result["label"]
    rec = JobStore(redis.Redis.from_url(live_server.redis_url)).get(job["id"])
    stored = rec["stored"]
    assert STORED_NAME.match(stored), stored
    if case.stored_suffix:
        assert stored.endswith(case.stored_suffix), stored
    # Whatever the client called it, every stored file has one of our generated names.
    assert all(STORED_NAME.match(n) for n in footprint(live_server)[2]), footprint(live_server)


def _summary(final: dict) -> str:
    if final["status"] != "done":
        return final.get("error", "")
    res = final["result"]
    return f"{res['label']} p_fake={res['p_fake']:.4f} {res['image']['width']}x" \
           f"{res['image']['height']}"


def test_worker_reverifies_what_it_reads(live_server):
    """Uploads swapped after the web checked them: the worker refuses them, naming why."""
    swaps = {
        "text": (b"not an image at all", "unsupported_type"),
        "bmp": (hostile.encode(Image.new("RGB", (64, 64), "red"), "BMP"), "unsupported_type"),
        "over_cap": (hostile.png_bomb(8000, 6000), "too_many_pixels"),
        "truncated": (hostile.encode(Image.fromarray(hostile.base_rgb(seed=9)), "PNG")[:3000],
                      "corrupt_image"),
    }
    store = JobStore(redis.Redis.from_url(live_server.redis_url))
    jobs = {}
    with consumers_paused(live_server.redis_url):
        for i, (name, (garbage, code)) in enumerate(swaps.items()):
            png = hostile.encode(Image.fromarray(hostile.base_rgb(96, 64, seed=300 + i)), "PNG")
            job_id = upload_png(live_server, png, f"{name}.png")
            path = live_server.upload_dir / store.get(job_id)["stored"]
            path.write_bytes(garbage)
            jobs[job_id] = code
        assert all(store.get(j)["status"] == "queued" for j in jobs)
    for job_id, code in jobs.items():
        final = live_server.wait_final(job_id)
        assert final["status"] == "failed", final
        assert final["error"].startswith(code + ":"), final
        assert "result" not in final
    last = next(reversed(jobs))
    log = services.log_text_when(live_server.logs / "worker.log", f"job {last} client=")
    for job_id, code in jobs.items():  # the worker's log names the job, the client and why
        assert f"job {job_id} client=key:tests failed: {code}" in log


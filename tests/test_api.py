"""Integration tests through the real HTTP routes, with real Redis and a real worker."""

from __future__ import annotations

import requests

from harness import services
from tests.conftest import make_jpeg


def post_images(server, *blobs, key=None, names=None, params=None):
    files = [("image", ((names or [])[i] if names else f"img{i}.jpg", b, "image/jpeg"))
             for i, b in enumerate(blobs)]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{server.url}/api/v1/jobs", files=files, headers=headers,
                         params=params, timeout=30)


def test_submit_poll_result(live_server, sample_jpeg):
    r = post_images(live_server, sample_jpeg, key=live_server.api_key)
    assert r.status_code == 202, r.text
    job = r.json()["jobs"][0]
    assert len(job["id"]) == 32 and job["status"] in ("queued", "done")
    assert r.headers["Location"] == f"/api/v1/jobs/{job['id']}"
    assert "Retry-After" not in r.headers  # only a 429 or 503 asks the client to wait
    final = live_server.wait_final(job["id"])
    assert final["status"] == "done", final
    res = final["result"]
    assert res["label"] in ("Real", "Fake")
    assert (res["label"] == "Fake") == (res["p_fake"] > res["threshold"])
    expected_conf = res["p_fake"] if res["label"] == "Fake" else 1 - res["p_fake"]
    assert abs(res["confidence"] - expected_conf) < 1e-6
    assert res["model"]["name"] == "tiny-test-model" and res["model"]["version"]
    assert final["started_at"] and final["finished_at"] and final["created_at"]


def test_several_files_and_distinct_jobs(live_server):
    blobs = [make_jpeg(seed=s) for s in (11, 12, 13)]
    r = post_images(live_server, *blobs, key=live_server.api_key)
    assert r.status_code == 202
    ids = [j["id"] for j in r.json()["jobs"]]
    assert len(set(ids)) == 3
    for job_id in ids:
        assert live_server.wait_final(job_id)["status"] == "done"


def test_identical_bytes_reuse_result(live_server):
    blob = make_jpeg(seed=77)
    first = post_images(live_server, blob, key=live_server.api_key).json()["jobs"][0]
    done = live_server.wait_final(first["id"])
    again = post_images(live_server, blob, key=live_server.api_key).json()["jobs"][0]
    assert again["id"] != first["id"]
    assert again.get("reused") is True and again["status"] == "done"
    assert live_server.get_job(again["id"], wait=0)["result"] == done["result"]


def test_upload_with_wait_answers_with_the_results(live_server):
    blobs = [make_jpeg(seed=s) for s in (21, 22)]
    r = post_images(live_server, *blobs, key=live_server.api_key, params={"wait": 10})
    assert r.status_code == 200, r.text
    jobs = r.json()["jobs"]
    assert [j["filename"] for j in jobs] == ["img0.jpg", "img1.jpg"]
    for job in jobs:
        assert job["status"] == "done" and job["result"]["label"] in ("Real", "Fake")
        assert job["location"] == f"/api/v1/jobs/{job['id']}"
        assert live_server.get_job(job["id"], wait=0)["result"] == job["result"]
    # The same bytes again: answered from the earlier result, result included.
    again = post_images(live_server, blobs[0], key=live_server.api_key, params={"wait": 1})
    assert again.status_code == 200
    assert again.json()["jobs"][0]["result"] == jobs[0]["result"]
    for bad in ("-1", "11", "soon", "nan"):
        r = post_images(live_server, blobs[0], key=live_server.api_key, params={"wait": bad})
        assert r.status_code == 400 and "wait" in r.json()["error"]["message"], bad


def test_upload_with_a_wait_too_short_is_202_and_still_finishes(live_server):
    # The last job is queued just before the 1 ms wait starts; a worker needs longer than that
    # to receive it, find the face and classify it, so the answer is a 202.
    blobs = [make_jpeg(seed=s) for s in (24, 25, 26)]
    resp = post_images(live_server, *blobs, key=live_server.api_key, params={"wait": 0.001})
    assert resp.status_code == 202, resp.text
    jobs = resp.json()["jobs"]
    assert jobs[-1]["status"] in ("queued", "running") and "result" not in jobs[-1]
    for job in jobs:
        assert live_server.wait_final(job["id"])["status"] == "done"


def test_unknown_job_is_404_json(live_server):
    r = requests.get(f"{live_server.url}/api/v1/jobs/{'0' * 32}", timeout=5)
    assert r.status_code == 404
    assert r.json()["error"]["code"] == "not_found"


def test_bad_upload_is_clear_4xx(live_server):
    r = post_images(live_server, b"this is not an image", key=live_server.api_key,
                    names=["notes.jpg"])
    assert r.status_code == 415
    err = r.json()["error"]
    assert err["code"] == "unsupported_type" and "notes.jpg" in err["message"]
    r = requests.post(f"{live_server.url}/api/v1/jobs", timeout=5,
                      files={"photo": ("a.jpg", make_jpeg(), "image/jpeg")},
                      headers={"Authorization": f"Bearer {live_server.api_key}"})
    assert r.status_code == 400 and "'image'" in r.json()["error"]["message"]


def test_method_not_allowed_and_too_large_are_json(live_server):
    r = requests.delete(f"{live_server.url}/api/v1/jobs", timeout=5)
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
    big = b"\xff\xd8" + b"0" * 11_000_000
    r = post_images(live_server, big, key=live_server.api_key)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"


def test_unknown_api_key_is_401(live_server):
    r = post_images(live_server, make_jpeg(), key="wrong-key-wrong-key")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"


def test_sixth_upload_in_a_minute_is_429_across_two_web_processes(live_server, reset_limits):
    second, url2 = services.start_web(live_server.env, live_server.logs / "web2.log")
    try:
        urls = [live_server.url, url2]
        codes = []
        for i in range(7):
            part = ("image", (f"{i}.jpg", make_jpeg(seed=100 + i), "image/jpeg"))
            r = requests.post(f"{urls[i % 2]}/api/v1/jobs", timeout=10, files=[part])
            codes.append(r.status_code)
        assert codes == [202] * 5 + [429, 429], codes
        assert 1 <= int(r.headers["Retry-After"]) <= 60
        assert r.headers["X-RateLimit-Limit"] == "5"
        assert r.json()["error"]["code"] == "rate_limited"
        assert r.json()["error"]["retry_after"] == int(r.headers["Retry-After"])
        # Status polling is not counted against uploads.
        job = requests.get(f"{url2}/api/v1/jobs/{'0' * 32}", timeout=5)
        assert job.status_code == 404
        # An API key has its own allowance.
        assert post_images(live_server, make_jpeg(seed=200), key=live_server.api_key
                           ).status_code == 202
    finally:
        services.stop(second)


def test_health_and_readiness(live_server):
    assert requests.get(f"{live_server.url}/healthz", timeout=5).json() == {"status": "ok"}
    ready = requests.get(f"{live_server.url}/readyz", timeout=10)
    assert ready.status_code == 200 and ready.json()["workers"] >= 1


def test_page_has_security_headers(live_server):
    r = requests.get(live_server.url + "/", timeout=5)
    assert r.status_code == 200 and "Detect" in r.text
    csp = r.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp
    assert r.headers["X-Content-Type-Options"] == "nosniff"

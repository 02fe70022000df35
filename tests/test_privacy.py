"""Privacy, through the real web, worker and redis-server: uploads deleted when final, DELETE of a
job by its own client only, result reuse scoped to the client, and the API-key requirement."""

from __future__ import annotations

import io
import os
import time

import pytest
import redis
import requests

from harness.services import consumers_paused, wait_queue_drained
from shared.jobs import READY, JobStore
from shared.settings import SettingsError, load
from tests.conftest import make_jpeg


def _post(server, blob: bytes, key: str | None = None, name: str = "p.jpg"):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.post(f"{server.url}/api/v1/jobs", headers=headers, timeout=30,
                         files=[("image", (name, blob, "image/jpeg"))])


def _store(server) -> JobStore:
    return JobStore(redis.Redis.from_url(server.redis_url))


def _gone(path, timeout: float = 5) -> bool:
    """The worker deletes the upload just after recording the final state: poll briefly."""
    deadline = time.monotonic() + timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return not path.exists()


def test_upload_is_deleted_when_its_job_is_done_or_failed(live_server):
    store = _store(live_server)
    with consumers_paused(live_server.redis_url):
        ok = _post(live_server, make_jpeg(seed=301), live_server.api_key).json()["jobs"][0]
        bad = _post(live_server, make_jpeg(seed=302), live_server.api_key).json()["jobs"][0]
        ok_file = live_server.upload_dir / store.get(ok["id"])["stored"]
        bad_file = live_server.upload_dir / store.get(bad["id"])["stored"]
        assert ok_file.is_file() and bad_file.is_file()  # kept while the job waits
        bad_file.write_bytes(b"no longer an image")  # the worker's own check will fail it
    assert live_server.wait_final(ok["id"])["status"] == "done"
    assert live_server.wait_final(bad["id"])["status"] == "failed"
    assert _gone(ok_file) and _gone(bad_file)


def test_explain_keeps_the_map_not_the_upload_and_delete_removes_it(live_server):
    store = _store(live_server)
    auth = {"Authorization": f"Bearer {live_server.api_key}"}
    r = requests.post(f"{live_server.url}/api/v1/jobs", headers=auth, timeout=30,
                      data={"explain": "1"},
                      files=[("image", ("e.jpg", make_jpeg(seed=307), "image/jpeg"))])
    job = r.json()["jobs"][0]
    upload = live_server.upload_dir / store.get(job["id"])["stored"]
    assert live_server.wait_final(job["id"])["status"] == "done"
    # The map is made from the image after the verdict, then the upload goes as for any job:
    # what is kept is scores per grid cell (and a colour map drawn from them).
    url = f"{live_server.url}/api/v1/jobs/{job['id']}"
    explained = live_server.explanation(job["id"])
    assert explained.status_code == 200, explained.text
    assert _gone(upload)
    assert set(explained.json()["faces"][0]) == {"face", "box", "crop_box", "p_fake", "delta",
                                                 "largest",
                                                 "overlay_png"}
    # DELETE removes it with the record.
    assert requests.delete(url, headers=auth, timeout=10).status_code == 200
    assert requests.get(url + "/explanation", timeout=10).status_code == 404
    assert not redis.Redis.from_url(live_server.redis_url).exists(store.key(job["id"]))


def test_delete_job_by_its_own_client_only(live_server):
    blob = make_jpeg(seed=303)
    job = _post(live_server, blob, live_server.api_key).json()["jobs"][0]
    done = live_server.wait_final(job["id"])
    assert done["status"] == "done"
    url = f"{live_server.url}/api/v1/jobs/{job['id']}"
    # Anyone may read a job by its id, but only its client may delete it.
    other = requests.delete(url, timeout=10)
    assert other.status_code == 403 and other.json()["error"]["code"] == "forbidden", other.text
    assert requests.get(url, timeout=10).status_code == 200
    mine = requests.delete(url, timeout=10,
                           headers={"Authorization": f"Bearer {live_server.api_key}"})
    assert mine.status_code == 200 and mine.json() == {"id": job["id"], "status": "deleted"}
    gone = requests.get(url, timeout=10)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
    assert _store(live_server).get(job["id"]) is None
    # Its result is gone for reuse too: the same bytes are analysed afresh.
    again = _post(live_server, blob, live_server.api_key).json()["jobs"][0]
    assert "reused" not in again and again["status"] == "queued", again
    twice = requests.delete(url, timeout=10)
    assert twice.status_code == 404


def test_delete_a_queued_job_removes_its_upload_and_it_never_runs(live_server, reset_limits):
    store = _store(live_server)
    with consumers_paused(live_server.redis_url):
        job = _post(live_server, make_jpeg(seed=304)).json()["jobs"][0]  # keyless: by address
        stored = live_server.upload_dir / store.get(job["id"])["stored"]
        assert stored.is_file()
        r = requests.delete(f"{live_server.url}/api/v1/jobs/{job['id']}", timeout=10)
        assert r.status_code == 200, r.text
        assert not stored.exists()
        assert redis.Redis.from_url(live_server.redis_url).zscore(READY, job["id"]) is None
    # Its task still reaches the worker, which finds no record and writes nothing back.
    wait_queue_drained(live_server.redis_url)
    assert store.get(job["id"]) is None
    assert requests.get(f"{live_server.url}/api/v1/jobs/{job['id']}",
                        timeout=10).status_code == 404


def test_result_reuse_does_not_leak_across_clients(live_server, reset_limits):
    blob = make_jpeg(seed=305)
    first = _post(live_server, blob, live_server.api_key).json()["jobs"][0]
    assert live_server.wait_final(first["id"])["status"] == "done"
    # Another client (no key: its address) sends the same bytes: analysed afresh, no flag.
    stranger = _post(live_server, blob).json()["jobs"][0]
    assert "reused" not in stranger and stranger["status"] == "queued", stranger
    assert "reused" not in live_server.wait_final(stranger["id"])
    # The first client's own repeat keeps the speed-up.
    own = _post(live_server, blob, live_server.api_key).json()["jobs"][0]
    assert own.get("reused") is True and own["status"] == "done", own


def test_require_api_key(live_server):
    from web import create_app

    env = {**live_server.env, "DFD_REQUIRE_API_KEY": "true"}
    client = create_app({"ENV": env}).test_client()

    def post(headers):
        return client.post("/api/v1/jobs", headers=headers, data={
            "image": (io.BytesIO(make_jpeg(seed=306)), "k.jpg", "image/jpeg")})

    anonymous = post({})
    assert anonymous.status_code == 401, anonymous.get_data(as_text=True)
    assert anonymous.get_json()["error"]["code"] == "unauthorized"
    assert "API key" in anonymous.get_json()["error"]["message"]
    keyed = post({"Authorization": f"Bearer {live_server.api_key}"})
    assert keyed.status_code == 202, keyed.get_data(as_text=True)
    with pytest.raises(SettingsError, match="DFD_REQUIRE_API_KEY"):
        load({"DFD_REQUIRE_API_KEY": "true"})  # no keys: nobody could upload
    with pytest.raises(SettingsError, match="DFD_REQUIRE_API_KEY"):
        load({"DFD_REQUIRE_API_KEY": "maybe"})


def test_page_says_what_is_kept_and_for_how_long(live_server):
    from web.pages import duration_text

    page = " ".join(requests.get(live_server.url + "/", timeout=10).text.split())
    assert "deleted from the server as soon as its result is ready or its analysis fails" in page
    assert "kept for 24 hours, then deleted" in page  # DFD_JOB_TTL's default
    assert "for review, for 90 days." in page  # DFD_FEEDBACK_TTL's default
    assert [duration_text(s) for s in (90, 900, 3600, 86400, 7 * 86400)] == [
        "90 seconds", "15 minutes", "1 hour", "24 hours", "7 days"]


def test_sweep_removes_only_names_the_service_generated(tmp_path):
    from shared.storage import Storage

    st = Storage(tmp_path)
    ours = st.save(b"abc", ".jpg")
    part = tmp_path / f".{'a' * 32}.png.part"
    part.write_bytes(b"half")
    foreign = [tmp_path / n for n in ("notes.txt", f"{'A' * 32}.jpg", f"{'a' * 32}.jpg.bak",
                                      f"{'a' * 32}.jpeg", "holiday.jpg", f"{'a' * 32}.jpg\n")]
    for f in foreign:
        f.write_bytes(b"not ours")
    old = time.time() - 7200
    for f in [st.path(ours), part, *foreign]:
        os.utime(f, (old, old))
    assert st.sweep(3600) == 2
    assert not st.path(ours).exists() and not part.exists()
    assert all(f.exists() for f in foreign)


def test_feedback_expires_and_leaves_the_export(clean_redis, monkeypatch):
    import shared.feedback as fb

    store = fb.FeedbackStore(clean_redis, ttl=3600)
    result = {"label": "Fake", "p_fake": 0.9, "assessment": "likely_fake",
              "model": {"name": "m", "version": "v"}}
    assert store.add("a" * 32, "1.2.3.4", result, "Real", "my own photo") is not None
    key = f"{fb.PREFIX}:{'a' * 32}:{fb.client_tag('1.2.3.4')}"
    assert 3590 < clean_redis.ttl(key) <= 3600  # Redis drops the entry itself
    assert store.count() == 1 and store.export(10)[0]["note"] == "my own photo"
    # An hour later its index member goes too, so the export and its total agree.
    now = fb.time.time()
    monkeypatch.setattr(fb.time, "time", lambda: now + 3601)
    clean_redis.delete(key)  # what the expiry does by then
    assert store.count() == 0 and store.export(10) == []
    assert store.add("b" * 32, "1.2.3.4", result, "Real", None) is not None
    assert clean_redis.zcard(fb.PREFIX) == 1

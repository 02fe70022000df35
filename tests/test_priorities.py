"""Priorities through the real web, worker and redis-server: a page upload made while a large
batch waits is served next, not after the batch."""

from __future__ import annotations

import os
import time

import redis
import requests

from harness.services import consumers_paused
from shared.jobs import JobStore
from tests.test_faults import batch_jpegs, record_figures

BATCH = int(os.environ.get("DFD_TEST_PRIORITY_BATCH", "200"))


def test_page_upload_overtakes_a_waiting_batch(live_server, reset_limits):
    auth = {"Authorization": f"Bearer {live_server.api_key}"}
    blobs = batch_jpegs(BATCH, seed=8, size=(512, 384))
    ids = []
    with consumers_paused(live_server.redis_url):
        for i in range(0, BATCH, 20):
            files = [("image", (f"b{i + j}.jpg", b, "image/jpeg"))
                     for j, b in enumerate(blobs[i:i + 20])]
            r = requests.post(f"{live_server.url}/api/v1/jobs", headers=auth, files=files,
                              data={"priority": "batch"}, timeout=60)
            assert r.status_code == 202, r.text
            ids += [j["id"] for j in r.json()["jobs"]]
        # Someone at the page (no key) uploads one photo after the whole batch was queued.
        page = requests.post(f"{live_server.url}/api/v1/jobs", timeout=30, files=[
            ("image", ("me.jpg", batch_jpegs(1, seed=9, size=(512, 384))[0], "image/jpeg"))])
        assert page.status_code == 202, page.text
        page_id = page.json()["jobs"][0]["id"]
        released = time.time()
    page_done = live_server.wait_final(page_id, timeout=60)
    assert page_done["status"] == "done"
    store = JobStore(redis.Redis.from_url(live_server.redis_url))
    for job_id in ids:
        live_server.wait_final(job_id, timeout=120)
    page_rec = store.get(page_id)
    batch_done = sorted(store.get(i)["finished_at"] for i in ids)
    before_page = sum(t < page_rec["finished_at"] for t in batch_done)
    # The worker batches up to DFD_BATCH_SIZE (8) jobs a call: the page job is in the first
    # batch or, when a batch task was already taken when the page upload came, the second.
    assert before_page <= 16, (before_page, BATCH)
    figures = {"batch_jobs": BATCH, "batch_jobs_done_before_the_page_job": before_page,
               "page_latency_s": round(page_rec["finished_at"] - released, 2),
               "batch_total_s": round(batch_done[-1] - released, 2)}
    record_figures("priorities", figures)
    print(figures)

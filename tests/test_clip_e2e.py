"""The served CLIP model end to end: real redis-server, a real Celery worker holding the real
trunk (ONNX Runtime), the real web server; the result equals the inference core's own."""

from __future__ import annotations

import json
import re

import pytest
import requests

from harness import services
from tests.conftest import API_KEY, LiveServer
from tests.golden import DATA, MODELS, assert_worker_scores_as_the_core

pytestmark = [pytest.mark.data, pytest.mark.slow]
CLIP_DIR = MODELS["dfd-clip"][0]
FILES = ("stylegan-faces/fake/00AUP94LQS.jpg", "fairface-real/real/10001.jpg")


@pytest.fixture(scope="module")
def clip_server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("clip-e2e")
    redis_proc, url = services.start_redis(tmp)
    env = {"DFD_REDIS_URL": url, "DFD_MODEL_PATH": str(CLIP_DIR),
           "DFD_UPLOAD_DIR": str(tmp / "uploads"), "DFD_API_KEYS": f"tests:{API_KEY}:1000/minute",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp)}
    worker = services.start_worker(env, tmp / "worker.log", concurrency=2)
    web, base = services.start_web(env, tmp / "web.log")
    yield LiveServer(base, API_KEY, url, tmp / "uploads", env, tmp), tmp, worker.pid
    for proc in (web, worker, redis_proc):
        services.stop(proc, timeout=20)


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
def test_worker_serves_the_clip_model_as_the_core_scores_it(clip_server):
    assert_worker_scores_as_the_core(clip_server[0], CLIP_DIR, FILES)


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
def test_a_video_through_the_clip_worker_states_the_served_prior(clip_server):
    """A short clip of a GAN face through the real trunk: the video result states the prior the
    served model assumes (not 50%), and each track carries its own assessment."""
    from harness import videos

    base = clip_server[0].url
    card = json.loads((CLIP_DIR / "card.json").read_text())
    data = videos.video([[videos.faces("fake", 1)[0]]], seconds=4, fps=5, fmt="webm",
                        codec="libvpx-vp9")
    r = requests.post(f"{base}/api/v1/jobs", files=[("image", ("clip.webm", data, "video/webm"))],
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    assert r.status_code == 202, r.text
    job = r.json()["jobs"][0]
    for _ in range(24):
        job = requests.get(f"{base}/api/v1/jobs/{job['id']}", params={"wait": 5}, timeout=30).json()
        if job["status"] in ("done", "failed"):
            break
    assert job["status"] == "done", job
    res = job["result"]
    assert res["media"] == "video" and res["prior_fake"] == pytest.approx(card["prior_fake"])
    assert res["prior_fake"] != 0.5
    tracks = res["video"]["tracks"]
    assert len(tracks) == 1 and tracks[0]["frames"] == 4
    assert tracks[0]["assessment"] == res["faces"][0]["assessment"]
    assert res["model"]["version"] == card["version"]


def test_each_worker_process_chose_its_runtime_once_and_says_so(clip_server):
    """Each pool child loaded the model once, after the fork (not the parent, not per job): one
    'runs on' line per child, naming the weight layout and its self-check; /metrics has both."""
    from detector.runtimes.choice import MIN_COSINE, cpu_flags, layout_candidates

    server, tmp, parent = clip_server
    base = server.url
    card = json.loads((CLIP_DIR / "card.json").read_text())
    said = f"{card['name']} {card['version']} runs on"

    def lines() -> list[str]:
        return [ln for ln in (tmp / "worker.log").read_text().splitlines() if said in ln]

    services.wait_for(lambda: len(lines()) >= 2, 60, "both pool children loading the model")
    found = lines()  # after the earlier tests' jobs: still one line per child
    pids = [int(re.search(r"\[(\d+)\]", ln).group(1)) for ln in found]
    assert len(pids) == len(set(pids)) == 2 and parent not in pids, found
    layout = layout_candidates(cpu_flags())[0]
    assert all(f"'layout': '{layout}'" in ln for ln in found), found
    body = requests.get(f"{base}/metrics", timeout=10).text
    assert re.search(rf'dfd_model_runtime{{[^}}]*layout="{layout}"[^}}]*}} 1\.0', body), body
    cos = re.search(rf'dfd_model_runtime_check_cosine{{layout="{layout}",runtime="onnx"}} (\S+)',
                    body)
    assert cos and float(cos.group(1)) >= MIN_COSINE, body


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
def test_the_clip_workers_map_follows_its_verdict_on_the_budgets_grid(clip_server):
    """"Why?" through the real trunk: the verdict is recorded first, the map follows on the
    grid the 1 s budget gives at the card's measured cost per crop (2x2 for this tower)."""
    import time

    from detector.explain import BUDGET_S

    base = clip_server[0].url
    card = json.loads((CLIP_DIR / "card.json").read_text())
    blob = (DATA / FILES[0]).read_bytes()
    r = requests.post(f"{base}/api/v1/jobs", files=[("image", ("f.jpg", blob, "image/jpeg"))],
                      data={"explain": "1"}, params={"wait": 10},
                      headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
    job = r.json()["jobs"][0]
    while job["status"] not in ("done", "failed"):
        job = requests.get(f"{base}/api/v1/jobs/{job['id']}", params={"wait": 5}, timeout=30).json()
    assert job["status"] == "done", job
    deadline = time.monotonic() + 60
    while (got := requests.get(f"{base}/api/v1/jobs/{job['id']}/explanation",
                               timeout=30)).status_code == 202 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert got.status_code == 200, got.text
    grid = got.json()["method"]["grid"]
    assert (grid * grid + 1) * card["explain"]["seconds_per_crop"] <= BUDGET_S
    assert len(got.json()["faces"][0]["delta"]) == grid == 2


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
def test_clip_serving_fits_min_face_and_keeps_the_margin(tmp_path):
    """`dfd-train clip-serving --only min-face` on a small calibration sample through the real
    runtime: the smallest face is one of the sides tried, with its AUC curve; the stability
    margin (fitted before) is left as it was."""
    import shutil

    from training.clip import serving as clip_serving
    from training.policy import FACE_SIDES

    models = tmp_path / "models"
    for name in ("dfd-clip", "dfd-mnv2"):
        shutil.copytree(CLIP_DIR.parent / name, models / name)
    root = models / "dfd-clip"
    split = json.loads((root / "split.json").read_text())
    for src in split["sources"].values():  # the data next to the real checkout
        src["root"] = str((CLIP_DIR.parents[1] / src["root"]).resolve())
    (root / "split.json").write_text(json.dumps(split))
    before = json.loads((root / "card.json").read_text())["assessment"]
    assert clip_serving.main([str(root), "--only", "min-face", "--n", "16"]) == 0
    after = json.loads((root / "card.json").read_text())["assessment"]
    assert after["min_face_px"] in (*FACE_SIDES, 224)
    assert set(after["min_face_curve"]) == {"full", *map(str, FACE_SIDES)}
    assert after["stability_margin"] == before["stability_margin"]
    assert "16 calibration crops" in after["min_face_note"]
    assert f"{after['min_face_px']} px" in (root / "MODEL_CARD.md").read_text()

"""The worker's plain functions, called directly: model loading, analysis, batched jobs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from detector.analyze import analyze
from detector.faces import FaceDetector
from detector.model import ModelError, calibrate, check_model, load_model
from detector.stability import CHECKED
from shared.images import decode_image
from shared.jobs import JobStore, new_job_id
from shared.storage import Storage
from tests.conftest import make_jpeg
from worker.pipeline import run_jobs


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def test_tflite_and_keras_runtimes_agree(model_dir):
    crops = np.random.default_rng(0).integers(0, 255, (4, 224, 224, 3), dtype=np.uint8)
    lite, keras_model = load_model(model_dir), load_model(model_dir, runtime="keras")
    assert lite.runtime.name == "tflite" and keras_model.runtime.name == "keras"
    assert np.max(np.abs(lite.predict(crops) - keras_model.predict(crops))) < 1e-4
    assert lite.predict(crops[:1]).shape == (1,)  # the batch dimension resizes both ways


def test_calibrate_temperature():
    p = np.array([0.1, 0.5, 0.9])
    assert np.allclose(calibrate(p, 1.0), p)
    # A stated prior of 20% fakes moves every score by logit(0.2) = -1.386, keeping the order.
    shifted = calibrate(p, 1.0, 0.2)
    assert np.all(np.diff(shifted[np.argsort(p)]) >= 0) and np.all(shifted <= p + 1e-12)
    assert np.allclose(np.log(shifted / (1 - shifted)) - np.log(p / (1 - p)), np.log(0.25))
    softer = calibrate(p, 2.0)
    assert softer[0] > 0.1 and abs(softer[1] - 0.5) < 1e-12 and softer[2] < 0.9


def test_missing_or_corrupt_model_is_refused_with_the_fix(tmp_path, model_dir):
    with pytest.raises(ModelError, match="make train"):
        check_model(tmp_path / "nowhere")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "card.json").write_text((model_dir / "card.json").read_text())
    (broken / "model.tflite").write_bytes(b"garbage" * 10)
    with pytest.raises(ModelError, match="not a TFLite model"):
        check_model(broken)
    env_out = subprocess.run([sys.executable, "-m", "worker"], capture_output=True, text=True,
                             env={"DFD_MODEL_PATH": str(broken), "PATH": "/usr/bin:/bin"})
    assert env_out.returncode == 2 and "cannot start" in env_out.stderr


def test_analyze_result_names_model_and_image(model_dir, detector, sample_jpeg):
    model = load_model(model_dir)
    rgb = decode_image(sample_jpeg)
    res = analyze(rgb, detector, model)
    assert res["model"] == {"name": "tiny-test-model",
                            "version": json.loads((model_dir / "card.json").read_text())["version"]}
    assert res["image"] == {"width": rgb.shape[1], "height": rgb.shape[0]}
    assert 0 <= res["p_fake"] <= 1 and res["label"] in ("Real", "Fake")


def test_run_jobs_batches_and_fails_cleanly(model_dir, detector, clean_redis, tmp_path):
    jobs, storage = JobStore(clean_redis, 60), Storage(tmp_path)
    model = load_model(model_dir)
    calls = []
    real_predict = model.predict
    model.predict = lambda crops: calls.append(len(crops)) or real_predict(crops)
    ids = []
    for seed in range(3):
        job_id = new_job_id()
        stored = storage.save(make_jpeg(seed=seed), ".jpg")
        jobs.create(job_id, filename="x.jpg", stored=stored, sha256=str(seed), client="t")
        ids.append(job_id)
    gone, bad = new_job_id(), new_job_id()
    jobs.create(gone, filename="g.jpg", stored=storage.save(b"x", ".jpg"), sha256="g", client="t")
    storage.delete(jobs.get(gone)["stored"])
    jobs.create(bad, filename="b.jpg", stored=storage.save(b"not a jpeg", ".jpg"), sha256="b",
                client="t")
    outcomes = run_jobs([*ids, gone, bad], jobs, storage, detector, model, max_pixels=10**7)
    assert [outcomes[i] for i in ids] == ["done"] * 3
    assert outcomes[gone] == "failed" and "no longer in storage" in jobs.get(gone)["error"]
    assert outcomes[bad] == "failed" and "unsupported_type" in jobs.get(bad)["error"]
    # One model call for the whole batch, and one for the other versions of the faces whose
    # assessment they could change (the crop itself is not scored again).
    assert calls[0] == 3 and len(calls) <= 2 and all(n % (len(CHECKED) - 1) == 0
                                                     for n in calls[1:])
    again = run_jobs(ids, jobs, storage, detector, model, max_pixels=10**7)
    assert set(again.values()) == {"skipped"}  # final jobs are never redone


def test_claim_ready_takes_waiting_jobs_oldest_first(clean_redis):
    jobs = JobStore(clean_redis, 60)
    ids = [new_job_id() for _ in range(4)]
    for job_id in ids:
        jobs.create(job_id, filename="x", stored="", sha256="", client="t")
    assert jobs.claim_ready(ids[2], 2) == [ids[2], ids[0], ids[1]]
    assert jobs.claim_ready(ids[3], 5) == [ids[3]]


def test_runtime_follows_device(monkeypatch):
    from detector import model as model_mod

    monkeypatch.setattr(model_mod, "gpu_available", lambda: False)
    assert model_mod.choose_runtime("auto", has_tflite=True) == "tflite"
    assert model_mod.choose_runtime("cpu", has_tflite=False) == "keras"
    assert model_mod.choose_runtime("gpu", has_tflite=True) == "keras"
    monkeypatch.setattr(model_mod, "gpu_available", lambda: True)
    assert model_mod.choose_runtime("auto", has_tflite=True) == "keras"
    assert model_mod.choose_runtime("cpu", has_tflite=True) == "tflite"


def test_explain_is_cached_before_the_job_is_final_then_the_upload_goes(
        model_dir, detector, clean_redis, tmp_path, monkeypatch):
    jobs, storage = JobStore(clean_redis, 60), Storage(tmp_path)
    model = load_model(model_dir)
    asked, plain = new_job_id(), new_job_id()
    for job_id, explain, seed in ((asked, True, 21), (plain, False, 22)):
        jobs.create(job_id, filename="x.jpg", stored=storage.save(make_jpeg(seed=seed), ".jpg"),
                    sha256=str(seed), client="t", explain=explain)
    seen = {}
    real_finish = jobs.finish

    def finish(job_id, **final):
        # What the record holds at the moment it becomes final (and the upload is still there).
        rec = jobs.get(job_id)
        seen[job_id] = (rec.get("explanation"), storage.path(rec["stored"]).is_file())
        return real_finish(job_id, **final)

    monkeypatch.setattr(jobs, "finish", finish)
    assert run_jobs([asked, plain], jobs, storage, detector, model,
                    max_pixels=10**7) == {asked: "done", plain: "done"}
    assert list(seen) == [plain, asked]  # the one without an explanation is not held up
    assert seen[plain] == (None, True)
    explanation, kept = seen[asked]
    assert kept and json.loads(explanation)["method"]["name"] == "occlusion"
    assert json.loads(jobs.get(asked)["explanation"])["faces"]
    assert "explanation" not in jobs.get(plain)
    assert not any(tmp_path.iterdir())  # both uploads deleted once final


def test_a_failed_explanation_never_fails_the_job(model_dir, detector, clean_redis, tmp_path,
                                                  monkeypatch):
    import worker.explain

    jobs, storage = JobStore(clean_redis, 60), Storage(tmp_path)
    job_id = new_job_id()
    jobs.create(job_id, filename="x.jpg", stored=storage.save(make_jpeg(seed=23), ".jpg"),
                sha256="23", client="t", explain=True)

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(worker.explain, "explain_image", broken)
    outcomes = run_jobs([job_id], jobs, storage, detector, load_model(model_dir),
                        max_pixels=10**7)
    assert outcomes == {job_id: "done"} and jobs.get(job_id)["result"]["label"]
    assert json.loads(jobs.get(job_id)["explanation"]) == {"error": "failed"}
    assert not any(tmp_path.iterdir())

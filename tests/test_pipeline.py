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
from shared.job_view import explanation_state
from shared.jobs import JobStore, new_job_id
from shared.settings import load
from shared.storage import Storage
from tests.conftest import make_jpeg
from worker.context import WorkerContext
from worker.explain import explain_job
from worker.pipeline import run_jobs


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def context(model, detector, redis_client, tmp_path) -> WorkerContext:
    """What a worker process works with, made here: the tests call the plain functions."""
    return WorkerContext(load({}), model, detector, JobStore(redis_client, 60), Storage(tmp_path))


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
    model = load_model(model_dir)
    ctx = context(model, detector, clean_redis, tmp_path)
    jobs, storage = ctx.jobs, ctx.storage
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
    outcomes = run_jobs(ctx, [*ids, gone, bad])
    assert [outcomes[i] for i in ids] == ["done"] * 3
    assert outcomes[gone] == "failed" and "no longer in storage" in jobs.get(gone)["error"]
    assert outcomes[bad] == "failed" and "unsupported_type" in jobs.get(bad)["error"]
    # One model call for the whole batch, and one for the other versions of the faces whose
    # assessment they could change (the crop itself is not scored again).
    assert calls[0] == 3 and len(calls) <= 2 and all(n % (len(CHECKED) - 1) == 0
                                                     for n in calls[1:])
    again = run_jobs(ctx, ids)
    assert set(again.values()) == {"skipped"}  # final jobs are never redone


def test_claim_ready_takes_waiting_jobs_oldest_first(clean_redis):
    jobs = JobStore(clean_redis, 60)
    ids = [new_job_id() for _ in range(4)]
    for job_id in ids:
        jobs.create(job_id, filename="x", stored="", sha256="", client="t")
    assert jobs.claim_ready(ids[2], 2).running == [ids[2], ids[0], ids[1]]
    assert jobs.claim_ready(ids[3], 5).running == [ids[3]]


def test_runtime_follows_device(monkeypatch):
    from detector import model as model_mod

    monkeypatch.setattr(model_mod, "gpu_available", lambda: False)
    assert model_mod.choose_runtime("auto", has_tflite=True) == "tflite"
    assert model_mod.choose_runtime("cpu", has_tflite=False) == "keras"
    assert model_mod.choose_runtime("gpu", has_tflite=True) == "keras"
    monkeypatch.setattr(model_mod, "gpu_available", lambda: True)
    assert model_mod.choose_runtime("auto", has_tflite=True) == "keras"
    assert model_mod.choose_runtime("cpu", has_tflite=True) == "tflite"


def test_the_verdict_is_recorded_before_the_map_which_follows(model_dir, detector, clean_redis,
                                                              tmp_path):
    ctx = context(load_model(model_dir), detector, clean_redis, tmp_path)
    jobs, storage = ctx.jobs, ctx.storage
    asked, plain = new_job_id(), new_job_id()
    for job_id, explain, seed in ((asked, True, 21), (plain, False, 22)):
        jobs.create(job_id, filename="x.jpg", stored=storage.save(make_jpeg(seed=seed), ".jpg"),
                    sha256=str(seed), client="t", explain=explain)
    assert run_jobs(ctx, [asked, plain]) == {asked: "done", plain: "done"}
    # Both verdicts are recorded and final; the map is not made yet, and the upload it will be
    # made from is kept (the other one is deleted at once).
    rec = jobs.get(asked)
    assert rec["status"] == "done" and rec["result"]["label"] and "explanation" not in rec
    assert explanation_state(rec) == "pending" and storage.path(rec["stored"]).is_file()
    assert not storage.path(jobs.get(plain)["stored"]).exists()
    # The follow-up makes the map from that upload, then deletes it.
    assert explain_job(ctx, asked) == "done"
    rec = jobs.get(asked)
    assert explanation_state(rec) == "done" and rec["explained_at"] >= rec["finished_at"]
    got = json.loads(rec["explanation"])
    assert got["method"]["name"] == "occlusion" and got["faces"]
    assert got["faces"][0]["p_fake"] == pytest.approx(rec["result"]["faces"][0]["p_fake"]
                                                      if rec["result"]["faces"] else
                                                      rec["result"]["p_fake"], abs=1e-5)
    assert explanation_state(jobs.get(plain)) == "none"
    assert explain_job(ctx, asked) == explain_job(ctx, plain) == "skipped"  # made once, or none
    assert not any(tmp_path.iterdir())  # both uploads deleted


def _done_with_a_map(ctx, seed: int) -> tuple[str, str]:
    """A still uploaded with "Why?" asked for and its verdict recorded: (job id, verdict)."""
    job_id = new_job_id()
    ctx.jobs.create(job_id, filename="x.jpg", stored=ctx.storage.save(make_jpeg(seed=seed), ".jpg"),
                    sha256=str(seed), client="t", explain=True)
    assert run_jobs(ctx, [job_id]) == {job_id: "done"}
    return job_id, ctx.jobs.get(job_id)["result"]


def test_a_failed_map_loses_nothing(model_dir, detector, clean_redis, tmp_path, monkeypatch):
    import worker.explain

    ctx = context(load_model(model_dir), detector, clean_redis, tmp_path)
    jobs = ctx.jobs
    job_id, verdict = _done_with_a_map(ctx, 23)

    def broken(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(worker.explain, "explain_image", broken)
    assert explain_job(ctx, job_id) == "failed"
    rec = jobs.get(job_id)
    # The verdict stands as it was recorded; the failure is said; the upload is gone all the same.
    assert rec["status"] == "done" and rec["result"] == verdict and rec["finishes"] == 1
    assert json.loads(rec["explanation"]) == {"error": "failed"}
    assert explanation_state(rec) == "failed"
    assert not any(tmp_path.iterdir())


def test_a_map_past_its_attempts_fails_with_the_reason(model_dir, detector, clean_redis,
                                                      tmp_path):
    """A map whose worker died (or ran out of time) on it DFD_MAX_ATTEMPTS times is not made
    again: recorded as failed with the reason, its upload deleted, the verdict untouched."""
    from shared.attempts import MAP_GAVE_UP

    ctx = context(load_model(model_dir), detector, clean_redis, tmp_path)
    jobs = ctx.jobs
    job_id, verdict = _done_with_a_map(ctx, 26)
    for n in range(ctx.settings.MAX_ATTEMPTS):
        assert jobs.claim_map(job_id, f"killed-{n}", -1) == "run"  # each task died on it
    assert any(tmp_path.iterdir())  # kept for the map until now
    assert explain_job(ctx, job_id) == "failed"
    rec = jobs.get(job_id)
    assert json.loads(rec["explanation"]) == {
        "error": "failed", "reason": MAP_GAVE_UP % ctx.settings.MAX_ATTEMPTS}
    assert rec["status"] == "done" and rec["result"] == verdict and rec["finishes"] == 1
    assert not any(tmp_path.iterdir())
    assert explain_job(ctx, job_id) == "skipped"


def test_what_verdicts_call_for_and_the_sweep_are_plain_functions(model_dir, detector,
                                                                  clean_redis, tmp_path):
    from worker.common import follow_ups, sweep

    ctx = context(load_model(model_dir), detector, clean_redis, tmp_path)
    jobs, storage = ctx.jobs, ctx.storage
    page, batch = new_job_id(), new_job_id()
    jobs.create(page, filename="x.jpg", stored=storage.save(make_jpeg(seed=24), ".jpg"),
                sha256="24", client="t", explain=True, callback="https://example.com/h",
                priority=0)
    jobs.create(batch, filename="y.jpg", stored=storage.save(make_jpeg(seed=25), ".jpg"),
                sha256="25", client="t", priority=6)
    outcomes = run_jobs(ctx, [page, batch])
    # The page job's webhook, and its map at the step after its own priority (page 0: 3).
    assert follow_ups(ctx, {**outcomes, "gone": "skipped"}) == ([page], [(page, 3)])
    # A video whose task never came back (its lease lapsed) is queued again, its priority kept.
    video = new_job_id()
    jobs.create(video, filename="v.mp4", stored="v.mp4", sha256="v", client="t", media="video",
                priority=6)
    assert jobs.claim_ready(video, 0, owner="killed", lease=-1).running == [video]
    assert sweep(ctx) == (([(video, 6)], [], []), []) and jobs.get(video)["status"] == "queued"
    assert sweep(ctx) == (([], [], []), [])  # once a minute


def test_a_job_past_its_attempts_fails_as_any_failed_job(model_dir, detector, clean_redis,
                                                         tmp_path):
    """The sweep finds a video whose task outlived the time limit on each of its attempts: the
    store fails it, and the worker counts it, deletes its upload and owes its webhook."""
    from prometheus_client import REGISTRY

    from shared.attempts import GAVE_UP
    from worker.common import follow_ups, gave_up, sweep

    ctx = context(load_model(model_dir), detector, clean_redis, tmp_path)
    video, stored = new_job_id(), ctx.storage.save(b"\0" * 64, ".mp4")
    ctx.jobs.create(video, filename="v.mp4", stored=stored, sha256="v", client="t",
                    media="video", callback="https://example.com/h")
    for n in range(ctx.settings.MAX_ATTEMPTS):
        assert ctx.jobs.claim_ready(video, 0, owner=f"killed-{n}", lease=-1).running == [video]
    failed = REGISTRY.get_sample_value("dfd_jobs_finished_total", {"status": "failed"}) or 0
    lapsed, webhooks = sweep(ctx)
    assert lapsed == ([], [video], []) and webhooks == []  # owed from now: not lapsed
    assert gave_up(ctx, lapsed.gave_up) == {video: "failed"}
    assert REGISTRY.get_sample_value("dfd_jobs_finished_total", {"status": "failed"}) == \
        failed + 1
    assert follow_ups(ctx, {video: "failed"}) == ([video], [])
    assert not ctx.storage.path(stored).exists()
    assert ctx.jobs.get(video)["error"] == GAVE_UP % ctx.settings.MAX_ATTEMPTS


def test_a_webhook_given_up_by_the_sweep_is_logged_and_counted(model_dir, detector, clean_redis,
                                                               tmp_path, caplog):
    """A webhook already sent again DFD_MAX_ATTEMPTS times and still owed a lease on: the sweep
    sends it no more, says why in the log and counts it as abandoned."""
    from prometheus_client import REGISTRY

    from shared.jobs import WEBHOOKS
    from worker.common import sweep

    ctx = context(load_model(model_dir), detector, clean_redis, tmp_path)
    job_id = new_job_id()
    ctx.jobs.create(job_id, filename="x.jpg", stored="", sha256="x", client="t",
                    callback="https://example.com/h")
    assert ctx.jobs.finish(job_id, error="boom")
    for _ in range(ctx.settings.MAX_ATTEMPTS):
        assert ctx.jobs.webhooks.lapsed(lease=0).again == [job_id]  # each task died on it
    clean_redis.zadd(WEBHOOKS, {job_id: 0})  # a lease on: as if the last send was long ago
    before = REGISTRY.get_sample_value("dfd_webhooks_total", {"outcome": "abandoned"}) or 0
    with caplog.at_level("WARNING", logger="worker.common"):
        assert sweep(ctx).webhooks == []
    assert ctx.jobs.get(job_id)["webhook"] == "abandoned"
    assert REGISTRY.get_sample_value("dfd_webhooks_total", {"outcome": "abandoned"}) == \
        before + 1
    assert f"job {job_id}: its webhook was sent again {ctx.settings.MAX_ATTEMPTS} times" \
        in caplog.text

"""The naive baseline: a one-file Flask app that scores the whole photo inside the request.

This is the design the service replaces (the seed's): decode the upload, resize the whole image
to 224x224, call the served model on it, answer the verdict in the response. It loads the same
model directory as the service, in one of two forms (BENCH_NAIVE_RUNTIME):
- 'keras' (the baseline): the model in its framework's own form, as a minimal app loads it: the
  Keras network (a trunk model: the Keras float rebuild of its tower and its head), called once
  per request. This is what the seed did, and what issue 25's 3x is measured against.
- 'auto': the service's own loader, which picks the fastest runtime for this CPU behind its
  numeric self-check. A side row: it gives the naive design the service's runtime work, so the
  ratio against it is of the design alone.
It runs under gunicorn with sync workers, as many as the service runs worker processes (one per
core by default), each loading the model after the fork (gunicorn without --preload). The
handler is deliberately what a minimal app does: no face finding, no stability check, no
batching, no queue.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from flask import Flask, jsonify, request
from PIL import Image

RUNTIME_ENV = "BENCH_NAIVE_RUNTIME"
RUNTIMES = {"keras": "the model's Keras form", "auto": "the service's runtime"}


def create_app() -> Flask:
    """gunicorn 'bench.naive:create_app()': loads the model directory BENCH_NAIVE_MODEL."""
    from detector.model import load_model

    model = load_model(os.environ["BENCH_NAIVE_MODEL"], os.environ.get(RUNTIME_ENV, "keras"),
                       device="cpu")
    app = Flask("naive")

    @app.post("/predict")
    def predict():
        data = request.files["image"].read()
        img = Image.open(io.BytesIO(data)).convert("RGB").resize((224, 224), Image.BILINEAR)
        x = np.asarray(img, dtype=np.uint8)[None]
        p_fake = float(model.predict(x)[0])
        return jsonify(label="Fake" if p_fake > model.threshold else "Real", p_fake=p_fake)

    @app.get("/healthz")
    def healthz():
        return "ok"

    return app


def run_naive(model_dir: str, photos: list[Path], *, web_workers: int, clients: int,
              warmup: int, idle: int, deadline_s: float, runtime: str = "keras") -> dict:
    """Serve the naive app under gunicorn and push the same kind of load through it."""
    from bench.e2e import passed_on, run_load, run_sequential
    from bench.measure import RssSampler, cpu_per_image
    from harness.services import ROOT, free_port, service_env, stop, wait_for

    workdir = Path(tempfile.mkdtemp(prefix="dfd-naive-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = service_env({"BENCH_NAIVE_MODEL": str(Path(model_dir).resolve()),
                       RUNTIME_ENV: runtime, **passed_on()})
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), "-k", "sync", "-w", str(web_workers),
         "--timeout", "120", "-b", f"127.0.0.1:{port}", "bench.naive:create_app()"],
        cwd=ROOT, env=env, stdout=open(workdir / "naive.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT, start_new_session=True)

    def submit(c, i, path):
        status, body = c.upload("/predict", "image", path.name, path.read_bytes())
        if status != 200 or "p_fake" not in body:
            raise RuntimeError(f"naive app answered {status}: {body}")
        return "done", False

    submit.base_url = url

    try:
        from bench.e2e import _ok

        wait_for(lambda: _ok(url + "/healthz"), 240, "naive gunicorn", proc)
        with RssSampler({"web": proc.pid}) as rss:
            # Enough warm-up that every worker has paid for its first call.
            run_load(submit, photos[:warmup], clients, 120)
            idle_res = run_sequential(submit, photos[warmup:warmup + idle]) if idle else None
            cpu0, own0 = rss.cpu_s(), time.process_time()
            load = run_load(submit, photos[warmup + idle:], clients, deadline_s)
            load["cpu_ms_per_image"] = cpu_per_image(rss, cpu0, own0, load["done"])
        load.update(config={"web_workers": web_workers, "worker_class": "sync",
                            "runtime": runtime},
                    idle_latency_ms=idle_res, rss_mb={"web": rss.max_mb("web")})
        return load
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)

"""`python -m bench` (`make bench`): model, worker pipeline, end to end and the naive baseline.

Prints a table and writes bench/results/latest.json (and latest.txt, the same table). Run it on
an otherwise idle machine: every number here is a share of the same CPU.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = ROOT / "models" / "dfd-mnv2"
FALLBACK_MODEL = ROOT / "var" / "bench-model" / "untrained-dfd-mnv2"


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--model", default=str(DEFAULT_MODEL),
                   help="model directory (card.json, model.keras, model.tflite)")
    p.add_argument("--video-model", help="the model of the video part (default: --model); "
                   "`make bench` gives the served one")
    p.add_argument("--n", type=int, default=500, help="images in each end-to-end load run")
    p.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    p.add_argument("--quick", action="store_true", help="small counts and short timings (smoke)")
    p.add_argument("--no-variants", action="store_true",
                   help="skip the alternative configurations (batch 1, one worker, ...)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    return p.parse_args(argv)


def resolve_model(path: str) -> tuple[str, str | None]:
    """(model dir, note); builds an untrained model of the shipped architecture if none."""
    from bench.model_bench import build_untrained
    from detector.model import ModelError, check_model

    try:
        check_model(path)
        root = Path(path)
        if not (root / "model.keras").is_file() or not (root / "model.tflite").is_file():
            raise ModelError(f"{path} needs both model.keras (naive baseline, FLOPs) and "
                             "model.tflite (the worker)")
        return path, None
    except ModelError as exc:
        note = (f"no usable trained model at {path} ({exc}). Falling back to an UNTRAINED model "
                "of the shipped architecture (training/model.py build_model, MobileNetV2 width "
                f"1.0, internal size 160) in {FALLBACK_MODEL}: timings are those of the real "
                "network, verdicts are meaningless. Train one with `make train` for a real run.")
    log(note)
    if not (FALLBACK_MODEL / "card.json").is_file():
        ctx = mp.get_context("spawn")
        with ctx.Pool(1) as pool:
            pool.apply(build_untrained, (str(FALLBACK_MODEL),))
    return str(FALLBACK_MODEL), note


def bench_model(ctx, model_dir: str, cores: int, batch: int, quick: bool) -> dict:
    from bench.machine import matmul_numpy
    from bench.model_bench import parallel_rate, tf_side, tflite_rate

    secs = 1.0 if quick else 4.0
    log("model: FLOPs, Keras timing, TensorFlow matmul (child process)")
    with ctx.Pool(1) as pool:
        tf = pool.apply(tf_side, (model_dir, [1, batch], secs, 1.0 if quick else 4.0))
    log("model: numpy matmul")
    np_gflops = matmul_numpy(seconds=1.0 if quick else 4.0)
    runs = list(tf["keras"])
    log("model: LiteRT by threads and batch")
    with ctx.Pool(1) as pool:
        for threads in sorted({1, cores}):
            for b in sorted({1, batch}):
                runs.append(pool.apply(tflite_rate, (model_dir, threads, b, secs)))
            if batch > 1:
                runs.append(pool.apply(tflite_rate, (model_dir, threads, batch, secs, 1)))
    per_call = batch  # as the worker calls the model: every crop of a batch in one call
    if cores > 1:
        log(f"model: {cores} processes at once")
        for step in sorted({1, batch}):
            runs.append(parallel_rate(ctx, model_dir, cores, 1, batch, step, secs))
    served = next(r for r in reversed(runs) if r["runtime"] == "tflite" and r["threads"] == 1
                  and r["batch"] == batch and r["per_call"] == per_call)
    ceiling = max(np_gflops, tf["matmul_tf_gflops"]) * 1e9
    flops = tf["flops"]["total"]
    from detector.model import check_model

    card = check_model(model_dir)
    return {
        "path": (os.path.relpath(model_dir, ROOT) if Path(model_dir).resolve().is_relative_to(ROOT)
                 else model_dir),
        "name": card["name"], "version": card["version"],
        "params": tf["params"], "flops_per_image": flops, "flops_by_type": tf["flops"]["by_type"],
        "internal_size": tf["flops"]["internal"],
        "matmul_gflops": {"numpy": np_gflops, "tensorflow": tf["matmul_tf_gflops"],
                          "ceiling": ceiling / 1e9},
        "runs": runs,
        "images_per_s_batch1": next(r["images_per_s"] for r in runs if r["runtime"] == "tflite"
                                    and r["threads"] == 1 and r["batch"] == 1),
        "served_images_per_s": served["images_per_s"],
        "efficiency": served["images_per_s"] * flops / ceiling,
        "efficiency_config": (f"{served.get('processes', 1)} processes x 1 LiteRT thread, "
                              f"batch {served['batch']}, {served['per_call']} crop(s) per call"),
        "best_efficiency": max(r["images_per_s"] for r in runs) * flops / ceiling,
    }


def bench_pipeline(ctx, model_dir: str, photo_dir: Path, big_dir: Path, cores: int, batch: int,
                   quick: bool) -> dict:
    from bench import pipeline_bench as pb

    secs = 2.0 if quick else 8.0
    base = {"model_dir": model_dir, "photo_dir": str(photo_dir), "seconds": secs,
            "limit": 64 if quick else 200}
    with ctx.Pool(1) as pool:
        log("pipeline: stages")
        stages = pool.apply(pb.stages, ({**base},))
    variants = []

    def one(label: str, **kw):
        with ctx.Pool(1) as pool:
            r = pool.apply(pb.run, ({**base, "batch": batch, **kw},))
        r["label"] = label
        variants.append(r)
        log(f"pipeline: {label}: {r['images_per_s']:.0f} img/s")
        return r

    shipped = one(f"1 process, shipped (batch {batch}, 1+1 threads, full detector, "
                  "stability check: 4 versions of faces near the threshold)")
    # The stability check's price, measured beside it (issue 11: keep >= 70% of the rate
    # without it).
    plain = one("without the stability check (one version of each face)", stability=False)
    log(f"pipeline: stability check keeps {shipped['images_per_s'] / plain['images_per_s']:.0%}"
        " of the rate without it")
    if not quick:
        one("batch 1 (DFD_BATCH_SIZE=1)", batch=1)
        one(f"batch {batch}, one crop per LiteRT call", crops_per_call=1)
        if cores > 1:
            one(f"{cores} LiteRT threads for model and detector", model_threads=cores,
                detector_threads=cores)
        one("short-range detector (not shipped: misses small faces)", detector_model="short")
        one("no reduced decoding (decode_size None)", decode_size=None)
    if cores > 1:
        par = pb.parallel(ctx, cores, {**base, "batch": batch})
        variants.append({"label": f"{cores} processes at once (sum)", **par})
        log(f"pipeline: {cores} processes: {par['images_per_s']:.0f} img/s")
    with ctx.Pool(1) as pool:
        log("pipeline: 12 MP JPEGs, whole vs reduced decode")
        big = pool.apply(pb.large_decode, ({"model_dir": model_dir, "photo_dir": str(big_dir)},))
    return {"images_per_s": shipped["images_per_s"], "stages_ms": stages, "variants": variants,
            "stability_share": shipped["images_per_s"] / plain["images_per_s"],
            "large_jpeg": big, "batch_size": batch}


def bench_e2e(model_dir: str, photos: list[Path], cores: int, batch: int, clients: int,
              quick: bool, variants: bool, n: int) -> tuple[dict, dict]:
    from bench.e2e import run_e2e
    from bench.naive import run_naive

    warm, idle = (8, 5) if quick else (24, 30)
    common = {"clients": clients, "warmup": warm, "idle": idle,
              "deadline_s": 60 if quick else 300}
    # make run's defaults (scripts/run.sh): a worker process per core, a web process per 2 cores.
    shipped = {"worker_procs": cores, "batch_size": batch, "web_workers": max(1, cores // 2),
               "web_threads": 8}
    log(f"e2e: shipped config {shipped}, {n} images")
    e2e = run_e2e(model_dir, photos[:warm + idle + n], **shipped, **common)
    log(f"e2e: {e2e['images_per_s']:.1f} img/s, idle p50 "
        f"{(e2e['idle_latency_ms'] or {}).get('p50')}")
    e2e["variants"] = []
    if variants:
        for label, change in [("1 worker process", {"worker_procs": 1}),
                              ("DFD_BATCH_SIZE=1", {"batch_size": 1}),
                              ("1 web process", {"web_workers": 1}),
                              ("2 web processes", {"web_workers": 2}),
                              ("plain POST, then GET ?wait=10", {"upload_wait": False})]:
            if change.get("worker_procs") == cores or \
                    change.get("web_workers") == shipped["web_workers"]:
                continue
            log(f"e2e variant: {label}")
            r = run_e2e(model_dir, photos[:warm + n], **{**shipped, **change},
                        **{**common, "idle": 0})
            r["label"] = label
            e2e["variants"].append(r)
            log(f"e2e variant: {label}: {r['images_per_s']:.1f} img/s")
    nn = min(n, 40) if quick else min(n, 300)
    runs = []
    for workers in ([cores, 1] if variants and cores > 1 else [cores]):
        log(f"naive: gunicorn {workers} sync worker(s), Keras model.predict, {nn} images")
        r = run_naive(model_dir, photos[:warm + idle + nn], web_workers=workers,
                      clients=clients, warmup=warm, idle=idle,
                      deadline_s=60 if quick else 240)
        r["label"] = f"naive, {workers} sync worker(s)"
        log(f"naive: {workers} worker(s): {r['images_per_s']:.1f} img/s")
        runs.append(r)
    # The baseline is the naive app's best configuration: the ratio is never flattered.
    naive = dict(max(runs, key=lambda r: r["images_per_s"]))
    naive["variants"] = runs
    return e2e, naive


def _write_photos(photo_dir: Path, big_dir: Path, n: int, quick: bool) -> list[Path]:
    """The photos every stage uses: n (plus warm-up and idle ones) distinct 640x480 JPEGs with a
    face, and a few 12 MP ones; the 640x480 paths."""
    import numpy as np

    from bench import photos

    count = (8 + 5 if quick else 24 + 30) + n  # warm-up and idle-latency photos first
    log(f"photos: composing {count} distinct 640x480 JPEGs with a face")
    paths = []
    for i, b in enumerate(photos.make_photos(count, seed=1)):
        p = photo_dir / f"photo{i:05d}.jpg"
        p.write_bytes(b)
        paths.append(p)
    rng = np.random.default_rng(2)
    faces = photos.face_files()
    for i in range(3 if quick else 10):
        (big_dir / f"big{i:03d}.jpg").write_bytes(photos.make_large_photo(faces[i], rng))
    return paths


def main(argv: list[str]) -> int:
    """`python -m bench`: every stage, then the report (JSON and text)."""
    args = parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from bench import machine, photos, report
    from shared import settings

    started = time.time()
    try:
        photos.face_files()
    except photos.NoFacesError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    n = 60 if args.quick and args.n == 500 else args.n
    if n < 500 and not args.quick:
        log(f"note: --n {n} is under the 500 images the issue asks for")
    batch = settings.load().BATCH_SIZE
    model_dir, note = resolve_model(args.model)
    info = machine.describe()
    cores = info["cores"] or 1
    log(f"machine: {info['cpu_model']}, {cores} cores")
    ctx = mp.get_context("spawn")
    data: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                  "command": "python -m bench " + " ".join(argv), "quick": args.quick,
                  "machine": info, "model_note": note, "batch_size": batch}
    with tempfile.TemporaryDirectory(prefix="dfd-bench-photos-") as tmp:
        photo_dir, big_dir = Path(tmp) / "640x480", Path(tmp) / "12mp"
        photo_dir.mkdir()
        big_dir.mkdir()
        paths = _write_photos(photo_dir, big_dir, n, args.quick)

        data["model"] = bench_model(ctx, model_dir, cores, batch, args.quick)
        data["worker"] = bench_pipeline(ctx, model_dir, photo_dir, big_dir, cores, batch,
                                        args.quick)
        e2e, naive = bench_e2e(model_dir, paths, cores, batch, args.clients, args.quick,
                               not (args.quick or args.no_variants), n)
    data["e2e"], data["naive"] = e2e, naive
    from bench import video_bench

    log("video: a 30 s 720p clip by stage; the track rule against the frame mean")
    with ctx.Pool(1) as pool:
        video_model = args.video_model or model_dir
        data["video"] = pool.apply(video_bench.measure, (video_model, args.quick))
    data["ratio_e2e_to_naive"] = (e2e["images_per_s"] / naive["images_per_s"]
                                  if naive["images_per_s"] else None)
    data["rss_mb"] = {"web": e2e["rss_mb"]["web"], "worker": e2e["rss_mb"]["worker"],
                      "naive_web": naive["rss_mb"]["web"]}
    data["duration_s"] = time.time() - started
    text = report.write(data, Path(args.out))
    print(text)
    print(video_bench.render(data["video"]["stages"], data["video"]["rules"]))
    if note:
        print(f"NOTE: {note}")
    log(f"wrote {args.out} and {Path(args.out).with_suffix('.txt')} in {data['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

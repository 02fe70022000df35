"""The served model alone, as `detector.model.load_model` serves it on this CPU: ms per call and
images/s by threads, batch and processes; operations per image; efficiency against the int8 and
float32 matmul ceilings measured on this machine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def time_calls(call, seconds: float, min_calls: int = 3) -> float:
    """Median seconds per call over about `seconds` (after one warm-up call)."""
    call()
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < min_calls:
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return float(np.median(times))


def crops(n: int, seed: int = 0) -> np.ndarray:
    """n random uint8 224x224 RGB crops (the model's cost does not depend on the pixels)."""
    return np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def _load(model_dir: str, threads: int):
    from detector.model import load_model

    return load_model(model_dir, threads=threads, device="cpu")


def runtime_of(model) -> str:
    """The runtime the loader chose, as the model names it (the loader's choice may change),
    with the tower's weight layout where it chose one ("onnx u8s8")."""
    described = model.runtime.describe()
    return " ".join(str(v) for v in (described["runtime"], described.get("layout")) if v)


def rate(model_dir: str, threads: int, batch: int, per_call: int, seconds: float) -> dict:
    """One process: ms per batch and images/s, the batch scored per_call crops a call."""
    model = _load(model_dir, threads)
    x = crops(batch)

    def call():
        for s in range(0, batch, per_call):
            model.predict(x[s:s + per_call])

    sec = time_calls(call, seconds, min_calls=1)  # a CLIP batch of 8 is seconds a call
    return {"runtime": runtime_of(model), "processes": 1, "threads": threads, "batch": batch,
            "per_call": per_call, "ms_per_batch": sec * 1e3, "images_per_s": batch / sec}


def _parallel_worker(args) -> float:
    model_dir, threads, batch, per_call, seconds, barrier = args
    model = _load(model_dir, threads)
    x = crops(batch)
    model.predict(x[:per_call])
    barrier.wait()
    n, t0 = 0, time.perf_counter()
    while n == 0 or time.perf_counter() - t0 < seconds:
        for s in range(0, batch, per_call):
            model.predict(x[s:s + per_call])
        n += batch
    return n / (time.perf_counter() - t0)


def parallel_rate(ctx, model_dir: str, procs: int, threads: int, batch: int, per_call: int,
                  seconds: float) -> dict:
    """Images/s of `procs` processes scoring at once (as `procs` worker processes would)."""
    with ctx.Manager() as manager, ctx.Pool(procs) as pool:
        barrier = manager.Barrier(procs)
        rates = pool.map(_parallel_worker, [(model_dir, threads, batch, per_call, seconds,
                                             barrier)] * procs)
    return {"runtime": "as served", "processes": procs, "threads": threads, "batch": batch,
            "per_call": per_call, "images_per_s": float(sum(rates))}


def efficiency(images_per_s: float, flops: dict, ceiling: dict, cores: int) -> dict:
    """The share of each ceiling (all cores) that the model's operations reach at that rate."""
    if not flops.get("total"):
        return {"int8": None, "float32": None}
    ops = images_per_s * flops["total"] / 1e9
    return {"int8": ops / ceiling[f"int8_t{cores}"], "float32": ops / ceiling[f"float32_t{cores}"],
            "gops": ops}


def section(ctx, model_dir: str, cores: int, batch: int, seconds: float) -> dict:
    """Section 1: operations, ceilings, one row per configuration, the served one's efficiency.

    Served: `cores` worker processes of one model thread each (`make run`), a batch scored per
    call as the worker does (one call, or one crop a call where the runtime's features would
    depend on the batch: the loader's model does that split itself)."""
    from bench import flops as fl
    from bench.machine import ceilings
    from detector.model import check_model

    with ctx.Pool(1) as pool:
        ops = pool.apply(fl.served_flops, (model_dir,))
    ceiling = ceilings(ctx, cores, max(seconds / 2, 0.5))
    runs = []
    with ctx.Pool(1) as pool:
        for threads in sorted({1, cores}):
            for b in sorted({1, batch}):
                runs.append(pool.apply(rate, (model_dir, threads, b, b, seconds)))
    served = (parallel_rate(ctx, model_dir, cores, 1, batch, batch, seconds) if cores > 1
              else dict(runs[-1]))
    served["runtime"] = f"{runs[0]['runtime']}, as served"
    if cores > 1:
        runs.append(served)
    for r in runs:
        used = r["processes"] * r["threads"]
        r["efficiency"] = efficiency(r["images_per_s"], ops, ceiling,
                                     used if used in (1, cores) else cores)
    card = check_model(model_dir)
    return {"path": (os.path.relpath(model_dir, ROOT) if Path(model_dir).resolve()
                     .is_relative_to(ROOT) else model_dir),
            "name": card["name"], "version": card["version"], "runtime": runs[0]["runtime"],
            "flops": ops, "ceilings": ceiling, "runs": runs,
            "served_images_per_s": served["images_per_s"],
            "served_config": f"{served['processes']} process(es) x {served['threads']} thread, "
                             f"batch {served['batch']}",
            "efficiency": efficiency(served["images_per_s"], ops, ceiling, cores)}

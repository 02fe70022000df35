"""The served model alone: ms per call and images/s by runtime, batch and threads; FLOPs per image.

FLOPs per image are counted from the Keras model, 2 x multiply-accumulates of each layer, from its
output shape and kernel:
- Conv2D: 2 * H_out * W_out * C_out * (k_h * k_w * C_in)
- DepthwiseConv2D: 2 * H_out * W_out * C_out * (k_h * k_w)
- Dense: 2 * units_in * units_out
at the resolution the trunk really runs at (the model resizes its 224 px input inside). Biases,
BatchNorm (folded into the convolutions in the export), activations, pooling and the internal
resize are left out: together well under 1% of the total.
"""

from __future__ import annotations

import time

import numpy as np

COUNTED = ("Conv2D", "DepthwiseConv2D", "Dense")


def _layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def count_flops(model) -> dict:
    """FLOPs per image of a Keras model, by layer type (see the module docstring)."""
    by_type = dict.fromkeys(COUNTED, 0)
    internal = None
    for layer in _layers(model):
        kind = type(layer).__name__
        if kind == "Resizing":
            internal = int(layer.output.shape[1])
        if kind not in COUNTED:
            continue
        out = [int(d) for d in layer.output.shape[1:]]
        k = [int(d) for d in layer.kernel.shape]
        if kind == "Conv2D":
            macs = np.prod(out) * k[0] * k[1] * k[2] // max(int(getattr(layer, "groups", 1)), 1)
        elif kind == "DepthwiseConv2D":
            macs = np.prod(out) * k[0] * k[1]
        else:
            macs = k[0] * k[1]
        by_type[kind] += int(2 * macs)
    return {"total": sum(by_type.values()), "by_type": by_type,
            "input": int(model.input.shape[1]), "internal": internal or int(model.input.shape[1])}


def time_calls(call, seconds: float, min_calls: int = 5) -> float:
    """Median seconds per call over about `seconds` (after two warm-up calls)."""
    call()
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


def tflite_rate(model_dir: str, threads: int, batch: int, seconds: float,
                per_call: int | None = None) -> dict:
    """The served model as the worker loads it (LiteRT): ms per batch and images/s.

    per_call=1 scores the batch one crop per interpreter call (what the worker does on a CPU).
    """
    from detector.model import load_model

    model = load_model(model_dir, runtime="tflite", threads=threads)
    x = crops(batch)
    step = per_call or batch

    def call():
        for s in range(0, batch, step):
            model.predict(x[s:s + step])

    sec = time_calls(call, seconds)
    return {"runtime": "tflite", "threads": threads, "batch": batch, "per_call": step,
            "ms_per_batch": sec * 1e3, "images_per_s": batch / sec}


def keras_rate(model, batch: int, seconds: float) -> dict:
    """The Keras model through predict_on_batch (TensorFlow's fastest call on the CPU)."""
    x = crops(batch).astype(np.float32)
    sec = time_calls(lambda: model.predict_on_batch(x), seconds)
    return {"runtime": "keras", "threads": "tf default", "batch": batch, "per_call": batch,
            "ms_per_batch": sec * 1e3, "images_per_s": batch / sec}


def tf_side(model_dir: str, batches: list[int], seconds: float, matmul_seconds: float) -> dict:
    """Everything that needs TensorFlow, run in a child process: FLOPs, TF matmul, Keras timing."""
    import keras

    from bench.machine import matmul_tf
    from detector.model import check_model

    card = check_model(model_dir)
    model = keras.saving.load_model(f"{model_dir}/{card['files']['keras']}", safe_mode=True)
    out = {"flops": count_flops(model), "params": int(model.count_params()),
           "keras": [keras_rate(model, b, seconds) for b in batches]}
    out["matmul_tf_gflops"] = matmul_tf(seconds=matmul_seconds)
    return out


def _parallel_worker(args) -> float:
    model_dir, threads, batch, per_call, seconds, barrier = args
    from detector.model import load_model

    model = load_model(model_dir, runtime="tflite", threads=threads)
    x = crops(batch)
    model.predict(x[:per_call])
    barrier.wait()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
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
    return {"runtime": "tflite", "processes": procs, "threads": threads, "batch": batch,
            "per_call": per_call, "images_per_s": float(sum(rates))}


def build_untrained(out: str) -> None:
    """An untrained model of the shipped architecture (timings only), as training exports one."""
    from training.export import export_model
    from training.model import build_model

    card = {"name": "dfd-mobilenetv2-untrained", "threshold": 0.3, "temperature": 1.0,
            "input": {"shape": [224, 224, 3], "dtype": "float32", "range": [0, 255]},
            "training": {"internal_size": 160, "trunk_width": 1.0}}
    export_model(build_model(None, internal_size=160, width=1.0), out, card, None)

"""The runtimes `bench.trunk_bench` times, each run in a child process of its own (thread settings
are per process for TensorFlow and OpenVINO). Each child returns the milliseconds per crop by
batch and the features of the faces it was given, {output: (N, d)} (LiteRT: its raw output
tensors, named by the parent)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

# The bench's own runtimes: rows, never served (the served one is the ONNX tower in the layout
# detector.runtimes.choice picks; a tower with other features would be another model).
OPENVINO_HINT = "pip install openvino (not a project dependency; the bench row is skipped)"


def timed(fn, x: np.ndarray, batches, seconds: float, min_calls: int = 2) -> dict:
    """ms per crop by batch: median of calls over about `seconds` after one warm-up call (few
    calls: a float ViT-B at batch 16 is seconds per call on 2 shared cores); also the process's
    CPU ms per crop ("cpu<b>"), which contention from other jobs does not inflate."""
    out = {}
    for b in batches:
        xb = np.ascontiguousarray(np.resize(x, (b, *x.shape[1:])))
        fn(xb)
        times, cpu, end = [], [], time.perf_counter() + seconds
        while time.perf_counter() < end or len(times) < min_calls:
            t, c = time.perf_counter(), time.process_time()
            fn(xb)
            times.append(time.perf_counter() - t)
            cpu.append(time.process_time() - c)
        out[b] = float(np.median(times)) / b * 1e3
        out[f"cpu{b}"] = float(np.median(cpu)) / b * 1e3
    return out


def _tf_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def ort_child(layout: str, outputs, threads: int, batches, seconds: float,
              faces: np.ndarray) -> dict:
    """ONNX Runtime on the int8 tower in a weight layout (detector.trunk.LAYOUTS)."""
    from detector.trunk import Tower

    tower = Tower(tuple(outputs), threads=threads, layout=layout)
    return {"ms": timed(tower.features, faces, batches, seconds), "feats": tower.features(faces)}


def keras_child(precision: str, outputs, threads: int, batches, seconds: float,
                faces: np.ndarray) -> dict:
    """The Keras float rebuild; precision 'bf16' computes in bfloat16 (AMX on such a CPU)."""
    _tf_threads(threads)
    import keras

    from detector import clip_keras

    if precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = clip_keras.build_keras_tower(tuple(outputs))  # the saved file pins float32
    else:
        model = clip_keras.load_keras_tower(tuple(outputs))

    def fn(x):
        return {k: np.asarray(v, np.float32)
                for k, v in clip_keras.features(model, x, outputs).items()}

    return {"ms": timed(fn, faces, batches, seconds), "feats": fn(faces)}


def tflite_file(outputs) -> Path:
    """The dynamic-range int8 LiteRT file of the Keras tower (converted once, cached)."""
    from detector import clip_keras

    path = clip_keras.keras_path(outputs).with_suffix(".dynint8.tflite")
    if not path.is_file():
        import tensorflow as tf

        conv = tf.lite.TFLiteConverter.from_keras_model(clip_keras.load_keras_tower(outputs))
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(conv.convert())
        tmp.replace(path)
    return path


def litert_child(_: str, outputs, threads: int, batches, seconds: float,
                 faces: np.ndarray) -> dict:
    """LiteRT dynamic-range int8 (weights int8, activations quantised per row at run time)."""
    from ai_edge_litert.interpreter import Interpreter

    from detector.clip_keras import keras_inputs

    path = tflite_file(tuple(outputs))
    interp = Interpreter(model_path=str(path), num_threads=threads)
    inp = interp.get_input_details()[0]["index"]
    outs = sorted(interp.get_output_details(), key=lambda d: d["name"])
    state = {"batch": 0}

    def run(crops: np.ndarray) -> list:
        x = keras_inputs(crops)
        if state["batch"] != len(x):
            interp.resize_tensor_input(inp, list(x.shape))
            interp.allocate_tensors()
            state["batch"] = len(x)
        interp.set_tensor(inp, x)
        interp.invoke()
        return [interp.get_tensor(d["index"]).copy() for d in outs]

    return {"ms": timed(run, faces, batches, seconds), "raw": run(faces),
            "size_mb": path.stat().st_size / 2**20}


def openvino_child(layout: str, outputs, threads: int, batches, seconds: float,
                   faces: np.ndarray) -> dict:
    """OpenVINO on the tower: 'f32' the float graph (OpenVINO computes it in bf16 where the CPU
    has it), else an int8 layout's file."""
    try:
        import openvino as ov
    except ImportError:
        return {"skipped": f"openvino is not installed: {OPENVINO_HINT}"}
    import onnx

    from detector import trunk

    if layout == trunk.FLOAT:
        path = trunk.CACHE / trunk.cut_name(tuple(outputs), layout=layout)
        if not path.is_file():  # removed below: four times the int8 file
            onnx.save(trunk.cut(tuple(outputs), layout=layout), str(path))
    else:
        path = trunk.build_cut(tuple(outputs), layout=layout)
    compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_NUM_THREADS": threads})
    if layout == trunk.FLOAT:
        path.unlink()
    names = [compiled.output(i) for i in range(len(outputs))]

    def call(crops: np.ndarray) -> list:
        got = compiled({0: trunk.pixel_values(crops)})
        return [np.asarray(got[n]) for n in names]

    def run(crops: np.ndarray) -> dict:
        # The int8 file quantises activations over the batch: one crop per call, as served.
        got = [call(crops)] if layout == trunk.FLOAT else [call(c[None]) for c in crops]
        return {o: np.concatenate([g[i] for g in got]) for i, o in enumerate(outputs)}

    precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))
    return {"ms": timed(run, faces, batches, seconds), "feats": run(faces),
            "note": f"OpenVINO {ov.__version__}, computes in {precision}"}


CHILD = {"ort": ort_child, "keras": keras_child, "litert": litert_child,
         "openvino": openvino_child}

"""`python -m bench.trunk_bench`: the CLIP ViT-B/16 trunk alone, by runtime, cut, threads, batch.

Runtimes: (a) ONNX Runtime on the shipped int8 file (detector.trunk.Tower), cut after b12 (+embed)
and after b8 and b6; (b) the Keras float rebuild (detector.clip_keras) on the CPU; (c) LiteRT
dynamic-range int8 (weights int8, activations quantised per row at run time) converted from that
Keras model. Each is timed in its own process (thread settings are per process for TensorFlow),
per crop at batch 1 and 16, 1 and 2 threads. Agreement: cosine of each output to the Keras float
tower on 16 real face crops. GFLOP/s: ViT-B/16 at 224 px is about 17.6 GFLOP per image for 12
blocks, scaled by the blocks kept; the ceiling is a float32 numpy 2048x2048 matmul and an ONNX
Runtime MatMulInteger (uint8 x int8) of the same size. The load average is recorded at start and
end: this machine's 2 cores are shared, every figure is a share of them.
"""

from __future__ import annotations

import argparse
import glob
import json
import multiprocessing as mp
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "fairface-real" / "real"
GFLOP_12 = 17.6
FULL = ("b12", "embed")
REF = ("b6", "b8", "b12", "embed")


def log(msg: str) -> None:
    print(f"[trunk-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def face_crops(n: int = 16) -> np.ndarray:
    from PIL import Image

    files = sorted(glob.glob(str(FACES / "*.jpg")))[:n]
    if len(files) < n:
        raise SystemExit(f"trunk bench: needs {n} face crops in {FACES}")
    return np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224), Image.BICUBIC))
                     for f in files])


def blocks(outputs) -> int:
    return max(12 if o == "embed" else int(o[1:]) for o in outputs)


def _tf_threads(threads: int) -> None:
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)


def _timed(fn, x: np.ndarray, batches, seconds: float, min_calls: int = 2) -> dict:
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


def ort_child(outputs, threads: int, batches, seconds: float, faces: np.ndarray) -> dict:
    from detector.trunk import Tower

    tower = Tower(tuple(outputs), threads=threads)
    return {"ms": _timed(tower.features, faces, batches, seconds),
            "feats": tower.features(faces)}


def keras_child(outputs, threads: int, batches, seconds: float, faces: np.ndarray) -> dict:
    _tf_threads(threads)
    from detector import clip_keras

    model = clip_keras.load_keras_tower(tuple(outputs))

    def fn(x):
        return clip_keras.features(model, x, outputs)

    return {"ms": _timed(fn, faces, batches, seconds), "feats": fn(faces)}


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


def _litert(path: Path, threads: int):
    from ai_edge_litert.interpreter import Interpreter

    from detector.clip_keras import keras_inputs

    interp = Interpreter(model_path=str(path), num_threads=threads)
    inp = interp.get_input_details()[0]["index"]
    # Outputs come back in the converter's order; match_outputs names them.
    outs = sorted(interp.get_output_details(), key=lambda d: d["name"])
    state = {"batch": 0}

    def run(crops: np.ndarray) -> dict:
        x = keras_inputs(crops)
        if state["batch"] != len(x):
            interp.resize_tensor_input(inp, list(x.shape))
            interp.allocate_tensors()
            state["batch"] = len(x)
        interp.set_tensor(inp, x)
        interp.invoke()
        return [interp.get_tensor(d["index"]).copy() for d in outs]

    return run


def litert_child(outputs, threads: int, batches, seconds: float, faces: np.ndarray) -> dict:
    path = tflite_file(tuple(outputs))
    run = _litert(path, threads)
    return {"ms": _timed(run, faces, batches, seconds), "raw": run(faces),
            "size_mb": path.stat().st_size / 2**20}


def match_outputs(raw: list[np.ndarray], ref: dict, outputs) -> dict:
    """LiteRT output tensors named by the output they agree with best (widths differ for
    'embed'; among the 768-d ones the cosine picks: a wrong match would show as ~0)."""
    got, left = {}, list(range(len(raw)))
    for name in outputs:
        best = max((i for i in left if raw[i].shape == ref[name].shape),
                   key=lambda i: cosine(raw[i], ref[name]).mean())
        got[name] = raw[best]
        left.remove(best)
    return got


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def ceilings(seconds: float) -> dict:
    from bench.machine import int8_ceiling, matmul_numpy

    return {"numpy_f32_2048": matmul_numpy(2048, seconds),
            "ort_int8_2048_t1": int8_ceiling(2048, 1, seconds),
            "ort_int8_2048_t2": int8_ceiling(2048, 2, seconds)}


def configs(args) -> list[tuple[str, tuple[str, ...]]]:
    """Keras float first (its features are the reference), at REF's outputs: the same 12 blocks
    as b12+embed, with the b6/b8 class tokens read on the way."""
    # The served cut (b6, one thread per worker process) right after the reference: the
    # runtime serving it now (ORT) against the one that could (LiteRT dynamic-range int8).
    runs = [("keras-float", REF, 1), ("ort-int8", ("b6",), 1), ("litert-dynint8", ("b6",), 1),
            ("ort-int8", FULL, 1), ("ort-int8", ("b8",), 1),
            ("litert-dynint8", REF, 1), ("ort-int8", FULL, 2), ("ort-int8", ("b8",), 2),
            ("litert-dynint8", REF, 2), ("keras-float", REF, 2)]
    if args.more:
        runs += [("ort-int8", ("b6",), 2), ("litert-dynint8", ("b6",), 2)]
    return runs


CHILD = {"ort-int8": ort_child, "keras-float": keras_child, "litert-dynint8": litert_child}


def measure(ctx, args, faces: np.ndarray, done) -> list[dict]:
    """Every configuration in turn, most needed first; done(rows) after each (the results so far
    are written, so a run cut short by its time still leaves them)."""
    rows, ref = [], None
    batches = (1, 16)
    for runtime, outputs, threads in configs(args):
        log(f"{runtime} {'+'.join(outputs)} threads {threads}")
        with ctx.Pool(1) as pool:
            r = pool.apply(CHILD[runtime], (outputs, threads, batches, args.seconds, faces))
        ref = ref or r["feats"]
        feats = r.get("feats") or match_outputs(r["raw"], ref, outputs)
        cos = {o: cosine(feats[o], ref[o]) for o in outputs}
        for b in batches:
            rows.append({"runtime": runtime, "cut": "+".join(outputs), "threads": threads,
                         "batch": b, "ms_per_crop": r["ms"][b], "cpu_ms": r["ms"][f"cpu{b}"],
                         "gflop": GFLOP_12 * blocks(outputs) / 12,
                         "cos": {o: [float(c.min()), float(c.mean())] for o, c in cos.items()},
                         "size_mb": r.get("size_mb")})
        done(rows)
    return rows


def _fmt_cos(cos: dict) -> str:
    return ", ".join(f"{o} {lo:.4f}/{mean:.4f}" for o, (lo, mean) in cos.items())


def report(data: dict) -> str:
    m, c = data["machine"], data["ceilings"]
    lines = [f"# CLIP ViT-B/16 trunk benchmark ({data['started_at']})", "",
             f"Machine: {m['cpu_model']}; {m['cores']} cores ({', '.join(m['simd'])}); "
             f"{m['memory_gb']} GB; Python {m['python']}.",
             f"Load average (1/5/15 min) at start {data['load_start']}, at end "
             f"{data['load_end']}: {data['load_note']}",
             f"Matmul ceiling: numpy float32 2048x2048 {c['numpy_f32_2048']:.1f} GFLOP/s; ONNX "
             f"Runtime MatMulInteger (u8 x s8) 2048x2048 {c['ort_int8_2048_t1']:.1f} GOP/s at "
             f"1 thread, {c['ort_int8_2048_t2']:.1f} at 2.",
             f"GFLOP per crop: {GFLOP_12} for 12 blocks, scaled by blocks kept. Cosine: to the "
             "Keras float tower on 16 FairFace crops, min/mean per output.", "",
             "ms/crop is wall time (inflated by other jobs); CPU ms/crop is the process's CPU "
             "time, which they do not inflate (at 1 thread, about the idle wall time); GFLOP/s "
             "from the CPU time per thread used.", "",
             "| runtime | cut | threads | batch | ms/crop | CPU ms/crop | GFLOP/s "
             "| cosine to float (min/mean) |", "|---|---|---|---|---|---|---|---|"]
    for r in data["rows"]:
        rate = r["gflop"] / r["cpu_ms"] * r["threads"] * 1e3
        lines.append(f"| {r['runtime']} | {r['cut']} | {r['threads']} | {r['batch']} | "
                     f"{r['ms_per_crop']:.1f} | {r['cpu_ms']:.1f} | {rate:.0f} | "
                     f"{_fmt_cos(r['cos'])} |")
    sizes = {f"{r['runtime']} {r['cut']}": r["size_mb"] for r in data["rows"] if r["size_mb"]}
    lines += ["", "LiteRT file sizes: " + ", ".join(f"{k} {v:.0f} MB" for k, v in sizes.items()),
              f"Took {data['seconds_total']:.0f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.trunk_bench",
                                description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0, help="timing per configuration")
    p.add_argument("--quick", action="store_true", help="short timings (smoke)")
    p.add_argument("--more", action="store_true",
                   help="also the b6 cut at 2 threads in both runtimes")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "trunk.txt"))
    args = p.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 0.5)
    os.chdir(ROOT)
    from bench import machine

    started = time.time()
    load_start = [round(v, 2) for v in os.getloadavg()]
    ctx = mp.get_context("spawn")
    faces = face_crops()
    log("matmul ceilings")
    data = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "machine": machine.describe(), "ceilings": ceilings(1.0 if args.quick else 2.0),
            "rows": [], "load_start": load_start,
            "load_note": os.environ.get("DFD_BENCH_LOAD_NOTE", "(no note)")}

    def done(rows):
        data.update(rows=rows, load_end=[round(v, 2) for v in os.getloadavg()],
                    seconds_total=time.time() - started)
        Path(args.out).write_text(report(data))
        Path(args.out).with_suffix(".json").write_text(json.dumps(data, indent=1))

    measure(ctx, args, faces, done)
    print(Path(args.out).read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m bench.trunk_bench`: the CLIP ViT-B/16 trunk alone, by runtime, cut, threads, batch.

Runtimes (bench/trunk_runtimes.py, each timed in its own process): ONNX Runtime on the int8 tower
in each weight layout (as shipped, u8s8; the unsigned rewrite, u8u8), the Keras float rebuild
(float32, and bfloat16 where the CPU has it), LiteRT dynamic-range int8 converted from it, and
OpenVINO (float graph and the shipped int8 file) where it is installed. The served cut (b6) at one
thread per worker process comes first; the 12-block cuts follow with --more. Batches: 1, and 16
where the runtime batches (ONNX int8 files quantise activations over the batch: one crop a call).

Agreement on 16 real face crops, detail-normalised as served: cosine of each output to the Keras
float tower, and for the served cut the served head's calibrated logit against the one it gives
on the served features (the layout detector.runtimes.choice picks here): a runtime more than the
golden outputs' tolerance away is a model change, a row and nothing more. GFLOP/s: ViT-B/16 at 224
px is about 17.6 GFLOP per image for 12 blocks, scaled by the blocks kept; the ceiling is a float32
numpy 2048x2048 matmul and an ONNX Runtime MatMulInteger (uint8 x int8) of the same size. The load
average is recorded at start and end: the 2 cores are shared, every figure is a share of them.
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
SERVED_CUT = ("b6",)
GOLDEN_LOGITS = 0.5  # tests/test_golden.py's tolerance between CPU kinds, in calibrated logits


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


def configs(args, flags: frozenset[str]) -> list[tuple]:
    """(label, child, variant, outputs, threads, batches), Keras float first: its features are
    the reference."""
    from detector.trunk import FLOAT, SHIPPED, UNSIGNED

    one, many = (1,), (1, 16)
    runs = [("keras-f32", "keras", "f32", REF, 1, many),
            (f"ort-{SHIPPED}", "ort", SHIPPED, SERVED_CUT, 1, one),
            (f"ort-{UNSIGNED}", "ort", UNSIGNED, SERVED_CUT, 1, one),
            ("litert-dynint8", "litert", "", SERVED_CUT, 1, many),
            ("openvino-f32", "openvino", FLOAT, SERVED_CUT, 1, many),
            (f"openvino-{SHIPPED}", "openvino", SHIPPED, SERVED_CUT, 1, one)]
    if flags & {"avx512_bf16", "amx_bf16"}:
        runs.append(("keras-bf16", "keras", "bf16", SERVED_CUT, 1, many))
    runs += [(f"ort-{SHIPPED}", "ort", SHIPPED, SERVED_CUT, 2, one),
             ("litert-dynint8", "litert", "", SERVED_CUT, 2, many)]
    if args.more:
        runs += [(f"ort-{SHIPPED}", "ort", SHIPPED, FULL, 1, one),
                 (f"ort-{UNSIGNED}", "ort", UNSIGNED, FULL, 1, one),
                 ("litert-dynint8", "litert", "", REF, 1, many),
                 (f"ort-{SHIPPED}", "ort", SHIPPED, FULL, 2, one)]
    return runs


def served_view(faces: np.ndarray) -> dict:
    """Through the served model itself (its stacked logit included): the layout it serves here,
    the faces as its tower sees them (detail-normalised), and `logits`, b6 features -> the head's
    calibrated logits on those faces, with `served` those of the served features."""
    from detector.crop import normalise_detail
    from detector.model import load_model

    model = load_model(ROOT / "models" / "dfd-clip")
    rt, detail = model.runtime, model.card["input"]["crop"]["detail"]
    shown = normalise_detail(faces, detail["px"], detail["jpeg_quality"])
    extra = {name: fn(faces) for name, fn in rt.extra.items()}

    def logits(b6: np.ndarray) -> np.ndarray:
        return rt.head.logits({"b6": b6, **extra}) / model.temperature

    return {"layout": rt.check["layout"], "shown": shown, "logits": logits,
            "served": logits(rt.tower.features(shown)["b6"])}


def measure(ctx, args, faces: np.ndarray, done) -> list[dict]:
    """Every configuration in turn, most needed first; done(rows) after each (the results so far
    are written, so a run cut short by its time still leaves them)."""
    from bench.trunk_runtimes import CHILD
    from detector.runtimes.choice import cpu_flags

    rows, ref, view = [], None, served_view(faces)
    for label, child, variant, outputs, threads, batches in configs(args, cpu_flags()):
        log(f"{label} {'+'.join(outputs)} threads {threads}")
        with ctx.Pool(1) as pool:
            r = pool.apply(CHILD[child], (variant, outputs, threads, batches, args.seconds,
                                          view["shown"]))
        if "skipped" in r:
            log(r["skipped"])
            continue
        ref = ref or r["feats"]
        feats = r.get("feats") or match_outputs(r["raw"], ref, outputs)
        dz = float(np.abs(view["logits"](feats["b6"]) - view["served"]).max()) \
            if "b6" in feats else None
        for b in batches:
            rows.append({"runtime": label, "cut": "+".join(outputs), "threads": threads,
                         "batch": b, "ms_per_crop": r["ms"][b], "cpu_ms": r["ms"][f"cpu{b}"],
                         "gflop": GFLOP_12 * blocks(outputs) / 12, "served": label ==
                         f"ort-{view['layout']}", "dlogit": dz, "note": r.get("note"),
                         "cos": {o: [float(c.min()), float(c.mean())] for o, c in
                                 ((o, cosine(feats[o], ref[o])) for o in outputs)},
                         "size_mb": r.get("size_mb")})
        done(rows)
    return rows


def _fmt_cos(cos: dict) -> str:
    return ", ".join(f"{o} {lo:.4f}/{mean:.4f}" for o, (lo, mean) in cos.items())


def _verdict(r: dict) -> str:
    if r["served"]:
        return "**served here**"
    if r["dlogit"] is None:
        return "(no b6)"
    word = "within" if r["dlogit"] < GOLDEN_LOGITS else "beyond: a model change"
    return f"{r['dlogit']:.3f} ({word})"


def report(data: dict) -> str:
    m, c = data["machine"], data["ceilings"]
    lines = [f"# CLIP ViT-B/16 trunk benchmark ({data['started_at']})", "",
             f"Machine: {m['cpu_model']}; {m['cores']} cores; CPU kind {data['cpu_kind']} "
             f"(int8 instruction sets); {m['memory_gb']} GB; Python {m['python']}.",
             f"Load average (1/5/15 min) at start {data['load_start']}, at end "
             f"{data['load_end']}: {data['load_note']}",
             f"Matmul ceiling: numpy float32 2048x2048 {c['numpy_f32_2048']:.1f} GFLOP/s; ONNX "
             f"Runtime MatMulInteger (u8 x s8) 2048x2048 {c['ort_int8_2048_t1']:.1f} GOP/s at "
             f"1 thread, {c['ort_int8_2048_t2']:.1f} at 2.",
             f"GFLOP per crop: {GFLOP_12} for 12 blocks, scaled by blocks kept. Cosine: to the "
             "Keras float tower on 16 FairFace crops (detail-normalised as served), min/mean "
             "per output. Δlogit: the largest change of the served model's calibrated logit on "
             "those faces against the served features; the golden outputs allow "
             f"{GOLDEN_LOGITS} between CPU kinds.", "",
             "ms/crop is wall time (inflated by other jobs); CPU ms/crop is the process's CPU "
             "time, which they do not inflate (at 1 thread, about the idle wall time); GFLOP/s "
             "from the CPU time per thread used.", "",
             "| runtime | cut | threads | batch | ms/crop | CPU ms/crop | GFLOP/s "
             "| cosine to float (min/mean) | Δlogit vs served |", "|---" * 9 + "|"]
    for r in data["rows"]:
        rate = r["gflop"] / r["cpu_ms"] * r["threads"] * 1e3
        lines.append(f"| {r['runtime']} | {r['cut']} | {r['threads']} | {r['batch']} | "
                     f"{r['ms_per_crop']:.1f} | {r['cpu_ms']:.1f} | {rate:.0f} | "
                     f"{_fmt_cos(r['cos'])} | {_verdict(r)} |")
    sizes = {f"{r['runtime']} {r['cut']}": r["size_mb"] for r in data["rows"] if r["size_mb"]}
    notes = sorted({f"{r['runtime']}: {r['note']}" for r in data["rows"] if r.get("note")})
    lines += ["", "LiteRT file sizes: " + ", ".join(f"{k} {v:.0f} MB" for k, v in sizes.items()),
              *notes, f"Took {data['seconds_total']:.0f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.trunk_bench",
                                description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=4.0, help="timing per configuration")
    p.add_argument("--quick", action="store_true", help="short timings (smoke)")
    p.add_argument("--more", action="store_true",
                   help="also the 12-block cuts (ONNX layouts, LiteRT)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "trunk.txt"))
    args = p.parse_args(argv)
    if args.quick:
        args.seconds = min(args.seconds, 0.5)
    os.chdir(ROOT)
    from bench import machine
    from detector.runtimes.choice import cpu_flags, cpu_kind

    started = time.time()
    load_start = [round(v, 2) for v in os.getloadavg()]
    ctx = mp.get_context("spawn")
    faces = face_crops()
    log("matmul ceilings")
    data = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
            "machine": machine.describe(), "cpu_kind": cpu_kind(cpu_flags()),
            "ceilings": ceilings(1.0 if args.quick else 2.0),
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

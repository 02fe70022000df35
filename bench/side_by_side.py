"""`python -m bench.side_by_side [NEW OLD]` (in `make bench`): the worker pipeline of two models,
by default the served one (shared.settings) and the one before it (--previous).

For each model: milliseconds per image of each stage (decode, face finder, crop, the model's
call, the stability check's variants), and the images per second of one worker process and of
one process per core at once, as `make run` starts them (one model thread each), with the
stability check on. The photos are the bench's own (bench.photos): one face each, 640x480.
Writes bench/results/side_by_side.txt (and .json).
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measure(ctx, model_dir: str, photo_dir: str, cores: int, seconds: float, limit: int) -> dict:
    from bench import pipeline_bench as pb
    from detector.model import check_model

    base = {"model_dir": model_dir, "photo_dir": photo_dir, "seconds": seconds,
            "limit": limit, "batch": 8}
    with ctx.Pool(1) as pool:
        stages = pool.apply(pb.stages, ({**base, "seconds": seconds / 4},))
    with ctx.Pool(1) as pool:
        one = pool.apply(pb.run, ({**base},))
    par = pb.parallel(ctx, cores, base) if cores > 1 else {"images_per_s": one["images_per_s"]}
    card = check_model(model_dir)
    return {"model": f"{card['name']} {card['version']}", "path": model_dir, "stages_ms": stages,
            "one_process": one["images_per_s"], "all_cores": par["images_per_s"],
            "processes": cores}


def table(rows: list[dict], machine: dict) -> str:
    keys = ("decode_ms", "detect_ms", "crop_ms", "classify_ms", "variants_ms",
            "classify_variants_ms", "explain_ms_per_face")
    from bench.machine import feature_text

    lines = [f"machine: {machine['cpu_model']}, {machine['cores']} cores ({feature_text(machine)})"
             f"; load before: {machine['load']}", "",
             "| stage (ms per image) | " + " | ".join(r["model"] for r in rows) + " |",
             "| --- |" + " --- |" * len(rows)]
    for k in keys:
        lines.append(f"| {k} | " + " | ".join(f"{r['stages_ms'].get(k, float('nan')):.1f}"
                                             for r in rows) + " |")
    lines.append("| images/s, 1 worker process | " +
                 " | ".join(f"{r['one_process']:.1f}" for r in rows) + " |")
    lines.append(f"| images/s, {rows[0]['processes']} processes at once | " +
                 " | ".join(f"{r['all_cores']:.1f}" for r in rows) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    import argparse

    from bench import machine, photos, served_model

    p = argparse.ArgumentParser(prog="python -m bench.side_by_side", description=__doc__)
    p.add_argument("models", nargs="*", help="model directories (default: the served one and "
                   "--previous)")
    p.add_argument("--previous", default=str(ROOT / "models" / "dfd-mnv2"),
                   help="the model before, beside the served one when no models are named")
    p.add_argument("--quick", action="store_true", help="small counts (smoke)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "side_by_side.txt"))
    args = p.parse_args(argv)
    models = args.models or [served_model(), args.previous]
    seconds, count = (1.0, 4) if args.quick else (20.0, 48)
    info = machine.describe()
    info["load"] = os.getloadavg()[0]
    cores = info["cores"] or 1
    ctx = mp.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="dfd-bench-sbs-") as tmp:
        for i, data in enumerate(photos.make_photos(count, seed=3)):
            (Path(tmp) / f"p{i:03d}.jpg").write_bytes(data)
        rows = []
        for m in models:
            log(f"pipeline of {m}")
            rows.append(measure(ctx, m, tmp, cores, seconds, count))
    text = table(rows, info)
    out = Path(args.out)
    out.with_suffix(".txt").write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"machine": info, "rows": rows}, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

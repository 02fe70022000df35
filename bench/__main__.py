"""`python -m bench` (`make bench`): the served model, the worker pipeline, end to end against the
naive app serving the same model, idle latency through the page's request, memory, video.

The model is the one the service serves: DFD_MODEL_PATH, else its default in shared/settings.py
(--model names another). --previous adds the model before as a side-by-side row. Prints a table
and writes bench/results/latest.json (and latest.txt, the same table). Run it on an otherwise
idle machine: every number here is a share of the same CPU. --quick runs every section with
small counts (a smoke run: its numbers are not results).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

from bench import served_model

ROOT = Path(__file__).resolve().parents[1]
FULL = {"seconds": 8.0, "model_seconds": 4.0, "stage_seconds": 5.0, "pipeline_photos": 48,
        "explain_passes": 3, "warmup": 16, "idle": 20, "naive_n": 300, "variant_n": 200,
        "big": 10, "deadline_s": 600, "video_clips": 40, "video_s": 30}
QUICK = {"seconds": 1.0, "model_seconds": 0.5, "stage_seconds": 0.5, "pipeline_photos": 4,
         "explain_passes": 1, "warmup": 2, "idle": 2, "naive_n": 4, "variant_n": 4,
         "big": 1, "deadline_s": 240, "video_clips": 1, "video_s": 4}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    p.add_argument("--model", help="model directory (default: the served one, DFD_MODEL_PATH "
                   "or shared/settings.py's default)")
    p.add_argument("--previous", help="the model before: a side-by-side row, never the headline")
    p.add_argument("--n", type=int, help="images in the end-to-end load run (default 500; "
                   "--quick: 6)")
    p.add_argument("--clients", type=int, default=8, help="concurrent HTTP clients")
    p.add_argument("--quick", action="store_true", help="every section with small counts")
    p.add_argument("--no-variants", action="store_true",
                   help="skip the alternative configurations (batch 1, one worker, ...)")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "latest.json"))
    return p.parse_args(argv)


def _write_photos(photo_dir: Path, big_dir: Path, count: int, big: int) -> list[Path]:
    """`count` distinct 640x480 JPEGs with one face each, and `big` 12 MP ones; the 640x480
    paths."""
    import numpy as np

    from bench import photos

    log(f"photos: composing {count} distinct 640x480 JPEGs with a face")
    paths = []
    for i, b in enumerate(photos.make_photos(count, seed=1)):
        p = photo_dir / f"photo{i:05d}.jpg"
        p.write_bytes(b)
        paths.append(p)
    rng = np.random.default_rng(2)
    faces = photos.face_files()
    for i in range(big):
        (big_dir / f"big{i:03d}.jpg").write_bytes(photos.make_large_photo(faces[i], rng))
    return paths


def _sections(ctx, data: dict, args, counts: dict, batch: int, cores: int) -> None:
    """Every section on data["model_dir"], in order, into data."""
    from bench import model_bench, sections, video_bench

    model_dir, variants = data["model_dir"], not (args.quick or args.no_variants)
    with tempfile.TemporaryDirectory(prefix="dfd-bench-photos-") as tmp:
        photo_dir, big_dir = Path(tmp) / "640x480", Path(tmp) / "12mp"
        photo_dir.mkdir()
        big_dir.mkdir()
        count = counts["warmup"] + 2 * counts["idle"] + max(counts["n"], counts["naive_n"])
        paths = _write_photos(photo_dir, big_dir, max(count, counts["pipeline_photos"]),
                              counts["big"])
        log("model: operations, ceilings, rates")
        data["model"] = model_bench.section(ctx, model_dir, cores, batch,
                                            counts["model_seconds"])
        data["worker"] = sections.pipeline(ctx, model_dir, photo_dir, big_dir, cores, batch,
                                           counts, variants)
        data["e2e"], data["naive"] = sections.e2e(model_dir, paths, cores, batch, args.clients,
                                                  counts, variants)
        if args.previous:
            data["previous"] = sections.previous_row(ctx, args.previous, photo_dir, cores,
                                                     batch, counts, data["model"]["ceilings"])
    log("video: a 720p clip by stage; the track rule against the frame mean")
    with ctx.Pool(1) as pool:
        data["video"] = pool.apply(video_bench.measure, (model_dir, args.quick,
                                                         counts["video_clips"],
                                                         counts["video_s"]))


def main(argv: list[str]) -> int:
    """`python -m bench`: every section, then the report (JSON and text)."""
    args = parse_args(argv)
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from bench import machine, photos, report
    from detector.model import ModelError, check_model
    from shared import settings

    started = time.time()
    counts = dict(QUICK if args.quick else FULL)
    counts["n"] = args.n or (6 if args.quick else 500)
    model_dir = args.model or served_model()
    try:
        photos.face_files()
        for m in filter(None, (model_dir, args.previous)):
            check_model(m)
    except (photos.NoFacesError, ModelError) as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    batch = settings.load().BATCH_SIZE
    info = machine.describe()
    cores = info["cores"] or 1
    log(f"machine: {info['cpu_model']}, {cores} cores; {machine.feature_text(info)}")
    log(f"model: {model_dir}" + ("" if args.model else " (served: shared.settings)"))
    data: dict = {"started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                  "command": "python -m bench " + " ".join(argv), "quick": args.quick,
                  "machine": info, "model_dir": model_dir, "served": args.model is None
                  or Path(args.model).resolve() == Path(served_model()).resolve(),
                  "batch_size": batch, "counts": counts}
    _sections(mp.get_context("spawn"), data, args, counts, batch, cores)
    e2e, naive = data["e2e"], data["naive"]
    same = naive["served_runtime"]
    data["ratio_e2e_to_naive"] = (e2e["images_per_s"] / naive["images_per_s"]
                                  if naive["images_per_s"] else None)
    data["ratio_e2e_to_naive_served_runtime"] = (e2e["images_per_s"] / same["images_per_s"]
                                                 if same["images_per_s"] else None)
    data["rss_mb"] = {**e2e["rss_mb"], "naive_web": naive["rss_mb"]["web"]}
    data["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    data["duration_s"] = time.time() - started
    text = report.write(data, Path(args.out))
    print(text)
    log(f"wrote {args.out} and {Path(args.out).with_suffix('.txt')} in {data['duration_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The bench's sections 2-4 and the previous model's side-by-side row, each run on one model
directory with the counts `python -m bench` chose (small ones for --quick)."""

from __future__ import annotations

import sys
import time
from pathlib import Path


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def _one(ctx, base: dict, variants: list, label: str, **kw) -> dict:
    from bench import pipeline_bench as pb

    with ctx.Pool(1) as pool:
        r = pool.apply(pb.run, ({**base, **kw},))
    r["label"] = label
    variants.append(r)
    log(f"pipeline: {label}: {r['images_per_s']:.1f} img/s")
    return r


def check_cost(stages: dict, checked_share: float) -> dict:
    """Issue 25 point 4: the stability check's own CPU a face, against the served score's. A
    card serving its versions' mean scores them for every face as its score (the check then
    reads their spread at no extra pass); otherwise the check's versions are its own cost, on
    the share of faces it checks."""
    versions = stages["variants_ms"] + stages["classify_variants_ms"]
    score = stages["classify_ms"] + (versions if stages["served_mean"] else 0.0)
    extra = 0.0 if stages["served_mean"] else checked_share * versions
    return {"score_ms_per_face": score, "check_extra_ms_per_face": extra,
            "check_cost_ratio": extra / score, "served_mean": stages["served_mean"]}


def pipeline(ctx, model_dir: str, photo_dir: Path, big_dir: Path, cores: int, batch: int,
             counts: dict, variants: bool) -> dict:
    """Section 2: the stages of one process, then the headline: `cores` worker processes at
    once (as `make run` starts them), the stability check on, one face per photo."""
    from bench import pipeline_bench as pb

    base = {"model_dir": model_dir, "photo_dir": str(photo_dir), "batch": batch,
            "seconds": counts["seconds"], "limit": counts["pipeline_photos"]}
    with ctx.Pool(1) as pool:
        log("pipeline: stages")
        stages = pool.apply(pb.stages, ({**base, "seconds": counts["stage_seconds"],
                                         "explain_passes": counts["explain_passes"]},))
    log(f"pipeline: {cores} worker processes at once, stability check on")
    served = pb.parallel(ctx, cores, base)
    served["label"] = f"{cores} processes at once (sum), stability check on: as served"
    log(f"pipeline: {served['images_per_s']:.1f} img/s")
    plain = pb.parallel(ctx, cores, {**base, "stability": False})
    plain["label"] = f"{cores} processes at once (sum), " + (
        "the crop alone (not the served score: the card serves its versions' mean)"
        if stages["served_mean"] else "without the stability check")
    rows = [served, plain]
    _one(ctx, base, rows, f"1 process, batch {batch}, 1+1 threads, stability check on")
    if variants:
        _one(ctx, base, rows, "1 process, batch 1 (DFD_BATCH_SIZE=1)", batch=1)
        if cores > 1:
            _one(ctx, base, rows, f"1 process, {cores} threads for model and detector",
                 model_threads=cores, detector_threads=cores)
        _one(ctx, base, rows, "1 process, no reduced decoding (decode_size None)",
             decode_size=None)
    with ctx.Pool(1) as pool:
        log("pipeline: 12 MP JPEGs, whole vs reduced decode")
        big = pool.apply(pb.large_decode, ({"model_dir": model_dir, "photo_dir": str(big_dir)},))
    return {"images_per_s": served["images_per_s"], "processes": cores, "stages_ms": stages,
            "variants": rows, "checked_share": served["checked_share"],
            "faces_per_image": served["faces_per_image"],
            "stability_share": served["images_per_s"] / plain["images_per_s"],
            **check_cost(stages, served["checked_share"]),
            "large_jpeg": big, "batch_size": batch}


def e2e(model_dir: str, photos: list[Path], cores: int, batch: int, clients: int,
        counts: dict, variants: bool) -> tuple[dict, dict]:
    """Sections 3-4: the service as `make run` starts it, its idle latency through the page's
    request, the load run; then the naive app serving the same model on the same photos: in its
    Keras form (the baseline) and through the service's own runtime (a side row)."""
    from bench.e2e import run_e2e
    from bench.naive import RUNTIMES, run_naive

    warm, idle, n = counts["warmup"], counts["idle"], counts["n"]
    common = {"clients": clients, "warmup": warm, "deadline_s": counts["deadline_s"]}
    # make run's defaults (scripts/run.sh): a worker process per core, a web process per 2 cores.
    shipped = {"worker_procs": cores, "batch_size": batch, "web_workers": max(1, cores // 2),
               "web_threads": 8}
    log(f"e2e: shipped config {shipped}, {n} images")
    service = run_e2e(model_dir, photos[:warm + 2 * idle + n], **shipped, **common, idle=idle)
    log(f"e2e: {service['images_per_s']:.1f} img/s, idle p50 through the page "
        f"{(service['idle_latency_ms'] or {}).get('p50')}")
    service["variants"] = []
    changes = [("1 worker process", {"worker_procs": 1}), ("DFD_BATCH_SIZE=1", {"batch_size": 1}),
               ("plain POST, then GET ?wait=10", {"upload_wait": False})]
    for label, change in changes if variants else []:
        if change.get("worker_procs") == cores:
            continue
        log(f"e2e variant: {label}")
        r = run_e2e(model_dir, photos[:warm + counts["variant_n"]], **{**shipped, **change},
                    **common, idle=0)
        r["label"] = label
        service["variants"].append(r)
    runs = []
    for runtime in ("keras", "auto"):
        # The baseline in both worker counts; the service's-runtime side row at one per core.
        for workers in ([cores, 1] if variants and cores > 1 and runtime == "keras"
                        else [cores]):
            label = f"naive, {workers} sync worker(s), {RUNTIMES[runtime]}"
            log(f"{label}: {counts['naive_n']} images")
            r = run_naive(model_dir, photos[:warm + idle + counts["naive_n"]],
                          web_workers=workers, clients=clients, warmup=warm, idle=idle,
                          deadline_s=counts["deadline_s"], runtime=runtime)
            r["label"] = label
            log(f"{label}: {r['images_per_s']:.1f} img/s")
            runs.append(r)
    # The baseline is the naive app's best configuration: the ratio is never flattered.
    naive = dict(max((r for r in runs if r["config"]["runtime"] == "keras"),
                     key=lambda r: r["images_per_s"]))
    naive["variants"] = runs
    naive["served_runtime"] = next(r for r in runs if r["config"]["runtime"] == "auto")
    return service, naive


def previous_row(ctx, model_dir: str, photo_dir: Path, cores: int, batch: int,
                 counts: dict, ceilings: dict) -> dict:
    """The model before, side by side: the model alone and the pipeline, both as served."""
    from bench import pipeline_bench as pb
    from bench.flops import served_flops
    from bench.model_bench import efficiency, parallel_rate
    from detector.model import check_model

    card = check_model(model_dir)
    log(f"previous model {card['name']} {card['version']}: model and pipeline")
    with ctx.Pool(1) as pool:
        ops = pool.apply(served_flops, (model_dir,))
    model = parallel_rate(ctx, model_dir, cores, 1, batch, batch, counts["model_seconds"])
    base = {"model_dir": model_dir, "photo_dir": str(photo_dir), "batch": batch,
            "seconds": counts["seconds"], "limit": counts["pipeline_photos"]}
    pipe = pb.parallel(ctx, cores, base)
    with ctx.Pool(1) as pool:
        stages = pool.apply(pb.stages, ({**base, "seconds": counts["stage_seconds"],
                                         "explain_passes": 0},))
    return {"path": model_dir, "name": card["name"], "version": card["version"],
            "model_images_per_s": model["images_per_s"], "flops": ops,
            "efficiency": efficiency(model["images_per_s"], ops, ceilings, cores),
            "pipeline_images_per_s": pipe["images_per_s"],
            "checked_share": pipe["checked_share"], **check_cost(stages, pipe["checked_share"])}

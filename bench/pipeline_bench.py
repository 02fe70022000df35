"""The worker's pipeline in one process, without Redis: decode -> find faces -> crop -> classify.

Each measurement runs in a fresh process (spawned, as a Celery child is a process of its own)
with the worker's own code: `shared.images.decode_pil` at `detector.analyze.DECODE_SIZE`, then
`detector.analyze.analyze_many` over groups of DFD_BATCH_SIZE images, which finds faces
(`detector.faces.FaceDetector`, default "full" BlazeFace), crops them (`detector.crop.face_crops`)
and scores every crop of the group (`detector.model.load_model`: the runtime it chooses on this
CPU, one thread, as a worker process loads it), with the stability check unless told otherwise.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

MAX_PIXELS = 40_000_000


def _load(model_dir: str, model_threads: int, detector_threads: int, detector_model: str):
    from detector.faces import FaceDetector
    from detector.model import load_model

    return (load_model(model_dir, threads=model_threads, device="cpu"),
            FaceDetector(detector_model, num_threads=detector_threads))


def _read(photo_dir: str, limit: int | None = None) -> list[bytes]:
    files = sorted(Path(photo_dir).glob("*.jpg"))[:limit]
    return [f.read_bytes() for f in files]


def decode(data: bytes, max_pixels: int, reduce_to: int | None = None):
    """The worker's decode of an upload (worker/pipeline.py _load): JPEGs at reduced scale,
    kept as a PIL image."""
    from detector.analyze import DECODE_SIZE
    from shared.images import decode_pil

    return decode_pil(data, max_pixels=max_pixels,
                      reduce_to=DECODE_SIZE if reduce_to == "default" else reduce_to)


def _run_once(photos: list[bytes], batch: int, face_finder, model, decode_size,
              per_call: int | None = None, stability: bool = True) -> list[dict]:
    from detector.analyze import analyze_many

    results = []
    for s in range(0, len(photos), batch):
        imgs = [decode(b, MAX_PIXELS, reduce_to=decode_size) for b in photos[s:s + batch]]
        results += analyze_many(imgs, face_finder, model, per_call=per_call, stability=stability)
    return results


def faces_checked(results: list[dict]) -> tuple[int, int]:
    """(faces, faces whose variants the stability check scored) in a list of results."""
    faces = [f for r in results for f in r.get("faces", [])]
    return len(faces), sum(1 for f in faces if (f.get("stability") or {}).get("checked"))


def run(args: dict) -> dict:
    """One worker process's pipeline throughput; args: model_dir, photo_dir, batch, seconds,
    model_threads, detector_threads, detector_model, decode_size ('default' = DECODE_SIZE),
    limit, stability, barrier (optional, to start several processes together)."""
    from detector.analyze import DECODE_SIZE

    decode_size = DECODE_SIZE if args.get("decode_size", "default") == "default" \
        else args["decode_size"]
    model, face_finder = _load(args["model_dir"], args.get("model_threads", 1),
                               args.get("detector_threads", 1), args.get("detector_model", "full"))
    photos = _read(args["photo_dir"], args.get("limit"))
    batch = args.get("batch", 8)
    per_call, stability = args.get("crops_per_call"), args.get("stability", True)
    _run_once(photos[:batch], batch, face_finder, model, decode_size, per_call,
              stability)  # warm-up
    if args.get("barrier") is not None:
        args["barrier"].wait()
    n, with_face, faces, checked, t0 = 0, 0, 0, 0, time.perf_counter()
    cpu0 = time.process_time()
    while n == 0 or time.perf_counter() - t0 < args.get("seconds", 5.0):
        results = _run_once(photos, batch, face_finder, model, decode_size, per_call, stability)
        n += len(results)
        with_face += sum(1 for r in results if r["faces"])
        f, c = faces_checked(results)
        faces, checked = faces + f, checked + c
    wall = time.perf_counter() - t0
    return {"images": n, "images_per_s": n / wall, "cpu_per_image_ms":
            (time.process_time() - cpu0) / n * 1e3, "face_found": with_face / n,
            "faces_per_image": faces / n, "checked_share": checked / max(faces, 1),
            "batch": batch, "stability": stability,
            "model_threads": args.get("model_threads", 1),
            "detector_threads": args.get("detector_threads", 1),
            "detector_model": args.get("detector_model", "full"), "decode_size": decode_size}


def per_item_ms(fn, items: list, seconds: float, per: float = 1.0) -> tuple[float, list]:
    """Median ms of fn(item) / per over the items (cycled) for about `seconds`, at least one
    pass over them; and the outputs of the first pass. fn(items[0]) first, as a warm-up."""
    fn(items[0])
    times, outs, end, i = [], [], time.perf_counter() + seconds, 0
    while i < len(items) or time.perf_counter() < end:
        t = time.perf_counter()
        out = fn(items[i % len(items)])
        times.append((time.perf_counter() - t) * 1e3 / per)
        if i < len(items):
            outs.append(out)
        i += 1
    return float(np.median(times)), outs


def stages(args: dict) -> dict:
    """Milliseconds per image of each stage, one face per photo: median over about `seconds`
    of each stage (at least one pass over the `limit` photos)."""
    from detector.analyze import score_crops
    from detector.crop import face_crops
    from detector.stability import CHECKED, all_variants

    model, face_finder = _load(args["model_dir"], 1, 1, "full")
    photos = _read(args["photo_dir"], args.get("limit"))
    batch, secs = args.get("batch", 8), args.get("seconds", 5.0)
    passes = args.get("explain_passes", 3)  # 0: no "Why?" map (the previous model's row)
    dec_ms, imgs = per_item_ms(lambda b: decode(b, MAX_PIXELS, "default"), photos, secs)
    det_ms, _ = per_item_ms(face_finder.detect, imgs, secs)
    fc_ms, found = per_item_ms(lambda im: face_crops(im, face_finder), imgs, secs)
    crops = np.concatenate([c for c, _ in found])
    per_image = len(crops) / len(found)
    groups = [crops[s:s + batch] for s in range(0, len(crops), batch)]
    # The model's stages per image: a group of `batch` crops scored in one call, divided by the
    # images they came from.
    cls_ms, _ = per_item_ms(lambda g: score_crops(model, g), groups[:1], secs,
                            len(groups[0]) / per_image)
    # The versions a checked face is scored in (the crop itself is not scored again); the share
    # of faces checked comes from the pipeline run.
    var_ms, made = per_item_ms(lambda g: all_variants(g, CHECKED[1:]), groups[:1], secs,
                               len(groups[0]) / per_image)
    var_cls_ms, _ = per_item_ms(lambda g: score_crops(model, g), made, secs,
                                len(groups[0]) / per_image)
    return {"decode_ms": dec_ms, "detect_ms": det_ms, "crop_ms": max(fc_ms - det_ms, 0.0),
            "classify_ms": cls_ms, "variants_ms": var_ms, "classify_variants_ms": var_cls_ms,
            "crops_per_image": per_image, "photos": len(photos),
            "served_mean": bool(model.served_mean),
            **(explain_ms(model, list(crops[:4]), passes) if passes else {})}


def explain_ms(model, crops: list, passes: int = 3) -> dict:
    """The "Why?" occlusion map (detector/explain.py) per face, with the worker's runtime: all
    occluded copies of a face in one call, on the card's grid; median of `passes` passes."""
    from detector.explain import grid_of, occlusion_map

    grid = grid_of(model)
    t = time.perf_counter()
    occlusion_map(model, crops[0], grid)  # warm-up (the runtime sizes itself to the new batch)
    # About 5 s a pass whatever the model's cost: a CLIP map takes seconds, a MobileNetV2 one ms.
    crops = crops[:int(min(max(5.0 / max(time.perf_counter() - t, 1e-3), 1), len(crops)))]
    times = []
    for _ in range(passes):
        t = time.perf_counter()
        for c in crops:
            occlusion_map(model, c, grid)
        times.append((time.perf_counter() - t) / len(crops) * 1e3)
    return {"explain_ms_per_face": float(np.median(times)), "explain_grid": grid}


def large_decode(args: dict) -> dict:
    """Decoding 12 MP JPEGs whole vs at reduced size (draft), and the pipeline on each."""
    from detector.analyze import DECODE_SIZE, analyze_many

    model, face_finder = _load(args["model_dir"], 1, 1, "full")
    photos = _read(args["photo_dir"])
    out = {"photo": "4032x3024 JPEG", "decode_size": DECODE_SIZE}
    for name, size in (("full", None), ("reduced", DECODE_SIZE)):
        t = time.perf_counter()
        imgs = [decode(b, MAX_PIXELS, reduce_to=size) for b in photos]
        dec = (time.perf_counter() - t) / len(photos) * 1e3
        t = time.perf_counter()
        results = [analyze_many([im], face_finder, model)[0] for im in imgs]
        rest = (time.perf_counter() - t) / len(photos) * 1e3
        out[name] = {"decoded": "{}x{}".format(*imgs[0].size), "decode_ms": dec,
                     "faces_crop_classify_ms": rest,
                     "face_found": sum(1 for r in results if r["faces"]) / len(results)}
    return out


def parallel(ctx, procs: int, args: dict) -> dict:
    """`procs` worker processes running the pipeline at once: summed images/s."""
    with ctx.Manager() as manager, ctx.Pool(procs) as pool:
        barrier = manager.Barrier(procs)
        rates = pool.map(run, [{**args, "barrier": barrier}] * procs)
    mean = {k: float(np.mean([r[k] for r in rates])) for k in
            ("cpu_per_image_ms", "face_found", "faces_per_image", "checked_share")}
    return {"processes": procs, "images_per_s": float(sum(r["images_per_s"] for r in rates)),
            "per_process": [r["images_per_s"] for r in rates], "stability": args.get(
                "stability", True), "batch": args.get("batch", 8), **mean}

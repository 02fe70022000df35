"""Crop cache: decode and face-crop every image once, through the detector's crop function.

Each row's meta records the face's size in the pixels it was cropped from (face_px), which the
draw at the reals' face sizes (real_sizes.py) samples from.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from detector.crop import crop_settings
from training.common import real_sizes as RS

CACHE_DIR = Path(__file__).resolve().parents[2] / "cache"
# What a cache records besides the crops. Bump when it changes, so that a cache made before is
# rebuilt rather than read with a field missing (2: face_px and scale per row).
CACHE_VERSION = 2
_det = None  # one FaceDetector per worker process


class Cropped(NamedTuple):
    """One image's training crop and what the cache records of it."""

    crop: np.ndarray  # 224x224x3 uint8: the best face, or the centre square
    n_faces: int
    score: float  # the best face's score, 0 without a face
    face_px: float  # the best face box's longer side in the pixels cropped from; no face: the
    # image's shorter side (the centre square is what was cropped)
    scale: float  # the factor the image was shrunk by before cropping (1: as stored)


def cache_key(paths: list[str], pool: np.ndarray | None = None) -> str:
    """Hash of the file list (with sizes and mtimes), the crop settings, the cache's version and,
    for crops drawn at the reals' face sizes, what the draw depends on."""
    spec = {"crop": crop_settings(), "cache": CACHE_VERSION}
    if pool is not None:
        spec["draw"] = RS.draw_spec(pool)
    h = hashlib.sha256(json.dumps(spec, sort_keys=True).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


def _init_worker() -> None:
    global _det
    from detector.faces import FaceDetector

    _det = FaceDetector(num_threads=1)


def _cut(img, face_finder, scale: float) -> Cropped:
    """The serving crop of img (detector.crop.face_crops) and what the cache records of it."""
    from detector.crop import face_crops

    crops, faces = face_crops(img, face_finder)
    if faces:
        x0, y0, x1, y1 = faces[0].box
        side = float(max(x1 - x0, y1 - y0))
    else:
        side = float(min(img.size))
    # The first crop is the best face (faces come sorted by score) or the centre square.
    return Cropped(crops[0], len(faces), float(faces[0].score) if faces else 0.0, side, scale)


def crop_one(path: str, face_finder, pool: np.ndarray | None = None) -> Cropped:
    """The file's training crop; with pool (face sides of training reals), cut from a copy shrunk
    so that the face is as large as a real one drawn for this file (real_sizes.py)."""
    from shared.images import decode_pil

    with open(path, "rb") as fh:
        img = decode_pil(fh.read())
    got = _cut(img, face_finder, 1.0)
    if pool is None:
        return got
    scale = RS.shrink_factor(path, got.face_px, pool)
    # The face is found again on the copy: the crop is the serving crop of that copy.
    return got if scale >= 1.0 else _cut(RS.shrink(img, scale), face_finder, scale)


def _work(args: tuple) -> list[tuple[int, int, float, float, float]]:
    out_path, start, paths, pool = args
    arr = np.load(out_path, mmap_mode="r+")
    meta = []
    for k, p in enumerate(paths):
        got = crop_one(p, _det, pool)
        arr[start + k] = got.crop
        meta.append((start + k, got.n_faces, got.score, got.face_px, got.scale))
    arr.flush()
    return meta


def _crop_rows(arr_path: Path, paths: list[str], processes: int, log, pool
               ) -> np.ndarray:
    """Crop every file into the memmap at arr_path; (N, 4) float: faces, score, face_px, scale."""
    chunk = 256
    jobs = [(str(arr_path), s, paths[s:s + chunk], pool) for s in range(0, len(paths), chunk)]
    rows = np.zeros((len(paths), 4), np.float64)
    t0 = time.time()
    # fork before TensorFlow is imported is safe; the detector is a LiteRT interpreter per child.
    with mp.get_context("fork").Pool(processes, initializer=_init_worker) as workers:
        for done, meta in enumerate(workers.imap_unordered(_work, jobs), 1):
            for i, *values in meta:
                rows[i] = values
            if done % 20 == 0 or done == len(jobs):
                log(f"prep: {min(done * chunk, len(paths))}/{len(paths)} images, "
                    f"{time.time() - t0:.0f}s")
    return rows


def build_cache(paths: list[str], processes: int = 2, log=print, pool: np.ndarray | None = None
                ) -> tuple[np.ndarray, dict]:
    """(memmap (N,224,224,3) uint8 of crops in path order, meta); reused when the key matches.
    pool: face sides of training reals to draw each face's size from (real_sizes.py)."""
    CACHE_DIR.mkdir(exist_ok=True)
    key = cache_key(paths, pool)
    arr_path, meta_path = CACHE_DIR / f"crops-{key}.npy", CACHE_DIR / f"crops-{key}.json"
    if arr_path.exists() and meta_path.exists():
        return np.load(arr_path, mmap_mode="r"), json.loads(meta_path.read_text())
    size = crop_settings()["size"]
    arr = np.lib.format.open_memmap(arr_path, mode="w+", dtype=np.uint8,
                                    shape=(len(paths), size, size, 3))
    del arr  # workers write through their own memmaps
    t0 = time.time()
    rows = _crop_rows(arr_path, paths, processes, log, pool)
    n_faces = rows[:, 0].astype(int)
    meta = {"key": key, "settings": crop_settings(), "cache_version": CACHE_VERSION,
            "n": len(paths), "face_found": float(np.mean(n_faces > 0)) if len(paths) else 0.0,
            "n_faces": n_faces.tolist(), "face_px": np.round(rows[:, 2], 1).tolist(),
            "scale": np.round(rows[:, 3], 4).tolist(),
            "draw": None if pool is None else RS.draw_spec(pool),
            "seconds": round(time.time() - t0, 1)}
    meta_path.write_text(json.dumps(meta))  # written last: marks the cache complete
    return np.load(arr_path, mmap_mode="r"), meta


def quartiles(x, digits: int = 1) -> list[float]:
    """The 5th, 25th, 50th, 75th and 95th percentiles, rounded, for the card."""
    x = np.asarray(x, np.float64)
    return [round(float(v), digits) for v in np.percentile(x, (5, 25, 50, 75, 95))] \
        if len(x) else []


def at_real_sizes(crops, meta: dict, items: list, ranges: dict, labels: np.ndarray,
                  left_out, reals_left_out, log=print):
    """(crops with the training rows of DRAW_AT_REAL_SIZES re-cut at the reals' face sizes, a
    record for the card or None when nothing is drawn)."""
    from training.policy import DRAW_AT_REAL_SIZES

    sources = [s for s in DRAW_AT_REAL_SIZES if (s, "train") in ranges and s not in left_out]
    rows = [ranges[(s, "train")] for s in sources if len(ranges[(s, "train")])]
    if not rows:
        return crops, None
    rows = np.concatenate(rows)
    exclude = {*left_out, *reals_left_out, *DRAW_AT_REAL_SIZES}
    pool = RS.size_pool(meta["face_px"], ranges, labels, exclude)
    if not len(pool):
        log(f"{', '.join(sources)}: no training reals to draw face sizes from; cropped as stored")
        return crops, None
    drawn, dmeta = build_cache([items[r].path for r in rows], log=log, pool=pool)
    record = {"rule": RS.RULE.format(sources=", ".join(sources)), "n": int(len(rows)),
              "key": dmeta["key"], "n_reals": int(len(pool)),
              "reals_face_px_p5_25_50_75_95": quartiles(pool),
              "drawn_face_px_p5_25_50_75_95": quartiles(dmeta["face_px"]),
              "stored_face_px_p5_25_50_75_95": quartiles(np.asarray(meta["face_px"])[rows]),
              "scale_p5_25_50_75_95": quartiles(dmeta["scale"], 3)}
    log("drawn at the reals' face sizes: " + json.dumps({k: v for k, v in record.items()
                                                          if k != "rule"}))
    return RS.Overlay(crops, rows, drawn), record

"""Crop cache: decode and face-crop every image once, through the detector's crop function."""

from __future__ import annotations

import hashlib
import json
import multiprocessing as mp
import os
import time
from pathlib import Path

import numpy as np

from detector.crop import crop_settings

CACHE_DIR = Path(__file__).resolve().parents[2] / "cache"
_det = None  # one FaceDetector per worker process


def cache_key(paths: list[str]) -> str:
    """Hash of the file list (with sizes and mtimes) and the crop settings."""
    h = hashlib.sha256(json.dumps(crop_settings(), sort_keys=True).encode())
    for p in paths:
        st = os.stat(p)
        h.update(f"{p}|{st.st_size}|{int(st.st_mtime)}\n".encode())
    return h.hexdigest()[:16]


def _init_worker() -> None:
    global _det
    from detector.faces import FaceDetector

    _det = FaceDetector(num_threads=1)


def crop_one(path: str, face_finder) -> tuple[np.ndarray, int, float]:
    """(best face crop or whole image 224x224x3 uint8, faces found, best face score)."""
    from detector.crop import face_crops
    from shared.images import decode_pil

    with open(path, "rb") as fh:
        img = decode_pil(fh.read())
    crops, faces = face_crops(img, face_finder)
    # The first crop is the best face (faces come sorted by score) or the whole image.
    return crops[0], len(faces), float(faces[0].score) if faces else 0.0


def _work(args: tuple[str, int, list[str]]) -> list[tuple[int, int, float]]:
    out_path, start, paths = args
    arr = np.load(out_path, mmap_mode="r+")
    meta = []
    for k, p in enumerate(paths):
        crop, n_faces, score = crop_one(p, _det)
        arr[start + k] = crop
        meta.append((start + k, n_faces, score))
    arr.flush()
    return meta


def build_cache(paths: list[str], processes: int = 2, log=print) -> tuple[np.ndarray, dict]:
    """(memmap (N,224,224,3) uint8 of crops in path order, meta); reused when the key matches."""
    CACHE_DIR.mkdir(exist_ok=True)
    key = cache_key(paths)
    arr_path, meta_path = CACHE_DIR / f"crops-{key}.npy", CACHE_DIR / f"crops-{key}.json"
    if arr_path.exists() and meta_path.exists():
        return np.load(arr_path, mmap_mode="r"), json.loads(meta_path.read_text())
    size = crop_settings()["size"]
    arr = np.lib.format.open_memmap(arr_path, mode="w+", dtype=np.uint8,
                                    shape=(len(paths), size, size, 3))
    del arr  # workers write through their own memmaps
    chunk = 256
    jobs = [(str(arr_path), s, paths[s:s + chunk]) for s in range(0, len(paths), chunk)]
    n_faces = np.zeros(len(paths), np.int16)
    scores = np.zeros(len(paths), np.float32)
    t0 = time.time()
    # fork before TensorFlow is imported is safe; the detector is a LiteRT interpreter per child.
    with mp.get_context("fork").Pool(processes, initializer=_init_worker) as pool:
        for done, meta in enumerate(pool.imap_unordered(_work, jobs), 1):
            for i, nf, sc in meta:
                n_faces[i], scores[i] = nf, sc
            if done % 20 == 0 or done == len(jobs):
                log(f"prep: {min(done * chunk, len(paths))}/{len(paths)} images, "
                    f"{time.time() - t0:.0f}s")
    meta = {"key": key, "settings": crop_settings(), "n": len(paths),
            "face_found": float(np.mean(n_faces > 0)) if len(paths) else 0.0,
            "n_faces": n_faces.tolist(), "seconds": round(time.time() - t0, 1)}
    meta_path.write_text(json.dumps(meta))  # written last: marks the cache complete
    return np.load(arr_path, mmap_mode="r"), meta

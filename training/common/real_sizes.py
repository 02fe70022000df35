"""Fakes drawn at the face sizes the reals have (issue 24 point 3).

The diffusion portraits (sdfd-faces) are 768 px with faces several hundred pixels wide; every
real source holds small faces (128-256 px images). Cropped as stored, "large, sharp face"
separates them from the reals before any forgery trace does (`dfd-research shortcuts`), and the
augmentation's down-and-up scaling only halves that. So the training crops of the sources in
training.policy.DRAW_AT_REAL_SIZES are cut from a copy of the image shrunk until its face is as
large as a real face of the same run: a size drawn per file from the face sides (prep's face_px)
of the run's training reals. The shrunken copy goes through the serving face finder and crop
(prep.crop_one), so training and serving still share one crop; prep.at_real_sizes puts the
drawn rows in a run's cache. Calibration and test crops stay
as stored: they are judged as users would send them.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image

# Bump when the draw or the shrink changes: the drawn cache's key holds it.
DRAW_VERSION = 1
# Area average: each new pixel integrates the old ones, as a sensor pixel integrates light, and
# PIL widens the filter with the factor, so the copy is antialiased, never aliased.
RESAMPLE = Image.Resampling.BOX
RULE = (
    "training crops of {sources} are cut from a copy of the image shrunk (area average, never "
    "enlarged) so that its face's longer side equals a size drawn per file (sha256 of the file "
    "name, inverse CDF) from the face sides of the run's training reals, left-out sources' reals "
    "excluded; the shrunken copy goes through the serving face finder and crop; calibration and "
    "test crops are as stored")


def size_pool(face_px, ranges: dict, labels: np.ndarray, exclude) -> np.ndarray:
    """Sorted face sides (source pixels) of the training reals of every source not in exclude:
    a source left out, one whose reals are left out, or one that is itself drawn."""
    rows = [r for (src, part), r in ranges.items() if part == "train" and src not in exclude]
    idx = np.concatenate(rows).astype(np.int64) if rows else np.zeros(0, np.int64)
    idx = idx[labels[idx] == 0]
    return np.sort(np.asarray(face_px, np.float64)[idx])


def unit(path: str) -> float:
    """A stable number in [0, 1) for a file, from its name alone (the same on any checkout)."""
    h = hashlib.sha256(f"real-size|{Path(path).name}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def target_side(path: str, pool: np.ndarray) -> float:
    """The face side this file is drawn at: one real's face side, picked by inverse CDF."""
    return float(np.quantile(pool, unit(path), method="inverted_cdf"))


def shrink_factor(path: str, face_px: float, pool: np.ndarray) -> float:
    """Factor that brings the file's face side to its drawn size; at most 1 (never enlarged)."""
    return min(1.0, target_side(path, pool) / max(float(face_px), 1.0))


def shrink(img: Image.Image, scale: float) -> Image.Image:
    """The image scaled by scale (< 1), antialiased."""
    w, h = img.size
    return img.resize((max(1, round(w * scale)), max(1, round(h * scale))), RESAMPLE)


def draw_spec(pool: np.ndarray) -> dict:
    """What a drawn crop depends on besides the file, for the cache key: the draw's version, the
    filter and the face sides drawn from (another fold's reals give another cache)."""
    sides = np.round(np.asarray(pool, np.float64), 2).tobytes()
    return {"version": DRAW_VERSION, "resample": RESAMPLE.name, "n": int(len(pool)),
            "sides_sha256": hashlib.sha256(sides).hexdigest()}


class Overlay:
    """The crop cache with some rows read from a second array; indexes like the memmap it wraps
    (an int, a slice or an integer array), so the training loop needs no change."""

    def __init__(self, base, rows: np.ndarray, extra) -> None:
        self.base, self.extra = base, extra
        self.slot = np.full(len(base), -1, np.int64)
        self.slot[np.asarray(rows, np.int64)] = np.arange(len(rows))
        self.shape, self.dtype = base.shape, base.dtype

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, idx):
        slot = self.slot[idx]
        if np.ndim(slot) == 0:
            return np.asarray(self.extra[slot] if slot >= 0 else self.base[idx])
        out, m = self.base[idx], slot >= 0
        if m.any():
            out = np.array(out)  # the base is a read-only memmap: copy before writing
            out[m] = self.extra[slot[m]]
        return out

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return np.asarray(self[:], dtype)

"""Training batches: which cache rows an epoch draws, and the augmented batches made from them."""

from __future__ import annotations

import threading

import numpy as np
from PIL import Image

from detector.chunks import in_chunks
from training.common.augment import augment_batch
from training.common.sbi import sbi_batch
from training.e2e.recipe import SHARES


class Batches:
    """Augmented training batches made ahead in background threads, in a seeded order."""

    def __init__(self, crops, idx: np.ndarray, labels: np.ndarray, batch: int, seed,
                 strength: float = 1.0, ahead: int = 6, sbi_rate: float = 0.0,
                 keypoints: np.ndarray | None = None, sbi_balanced: bool = True,
                 mask_grid: int = 0):
        self.crops, self.idx, self.labels, self.batch, self.seed = crops, idx, labels, batch, seed
        self.strength, self.sbi_rate, self.keypoints = strength, sbi_rate, keypoints
        self.sbi_balanced, self.mask_grid = sbi_balanced, mask_grid
        self.n, self.ahead = len(idx) // batch, ahead
        self.next = self.consumed = 0
        self.lock = threading.Lock()
        self.results: dict[int, tuple] = {}
        self.cv = threading.Condition()
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(2)]
        for t in self.threads:
            t.start()

    def _run(self) -> None:
        while True:
            with self.lock:
                b = self.next
                self.next += 1
            if b >= self.n:
                return
            with self.cv:  # do not run more than a few batches ahead of the consumer
                self.cv.wait_for(lambda b=b: b < self.consumed + self.ahead)
            sel = np.sort(self.idx[b * self.batch:(b + 1) * self.batch])
            # Per-batch generator: the augmentation does not depend on thread timing.
            rng = np.random.default_rng([*self.seed, b])
            x, y = np.asarray(self.crops[sel]), self.labels[sel]
            kps = None if self.keypoints is None else self.keypoints[sel]
            if self.mask_grid:
                # Pseudo-fakes with their masks; the augmentation moves each mask with its image.
                x, y, m = sbi_batch(x, y, self.sbi_rate, rng, kps, self.sbi_balanced, True)
                x, m = augment_batch(x, rng, self.strength, m)
                target = (y.astype(np.float32)[:, None], grid_masks(m, self.mask_grid))
            else:
                if self.sbi_rate:
                    # Pseudo-fakes first, then the same augmentation as every other image.
                    x, y = sbi_batch(x, y, self.sbi_rate, rng, kps, self.sbi_balanced)
                x = augment_batch(x, rng, self.strength)
                target = y.astype(np.float32)[:, None]
            with self.cv:
                self.results[b] = (x.astype(np.float32), target)
                self.cv.notify_all()

    def __iter__(self):
        for b in range(self.n):
            with self.cv:
                self.cv.wait_for(lambda b=b: b in self.results)
                item = self.results.pop(b)
                self.consumed = b + 1
                self.cv.notify_all()
            yield item


def grid_masks(masks: np.ndarray, grid: int) -> np.ndarray:
    """(N, H, W) blend masks averaged down to the trunk's (N, grid, grid, 1); -1 stays -1."""
    out = [np.asarray(Image.fromarray(m, "F").resize((grid, grid), Image.BOX)) for m in masks]
    # A real fake's mask is -1 everywhere; its average is -1 too (no cell gets a target).
    return np.stack(out)[..., None].astype(np.float32)


def label_shares(pools: dict[str, np.ndarray], label: str) -> dict[str, float]:
    """Normalised shares of the sources that have images of one label (see SHARES)."""
    table = SHARES[label]
    present = [s for s, pool in pools.items() if len(pool)]
    raw = {s: table.get(s, 1.0 / max(len(present), 1)) for s in present}
    total = sum(raw.values())
    return {s: w / total for s, w in raw.items()} if total else {}


def epoch_indices(train_by_source: dict[str, np.ndarray], labels: np.ndarray, n: int, rng
                  ) -> np.ndarray:
    """n cache indices, half real and half fake, each half drawn by source share; within a
    source without replacement when possible (whole permutations, then truncated)."""
    pools = {label: {s: idx[labels[idx] == (label == "fake")] for s, idx in
                     train_by_source.items()} for label in ("real", "fake")}
    shares = {label: label_shares(pools[label], label) for label in pools}
    # Half each; where one label has no images at all (real faces and pseudo-fakes only),
    # the other label takes the whole epoch.
    counts = {"real": n - n // 2, "fake": n // 2} if all(shares.values()) else \
        {label: n if shares[label] else 0 for label in shares}
    out = []
    for label, k_label in counts.items():
        for s, share in shares[label].items():
            pool, k = pools[label][s], int(round(k_label * share))
            if k:
                reps = -(-k // len(pool))
                out.append(np.concatenate([rng.permutation(pool) for _ in range(reps)])[:k])
    return rng.permutation(np.concatenate(out)) if out else np.zeros(0, np.int64)


def predict(model, crops, idx: np.ndarray, batch: int = 128) -> np.ndarray:
    """Raw P(fake) for cache rows idx (no augmentation)."""
    p = in_chunks(lambda rows: np.asarray(model.predict_on_batch(
        np.asarray(crops[rows], np.float32))).reshape(-1), np.sort(idx), batch)
    return p[np.argsort(np.argsort(idx))]  # predictions were made on sorted rows


def train_keypoints(crops, meta: dict, ranges: dict, labels: np.ndarray) -> np.ndarray:
    """(N, 6, 2) BlazeFace keypoints of the real training crops (NaN elsewhere), cached."""
    from training.common.prep import CACHE_DIR
    from training.common.sbi import crop_keypoints

    path = CACHE_DIR / f"kps-{meta['key']}.npy"
    if path.exists():
        return np.load(path)
    rows = np.concatenate([i[labels[i] == 0] for (s, p), i in ranges.items() if p == "train"])
    kps = np.full((len(labels), 6, 2), np.nan, np.float32)
    kps[rows] = crop_keypoints(crops, rows)  # forked workers: before TensorFlow is imported
    np.save(path, kps)
    return kps

"""`dfd train DATA...`: crop, train, select, calibrate, export and evaluate the detector."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

from training import data as D
from training.augment import augment_batch
from training.sbi import sbi_batch

WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / \
    "mobilenetv2_0.35_224_imagenet_notop.npz"
THRESHOLD = 0.3  # the rule "Fake when P(real) < 0.7"
# Each epoch is half real, half fake; each half is drawn from the sources holding that label in
# these shares (a source not listed gets an equal part; a real-only source feeds the real half).
# FairFace (ordinary Flickr faces) is the largest real share: the model's real class must not be
# "looks like a news studio, an FFHQ portrait or a DFDC video".
SHARES = {
    "real": {"fairface-real": 0.35, "ff-crops": 0.28, "dfdc-faces": 0.25, "stylegan-faces": 0.12},
    "fake": {"ff-crops": 0.45, "dfdc-faces": 0.35, "stylegan-faces": 0.2},
}
AUGMENTATION = ("probabilities below (except flip and grey) are multiplied by the "
                "augmentation strength: flip (p 0.5); scale 0.85-1.15, rotation +-8 deg, shift "
                "+-10% (p 0.5); down-and-up scaling 0.25-0.8 (p 0.4); Gaussian blur 0.4-2.2 px "
                "(p 0.3) or unsharp mask (p 0.3); saturation, channel gain, brightness, contrast, "
                "gamma (p 0.8); grey (p 0.05); Gaussian noise sigma 2-12 (p 0.3); JPEG quality "
                "30-95 (p 0.7)")
SBI = ("self-blended pseudo-fakes (training/sbi.py): a real crop blended with a copy of itself "
       "(colour, 0.95-1.05 scale, +-3% shift, blur / down-up / sharpen) inside a deformed, "
       "soft-edged face mask (BlazeFace keypoint hull, else an ellipse), blend ratio "
       "0.25-1, labelled fake; made before the augmentation above, which they then get too")
LIMITATIONS = [
    "Trained on four public sets only (face-swap video frames, StyleGAN faces, DFDC face "
    "swaps, and FairFace's ordinary Flickr faces as real only); other generators, editing tools "
    "and diffusion models are out of distribution and its scores on them are not validated "
    "here.",
    "Sees one face crop at a time (224x224, resized inside the model); no temporal or "
    "whole-image cues. Images with no detected face are classified whole (centre square).",
    "The calibration (temperature) was fitted on held-out parts of the training sources; on "
    "other sources the probabilities may be over- or under-confident.",
    "Non-commercial: the training data's terms (FaceForensics++, FFHQ, DFDC) carry over; "
    "FairFace is CC BY 4.0 (Karkkainen and Joo, WACV 2021).",
]


def log(msg: str) -> None:
    """Progress line to stdout, flushed at once (the run is usually watched through a log)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of `dfd train`."""
    p = argparse.ArgumentParser(prog="dfd train", description=__doc__)
    p.add_argument("data", nargs="+", help="data roots holding real/ and fake/ (or train/ val/)")
    p.add_argument("--out", default="models/dfd-mnv2", help="model directory to write")
    p.add_argument("--epochs", type=int, default=20,
                   help="epochs in all, warm-up included (at most, with --time-budget)")
    p.add_argument("--warmup-epochs", type=int, default=1, help="head-only epochs first")
    p.add_argument("--epoch-images", type=int, default=20000, help="images drawn per epoch")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--batch-size", type=int, default=48)
    p.add_argument("--lr", type=float, default=4e-4, help="peak fine-tuning learning rate")
    p.add_argument("--head-lr", type=float, default=3e-3, help="warm-up learning rate")
    p.add_argument("--aug-strength", type=float, default=1.0,
                   help="scales every augmentation's probability (1 = strongest)")
    p.add_argument("--internal-size", type=int, default=160, help="trunk resolution")
    p.add_argument("--time-budget", type=float, default=55, metavar="MIN",
                   help="whole-run wall-clock budget in minutes, prep included; the number of "
                   "epochs is fitted to it (0: no budget, run --epochs)")
    p.add_argument("--limit", type=int, default=None, help="cap images per source and part "
                   "(smoke tests)")
    p.add_argument("--resume", action="store_true", help="continue from the work checkpoint")
    p.add_argument("--keep-work", action="store_true", help="keep the checkpoints (work/) "
                   "after a successful export; by default they are deleted")
    p.add_argument("--weights", default=str(WEIGHTS), help="ImageNet trunk .npz")
    p.add_argument("--sbi-rate", type=float, default=0.25, metavar="P",
                   help="share of real training crops that get a self-blended pseudo-fake")
    p.add_argument("--sbi-mode", choices=("replace-fake", "replace-real"), default="replace-fake",
                   help="where a pseudo-fake goes: in place of one of the batch's fakes (keeps "
                   "the classes 50/50) or in place of its own real (the first recipe)")
    p.add_argument("--init-model", metavar="KERAS", help="start from this model.keras's weights "
                   "(same architecture) instead of the ImageNet trunk and a new head")
    return p.parse_args(argv)


def machine() -> str:
    """CPU model and core count, for the card."""
    cpu = platform.processor() or "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, no GPU, {platform.system()} {platform.machine()}"


class Batches:
    """Augmented training batches made ahead in background threads, in a seeded order."""

    def __init__(self, crops, idx: np.ndarray, labels: np.ndarray, batch: int, seed,
                 strength: float = 1.0, ahead: int = 6, sbi_rate: float = 0.0,
                 keypoints: np.ndarray | None = None, sbi_balanced: bool = True):
        self.crops, self.idx, self.labels, self.batch, self.seed = crops, idx, labels, batch, seed
        self.strength, self.sbi_rate, self.keypoints = strength, sbi_rate, keypoints
        self.sbi_balanced = sbi_balanced
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
            if self.sbi_rate:
                # Pseudo-fakes first, then the same augmentation as every other image.
                kps = None if self.keypoints is None else self.keypoints[sel]
                x, y = sbi_batch(x, y, self.sbi_rate, rng, kps, self.sbi_balanced)
            x = augment_batch(x, rng, self.strength).astype(np.float32)
            with self.cv:
                self.results[b] = (x, y.astype(np.float32)[:, None])
                self.cv.notify_all()

    def __iter__(self):
        for b in range(self.n):
            with self.cv:
                self.cv.wait_for(lambda b=b: b in self.results)
                item = self.results.pop(b)
                self.consumed = b + 1
                self.cv.notify_all()
            yield item


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
    out = [np.asarray(model.predict_on_batch(np.asarray(crops[np.sort(idx)[s:s + batch]],
                                                        np.float32))).reshape(-1)
           for s in range(0, len(idx), batch)]
    order = np.argsort(np.argsort(idx))  # predictions were made on sorted rows
    return np.concatenate(out)[order] if out else np.zeros(0)


def train_keypoints(crops, meta: dict, ranges: dict, labels: np.ndarray) -> np.ndarray:
    """(N, 6, 2) BlazeFace keypoints of the real training crops (NaN elsewhere), cached."""
    from training.prep import CACHE_DIR
    from training.sbi import crop_keypoints

    path = CACHE_DIR / f"kps-{meta['key']}.npy"
    if path.exists():
        return np.load(path)
    rows = np.concatenate([i[labels[i] == 0] for (s, p), i in ranges.items() if p == "train"])
    kps = np.full((len(labels), 6, 2), np.nan, np.float32)
    kps[rows] = crop_keypoints(crops, rows)  # forked workers: before TensorFlow is imported
    np.save(path, kps)
    return kps


def main(argv: list[str] | None = None) -> int:
    """Train end to end; returns a process exit code."""
    from training.loop import run

    args = parse_args(sys.argv[1:] if argv is None else argv)
    t_start = time.time()
    out = Path(args.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    splits = D.split_all(args.data, args.seed)
    if args.limit:
        rng = np.random.default_rng(args.seed)
        for parts in splits.values():
            for part, items in parts.items():
                if len(items) > args.limit:
                    keep = np.sort(rng.choice(len(items), args.limit, replace=False))
                    parts[part] = [items[i] for i in keep]
    D.write_split(splits, args.data, args.seed, out / "split.json")
    # One cache over every image of every part; ranges per (source, part) index into it.
    items, ranges = [], {}
    for src, parts in splits.items():
        for part, its in parts.items():
            ranges[(src, part)] = np.arange(len(items), len(items) + len(its))
            items.extend(its)
            log(f"{src}/{part}: {sum(i.label == 0 for i in its)} real, "
                f"{sum(i.label == 1 for i in its)} fake, {len({i.group for i in its})} groups")
    from training.prep import build_cache

    crops, meta = build_cache([i.path for i in items], log=log)
    prep_seconds = time.time() - t_start
    log(f"crops ready ({prep_seconds:.0f}s; face found in {meta['face_found']:.1%})")
    labels = np.array([i.label for i in items], np.int64)
    keypoints = None
    if args.sbi_rate:
        keypoints = train_keypoints(crops, meta, ranges, labels)
        found = int(np.isfinite(keypoints[:, 0, 0]).sum())
        log(f"SBI masks: keypoints for {found} real training crops, ellipse for the rest")
    ctx = dict(args=args, out=out, work=work, splits=splits, ranges=ranges, crops=crops,
               labels=labels, meta=meta, t_start=t_start, prep_seconds=prep_seconds,
               machine=machine(), log=log, keypoints=keypoints)
    run(ctx)
    if not args.keep_work:
        # The checkpoints are ~13 MB and only serve --resume; the model directory ships.
        shutil.rmtree(work, ignore_errors=True)
    log(f"done in {time.time() - t_start:.0f}s; model in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = ["main", "Batches", "epoch_indices", "predict", "AUGMENTATION", "LIMITATIONS",
           "SBI", "THRESHOLD"]

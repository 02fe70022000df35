"""Frozen CLIP features of the training crops: computed once, cached by crops, trunk and cut.

The trunk never trains, so every head, leave-one-source-out run and ablation reads the same
features: one pass of the tower over each crop (about an hour of CPU here for all sources), then
minutes per configuration. The cache key joins the crop cache key (file list and crop settings),
the trunk file's hash, the outputs extracted and the detail normalisation.
"""

from __future__ import annotations

import hashlib
import json
import time

import numpy as np

from detector import trunk as T
from detector.crop import DETAIL_PX, DETAIL_QUALITY, normalise_detail
from training.common import data as D
from training.common.prep import CACHE_DIR, build_cache

# Every output the study compares: the class token after blocks 4, 6 and 8. The tower is cut
# after block 8 (two thirds of its cost): the serving budget (issue 18: 12 images/s on 2 cores)
# rules out the full tower here, and a first pass that also took blocks 10-12 and the embedding
# (docs/MODEL.md, run 7) showed them no better.
OUTPUTS = ("b4", "b6", "b8")
# Frames kept per video group for ff-crops, whose videos give many near-identical frames.
THIN = {("ff-crops", "train"): 2, ("ff-crops", "calib"): 2, ("ff-crops", "test"): 4}
# Images kept per source and part (a seeded draw): a tower pass costs about 0.15 s a crop here.
CAP = {("fairface-real", "train"): 600, ("fairface-real", "calib"): 300,
       ("fairface-real", "test"): 400, ("stylegan-faces", "train"): 800,
       ("dfdc-faces", "train"): 900}
# One crop per tower call: the shipped tower quantises activations per tensor at run time, so a
# crop's features would depend on the other crops of its batch (measured: up to 0.39 on a
# block-8 class token of norm 6). detector.trunk.Tower makes one call per crop, in training and
# serving alike; the cache key records it (the first pass, batched, is not reused).
BATCH = 1


def thin(items: list[D.Item], per_group: int | None, cap: int | None, seed: int
         ) -> list[D.Item]:
    """At most per_group items of each group (evenly spaced by name), then at most cap items
    (a seeded draw); order kept."""
    if per_group:
        by_group: dict[str, list[D.Item]] = {}
        for it in items:
            by_group.setdefault(it.group, []).append(it)
        kept = set()
        for group in by_group.values():
            pick = np.linspace(0, len(group) - 1, min(per_group, len(group))).round().astype(int)
            kept.update(group[i].path for i in pick)
        items = [it for it in items if it.path in kept]
    if cap and len(items) > cap:
        rng = np.random.default_rng(seed)
        keep = set(rng.choice(len(items), cap, replace=False).tolist())
        items = [it for k, it in enumerate(items) if k in keep]
    return items


def study_items(roots: list[str], seed: int) -> list[tuple[str, str, D.Item]]:
    """(source, part, item) for every image the study extracts, in a stable order."""
    splits = D.split_all(roots, seed)
    out = []
    for source, parts in splits.items():
        for part in ("train", "calib", "test"):
            items = thin(parts[part], THIN.get((source, part)), CAP.get((source, part)), seed)
            out.extend((source, part, it) for it in items)
    return out


def features_key(crop_key: str, outputs: tuple[str, ...], detail: bool = True) -> str:
    # Served crops are detail-normalised; the plain crops of an ablation (detail=False) differ.
    spec = {"crops": crop_key, "trunk": T.SHA256, "outputs": list(outputs),
            "detail": [DETAIL_PX, DETAIL_QUALITY] if detail else None, "batch": BATCH,
            "weights": "u8"}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def extract(paths: list[str], outputs: tuple[str, ...] = OUTPUTS, threads: int = 2,
            batch: int = 32, log=print, detail: bool = True
            ) -> tuple[dict[str, np.ndarray], dict]:
    """({output: (N, d) float32}, crop meta) for the files, from the cache when it has them;
    detail=False reads the plain crops (an ablation; serving always normalises)."""
    crops, meta = build_cache(paths, log=log)
    key = features_key(meta["key"], outputs, detail)
    path = CACHE_DIR / f"features-{key}.npz"
    if path.is_file():
        with np.load(path) as z:
            return {k: z[k] for k in outputs}, meta
    tower = T.Tower(outputs, threads=threads)
    feats = {k: np.zeros((len(paths), 512 if k == T.EMBED else 768), np.float32)
             for k in outputs}
    t0 = time.time()
    for s in range(0, len(paths), batch):
        chunk = np.asarray(crops[s:s + batch])
        got = tower.features(normalise_detail(chunk) if detail else chunk)
        for k in outputs:
            feats[k][s:s + batch] = got[k]
        if (s // batch) % 10 == 0:
            done = min(s + batch, len(paths))
            log(f"features: {done}/{len(paths)} crops, {time.time() - t0:.0f}s, "
                f"{(time.time() - t0) / done * 1000:.0f} ms/crop")
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **feats)
    tmp.replace(path)  # written last: a complete file marks the cache complete
    return feats, meta


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="dfd-train features", description=__doc__)
    p.add_argument("data", nargs="+")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    rows = study_items(args.data, args.seed)
    stamp = lambda m: print(f"[{time.strftime('%H:%M:%S')}] {m}", flush=True)  # noqa: E731
    stamp(f"{len(rows)} images: " + json.dumps(
        {f"{s}/{p}": sum(1 for r in rows if r[0] == s and r[1] == p)
         for s, p in sorted({(r[0], r[1]) for r in rows})}))
    extract([r[2].path for r in rows], threads=args.threads, log=stamp)
    stamp("done")
    return 0

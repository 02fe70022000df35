"""Aligned fakes: reconstructions of the training reals through TAEF2, saved with the real's own
JPEG tables, so a fake differs from its real only by the decoder's fingerprint (Rajan et al.,
ICLR 2025); and the pairing that puts each such fake in the same batch as its real."""

from __future__ import annotations

import hashlib
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, JpegImagePlugin

from training.common.data import Item

SOURCE = "aligned"  # the reconstructions' source name in splits, shares and the card
# Bumped when the reconstruction changes (weights, padding, encoding): old files are not reused.
# The precision is part of it (training.common.taef2.precision: bf16 on AMX hosts, 53 dB from f32).
VERSION = "taef2-v1"
BATCH = 16  # images of one size reconstructed per call


def cache_dir() -> Path:
    """Where reconstructions are kept, by version (the crop cache's folder)."""
    from training.common.prep import CACHE_DIR
    from training.common.taef2 import precision

    return CACHE_DIR / "aligned" / f"{VERSION}-{precision()}"


def target_path(real: str) -> Path:
    """The reconstruction's file for a real image, keyed by the real's bytes."""
    digest = hashlib.sha256(Path(real).read_bytes()).hexdigest()[:20]
    return cache_dir() / f"{digest}{'.png' if real.lower().endswith('.png') else '.jpg'}"


def save_like(rgb: np.ndarray, real: Image.Image, path: Path) -> None:
    """Save rgb with the real's compression: its quantisation tables and chroma subsampling,
    so JPEG quality says nothing about the label (PNG reals stay PNG)."""
    out = Image.fromarray(rgb)
    tmp = path.with_suffix(path.suffix + ".part")
    if real.format == "JPEG":
        out.save(tmp, "JPEG", qtables=real.quantization,
                 subsampling=JpegImagePlugin.get_sampling(real))
    else:
        out.save(tmp, "PNG")
    tmp.replace(path)  # whole files only: an interrupted run leaves no half image behind


def choose_reals(items: list[Item], cap: int, seed: int) -> list[Item]:
    """The training reals to reconstruct: every real, at most cap per source (seeded)."""
    out = []
    for src in sorted({i.source for i in items}):
        # Seeded per source: a run that leaves a source out picks the same reals of the others.
        rng = np.random.default_rng([seed, zlib.crc32(src.encode())])
        reals = [i for i in items if i.source == src and i.label == 0]
        if cap and len(reals) > cap:
            reals = [reals[k] for k in np.sort(rng.choice(len(reals), cap, replace=False))]
        out.extend(reals)
    return out


def reconstruct(reals: list[Item], log: Callable[[str], None] = print) -> list[Item]:
    """One aligned fake per real (label 1, the real's group, source 'aligned'); files already
    made are reused, so the step resumes where it stopped."""
    cache_dir().mkdir(parents=True, exist_ok=True)
    todo: dict[tuple, list[tuple[Path, Image.Image, np.ndarray]]] = {}
    out = []
    for it in reals:
        path = target_path(it.path)
        out.append(Item(str(path), 1, it.group, SOURCE))
        if not path.exists():
            img = Image.open(it.path)
            rgb = np.asarray(img.convert("RGB"))
            todo.setdefault(rgb.shape, []).append((path, img, rgb))
    n = sum(map(len, todo.values()))
    if n:
        _run(todo, n, log)
    return out


def _run(todo: dict, n: int, log: Callable[[str], None]) -> None:
    from training.common.taef2 import Autoencoder

    ae, done, t0 = Autoencoder(fast=True), 0, time.time()
    log(f"aligned fakes: reconstructing {n} reals through TAEF2 ({ae.precision})")
    for group in todo.values():
        for s in range(0, len(group), BATCH):
            chunk = group[s:s + BATCH]
            recon = ae.reconstruct_batch(np.stack([rgb for _, _, rgb in chunk]))
            for (path, img, _), rgb in zip(chunk, recon, strict=True):
                save_like(rgb, img, path)
            done += len(chunk)
            if done % (BATCH * 40) < BATCH or done == n:
                log(f"aligned fakes: {done}/{n} ({time.time() - t0:.0f}s)")


def partners(items: list[Item], aligned_of: dict[str, str]) -> np.ndarray:
    """Each row's real partner row (-1: none): an aligned fake's real, and a DFDC fake's real
    from the same source video (same group name under real/ and fake/)."""
    row_of = {it.path: k for k, it in enumerate(items)}
    real_of_group = {(it.source, it.group): k for k, it in enumerate(items)
                     if it.label == 0 and it.source == "dfdc-faces"}
    out = np.full(len(items), -1, np.int64)
    for k, it in enumerate(items):
        if it.label != 1:
            continue
        if it.source == SOURCE and it.path in aligned_of:
            out[k] = row_of.get(aligned_of[it.path], -1)
        elif it.source == "dfdc-faces":
            out[k] = real_of_group.get((it.source, it.group), -1)
    return out


def pair_up(idx: np.ndarray, partner: np.ndarray, labels: np.ndarray,
            rng: np.random.Generator) -> np.ndarray:
    """The epoch's rows with every paired fake next to its own real, in a new seeded order.

    Where a fake's real was not drawn, it takes the place of a drawn real that pairs with
    nothing, so the real/fake balance of the epoch is unchanged."""
    idx = np.asarray(idx, np.int64).copy()
    is_partner = np.zeros(len(partner), bool)
    is_partner[partner[partner >= 0]] = True
    drawn = set(idx.tolist())
    need = list(dict.fromkeys(int(partner[r]) for r in idx
                              if partner[r] >= 0 and partner[r] not in drawn))
    free = rng.permutation(np.flatnonzero((labels[idx] == 0) & ~is_partner[idx]))[:len(need)]
    idx[free] = need[:len(free)]
    present = set(idx.tolist())
    fakes_of: dict[int, list[int]] = {}
    rest = []
    for r in idx.tolist():
        if partner[r] >= 0 and int(partner[r]) in present:
            fakes_of.setdefault(int(partner[r]), []).append(r)
        else:
            rest.append(r)  # reals (partner -1) always land here
    # A real drawn twice takes its fakes along the first time.
    units = [[r, *fakes_of.pop(r, [])] for r in rest]
    order = rng.permutation(len(units))
    return np.asarray([r for u in order for r in units[u]], np.int64)


def main(argv: list[str] | None = None) -> int:
    """`dfd-train aligned DATA... --cap N`: make the aligned fakes of the training reals ahead of
    the runs that use them (each run reuses the files; this step resumes where it stopped)."""
    import argparse
    import sys

    from training.common.data import split_all

    p = argparse.ArgumentParser(prog="dfd-train aligned", description=main.__doc__)
    p.add_argument("data", nargs="+", help="data roots holding real/ and fake/")
    p.add_argument("--cap", type=int, default=1500, help="at most N reals per source")
    p.add_argument("--seed", type=int, default=1234, help="the split's seed (as in train)")
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    reals = [i for parts in split_all(args.data, args.seed).values() for i in parts["train"]
             if i.label == 0]
    made = reconstruct(choose_reals(reals, args.cap, args.seed))
    print(f"{len(made)} aligned fakes in {cache_dir()}")
    return 0

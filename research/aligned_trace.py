"""`dfd-research aligned-trace`: is the autoencoder's trace in the aligned fakes learnable at all,
and which way does it point on generators the model never saw?

Run 8 (docs/MODEL.md) found no MobileNetV2 fine-tune that ranks held-out aligned pairs above
chance (AUC 0.51-0.53). This asks the question under that one with the cheapest model that could
see a decoder's trace: a logistic regression on the mean log-magnitude of each 8x8 DCT frequency
of the grey image (64 numbers) and two Laplacian energies, fitted on training reals and their own
TAEF2 reconstructions, cross-validated by pair (a real and its reconstruction never straddle
folds). Per source, at the file's own resolution ("native") and as the trunk is fed (the served
face crop, resized to the trunk's input side). Then one regression fitted on every source's pairs
as fed scores diffusion portraits (sdfd-faces) and StyleGAN faces against reals it never saw.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.fft import dctn
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold

from training.common import metrics as M
from training.common import taef2
from training.common.data import Item, split_source

REAL_SOURCES = ("fairface-real", "ff-crops", "stylegan-faces", "dfdc-faces")


def spectrum(rgb: np.ndarray) -> np.ndarray:
    """66 numbers: mean log |DCT| of each 8x8 frequency over the grey image's blocks, then the
    log mean and log mean square of its 4-neighbour Laplacian (the usual sharpness)."""
    g = np.asarray(rgb, np.float32).mean(axis=2)
    h, w = g.shape[0] // 8 * 8, g.shape[1] // 8 * 8
    blocks = g[:h, :w].reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3)
    bands = np.log(np.abs(dctn(blocks, axes=(2, 3), norm="ortho")).mean(axis=(0, 1)) + 1e-3)
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return np.concatenate([bands.ravel(), [np.log(np.abs(lap).mean() + 1e-3),
                                           np.log((lap ** 2).mean() + 1e-3)]])


def as_fed(path: str, det, side: int) -> np.ndarray:
    """The served face crop of a file, resized to the trunk's input side (as training feeds it)."""
    from detector.crop import face_crops
    from shared.images import decode_pil

    crop = face_crops(decode_pil(Path(path).read_bytes()), det)[0][0]
    return np.asarray(Image.fromarray(crop).resize((side, side), Image.BILINEAR))


def native(path: str) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def pairs_of(data: Path, source: str, seed: int, n: int) -> list[tuple[str, str]]:
    """Up to n (training real, its reconstruction) pairs of a source, drawn with the seed."""
    from training.common import aligned

    reals = [i for i in split_source(data / source, seed)["train"] if i.label == 0]
    found = [(i.path, str(aligned.target_path(i.path))) for i in reals]
    found = [p for p in found if Path(p[1]).exists()]
    rng = np.random.default_rng(seed)
    return [found[k] for k in np.sort(rng.permutation(len(found))[:n])]


def paired_cv(feats: np.ndarray, folds: int = 5) -> tuple[float, float]:
    """(AUC, share of pairs whose reconstruction scores above its real) by pair-grouped CV;
    feats holds real, reconstruction, real, reconstruction, ..."""
    y = np.tile([0, 1], len(feats) // 2)
    groups = np.repeat(np.arange(len(feats) // 2), 2)
    x = (feats - feats.mean(0)) / (feats.std(0) + 1e-6)
    score = np.zeros(len(y))
    for tr, te in GroupKFold(folds).split(x, y, groups):
        score[te] = LogisticRegression(max_iter=3000).fit(x[tr], y[tr]).decision_function(x[te])
    return M.roc_auc(y, score), float(np.mean(score[1::2] > score[0::2]))


def transfer(fit: np.ndarray, reals: list[np.ndarray], fakes: list[np.ndarray]) -> float:
    """AUC on other reals and fakes of a regression fitted on all the aligned pairs."""
    y = np.tile([0, 1], len(fit) // 2)
    mu, sd = fit.mean(0), fit.std(0) + 1e-6
    model = LogisticRegression(max_iter=3000).fit((fit - mu) / sd, y)
    x = (np.array(reals + fakes) - mu) / sd
    return M.roc_auc(np.r_[np.zeros(len(reals)), np.ones(len(fakes))], model.decision_function(x))


def unpaired(data: Path, seed: int, n: int, exclude: set[str]) -> dict[str, list[Item]]:
    """Training reals without a reconstruction, and the two generators' training fakes."""
    rng = np.random.default_rng(seed + 1)

    def pick(items: list[Item]) -> list[Item]:
        return [items[k] for k in np.sort(rng.permutation(len(items))[:n])]

    train = {s: split_source(data / s, seed)["train"] for s in (*REAL_SOURCES, "sdfd-faces")}
    reals = [i for s in REAL_SOURCES for i in train[s] if i.label == 0 and i.path not in exclude]
    return {"reals": pick(reals), "sdfd-faces": pick(train["sdfd-faces"]),
            "stylegan-faces": pick([i for i in train["stylegan-faces"] if i.label == 1])}


def study(data: Path, seed: int, n: int, side: int, log=print) -> dict:
    from detector.faces import FaceDetector

    det, out, fed_all = FaceDetector(), {"per_source": {}}, []
    used: set[str] = set()
    for source in REAL_SOURCES:
        pairs = pairs_of(data, source, seed, n)
        if len(pairs) < 20:
            log(f"{source}: {len(pairs)} pairs, too few (run `dfd-train aligned` first)")
            continue
        used.update(r for r, _ in pairs)
        flat = [p for pair in pairs for p in pair]
        nat = np.array([spectrum(native(p)) for p in flat])
        fed = np.array([spectrum(as_fed(p, det, side)) for p in flat])
        fed_all.append(fed)
        psnr = [taef2.psnr(native(r), native(f)) for r, f in pairs]
        row = {"pairs": len(pairs), "psnr_median": round(float(np.median(psnr)), 1)}
        for name, feats in (("native", nat), ("as_fed", fed)):
            auc, paired = paired_cv(feats)
            row[name] = {"auc": round(auc, 3), "paired": round(paired, 3)}
        out["per_source"][source] = row
        log(f"{source}: {json.dumps(row)}")
    if fed_all:
        other = unpaired(data, seed, n, used)
        reals = [spectrum(as_fed(i.path, det, side)) for i in other["reals"]]
        fit = np.concatenate(fed_all)
        out["transfer"] = {k: round(transfer(fit, reals, [spectrum(as_fed(i.path, det, side))
                                                         for i in other[k]]), 3)
                           for k in ("sdfd-faces", "stylegan-faces")}
        log(f"transfer: {json.dumps(out['transfer'])}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dfd-research aligned-trace", description=__doc__)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--seed", type=int, default=1234, help="the training split's seed")
    p.add_argument("--pairs", type=int, default=300, help="pairs per source (and unpaired faces)")
    p.add_argument("--side", type=int, default=160, help="the trunk's input side")
    p.add_argument("--json", required=True)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    res = {"pairs": args.pairs, "side": args.side,
           **study(Path(args.data), args.seed, args.pairs, args.side)}
    Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

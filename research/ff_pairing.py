"""`dfd-research ff-pairing`: do ff-crops' video folders pair a fake with the real it was made from?

Issue 24 asks for real/fake pairs that share a source to go in the same batch, "ff-crops only if
its video ids pair them: check". The folders are numbered `real/00000..` and `fake/00000..`
(700 and 724 of them in train), so the number alone proves nothing. A face swap keeps its target
video's pose, light and framing, so a fake's frames look much more like its target's frames than
like any other video's. The check: one frame per folder as a small normalised grey thumbnail;
for each fake, the correlation with the real of the same number, with its nearest real, and, as
the null, each real's nearest *other* real. Same-number pairs would show as same-number
correlations far above random ones and nearest reals that carry the same number.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

THUMB = 24  # pixels a side: pose, light and framing survive, identity detail does not matter


def thumbs(folder: Path) -> tuple[list[str], np.ndarray]:
    """(video ids, one zero-mean unit-variance thumbnail per video: its first frame by name)."""
    ids = sorted(p.name for p in folder.iterdir() if p.is_dir())
    rows = []
    for vid in ids:
        first = sorted((folder / vid).iterdir())[0]
        with Image.open(first) as im:
            a = np.asarray(im.convert("L").resize((THUMB, THUMB), Image.BILINEAR), np.float32)
        rows.append(((a - a.mean()) / (a.std() + 1e-6)).ravel())
    return ids, np.stack(rows) if rows else np.zeros((0, THUMB * THUMB), np.float32)


def quantiles(v: np.ndarray) -> list[float]:
    return [round(float(q), 3) for q in np.quantile(v, [0.1, 0.5, 0.9])] if len(v) else []


def check(split: Path, seed: int = 0) -> dict:
    """The pairing statistics for one split folder holding real/ and fake/ video folders."""
    rid, real = thumbs(split / "real")
    fid, fake = thumbs(split / "fake")
    corr = fake @ real.T / real.shape[1]
    nearest = corr.argmax(axis=1)
    index = {v: k for k, v in enumerate(rid)}
    same = np.array([corr[k, index[v]] for k, v in enumerate(fid) if v in index])
    rand = corr[np.arange(len(fid)), np.random.default_rng(seed).integers(0, len(rid), len(fid))]
    null = real @ real.T / real.shape[1]
    np.fill_diagonal(null, -np.inf)
    share_same = float(np.mean([rid[n] == v for n, v in zip(nearest, fid, strict=True)]))
    # Unequal folder counts could shift the numbering: a nearest real a few numbers off.
    gap = np.array([abs(int(rid[n]) - int(v)) if rid[n].isdigit() and v.isdigit() else -1
                    for n, v in zip(nearest, fid, strict=True)])
    return {"real_videos": len(rid), "fake_videos": len(fid),
            "nearest_real_has_same_id": round(share_same, 3),
            "nearest_real_within_2": round(float(np.mean((gap >= 0) & (gap <= 2))), 3),
            "same_id_corr": quantiles(same), "random_corr": quantiles(rand),
            "fake_to_nearest_real": quantiles(corr.max(axis=1)),
            "real_to_nearest_other_real": quantiles(null.max(axis=1)),
            # Pairs would put most fakes' nearest real at their own number.
            "paired": share_same > 0.5}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dfd-research ff-pairing", description=__doc__)
    p.add_argument("--data", default="../shared/data/ff-crops")
    p.add_argument("--json", required=True)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    res = {s: check(Path(args.data) / s) for s in ("train", "val")
           if (Path(args.data) / s / "real").is_dir()}
    print(json.dumps(res, indent=1))
    Path(args.json).write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

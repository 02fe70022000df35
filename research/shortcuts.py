"""`dfd-research shortcuts`: the cheap cues against the label for every kind of fake in training,
before the augmentation (the files as they are) and after it (what the model is fed).

A cue with a signed AUC far from 0.5 is a shortcut a model can learn instead of the forgery; the
direction says which way it would push a fake from elsewhere (below 0.5: larger values go with
reals). Kinds: each paired source's own reals and fakes; the fake-only diffusion portraits
against the studio-like reals (FFHQ and FairFace), once cropped as stored and once as training
crops them, drawn at the reals' face sizes (training/common/real_sizes.py; the sizes drawn from
the face sides of the sampled training reals of all four real sources); the aligned fakes against
their own reals.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from research.cues import jpeg_quality, laplacian_variance, signed_auc
from training.common.data import Item, split_source
from training.policy import DRAW_AT_REAL_SIZES

CUES_BEFORE = ("sharpness", "jpeg_quality", "pixels", "face_px")
CUES_AFTER = ("sharpness", "face_px_equiv")
DRAWN = "sdfd-faces at real sizes"


def kinds(data: Path, seed: int, per_class: int) -> tuple[dict[str, list[Item]], list[Item]]:
    """(the reals and fakes of each kind of fake, from the training parts, per_class each; a
    sample of every real source's training reals)."""
    from training.common import aligned

    train = {s: split_source(data / s, seed)["train"] for s in
             ("ff-crops", "stylegan-faces", "dfdc-faces", "fairface-real", "sdfd-faces")}
    rng = np.random.default_rng(seed)

    def pick(items: list[Item]) -> list[Item]:
        if len(items) <= per_class:
            return items
        return [items[k] for k in np.sort(rng.choice(len(items), per_class, replace=False))]

    out = {s: pick([i for i in train[s] if i.label == 0]) + pick([i for i in train[s] if i.label])
           for s in ("ff-crops", "stylegan-faces", "dfdc-faces")}
    studio = [i for s in ("stylegan-faces", "fairface-real") for i in train[s] if i.label == 0]
    out["sdfd-faces"] = pick(studio) + pick(train["sdfd-faces"])
    reals = pick([i for s in ("ff-crops", "dfdc-faces", "fairface-real", "stylegan-faces")
                  for i in train[s] if i.label == 0])
    made = [Item(str(aligned.target_path(i.path)), 1, i.group, aligned.SOURCE) for i in reals]
    have = [k for k, m in enumerate(made) if Path(m.path).exists()]
    out[aligned.SOURCE] = [reals[k] for k in have] + [made[k] for k in have]
    out[DRAWN] = out["sdfd-faces"]
    return out, reals


def cues_of(item: Item, det, rng, strength: float, pool=None) -> tuple[dict, dict]:
    """(cues of the file and its crop, cues of the augmented crop the model is fed); with pool,
    a drawn source's file is cropped as training crops it, at a real face size."""
    from training.common.augment import augment
    from training.common.prep import crop_one

    data = Path(item.path).read_bytes()
    with Image.open(io.BytesIO(data)) as im:
        pixels = float(im.width * im.height)
    got = crop_one(item.path, det, pool if item.source in DRAW_AT_REAL_SIZES else None)
    side = got.face_px if got.n_faces else float("nan")
    # The drawn copy is never re-encoded: the file's JPEG quality is what it still carries.
    before = {"sharpness": laplacian_variance(got.crop), "jpeg_quality": jpeg_quality(data),
              "pixels": pixels * got.scale ** 2, "face_px": side}
    fed = augment(got.crop, rng, strength)
    # The resolution left after augmentation: the crop's sharpness relative to its own
    # unaugmented crop, times the face's size (a down-and-up scaling lowers both).
    ratio = laplacian_variance(fed) / max(before["sharpness"], 1e-9)
    after = {"sharpness": laplacian_variance(fed), "face_px_equiv": side * ratio ** 0.5}
    return before, after


def table(data: Path, seed: int, per_class: int, strength: float = 1.0) -> dict:
    """Signed cue AUCs per kind, before and after the augmentation; SDFD both as stored and
    drawn at the sampled reals' face sizes."""
    from detector.faces import FaceDetector
    from training.common.prep import crop_one

    det, rng, out = FaceDetector(), np.random.default_rng(seed + 1), {}
    groups, reals = kinds(data, seed, per_class)
    pool = np.sort([crop_one(i.path, det).face_px for i in reals])
    for kind, items in groups.items():
        y = np.array([i.label for i in items])
        pairs = [cues_of(i, det, rng, strength, pool if kind == DRAWN else None) for i in items]
        out[kind] = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
                     "before": {c: signed_auc(y, [b[c] for b, _ in pairs]) for c in CUES_BEFORE},
                     "after": {c: signed_auc(y, [a[c] for _, a in pairs]) for c in CUES_AFTER}}
        print(f"{kind}: " + json.dumps(out[kind]), flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    """Write the cue table as JSON."""
    p = argparse.ArgumentParser(prog="dfd-research shortcuts", description=__doc__)
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--seed", type=int, default=1234, help="the training split's seed")
    p.add_argument("--per-class", type=int, default=150)
    p.add_argument("--json", required=True)
    args = p.parse_args(sys.argv[1:] if argv is None else argv)
    Image.MAX_IMAGE_PIXELS = None
    res = {"per_class": args.per_class, "kinds": table(Path(args.data), args.seed,
                                                       args.per_class)}
    Path(args.json).write_text(json.dumps(res, indent=1))
    return 0

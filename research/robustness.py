"""`python -m research.robustness`: cross-source AUCs, benign-change flip rates, shortcut cues."""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from detector.faces import as_image
from research.cues import CUES, jpeg_quality, laplacian_variance, signed_auc, train_batch_cues
from training.common import metrics as M
from training.common.data import list_images, read_split

# The changes a genuine photo goes through anyway. Each returns the bytes a user would upload.
CHANGES = {
    "jpeg_q70": "re-saved as JPEG quality 70 (4:2:0)",
    "jpeg_q90": "re-saved as JPEG quality 90 (4:2:0)",
    "half_and_back": "downscaled to half (box) and back up (bicubic), PNG",
    "blur": "Gaussian blur radius 1.0 px, PNG",
    "sharpen": "unsharp mask radius 1.5 px, 60%, PNG",
    "crop_90": "central crop of 90% of width and height, PNG",
    "png": "converted to PNG (lossless: the same pixels)",
    "screenshot": "shown at 125% display scale (bicubic) and captured as PNG",
}

def _png(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG", compress_level=1)
    return buf.getvalue()


def _jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, subsampling=2)
    return buf.getvalue()


def apply_change(rgb: np.ndarray, name: str) -> bytes:
    """The uploaded bytes of an RGB image after the named benign change."""
    img = Image.fromarray(rgb)
    w, h = img.size
    if name == "jpeg_q70":
        return _jpeg(img, 70)
    if name == "jpeg_q90":
        return _jpeg(img, 90)
    if name == "half_and_back":
        small = img.resize((max(1, w // 2), max(1, h // 2)), Image.BOX)
        return _png(small.resize((w, h), Image.BICUBIC))
    if name == "blur":
        return _png(img.filter(ImageFilter.GaussianBlur(1.0)))
    if name == "sharpen":
        return _png(img.filter(ImageFilter.UnsharpMask(radius=1.5, percent=60, threshold=0)))
    if name == "crop_90":
        dx, dy = round(w * 0.05), round(h * 0.05)
        return _png(img.crop((dx, dy, w - dx, h - dy)))
    if name == "png":
        return _png(img)
    if name == "screenshot":
        return _png(img.resize((round(w * 1.25), round(h * 1.25)), Image.BICUBIC))
    raise ValueError(f"unknown change {name!r}; known: {', '.join(CHANGES)}")


def flip_rate(fake_before, fake_after) -> dict:
    """Share of images judged Real before the change that are judged Fake after it."""
    before, after = np.asarray(fake_before, bool), np.asarray(fake_after, bool)
    real_before = ~before
    flipped = int(np.sum(real_before & after))
    return {"rate": flipped / int(real_before.sum()) if real_before.any() else float("nan"),
            "flipped": flipped, "real_before": int(real_before.sum()),
            "fake_to_real": int(np.sum(before & ~after)), "n": int(len(before)),
            "ci95": M.wilson(flipped, int(real_before.sum()))}


class CachedDetector:
    """The serving detector, remembering its last answers so several models share one pass."""

    def __init__(self, face_finder, keep: int = 16):
        self.detector, self.keep, self.memo = face_finder, keep, {}

    def detect(self, image):
        """detector.detect(image) (array or PIL), reused for an identical image."""
        img = as_image(image)
        key = (img.size, hashlib.sha1(img.tobytes()).digest())
        if key not in self.memo:
            if len(self.memo) >= self.keep:
                self.memo.pop(next(iter(self.memo)))
            self.memo[key] = self.detector.detect(img)
        return self.memo[key]


def held_out_sets(data: Path, split: Path, limit: int | None = None, seed: int = 0,
                  whole: bool = False) -> dict:
    """{set name: items}: ff-crops/val and the stylegan / dfdc test parts of split.json; with
    whole, also every stylegan / dfdc file (for models that never trained on that source)."""
    sets = {"ff-crops/val": list_images(data / "ff-crops" / "val", "ff-crops")}
    for src in ("stylegan-faces", "dfdc-faces"):
        sets[f"{src}/test"] = read_split(split, src, "test", data / src)
    if whole:
        for src in ("stylegan-faces", "dfdc-faces"):
            sets[f"{src}/all"] = list_images(data / src, src)
    if limit:
        rng = np.random.default_rng(seed)
        for name, items in sets.items():
            if len(items) > limit:  # seeded, class-stratified so AUCs stay defined
                keep = np.concatenate([rng.permutation(np.flatnonzero(
                    np.array([i.label for i in items]) == c))[:limit // 2] for c in (0, 1)])
                sets[name] = [items[i] for i in np.sort(keep)]
    return sets


def trained_sources(model) -> set[str]:
    """The sources a loaded model was trained on, from its card."""
    return set(model.card.get("training", {}).get("sources", {}))


def applies(set_name: str, model) -> bool:
    """Whether a model is scored on a set: a whole-source set only if it never saw the source."""
    return not set_name.endswith("/all") or set_name.split("/")[0] not in trained_sources(model)


def score_sets(sets: dict, models: dict, face_finder, log=print) -> dict:
    """Per set: labels, cues and each model's P(fake) through detector.analyze.analyze."""
    from detector.analyze import analyze
    from shared.images import decode_image

    out = {}
    for name, items in sets.items():
        t0 = time.time()
        use = {m: model for m, model in models.items() if applies(name, model)}
        rec = {"labels": np.array([i.label for i in items]), "p": {m: [] for m in use},
               "cues": {c: [] for c in CUES}}
        for it in items:
            data = Path(it.path).read_bytes()
            rgb = decode_image(data)
            faces = face_finder.detect(rgb)
            h, w = rgb.shape[:2]
            box = faces[0].box if faces else (0, 0, 0, 0)
            rec["cues"]["sharpness"].append(laplacian_variance(rgb))
            rec["cues"]["jpeg_quality"].append(jpeg_quality(data))
            rec["cues"]["pixels"].append(w * h)
            rec["cues"]["face_box"].append((box[2] - box[0]) * (box[3] - box[1]) / (w * h))
            for m, model in use.items():
                rec["p"][m].append(analyze(rgb, face_finder, model)["p_fake"])
        log(f"{name}: {len(items)} images scored by {len(use)} model(s) in "
            f"{time.time() - t0:.0f}s")
        out[name] = rec
    return out


def auc_tables(scored: dict, models: dict) -> tuple[dict, dict]:
    """({model: {set: report with a bootstrap 95% AUC interval}}, {set: {cue: signed AUC, ...,
    'model:NAME': AUC}})."""
    cross, cues = {m: {} for m in models}, {}
    for name, rec in scored.items():
        y = rec["labels"]
        cues[name] = {c: signed_auc(y, v) for c, v in rec["cues"].items()}
        for m, p in rec["p"].items():
            r = M.report(y, np.array(p), models[m].threshold)
            cross[m][name] = {k: r[k] for k in ("n_real", "n_fake", "auc", "accuracy", "eer")}
            cross[m][name]["auc_ci95"] = M.auc_ci(y, np.array(p))
            cues[name][f"model:{m}"] = r["auc"]
    return cross, cues


def drift(p_before, p_after) -> dict:
    """How far P(fake) moved on the images judged Real before the change (given as P(fake)
    against the threshold by flip_rates): the mean change, and the share moved more than 0.1."""
    d = np.asarray(p_after, np.float64) - np.asarray(p_before, np.float64)
    return {"mean_dp": float(d.mean()) if len(d) else float("nan"),
            "moved_over_0.1": float(np.mean(np.abs(d) > 0.1)) if len(d) else float("nan"),
            "p_before_median": float(np.median(p_before)) if len(d) else float("nan")}


def flip_rates(sets: dict, models: dict, face_finder, log=print) -> dict:
    """{model: {set: {change: flip_rate() | drift()}}} on the real images of each set."""
    from detector.analyze import analyze
    from shared.images import decode_image

    res = {m: {s: {c: [] for c in ("original", *CHANGES)} for s in sets} for m in models}
    for name, items in sets.items():
        t0 = time.time()
        reals = [i for i in items if i.label == 0]
        for it in reals:
            rgb = decode_image(Path(it.path).read_bytes())
            variants = {"original": rgb} | {c: decode_image(apply_change(rgb, c)) for c in CHANGES}
            for c, img in variants.items():
                for m, model in models.items():
                    r = analyze(img, face_finder, model)
                    res[m][name][c].append((r["label"] == "Fake", r["p_fake"]))
        log(f"flip rates {name}: {len(reals)} real images x {len(CHANGES)} changes in "
            f"{time.time() - t0:.0f}s")
    out: dict = {}
    for m, per in res.items():
        out[m] = {}
        for s, v in per.items():
            fake0, p0 = (np.array(x) for x in zip(*v["original"], strict=True))
            out[m][s] = {}
            for c in CHANGES:
                fake1, p1 = (np.array(x) for x in zip(*v[c], strict=True))
                real0 = ~fake0.astype(bool)
                out[m][s][c] = flip_rate(fake0, fake1) | drift(p0[real0], p1[real0])
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(prog="python -m research.robustness", description=__doc__)
    p.add_argument("--model", action="append", required=True, metavar="[NAME=]DIR",
                   help="model directory; repeat to score several models in one pass")
    p.add_argument("--json", required=True, help="write every table here")
    p.add_argument("--data", default="../shared/data", help="data root")
    p.add_argument("--split", help="split.json naming the held-out files (default: first "
                   "model's)")
    p.add_argument("--limit", type=int, help="at most N images per set (seeded, balanced)")
    p.add_argument("--flip-limit", type=int, help="at most N real images per set for flips")
    p.add_argument("--no-flips", action="store_true", help="skip the flip-rate table")
    p.add_argument("--whole-sources", action="store_true", help="also score each model on "
                   "every file of the stylegan / dfdc sources it never trained on")
    p.add_argument("--batch-cues", type=int, default=0, metavar="N",
                   help="also measure cues on N per class augmented training crops per source")
    p.add_argument("--aug-strength", type=float, help="augmentation strength for --batch-cues "
                   "(default: the first model's, from its card)")
    p.add_argument("--threads", type=int, default=1, help="model threads")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Measure and write the JSON; returns a process exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from detector.faces import FaceDetector
    from detector.model import load_model

    named = [m.split("=", 1) if "=" in m else [Path(m).name, m] for m in args.model]
    models = {n: load_model(d, threads=args.threads) for n, d in named}
    split = Path(args.split or Path(named[0][1]) / "split.json")
    doc = json.loads(split.read_text())
    data = Path(args.data)
    face_finder = CachedDetector(FaceDetector())
    sets = held_out_sets(data, split, args.limit, whole=args.whole_sources)
    t0 = time.time()
    scored = score_sets(sets, models, face_finder)
    cross, cues = auc_tables(scored, models)
    report = {"models": {n: {"dir": d, "version": models[n].version} for n, d in named},
              "split": str(split), "split_seed": doc["seed"], "limit": args.limit,
              "sets": {s: {"n_real": int(sum(i.label == 0 for i in v)),
                           "n_fake": int(sum(i.label == 1 for i in v))} for s, v in sets.items()},
              "auc": cross, "cues": cues, "cue_definitions": CUES,
              "cue_auc_rule": "signed ROC AUC with the cue as the fake score: 0.5 = no signal, "
              "above 0.5 larger values go with fakes, below with reals"}
    if not args.no_flips:
        flip_sets = held_out_sets(data, split, args.flip_limit and 2 * args.flip_limit, seed=1)
        report["flip_rates"] = flip_rates(flip_sets, models, face_finder)
        report["changes"] = CHANGES
    if args.batch_cues:
        strength = args.aug_strength or models[named[0][0]].card.get("training", {}).get(
            "aug_strength", 1.0)
        report["train_batch_cues"] = train_batch_cues(data, doc["seed"], args.batch_cues,
                                                      strength=strength)
    report["seconds"] = round(time.time() - t0, 1)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=1) + "\n")
    for m in models:
        print(m, " ".join(f"{s} AUC {r['auc']:.4f}" for s, r in cross[m].items()))
        for s, per in report.get("flip_rates", {}).get(m, {}).items():
            print("  flips", s, " ".join(f"{c} {r['rate']:.3f}" for c, r in per.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

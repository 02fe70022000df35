"""`dfd-train train DATA...`: crop, train, select, calibrate, export and evaluate the detector."""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from training.common import data as D
from training.common.aligned import partners
from training.e2e.batches import train_keypoints
from training.e2e.recipe import WEIGHTS
from training.e2e.state import RunContext


def log(msg: str) -> None:
    """Progress line to stdout, flushed at once (the run is usually watched through a log)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of `dfd-train train`."""
    p = argparse.ArgumentParser(prog="dfd-train train", description=__doc__)
    p.add_argument("data", nargs="+", help="data roots holding real/ and fake/ (or train/ val/)")
    p.add_argument("--out", default="models/dfd-mnv2", help="model directory to write")
    p.add_argument("--epochs", type=int, default=20,
                   help="epochs in all, warm-up included (at most, with --time-budget)")
    p.add_argument("--warmup-epochs", type=int, default=1, help="head-only epochs first")
    p.add_argument("--epoch-images", type=int, default=20000, help="images drawn per epoch")
    p.add_argument("--seed", type=int, default=1234, help="the split, the aligned reals and "
                   "(unless --train-seed) the training's own draws")
    p.add_argument("--train-seed", type=int, help="only the training's draws (initial head, "
                   "batches, augmentation): a second seed on the same split and caches")
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
    p.add_argument("--width", type=float, choices=(0.35, 1.0), default=0.35,
                   help="MobileNetV2 trunk width (1.0: 2.26 M parameters, about 2.7x the cost)")
    p.add_argument("--weights", help="ImageNet trunk .npz (default: the one of --width in "
                   "../shared/weights)")
    p.add_argument("--sbi-rate", type=float, default=0.25, metavar="P",
                   help="share of real training crops that get a self-blended pseudo-fake")
    p.add_argument("--sbi-mode", choices=("replace-fake", "replace-real"), default="replace-fake",
                   help="where a pseudo-fake goes: in place of one of the batch's fakes (keeps "
                   "the classes 50/50) or in place of its own real (the first recipe)")
    p.add_argument("--prior-fake", default="auto", metavar="P|auto",
                   help="share of fakes the served P(fake) assumes; auto: chosen on the "
                   "calibration split for issue 11's targets "
                   "(training.policy.choose_prior_issue11)")
    p.add_argument("--mask-weight", type=float, default=0.0, metavar="W",
                   help="weight of the blend-mask head's loss (Face X-ray style; 0: no mask "
                   "head). Pseudo-fakes give the mask, reals an empty one, real fakes none")
    _study_options(p)
    _network_options(p)
    p.add_argument("--init-model", metavar="KERAS", help="start from this model.keras's weights "
                   "(same architecture) instead of the ImageNet trunk and a new head")
    args = p.parse_args(argv)
    args.train_seed = args.seed if args.train_seed is None else args.train_seed
    if args.weights is None:  # mobilenetv2_0.35_... or mobilenetv2_1.0_...
        args.weights = str(WEIGHTS.with_name(f"mobilenetv2_{args.width}_224_imagenet_notop.npz"))
    if args.arch != "mobilenetv2":
        if args.mask_weight or args.init_model:
            p.error(f"--arch {args.arch}: --mask-weight and --init-model are MobileNetV2's")
        # CLIP's position embedding fixes its input at 224 px; it has no width or ImageNet file.
        args.internal_size, args.width, args.weights = 224, None, None
    return args


def _network_options(p: argparse.ArgumentParser) -> None:
    """Which network is trained (training/e2e/arch.py), and in what precision."""
    from training.e2e.arch import ARCHS

    p.add_argument("--arch", choices=sorted(ARCHS), default="mobilenetv2",
                   help="mobilenetv2: the served recipe; clip-lora / clip-ln: CLIP ViT-B/16's "
                   "first six blocks tuned through low-rank adapters / their LayerNorms "
                   "(training/e2e/clip_tuned.py), for the study")
    p.add_argument("--lora-rank", type=int, default=8, help="rank of each adapter (clip-lora)")
    p.add_argument("--precision", choices=("float32", "bf16"), default="float32",
                   help="training arithmetic (bf16: Keras mixed_bfloat16, about 2x faster for "
                   "CLIP on a CPU with AMX or AVX-512 BF16); the served model is float32 either "
                   "way")


def _study_options(p: argparse.ArgumentParser) -> None:
    """What a run leaves out, and the aligned fakes it makes (make study)."""
    p.add_argument("--leave-out-reals", action="append", default=[], metavar="SOURCE",
                   help="train, select and calibrate without this source's real images (its "
                   "test part is kept); repeatable")
    p.add_argument("--aligned-cap", type=int, default=0, metavar="N",
                   help="aligned fakes: reconstruct at most N training reals per source through "
                   "TAEF2 (training/common/aligned.py) and train on them beside their reals "
                   "(0: none)")
    p.add_argument("--leave-out", action="append", default=[], metavar="SOURCE",
                   help="leave this whole source out of training, selection and calibration "
                   "(with the aligned fakes of its reals), after cropping: every fold of a "
                   "study shares one crop cache; repeatable")
    p.add_argument("--aligned-training", action=argparse.BooleanOptionalAction, default=True,
                   help="train on the aligned fakes made (--no-aligned-training: make them, so "
                   "the crop cache is the same, but leave them out: the ablation)")
    p.add_argument("--prep-only", action="store_true",
                   help="make the crop, aligned-fake and keypoint caches, then stop (a study "
                   "does this once, so no run's time budget pays for it)")


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


def _add_aligned(splits: dict, args: argparse.Namespace) -> dict[str, str]:
    """Put the aligned fakes of the training reals in splits (train part only; never made from
    a source whose reals are left out); {reconstruction path: its real's path}."""
    if not args.aligned_cap:
        return {}
    from training.common import aligned

    reals = [i for src, parts in splits.items() if src not in args.leave_out_reals
             for i in parts["train"] if i.label == 0]
    chosen = aligned.choose_reals(reals, args.aligned_cap, args.seed)
    made = aligned.reconstruct(chosen, log=log)
    splits[aligned.SOURCE] = {"train": made, "calib": [], "test": []}
    return {m.path: r.path for m, r in zip(made, chosen, strict=True)}


def _leave_out(args: argparse.Namespace, splits: dict, ranges: dict, items: list,
               aligned_of: dict[str, str]) -> None:
    """Cut --leave-out sources (and the aligned fakes of their reals) and, with
    --no-aligned-training, every aligned fake, after cropping: the rows stay in the cache."""
    from training.common.aligned import SOURCE

    for src in args.leave_out:
        for part in ("train", "calib", "test"):
            ranges.pop((src, part), None)
        splits.pop(src, None)
    if (SOURCE, "train") not in ranges:
        return
    source_of = {i.path: i.source for i in items}
    rows = ranges[(SOURCE, "train")]
    keep = [args.aligned_training and source_of.get(aligned_of.get(items[r].path, ""))
            not in args.leave_out for r in rows]
    ranges[(SOURCE, "train")] = rows[np.asarray(keep, bool)]
    splits[SOURCE]["train"] = [items[r] for r in ranges[(SOURCE, "train")]]


def _splits(args: argparse.Namespace, out: Path) -> dict:
    """The seeded split of every data root (capped by --limit), recorded in split.json without
    the sources left out."""
    splits = D.split_all(args.data, args.seed)
    if args.limit:
        rng = np.random.default_rng(args.seed)
        for parts in splits.values():
            for part, items in parts.items():
                if len(items) > args.limit:
                    keep = np.sort(rng.choice(len(items), args.limit, replace=False))
                    parts[part] = [items[i] for i in keep]
    unknown = set(args.leave_out_reals + args.leave_out) - set(splits)
    if unknown:
        raise SystemExit(f"--leave-out(-reals) {sorted(unknown)[0]}: no such data root")
    kept = [r for r in args.data if Path(r).name not in args.leave_out]
    D.write_split({s: v for s, v in splits.items() if s not in args.leave_out}, kept, args.seed,
                  out / "split.json")
    return splits


def _rows(splits: dict) -> tuple[list, dict]:
    """One cache over every image of every part: (items, ranges per (source, part) into it)."""
    items: list = []
    ranges = {}
    for src, parts in splits.items():
        for part, its in parts.items():
            ranges[(src, part)] = np.arange(len(items), len(items) + len(its))
            items.extend(its)
            log(f"{src}/{part}: {sum(i.label == 0 for i in its)} real, "
                f"{sum(i.label == 1 for i in its)} fake, {len({i.group for i in its})} groups")
    return items, ranges


def main(argv: list[str] | None = None) -> int:
    """Train end to end; returns a process exit code."""
    from training.e2e.loop import run

    args = parse_args(sys.argv[1:] if argv is None else argv)
    t_start = time.time()
    out = Path(args.out)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    splits = _splits(args, out)
    aligned_of = _add_aligned(splits, args)
    items, ranges = _rows(splits)
    from training.common.prep import at_real_sizes, build_cache

    crops, meta = build_cache([i.path for i in items], log=log)
    labels = np.array([i.label for i in items], np.int64)
    # Before any cut below, but from the reals this run trains on only (real_sizes.py).
    crops, meta["drawn_at_real_sizes"] = at_real_sizes(
        crops, meta, items, ranges, labels, args.leave_out, args.leave_out_reals, log=log)
    prep_seconds = time.time() - t_start
    log(f"crops ready ({prep_seconds:.0f}s; face found in {meta['face_found']:.1%})")
    keypoints = None
    if args.sbi_rate:
        keypoints = train_keypoints(crops, meta, ranges, labels)
        found = int(np.isfinite(keypoints[:, 0, 0]).sum())
        log(f"SBI masks: keypoints for {found} real training crops, ellipse for the rest")
    for src in args.leave_out_reals:
        # Leave-one-real-source-out: none of its real faces in training, model selection or
        # calibration; its test reals stay, to show how real faces never seen are treated. Cut after
        # cropping and keypoints, so every such run shares one crop and keypoint cache.
        for part in ("train", "calib"):
            ranges[(src, part)] = ranges[(src, part)][labels[ranges[(src, part)]] == 1]
            splits[src][part] = [i for i in splits[src][part] if i.label == 1]
    if args.prep_only:
        log("caches ready (--prep-only)")
        return 0
    _leave_out(args, splits, ranges, items, aligned_of)
    ctx = RunContext(args=args, out=out, work=work, splits=splits, ranges=ranges, crops=crops,
                     labels=labels, meta=meta, t_start=t_start, prep_seconds=prep_seconds,
                     machine=machine(), log=log, keypoints=keypoints,
                     partner=partners(items, aligned_of))
    run(ctx)
    if not args.keep_work:
        # The checkpoints are ~13 MB and only serve --resume; the model directory ships.
        shutil.rmtree(work, ignore_errors=True)
    log(f"done in {time.time() - t_start:.0f}s; model in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

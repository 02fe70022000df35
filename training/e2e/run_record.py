"""What a training run writes into its model card besides the fitted numbers: the input spec,
the training record, the held-out metrics, and the crops the export is checked on."""

from __future__ import annotations

import time

import numpy as np

from training.common import metrics as M
from training.common.data import SOURCES, SPLIT_RULE, TERMS
from training.e2e.arch import ARCHS
from training.e2e.batches import predict
from training.e2e.recipe import AUGMENTATION, SBI, SHARES
from training.e2e.state import RunContext, TrainState
from training.policy import SEED_THRESHOLD


def held_out_metrics(ctx: RunContext, model, served, p_cal, calib) -> dict:
    """M.report of the calibration split and of every held-out part, as served."""
    metrics = {"calibration (pooled)": M.report(ctx.labels[calib], served(p_cal), SEED_THRESHOLD)}
    for (src, part), idx in ctx.ranges.items():
        if part == "train" or not len(idx):
            continue
        name = f"{src}/val" if src == "ff-crops" and part == "test" else f"{src}/held-out-{part}"
        p = served(predict(model, ctx.crops, idx))
        metrics[name] = M.report(ctx.labels[idx], p, SEED_THRESHOLD)
        m = metrics[name]
        ctx.log(f"{name}: AUC {m['auc']:.4f} acc {m['accuracy']:.4f} ECE {m['ece']:.4f} "
                f"EER {m['eer']:.4f} (n {m['n_real']} real, {m['n_fake']} fake)")
    return metrics


def export_check_crops(ctx: RunContext) -> np.ndarray | None:
    """200 real test crops for the export check (ff-crops/val first, as it is the largest)."""
    labels = ctx.labels
    reals = np.concatenate([i[labels[i] == 0] for (s, p), i in ctx.ranges.items()
                            if p == "test"])
    return np.asarray(ctx.crops[np.sort(np.random.default_rng(ctx.args.seed).choice(
        reals, min(200, len(reals)), replace=False))]) if len(reals) else None


def input_spec() -> dict:
    """The card's `input`: what the model takes, and the crop that makes it."""
    from detector import crop

    det = crop.detector_settings()
    return {"shape": [224, 224, 3], "dtype": "float32", "range": [0, 255], "color": "RGB",
            "crop": {"size": crop.CROP_SIZE, "margin": crop.MARGIN,
                     "detector": f"BlazeFace {det['model']}-range, "
                                 f"min_score {det['min_score']}"}}


def training_record(ctx: RunContext, state: TrainState, bn_ok: bool) -> dict:
    """The card's `training`: data, recipe, schedule and history of this run."""
    args = ctx.args
    sources = {}
    for src, parts in ctx.splits.items():
        sources[src] = {"origin": SOURCES.get(src, src), "terms": TERMS.get(src, "see source"),
                        "counts": {part: {"real": sum(i.label == 0 for i in its),
                                          "fake": sum(i.label == 1 for i in its)}
                                   for part, its in parts.items()}}
    return {
        "sources": sources, "split_rule": SPLIT_RULE, "seed": args.seed,
        "train_seed": args.train_seed,
        "epochs": state.epoch, "warmup_epochs": args.warmup_epochs,
        "best_epoch": state.best_epoch, "images_seen": state.images_seen,
        "images": {"train": int(sum(len(i) for (s, p), i in ctx.ranges.items()
                                    if p == "train"))},
        "batch_size": args.batch_size, "lr": args.lr, "head_lr": args.head_lr,
        "internal_size": args.internal_size, "epoch_images": args.epoch_images,
        "aug_strength": args.aug_strength, "source_shares": SHARES,
        "face_found": ctx.meta["face_found"], "augmentation": AUGMENTATION,
        "drawn_at_real_sizes": ctx.meta.get("drawn_at_real_sizes"),
        "sbi_rate": args.sbi_rate, "pseudo_fakes": SBI if args.sbi_rate else None,
        "sbi_mode": args.sbi_mode if args.sbi_rate else None,
        "mask_weight": args.mask_weight, "trunk_width": args.width,
        "arch": args.arch, "network": ARCHS[args.arch].describe, "precision": args.precision,
        "lora_rank": args.lora_rank if args.arch == "clip-lora" else None,
        "frozen": ARCHS[args.arch].frozen_what,
        "left_out_reals": args.leave_out_reals,
        "init_model": args.init_model,
        "prep_seconds": round(ctx.prep_seconds, 1),
        "seconds": round(time.time() - ctx.t_start, 1), "machine": ctx.machine,
        "batchnorm_frozen_verified": bn_ok, "history": state.history,
        "model_selection": "best mean per-source AUC on the calibration split",
    }

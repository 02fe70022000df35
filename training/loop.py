"""The training loop behind `dfd-train train`: warm-up, fine-tune, select, calibrate, export."""

from __future__ import annotations

import math
import time

import numpy as np

from detector.model import calibrate
from detector.stability import all_variants
from training import calibrate as C
from training import metrics as M
from training.bands import choose_prior, fit_assessment
from training.batches import Batches, epoch_indices, predict
from training.data import SPLIT_RULE
from training.export import SOURCES, TERMS, export_model, keras_predict
from training.model import (
    batchnorm_stats,
    build_model,
    masked_bce,
    serving_model,
    set_trunk_trainable,
)
from training.recipe import AUGMENTATION, LIMITATIONS, SBI, SHARES, THRESHOLD
from training.state import RunContext, TrainState

FINAL_RESERVE_S = 420  # calibration, bands (~3 min), export (~10 s), test-set scoring, margin


def _calib_score(ctx: RunContext, model) -> tuple[float, dict]:
    """Mean over sources of the calibration-split AUC (each source counts the same).

    A real-only source (FairFace) is scored as its reals against every source's calibration
    fakes pooled: that is how its faces would be ranked against the fakes we know.
    """
    labels, preds = ctx.labels, {}
    for (src, part), idx in ctx.ranges.items():
        if part == "calib" and len(idx):
            preds[src] = (labels[idx], predict(model, ctx.crops, idx))
    fakes = [p[y == 1] for y, p in preds.values()]
    pooled = np.concatenate(fakes) if fakes else np.zeros(0)
    aucs = {}
    for src, (y, p) in preds.items():
        if y.min() == y.max() == 0 and len(pooled):
            y, p = np.concatenate([y, np.ones(len(pooled), y.dtype)]), np.concatenate([p, pooled])
        aucs[src] = M.roc_auc(y, p)
    valid = [a for a in aucs.values() if a == a]
    return (float(np.mean(valid)) if valid else 0.0), aucs


def collapsed(aucs: dict) -> bool:
    """Every calibration AUC exactly 0.5 or NaN: the net gives one constant output."""
    return bool(aucs) and all(a == 0.5 or a != a for a in aucs.values())


def _save(model, opt, ctx: RunContext, state: TrainState, best: bool) -> None:
    import keras

    work = ctx.work
    model.save_weights(work / "last.weights.h5")
    np.savez(work / "optimizer.npz", *[keras.ops.convert_to_numpy(v) for v in opt.variables])
    if best:
        model.save_weights(work / "best.weights.h5")
    state.save(work / "state.json")  # last: marks a whole epoch


def _compile(model, phase: str, lr: float, mask_weight: float = 0.0):
    import keras

    set_trunk_trainable(model, phase == "full")
    opt = keras.optimizers.Adam(learning_rate=lr)
    if mask_weight:
        model.compile(optimizer=opt, loss=["binary_crossentropy", masked_bce],
                      loss_weights=[1.0, mask_weight], metrics=[["accuracy"], []])
    else:
        model.compile(optimizer=opt, loss="binary_crossentropy", metrics=["accuracy"])
    return opt


def _accuracy(res: dict) -> float:
    # One output: "accuracy"; with the mask head Keras names it after the output layer.
    return float(next(v for k, v in res.items() if k.endswith("accuracy")))


def _restore_optimizer(model, opt, path) -> None:
    """Put Adam's moments and step count back after a resume (same phase, same variables)."""
    saved = np.load(path)
    opt.build(model.trainable_variables)
    arrays = [saved[f"arr_{i}"] for i in range(len(saved.files))]
    if len(arrays) == len(opt.variables):
        for v, a in zip(opt.variables, arrays, strict=True):
            v.assign(a)


def run(ctx: RunContext) -> None:
    """Train, pick the best epoch on the calibration split, calibrate, export, evaluate."""
    import keras

    args, log, work = ctx.args, ctx.log, ctx.work
    keras.utils.set_random_seed(args.seed)
    model = build_model(args.weights, internal_size=args.internal_size, width=args.width,
                        mask_head=bool(args.mask_weight))
    grid = int(model.outputs[1].shape[1]) if args.mask_weight else 0
    if args.init_model:
        # Warm start from a trained detector: its BatchNorm statistics are ImageNet's too.
        model.set_weights(keras.saving.load_model(args.init_model, safe_mode=True).get_weights())
        log(f"weights from {args.init_model}")
    bn_before = batchnorm_stats(model)  # ImageNet statistics: frozen, so they must stay
    state = TrainState(planned_epochs=args.epochs)
    resumed = args.resume and (work / "state.json").exists()
    if resumed:
        state = TrainState.load(work / "state.json")
        model.load_weights(work / "last.weights.h5")
        log(f"resuming after epoch {state.epoch}")
    train_by_source = {s: idx for (s, part), idx in ctx.ranges.items()
                       if part == "train" and len(idx)}
    steps = args.epoch_images // args.batch_size
    phase, opt = None, None
    while state.epoch < state.planned_epochs:
        epoch = state.epoch
        want = "head" if epoch < args.warmup_epochs else "full"
        if want != phase:
            phase = want
            opt = _compile(model, phase, args.head_lr if phase == "head" else args.lr,
                           args.mask_weight)
            if resumed and (work / "optimizer.npz").exists() and epoch != args.warmup_epochs:
                _restore_optimizer(model, opt, work / "optimizer.npz")
        idx = epoch_indices(train_by_source, ctx.labels, steps * args.batch_size,
                            np.random.default_rng([args.seed, epoch]))
        full_steps = max(1, (state.planned_epochs - args.warmup_epochs) * steps)
        t0, sums = time.time(), np.zeros(2)
        feed = Batches(ctx.crops, idx, ctx.labels, args.batch_size, (args.seed, epoch),
                       args.aug_strength, sbi_rate=args.sbi_rate,
                       keypoints=ctx.keypoints,
                       sbi_balanced=args.sbi_mode == "replace-fake", mask_grid=grid)
        for b, (x, y) in enumerate(feed):
            if phase == "full":
                # Linear warm-up over 100 steps, then cosine decay to 2% of the peak.
                s = state.full_step
                frac = min(s / full_steps, 1.0)
                peak = args.lr * state.lr_scale
                lr = peak * min(1.0, (s + 1) / 100) * (
                    0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))
                opt.learning_rate.assign(lr)
                state.full_step += 1
            res = model.train_on_batch(x, list(y) if grid else y, return_dict=True)
            # train_on_batch reports the batch alone: keep the epoch's running means here.
            sums += (res["loss"], _accuracy(res))
            logs = {"loss": sums[0] / (b + 1), "accuracy": sums[1] / (b + 1)}
            if (b + 1) % 100 == 0:
                rate = (b + 1) * args.batch_size / (time.time() - t0)
                log(f"  epoch {epoch + 1} step {b + 1}/{steps} loss {logs['loss']:.4f} "
                    f"acc {logs['accuracy']:.4f} {rate:.0f} img/s")
        train_s = time.time() - t0
        score, aucs = _calib_score(ctx, serving_model(model))
        epoch_s = time.time() - t0
        state.train_seconds += epoch_s
        state.images_seen += steps * args.batch_size
        if phase == "full" and collapsed(aucs):
            # Dead ReLU6 units behind frozen BatchNorm (seen at 6e-4 and 1e-3 with SBI and
            # strength 1): go back to the best epoch and halve the learning rate.
            state.lr_scale = state.lr_scale / 2
            model.load_weights(work / "best.weights.h5")
            opt = _compile(model, phase, args.lr * state.lr_scale, args.mask_weight)
            log(f"epoch {epoch + 1} collapsed to a constant output: back to epoch "
                f"{state.best_epoch}'s weights, learning rate x{state.lr_scale:g}")
        best = score > state.best_score
        if best:
            state.best_score, state.best_epoch = score, epoch + 1
        state.history.append({"epoch": epoch + 1, "phase": phase, "loss": float(logs["loss"]),
                                 "train_acc": float(logs["accuracy"]), "calib_auc": aucs,
                                 "calib_score": score, "seconds": round(epoch_s, 1)})
        log(f"epoch {epoch + 1}/{state.planned_epochs} [{phase}] loss {logs['loss']:.4f} "
            f"train acc {logs['accuracy']:.4f} calib AUC "
            + " ".join(f"{k} {v:.4f}" for k, v in aucs.items())
            + f" mean {score:.4f}{' *best' if best else ''} | {train_s:.0f}s train, "
            f"{epoch_s:.0f}s epoch, {steps * args.batch_size / train_s:.0f} img/s")
        state.epoch = epoch + 1
        if args.time_budget and phase == "full":
            # Fit the plan (and with it the cosine schedule) to the budget, at most --epochs:
            # the machine is shared, so epoch times drift; judge by the last two full epochs.
            recent = [h["seconds"] for h in state.history if h["phase"] == "full"][-2:]
            left = args.time_budget * 60 - (time.time() - ctx.t_start) - FINAL_RESERVE_S
            fit = min(args.epochs, state.epoch + max(0, int(left // np.mean(recent))))
            if fit != state.planned_epochs:
                log(f"time budget: {state.planned_epochs} -> {fit} epochs")
                state.planned_epochs = fit
        _save(model, opt, ctx, state, best)
    finish(ctx, state, bn_before)


def finish(ctx: RunContext, state: TrainState, bn_before) -> dict:
    """Best weights -> temperature -> metrics -> export of the model directory."""
    args, log, crops, labels = ctx.args, ctx.log, ctx.crops, ctx.labels
    model = build_model(None, internal_size=args.internal_size, mask_head=bool(args.mask_weight),
                        width=args.width)
    model.load_weights(ctx.work / "best.weights.h5")
    bn_after = batchnorm_stats(model)
    model = serving_model(model)  # P(fake) only, from here on: what is exported and served
    bn_ok = all(np.array_equal(a, b) for a, b in zip(bn_before, bn_after, strict=True))
    if not bn_ok:
        raise RuntimeError("trunk BatchNorm moving statistics changed during training")
    calib = np.concatenate([i for (s, p), i in ctx.ranges.items() if p == "calib"])
    p_cal = predict(model, crops, calib)
    temperature = C.fit_temperature(C.logit(p_cal), labels[calib])
    z, y = C.logit(p_cal), labels[calib]
    log(f"temperature {temperature:.4f} (calibration NLL {C.nll(z, y, 1):.4f} -> "
        f"{C.nll(z, y, temperature):.4f})")
    source = np.empty(len(labels), object)
    for (src, _), idx in ctx.ranges.items():
        source[idx] = src
    prior_choice = None
    if args.prior_fake == "auto":
        prior, grid = choose_prior(labels[calib], C.apply_temperature(p_cal, temperature),
                                   source[calib], THRESHOLD)
        prior_choice = {"rule": " ".join(choose_prior.__doc__.split("\n\n")[0].split()),
                        "grid": grid}
    else:
        prior = float(args.prior_fake)
    log(f"served prior share of fakes {prior}")

    def served(p_raw):
        return calibrate(p_raw, temperature, prior)
    metrics = {"calibration (pooled)": M.report(labels[calib],
                                                served(p_cal), THRESHOLD)}
    for (src, part), idx in ctx.ranges.items():
        if part == "train" or not len(idx):
            continue
        name = f"{src}/val" if src == "ff-crops" and part == "test" else f"{src}/held-out-{part}"
        p = served(predict(model, crops, idx))
        metrics[name] = M.report(labels[idx], p, THRESHOLD)
        m = metrics[name]
        log(f"{name}: AUC {m['auc']:.4f} acc {m['accuracy']:.4f} ECE {m['ece']:.4f} "
            f"EER {m['eer']:.4f} (n {m['n_real']} real, {m['n_fake']} fake)")
    # 200 real test images for the export check (ff-crops/val first, as it is the largest).
    reals = np.concatenate([i[labels[i] == 0] for (s, p), i in ctx.ranges.items()
                            if p == "test"])
    check = np.asarray(crops[np.sort(np.random.default_rng(args.seed).choice(
        reals, min(200, len(reals)), replace=False))]) if len(reals) else None
    from detector import crop

    sources = {}
    for src, parts in ctx.splits.items():
        sources[src] = {"origin": SOURCES.get(src, src), "terms": TERMS.get(src, "see source"),
                        "counts": {part: {"real": sum(i.label == 0 for i in its),
                                          "fake": sum(i.label == 1 for i in its)}
                                   for part, its in parts.items()}}
    det = crop.detector_settings()

    card = {
        "name": "dfd-mobilenetv2",
        "input": {"shape": [224, 224, 3], "dtype": "float32", "range": [0, 255], "color": "RGB",
                  "crop": {"size": crop.CROP_SIZE, "margin": crop.MARGIN,
                           "detector": f"BlazeFace {det['model']}-range, "
                                       f"min_score {det['min_score']}"}},
        "threshold": THRESHOLD, "temperature": temperature, "prior_fake": prior,
        "prior_choice": prior_choice,
        "training": {
            "sources": sources, "split_rule": SPLIT_RULE, "seed": args.seed,
            "epochs": state.epoch, "warmup_epochs": args.warmup_epochs,
            "best_epoch": state.best_epoch, "images_seen": state.images_seen,
            "images": {"train": int(sum(len(i) for (s, p), i in ctx.ranges.items()
                                        if p == "train"))},
            "batch_size": args.batch_size, "lr": args.lr, "head_lr": args.head_lr,
            "internal_size": args.internal_size, "epoch_images": args.epoch_images,
            "aug_strength": args.aug_strength, "source_shares": SHARES,
            "face_found": ctx.meta["face_found"], "augmentation": AUGMENTATION,
            "sbi_rate": args.sbi_rate, "pseudo_fakes": SBI if args.sbi_rate else None,
            "sbi_mode": args.sbi_mode if args.sbi_rate else None,
            "mask_weight": args.mask_weight, "trunk_width": args.width,
            "left_out_reals": args.leave_out_reals,
            "init_model": args.init_model,
            "prep_seconds": round(ctx.prep_seconds, 1),
            "seconds": round(time.time() - ctx.t_start, 1), "machine": ctx.machine,
            "batchnorm_frozen_verified": bn_ok, "history": state.history,
            "model_selection": "best mean per-source AUC on the calibration split",
        },
        "metrics": metrics, "limitations": LIMITATIONS,
    }
    order = np.sort(calib)
    card["assessment"] = fit_assessment(lambda x: served(keras_predict(model, x)), crops[order],
                                        labels[order], source[order], all_variants, THRESHOLD)
    log(f"assessment bands: likely_real below {card['assessment']['likely_real_below']:.3f}, "
        f"likely_fake from {card['assessment']['likely_fake_from']:.3f}, faces from "
        f"{card['assessment']['min_face_px']} px, served {card['assessment']['served']}")
    card = export_model(model, ctx.out, card, check)
    log(f"exported version {card['version']}; export check {card.get('export_check')}")
    return card

"""The training loop behind `dfd-train train`: warm-up and fine-tune epochs, each scored on the
calibration split, checkpointed for --resume; then training.e2e.finish."""

from __future__ import annotations

import time

import numpy as np

from training.common import metrics as M
from training.common.aligned import pair_up
from training.e2e.arch import arch_of
from training.e2e.batches import Batches, epoch_indices, predict
from training.e2e.finish import finish
from training.e2e.model import masked_bce
from training.e2e.schedule import learning_rate
from training.e2e.state import RunContext, TrainState

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


def _compile(ctx: RunContext, model, phase: str, lr: float, mask_weight: float = 0.0):
    import keras

    arch_of(ctx.args).set_phase(model, phase == "full")
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


def _start(ctx: RunContext):
    """The model to train (warm-started or resumed as asked), the weights that must not move
    (arch.frozen: ImageNet's BatchNorm statistics, CLIP's untuned weights), the run's state."""
    import keras

    args, log, work = ctx.args, ctx.log, ctx.work
    keras.utils.set_random_seed(args.train_seed)
    if args.precision == "bf16":
        # Variables stay float32; finish() rebuilds the served model in float32.
        keras.config.set_dtype_policy("mixed_bfloat16")
    arch = arch_of(args)
    model = arch.build(args, True)
    if args.init_model:
        # Warm start from a trained detector: its BatchNorm statistics are ImageNet's too.
        model.set_weights(keras.saving.load_model(args.init_model, safe_mode=True).get_weights())
        log(f"weights from {args.init_model}")
    bn_before = arch.frozen(model)  # frozen, so they must stay
    state = TrainState(planned_epochs=args.epochs)
    if args.resume and (work / "state.json").exists():
        state = TrainState.load(work / "state.json")
        model.load_weights(work / "last.weights.h5")
        arch.after_load(model)
        log(f"resuming after epoch {state.epoch}")
    return model, bn_before, state


def _train_epoch(ctx: RunContext, model, opt, phase: str, state: TrainState, feed,
                 steps: int) -> dict:
    """One epoch of batches; the epoch's running loss and accuracy."""
    args = ctx.args
    full_steps = max(1, (state.planned_epochs - args.warmup_epochs) * steps)
    t0, sums = time.time(), np.zeros(2)
    logs = {"loss": float("nan"), "accuracy": float("nan")}
    for b, (x, y) in enumerate(feed):
        if phase == "full":
            opt.learning_rate.assign(learning_rate(args.lr * state.lr_scale, state.full_step,
                                                   full_steps))
            state.full_step += 1
        res = model.train_on_batch(x, list(y) if feed.mask_grid else y, return_dict=True)
        # train_on_batch reports the batch alone: keep the epoch's running means here.
        sums += (res["loss"], _accuracy(res))
        logs = {"loss": sums[0] / (b + 1), "accuracy": sums[1] / (b + 1)}
        if (b + 1) % 100 == 0:
            rate = (b + 1) * args.batch_size / (time.time() - t0)
            ctx.log(f"  epoch {state.epoch + 1} step {b + 1}/{steps} loss {logs['loss']:.4f} "
                    f"acc {logs['accuracy']:.4f} {rate:.0f} img/s")
    return logs


def _replan(ctx: RunContext, state: TrainState) -> None:
    """Fit the plan (and with it the cosine schedule) to the budget, at most --epochs: the
    machine is shared, so epoch times drift; judge by the last two full epochs."""
    args = ctx.args
    recent = [h["seconds"] for h in state.history if h["phase"] == "full"][-2:]
    left = args.time_budget * 60 - (time.time() - ctx.t_start) - FINAL_RESERVE_S
    fit = min(args.epochs, state.epoch + max(0, int(left // np.mean(recent))))
    if fit != state.planned_epochs:
        ctx.log(f"time budget: {state.planned_epochs} -> {fit} epochs")
        state.planned_epochs = fit


def _record_epoch(ctx: RunContext, state: TrainState, phase: str, logs: dict, aucs: dict,
                  score: float, train_s: float, epoch_s: float, steps: int) -> bool:
    """Note the epoch in the history and the log; whether it is the best so far."""
    epoch, args = state.epoch, ctx.args
    best = score > state.best_score
    if best:
        state.best_score, state.best_epoch = score, epoch + 1
    state.history.append({"epoch": epoch + 1, "phase": phase, "loss": float(logs["loss"]),
                          "train_acc": float(logs["accuracy"]), "calib_auc": aucs,
                          "calib_score": score, "seconds": round(epoch_s, 1)})
    ctx.log(f"epoch {epoch + 1}/{state.planned_epochs} [{phase}] loss {logs['loss']:.4f} "
            f"train acc {logs['accuracy']:.4f} calib AUC "
            + " ".join(f"{k} {v:.4f}" for k, v in aucs.items())
            + f" mean {score:.4f}{' *best' if best else ''} | {train_s:.0f}s train, "
            f"{epoch_s:.0f}s epoch, {steps * args.batch_size / train_s:.0f} img/s")
    return best


def run(ctx: RunContext) -> None:
    """Train, pick the best epoch on the calibration split, calibrate, export, evaluate."""
    args, work = ctx.args, ctx.work
    resumed = args.resume and (work / "state.json").exists()
    model, bn_before, state = _start(ctx)
    grid = int(model.outputs[1].shape[1]) if args.mask_weight else 0
    train_by_source = {s: idx for (s, part), idx in ctx.ranges.items()
                       if part == "train" and len(idx)}
    steps = args.epoch_images // args.batch_size
    phase, opt = None, None
    while state.epoch < state.planned_epochs:
        epoch = state.epoch
        want = "head" if epoch < args.warmup_epochs else "full"
        if want != phase:
            phase = want
            opt = _compile(ctx, model, phase, args.head_lr if phase == "head" else args.lr,
                           args.mask_weight)
            if resumed and (work / "optimizer.npz").exists() and epoch != args.warmup_epochs:
                _restore_optimizer(model, opt, work / "optimizer.npz")
        idx = epoch_indices(train_by_source, ctx.labels, steps * args.batch_size,
                            np.random.default_rng([args.train_seed, epoch]))
        if ctx.partner is not None and (ctx.partner >= 0).any():
            # Aligned and same-video fakes in the batch of their own real
            # (training/common/aligned.py).
            idx = pair_up(idx, ctx.partner, ctx.labels,
                          np.random.default_rng([args.train_seed, epoch, 1]))
        t0 = time.time()
        feed = Batches(ctx.crops, idx, ctx.labels, args.batch_size, (args.train_seed, epoch),
                       args.aug_strength, sbi_rate=args.sbi_rate,
                       keypoints=ctx.keypoints,
                       sbi_balanced=args.sbi_mode == "replace-fake", mask_grid=grid)
        logs = _train_epoch(ctx, model, opt, phase, state, feed, steps)
        train_s = time.time() - t0
        # One output: score the trained model itself (a CLIP model in bf16 scores 2x faster
        # than its merged float32 copy); with the mask head, the P(fake)-only view of it.
        score, aucs = _calib_score(ctx, model if len(model.outputs) == 1
                                   else arch_of(args).serving(model))
        epoch_s = time.time() - t0
        state.train_seconds += epoch_s
        state.images_seen += steps * args.batch_size
        if phase == "full" and collapsed(aucs):
            # Dead ReLU6 units behind frozen BatchNorm (seen at 6e-4 and 1e-3 with SBI and
            # strength 1): go back to the best epoch and halve the learning rate.
            state.lr_scale = state.lr_scale / 2
            model.load_weights(work / "best.weights.h5")
            arch_of(args).after_load(model)
            opt = _compile(ctx, model, phase, args.lr * state.lr_scale, args.mask_weight)
            ctx.log(f"epoch {epoch + 1} collapsed to a constant output: back to epoch "
                    f"{state.best_epoch}'s weights, learning rate x{state.lr_scale:g}")
        best = _record_epoch(ctx, state, phase, logs, aucs, score, train_s, epoch_s, steps)
        state.epoch = epoch + 1
        if args.time_budget and phase == "full":
            _replan(ctx, state)
        _save(model, opt, ctx, state, best)
    finish(ctx, state, bn_before)

"""The end of `dfd-train train`: the best epoch's weights, the temperature and served prior fitted
on the calibration split, the held-out metrics, the assessment, and the exported model directory."""

from __future__ import annotations

import numpy as np

from detector.model import calibrate
from detector.stability import all_variants
from training.common import calibrate as C
from training.common.assessment import fit_assessment
from training.e2e.arch import arch_of
from training.e2e.batches import predict
from training.e2e.export import export_model, keras_predict
from training.e2e.recipe import LIMITATIONS
from training.e2e.run_record import (
    export_check_crops,
    held_out_metrics,
    input_spec,
    training_record,
)
from training.e2e.state import RunContext, TrainState
from training.policy import ISSUE11_PRIOR_RULE, SEED_THRESHOLD, choose_prior_issue11


def _calibration(ctx: RunContext, p_cal: np.ndarray, calib: np.ndarray,
                 source: np.ndarray) -> tuple[float, float, dict | None]:
    """Temperature fitted on the calibration split, then the served prior (chosen there too
    with --prior-fake auto): (temperature, prior, prior_choice for the card)."""
    args, log, labels = ctx.args, ctx.log, ctx.labels
    temperature = C.fit_temperature(C.logit(p_cal), labels[calib])
    z, y = C.logit(p_cal), labels[calib]
    log(f"temperature {temperature:.4f} (calibration NLL {C.nll(z, y, 1):.4f} -> "
        f"{C.nll(z, y, temperature):.4f})")
    prior_choice = None
    if args.prior_fake == "auto":
        prior, grid = choose_prior_issue11(labels[calib], C.apply_temperature(p_cal, temperature),
                                           source[calib], SEED_THRESHOLD)
        prior_choice = {"rule": ISSUE11_PRIOR_RULE, "grid": grid}
    else:
        prior = float(args.prior_fake)
    log(f"served prior share of fakes {prior}")
    return temperature, prior, prior_choice


def _best_serving_model(ctx: RunContext, bn_before):
    """The best epoch's weights as the serving model (P(fake) only, float32); raises if the
    weights that must stay frozen (arch.frozen) moved."""
    import keras

    arch = arch_of(ctx.args)
    keras.config.set_dtype_policy("float32")  # whatever --precision trained it, it serves float32
    model = arch.build(ctx.args, False)
    model.load_weights(ctx.work / "best.weights.h5")
    after = arch.frozen(model)
    model = arch.serving(model)  # P(fake) only, from here on: what is exported and served
    if not all(np.array_equal(a, b) for a, b in zip(bn_before, after, strict=True)):
        raise RuntimeError(f"{arch.frozen_what} changed during training")
    return model


def finish(ctx: RunContext, state: TrainState, bn_before) -> dict:
    """Best weights -> temperature -> metrics -> export of the model directory."""
    log, crops, labels = ctx.log, ctx.crops, ctx.labels
    model = _best_serving_model(ctx, bn_before)
    calib = np.concatenate([i for (s, p), i in ctx.ranges.items() if p == "calib"])
    p_cal = predict(model, crops, calib)
    source = np.empty(len(labels), object)
    for (src, _), idx in ctx.ranges.items():
        source[idx] = src
    temperature, prior, prior_choice = _calibration(ctx, p_cal, calib, source)

    def served(p_raw):
        return calibrate(p_raw, temperature, prior)
    metrics = held_out_metrics(ctx, model, served, p_cal, calib)
    check = export_check_crops(ctx)
    card = {
        "name": arch_of(ctx.args).card_name, "input": input_spec(),
        "threshold": SEED_THRESHOLD, "temperature": temperature, "prior_fake": prior,
        "prior_choice": prior_choice,
        "training": training_record(ctx, state, bn_ok=True),
        "metrics": metrics, "limitations": LIMITATIONS,
    }
    order = np.sort(calib)
    card["assessment"] = fit_assessment(lambda x: served(keras_predict(model, x)), crops[order],
                                        labels[order], source[order], all_variants, SEED_THRESHOLD)
    log(f"assessment bands: likely_real below {card['assessment']['likely_real_below']:.3f}, "
        f"likely_fake from {card['assessment']['likely_fake_from']:.3f}, faces from "
        f"{card['assessment']['min_face_px']} px, served {card['assessment']['served']}")
    card = export_model(model, ctx.out, card, check)
    log(f"exported version {card['version']}; export check {card.get('export_check')}")
    return card

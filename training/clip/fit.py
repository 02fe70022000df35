"""`dfd-train clip DATA... --out DIR`: the frozen-feature study and the model it selects.

Features come from training.clip.features (cached); every configuration of training.clip.study is
run once per left-out source and once on everything; the selection, the served prior and the bands
follow rules fixed before looking (SELECTION_RULE; training.policy's ISSUE18_PRIOR_RULE and
LEFT_OUT_BANDS_RULE). The shipped model is scored on the same files for the comparison tables,
and its logit is tried as a stacked input.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from training.clip import study as S
from training.clip import tables as CT
from training.common.assessment import fit_bands
from training.common.calibrate import logit
from training.policy import SEED_THRESHOLD, choose_prior_issue18


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load_study(roots: list[str], seed: int) -> tuple[S.Study, list]:
    from training.clip.features import extract, study_items

    rows = study_items(roots, seed)
    feats, _ = extract([r[2].path for r in rows], log=log)
    study = S.Study(feats, np.array([r[2].label for r in rows]),
                    np.array([r[0] for r in rows]), np.array([r[1] for r in rows]))
    return study, rows


def shipped_z50(paths: list[str], model_dir: str) -> tuple[np.ndarray, dict]:
    """The shipped model's calibrated logits at a 50/50 prior on the same files (its own crops,
    without the detail normalisation), and its card."""
    from detector.model import load_model, read_card
    from training.common.prep import build_cache

    root, card = read_card(model_dir)
    model = load_model(root, "tflite", threads=2, card={**card, "prior_fake": 0.5})
    crops, _ = build_cache(paths, log=log)
    p = np.concatenate([model.predict(np.asarray(crops[s:s + 64]))
                        for s in range(0, len(paths), 64)])
    return logit(p), card


def run_study(study: S.Study, z_old: np.ndarray, log=log) -> tuple[list[dict], dict, dict]:
    """(all configurations, the selected one, the stacking ablation of the selected one)."""
    results = [S.run_config(study, inputs, c, log=log)
               for inputs in S.FEATURE_SETS for c in S.PENALTIES]
    chosen = S.select(results)
    stacked = S.Study({**study.feats, "mnv2": z_old[:, None]}, study.labels, study.sources,
                      study.parts)
    stack = S.run_config(stacked, (*chosen["inputs"], "mnv2"), chosen["C"], log=log)
    return results, chosen, stack


def tables(study: S.Study, final: dict, chosen: dict, z_old: np.ndarray, prior: float,
           old_prior: float, old_bands: dict) -> dict:
    """Every table of the card: left-out, test, and the shipped model on the same test files."""
    scores = CT.left_out_scores(study, chosen["runs"], prior)
    bands = fit_bands(scores, SEED_THRESHOLD)
    test = CT.part_table(study, final["z50"], "test", prior, SEED_THRESHOLD, bands)
    left = CT.left_out_table(study, chosen["runs"], prior, SEED_THRESHOLD, bands)
    shipped_test = CT.part_table(study, z_old, "test", old_prior, SEED_THRESHOLD, old_bands)
    # The shipped model never saw sdfd-faces: its row there is a true left-out one.
    rows, y = S.left_out_rows(study, "sdfd-faces")
    shipped_sdfd = CT.source_row(y, z_old[rows], old_prior, SEED_THRESHOLD, old_bands)
    return {"bands": bands, "test": test, "left_out": left, "shipped_test": shipped_test,
            "shipped_left_out": {"sdfd-faces": shipped_sdfd},
            "targets": CT.targets_met(test, left, chosen["mean_left_out_auc"])}


def strip_runs(result: dict) -> dict:
    return {k: v for k, v in result.items() if k != "runs"}


def serve(study: S.Study, config: dict, z_old: np.ndarray, old_card: dict) -> dict:
    """The model fitted on everything for one configuration: head, prior, bands and tables."""
    final = S.train_run(study, tuple(config["inputs"]), config["C"])
    prior, grid = choose_prior_issue18(study, final["z50"], z_old, float(old_card["prior_fake"]))
    log(f"{'+'.join(config['inputs'])}: served prior {prior}")
    old_bands = {k: old_card["assessment"][k] for k in ("likely_real_below", "likely_fake_from")}
    tab = tables(study, final, config, z_old, prior, float(old_card["prior_fake"]), old_bands)
    return {"final": final, "prior": prior, "prior_grid": grid, "tables": tab}


def fit(args) -> dict:
    study, rows = load_study(args.data, args.seed)
    z_old, old_card = shipped_z50([r[2].path for r in rows], args.shipped)
    results, chosen, stack = run_study(study, z_old)
    log(f"selected {'+'.join(chosen['inputs'])} C={chosen['C']}")
    clip_only = serve(study, chosen, z_old, old_card)
    out = {"study": study, "rows": rows, **clip_only,
           "results": [strip_runs(r) for r in results], "chosen": strip_runs(chosen),
           "stack": strip_runs(stack), "shipped_card": old_card, "stacked": False}
    if args.stack:
        # STACK_RULE: the shipped model's logit joins the chosen features (see the card).
        stacked = S.Study({**study.feats, "mnv2": z_old[:, None]}, study.labels, study.sources,
                          study.parts)
        served = serve(stacked, stack, z_old, old_card)
        served["tables"]["clip_only"] = {k: clip_only["tables"][k] for k in ("test", "left_out")}
        out.update(served, stacked=True, served_config=strip_runs(stack))
    return out


def main(argv: list[str] | None = None) -> int:
    from training.clip.export import write_model

    p = argparse.ArgumentParser(prog="dfd-train clip", description=__doc__)
    p.add_argument("data", nargs="+", help="data roots (the study's sources)")
    p.add_argument("--out", default="models/dfd-clip")
    p.add_argument("--shipped", default="models/dfd-mnv2", help="the model it is compared with")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--stack", action="store_true", help="serve the chosen features with the "
                   "shipped model's logit stacked in (the model directory then needs --shipped "
                   "beside it)")
    args = p.parse_args(argv)
    out = fit(args)
    write_model(Path(args.out), out, args)
    log(f"wrote {args.out}")
    print(json.dumps(out["tables"]["targets"], indent=1))
    return 0

"""`dfd-train serve-policy MODEL --fold RUN... --shipped DIR`: what an end-to-end model serves,
set by the rules the served CLIP card was held to, so that the two compare:

- the prior share of fakes, chosen on the calibration split against the shipped model's harm to
  real faces on the same files (training.policy.ISSUE18_PRIOR_RULE);
- the bands, fitted on the study's left-out runs (LEFT_OUT_BANDS_RULE): each fake kind scored by
  the run of the same recipe that never saw it, at the served prior;
- then the stability margin, the served variant and the smallest judged face on the calibration
  split at those bands (training.common.assessment).

The weights, and so the version, do not change; card.json and MODEL_CARD.md are written again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training.common.calibrate import logit, sigmoid
from training.policy import ISSUE18_PRIOR_RULE, LEFT_OUT_BANDS_RULE, choose_prior_against

# A real source that no study run left out (fairface-real: every fold trained on it) still
# bounds likely_fake, through the model's own calibration reals.
NO_FOLD_NOTE = ("A real source no run left out counts with the model's own calibration reals "
                "(at the served prior).")


def even_logits(run: Path, crops: np.ndarray) -> np.ndarray:
    """Logits of a run's served P(fake) with no prior (50/50), whatever its card states."""
    from training.e2e.bands import scores_at_even_prior

    card = json.loads((run / "card.json").read_text())
    return logit(scores_at_even_prior(run, card, crops))  # clipped as the server clips


def left_out_kind(run: Path, kinds: tuple[str, ...]) -> str:
    """The one fake kind a study run never trained on (its split.json's sources say)."""
    trained = set(json.loads((run / "split.json").read_text())["sources"])
    left = [k for k in kinds if k not in trained]
    if len(left) != 1:
        raise SystemExit(f"{run}: a fold leaves out exactly one fake kind of {', '.join(kinds)}; "
                         f"this one leaves out {left or 'none'}")
    return left[0]


def fold_scores(runs: list[Path], data: Path, seed: int, prior: float) -> dict:
    """{left-out source: {'run', 'labels', 'p'}}: each run on the whole source it never saw
    (training.common.fold_tables' seeded sample, as the study tables score it), at `prior`."""
    from training.common.fold_tables import FAKE_KINDS, eval_sets
    from training.common.prep import build_cache

    sets = eval_sets(data, seed)
    out: dict[str, dict] = {}
    for run in runs:
        kind = left_out_kind(run, FAKE_KINDS)
        if kind in out:
            raise SystemExit(f"{run}: {kind} is already left out by {out[kind]['run']}")
        items = sets[kind]["whole"]
        crops, _ = build_cache([i.path for i in items])
        z = even_logits(run, np.asarray(crops))
        out[kind] = {"run": run.name, "labels": np.array([i.label for i in items]),
                     "p": sigmoid(z + logit(prior))}
    return out


def shipped_said(shipped: Path, crops: np.ndarray) -> np.ndarray:
    """Whether the shipped model, as served (its prior, its threshold), calls each crop Fake."""
    from detector.chunks import in_chunks
    from detector.model import load_model

    model = load_model(shipped, threads=2)
    return in_chunks(model.predict, crops, 64) > model.threshold


def band_table(by_source: dict, bands: dict) -> dict:
    """Per source: n, and the shares of its reals and fakes inside each band (card table)."""
    lr, lf = bands["likely_real_below"], bands["likely_fake_from"]
    out = {}
    for src, (y, p) in by_source.items():
        row: dict = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum())}
        if row["n_fake"]:
            row["likely_real_on_fakes"] = float(np.mean(p[y == 1] < lr))
        if row["n_real"]:
            row["likely_fake_on_reals"] = float(np.mean(p[y == 0] >= lf))
        out[src] = row
    return out


def no_fold_reals(labels: np.ndarray, sources: np.ndarray, z50: np.ndarray, prior: float,
                  folds: dict) -> dict:
    """{source: (labels, P(fake))} of the calibration reals of each source no run left out."""
    out = {}
    for src in sorted(set(sources[labels == 0].tolist()) - set(folds)):
        m = (sources == src) & (labels == 0)
        out[src] = (labels[m], sigmoid(z50[m] + logit(prior)))
    return out


def main(argv: list[str] | None = None) -> int:
    """Set MODEL's served prior and assessment by the rules above; write its card."""
    from detector.card import read_card
    from detector.chunks import in_chunks
    from detector.model import load_model
    from detector.stability import all_variants
    from training.common.assessment import fit_assessment, fit_bands
    from training.common.templating import card_markdown
    from training.e2e.bands import calibration_set

    p = argparse.ArgumentParser(prog="dfd-train serve-policy", description=__doc__)
    p.add_argument("model", help="model directory (card.json, model.tflite, split.json)")
    p.add_argument("--fold", action="append", required=True, type=Path, metavar="RUN",
                   help="a study run of the same recipe that left one fake kind out; one per kind")
    p.add_argument("--shipped", required=True, type=Path, help="the model served now")
    p.add_argument("--data", type=Path, default=Path("../shared/data"))
    args = p.parse_args(argv)
    unmade = [str(run) for run in args.fold if not (run / "card.json").is_file()]
    if unmade:  # the bands need every fold: say how to make them, not a missing-file traceback
        raise SystemExit(f"no trained fold in {', '.join(unmade)}: `make study` trains the "
                         "study's folds (about 3.5 hours on 2 cores, resumable)")
    root, card = read_card(args.model)
    threshold = float(card["threshold"])
    crops, labels, sources = calibration_set(root / "split.json")
    z50 = even_logits(root, crops)
    real = labels == 0
    said = shipped_said(args.shipped, crops[real])
    prior, grid = choose_prior_against(sources[real], z50[real], said)
    shipped_card = json.loads((args.shipped / "card.json").read_text())
    card["prior_fake"] = prior
    card["prior_choice"] = {"rule": ISSUE18_PRIOR_RULE, "grid": grid,
                            "shipped": f"{shipped_card['name']} {shipped_card['version']}"}
    print(f"served prior share of fakes: {prior}", flush=True)
    folds = fold_scores(args.fold, args.data, int(card["training"]["seed"]), prior)
    by_source = {k: (v["labels"], v["p"]) for k, v in folds.items()}
    by_source |= no_fold_reals(labels, sources, z50, prior, folds)
    bands = fit_bands(by_source, threshold)
    model = load_model(root, "tflite", threads=2, card=card)
    entry = fit_assessment(lambda x: in_chunks(model.predict, x, 64), crops, labels, sources,
                           all_variants, threshold, bands=bands)
    entry["rule"] = f"{LEFT_OUT_BANDS_RULE} {NO_FOLD_NOTE}"
    entry["left_out"] = {"runs": {k: v["run"] for k, v in folds.items()},
                         "shares": band_table(by_source, bands)}
    card["assessment"] = entry
    card["metrics_note"] = (
        "These were computed when training ended, before `dfd-train serve-policy` set the "
        f"served prior to {prior}; the per-source tables under 'What users see' are what users "
        "get. AUC does not depend on the prior.")
    (root / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (root / "MODEL_CARD.md").write_text(card_markdown(card))
    print(json.dumps({k: v for k, v in entry.items() if k != "rule"}, indent=1))
    return 0

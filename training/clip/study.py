"""The frozen-feature study: which CLIP features and head generalise to sources never trained on.

Every configuration (features x penalty) is trained once per left-out source (the whole source,
both labels, left out) and once on everything; the left-out runs score the source they never saw.
The rules below are fixed before any result is looked at; the card shows the whole table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.clip.heads import fit_head
from training.common import metrics as M
from training.common.calibrate import fit_temperature, logit

FEATURE_SETS = (("b4",), ("b6",), ("b8",), ("b6", "b8"), ("b4", "b6", "b8"))
PENALTIES = (0.05, 0.5)  # scikit-learn's C: inverse L2 strength on standardised features
FAKE_KINDS = ("ff-crops", "stylegan-faces", "dfdc-faces", "sdfd-faces")
SELECTION_RULE = (
    "The shipped configuration is the one with the best mean left-out AUC over the four fake "
    "kinds (ff-crops face swaps, stylegan-faces GAN faces, dfdc-faces swaps, sdfd-faces "
    "diffusion faces), each scored by a model that never saw that source; configurations "
    "within 0.005 of the best count as tied and the cheapest to serve (fewest encoder blocks, "
    "then fewest inputs) wins. A left-out paired source is scored on its own reals and fakes; "
    "the fake-only sdfd-faces against the test reals of the sources that model trained on; the "
    "real-only fairface-real against their test fakes.")


@dataclass
class Study:
    """Features and labels of every extracted image, with its source and split part."""

    feats: dict[str, np.ndarray]
    labels: np.ndarray
    sources: np.ndarray
    parts: np.ndarray

    def mask(self, part: str | None = None, source: str | None = None, exclude=None):
        m = np.ones(len(self.labels), bool)
        if part:
            m &= self.parts == part
        if source:
            m &= self.sources == source
        if exclude:
            m &= self.sources != exclude
        return m


def blocks(inputs: tuple[str, ...]) -> int:
    """Encoder blocks the configuration needs (its serving cost)."""
    return max(12 if k == "embed" else int(k[1:]) for k in inputs if k == "embed" or
               k[1:].isdigit())


def train_run(study: Study, inputs, c: float, leave_out: str | None = None) -> dict:
    """Fit on the train part (without leave_out), temperature on the calib part; returns the head,
    T and every row's calibrated logit at a 50/50 prior."""
    train = study.mask("train", exclude=leave_out)
    head = fit_head({k: v[train] for k, v in study.feats.items()}, inputs,
                    study.labels[train], study.sources[train], c)
    z_raw = head.logits(study.feats)
    calib = study.mask("calib", exclude=leave_out)
    t = fit_temperature(z_raw[calib], study.labels[calib])
    return {"head": head, "temperature": t, "z50": z_raw / t, "leave_out": leave_out}


def left_out_rows(study: Study, source: str) -> tuple[np.ndarray, np.ndarray]:
    """(rows, labels) a left-out run of `source` is scored on (see SELECTION_RULE)."""
    own = study.sources == source
    kinds = set(study.labels[own].tolist())
    if kinds == {0, 1}:
        rows = own
    else:  # one-class source: the other class from the test parts of the trained sources
        other = (study.parts == "test") & ~own & (study.labels == (1 - next(iter(kinds))))
        rows = own | other
    return rows, study.labels[rows]


def auc_row(y: np.ndarray, z: np.ndarray) -> dict:
    auc = M.roc_auc(y, z)
    lo, hi = M.auc_ci(y, z, n_boot=300)
    return {"auc": float(auc), "ci": [float(lo), float(hi)], "n_real": int((y == 0).sum()),
            "n_fake": int((y == 1).sum())}


def run_config(study: Study, inputs, c: float, log=print) -> dict:
    """Left-out AUC per source for one configuration (and the runs, for the bands)."""
    sources = sorted(set(study.sources.tolist()))
    runs, aucs = {}, {}
    for src in sources:
        run = train_run(study, inputs, c, leave_out=src)
        rows, y = left_out_rows(study, src)
        aucs[src] = auc_row(y, run["z50"][rows])
        runs[src] = run
    fake_mean = float(np.mean([aucs[s]["auc"] for s in FAKE_KINDS if s in aucs]))
    log(f"study: {'+'.join(inputs)} C={c}: mean left-out fake AUC {fake_mean:.3f} " +
        " ".join(f"{s.split('-')[0]} {aucs[s]['auc']:.3f}" for s in sources))
    return {"inputs": list(inputs), "C": c, "blocks": blocks(inputs), "left_out": aucs,
            "mean_left_out_auc": fake_mean, "runs": runs}


def select(results: list[dict]) -> dict:
    """The configuration SELECTION_RULE ships."""
    best = max(r["mean_left_out_auc"] for r in results)
    tied = [r for r in results if r["mean_left_out_auc"] >= best - 0.005]
    return min(tied, key=lambda r: (r["blocks"], len(r["inputs"]), -r["mean_left_out_auc"]))


def served(z50: np.ndarray, prior: float) -> np.ndarray:
    """Served P(fake) under a prior share of fakes."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(z50, np.float64) + logit(prior))))

"""Per-source tables for the frozen-feature models: what users would see, with 95% intervals.

Each row is one source and part: the ROC AUC, the share of its reals called Fake and of its fakes
caught at the served threshold, and the share in each band of the assessment. The same code
serves the new model's test parts, its left-out runs and the shipped model on the same files.
"""

from __future__ import annotations

import numpy as np

from training.clip.study import left_out_rows, served
from training.common import metrics as M
from training.common.calibrate import logit
from training.policy import ISSUE18_TARGETS


def bands_of(p: np.ndarray, bands: dict) -> dict:
    """Counts of served P(fake) in each band (the stability check is not applied here)."""
    return {"likely_real": M.share(p < bands["likely_real_below"]),
            "likely_fake": M.share(p >= bands["likely_fake_from"])}


def source_row(y: np.ndarray, z50: np.ndarray, prior: float, threshold: float,
               bands: dict | None) -> dict:
    """One table row from labels and calibrated logits at a 50/50 prior."""
    p = served(z50, prior)
    said = z50 + logit(prior) > logit(threshold)
    row: dict = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum())}
    if row["n_real"] and row["n_fake"]:
        lo, hi = M.auc_ci(y, z50, n_boot=300)
        row["auc"] = {"auc": float(M.roc_auc(y, z50)), "ci": [lo, hi]}
    if row["n_real"]:
        row["reals_called_fake"] = M.share(said[y == 0])
    if row["n_fake"]:
        row["fakes_caught"] = M.share(said[y == 1])
    if bands:
        if row["n_real"]:
            row["reals_bands"] = bands_of(p[y == 0], bands)
        if row["n_fake"]:
            row["fakes_bands"] = bands_of(p[y == 1], bands)
    return row


def part_table(study, z50: np.ndarray, part: str, prior: float, threshold: float,
               bands: dict | None) -> dict:
    """{source: row} on one split part, plus the pooled share of fakes caught."""
    out = {}
    for src in sorted(set(study.sources.tolist())):
        m = study.mask(part, src)
        if m.any():
            out[src] = source_row(study.labels[m], z50[m], prior, threshold, bands)
    m = study.mask(part)
    fakes = m & (study.labels == 1)
    said = z50 + logit(prior) > logit(threshold)
    out["pooled"] = {"fakes_caught": M.share(said[fakes]), "reals_called_fake":
                     M.share(said[m & (study.labels == 0)])}
    return out


def left_out_table(study, runs: dict, prior: float, threshold: float, bands: dict | None
                   ) -> dict:
    """{source: row} of each left-out run scored on the source it never saw (study.left_out_rows
    decides the rows: own reals and fakes, or the other class from trained sources' tests)."""
    out = {}
    for src, run in runs.items():
        rows, y = left_out_rows(study, src)
        out[src] = source_row(y, run["z50"][rows], prior, threshold, bands)
    return out


def left_out_scores(study, runs: dict, prior: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{source: (labels, served P(fake))} of the left-out source's own images in its run."""
    out = {}
    for src, run in runs.items():
        own = study.sources == src
        out[src] = (study.labels[own], served(run["z50"][own], prior))
    return out


def targets_met(test: dict, left: dict, mean_auc: float) -> list[dict]:
    """Each of issue 18's targets with the value reached and whether it is met."""
    t, rows = ISSUE18_TARGETS, []

    def add(name, value, limit, ok):
        rows.append({"target": name, "value": value, "limit": limit, "met": bool(ok)})

    add("mean left-out AUC (fake kinds)", mean_auc, t["left_out_auc_mean_min"],
        mean_auc >= t["left_out_auc_mean_min"])
    for src, row in left.items():
        if "auc" in row and src != "fairface-real":
            a = row["auc"]["auc"]
            add(f"left-out AUC {src}", a, t["left_out_auc_min"], a >= t["left_out_auc_min"])
        if row.get("fakes_bands"):
            v = row["fakes_bands"]["likely_real"]["share"]
            add(f"likely_real on left-out fakes {src}", v, t["likely_real_left_out_fakes_max"],
                v <= t["likely_real_left_out_fakes_max"])
        if row.get("reals_bands") and src != "sdfd-faces":
            v = row["reals_bands"]["likely_fake"]["share"]
            add(f"likely_fake on left-out reals {src}", v, t["likely_fake_left_out_reals_max"],
                v <= t["likely_fake_left_out_reals_max"])
    for src, row in test.items():
        if src == "pooled":
            v = row["fakes_caught"]["share"]
            add("fakes caught pooled (test)", v, t["fakes_caught_pooled_min"],
                v >= t["fakes_caught_pooled_min"])
            continue
        if "auc" in row and src in t["auc_min"]:
            add(f"AUC {src} test", row["auc"]["auc"], t["auc_min"][src],
                row["auc"]["auc"] >= t["auc_min"][src])
        if "reals_called_fake" in row:
            lim = t["real_called_fake_max_fairface" if src == "fairface-real"
                    else "real_called_fake_max"]
            v = row["reals_called_fake"]["share"]
            add(f"reals called Fake {src} test", v, lim, v <= lim)
    return rows

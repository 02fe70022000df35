"""What decides what users see, for both generations: the threshold, the served prior (its grid, its
rule and the function that applies it), the assessment's band limits and rules, and the targets.

Each is named by what it came from: SEED_ the seed's rule, ISSUE11_ the fine-tuned MobileNetV2
generation (training.e2e, models/dfd-mnv2, issue 11's targets), ISSUE18_ the frozen CLIP
generation (training.clip, models/dfd-clip, issue 18's). The rule texts go into the model cards.
"""

from __future__ import annotations

import numpy as np

from detector.assess import MAX_FACES
from training.common import metrics as M
from training.common.calibrate import logit

# Fake when served P(fake) > 0.3, i.e. "Fake when P(real) < 0.7": the seed's rule, which both
# generations serve.
SEED_THRESHOLD = 0.3

# Sources whose training crops are cut from a copy shrunk to a face size drawn from the run's own
# training reals (training/common/real_sizes.py; issue 24 point 3). The SDFD diffusion portraits
# are 768 px with faces several hundred pixels wide, the reals 128-256 px images of small faces:
# `dfd-research shortcuts` measured face size (AUC 0.996), pixels (1.000) and sharpness (0.953)
# telling them apart before augmentation, and sharpness still 0.72 after it, so "large, sharp
# face" would be learned as "fake" and a good camera's real face accused.
DRAW_AT_REAL_SIZES = ("sdfd-faces",)

# The assessment (training.common.assessment fits it; both generations).
MAX_REAL_SHARE = 0.03  # likely_fake: at most this share of any source's held-out real faces
MAX_FAKE_SHARE = 0.10  # likely_real: at most this share of any source's held-out fakes
FACE_SIDES = (16, 24, 32, 48, 64, 96, 128)
MAX_AUC_DROP = 0.03  # a face side is judged when its AUC is within this of full-size crops'
# The stability check may skip faces far inside their band: at most this share of the
# calibration faces whose assessment a version changed lie beyond the margin.
MAX_MISSED_UNSTABLE = 0.02
# The versions the stability check scores (detector.stability.CHECKED), chosen by
# `dfd-research stability` under this budget: model passes per face, on average (issue 25: at
# most half the model's time).
STABILITY_BUDGET = 0.5
STABILITY_VERSIONS_RULE = (
    "Of every set of versions, each with its margin fitted by "
    "training.common.assessment.stability_margin on its own flips, the one that catches the most "
    f"assessment flips at a cost of at most {STABILITY_BUDGET} model passes per face; a version "
    "is dropped only by this rule.")
MEAN_GAIN = 0.005  # serve the variants' mean only if it raises the mean calibration AUC this much
# The bands fitted on the calibration split (`dfd-train train` and `dfd-train bands`).
CALIBRATION_BANDS_RULE = (
    f"likely_fake from the lowest P(fake) at or above which at most {MAX_REAL_SHARE:.0%} of "
    "each source's calibration real faces lie; likely_real below the highest P(fake) under "
    f"which at most {MAX_FAKE_SHARE:.0%} of each source's calibration fakes lie (the two "
    "meet if they cross); likely_fake never starts at or under the label threshold nor "
    "likely_real above it (detector.assess.agree); real-only sources count for the first; "
    "faces whose shorter side "
    f"is under the smallest size whose pooled calibration AUC is within {MAX_AUC_DROP} of "
    f"full-size crops are not judged; with n > 1 faces judged, likely_fake from a bar raised "
    "as if each face's prior were 1 - (1 - prior)^(1/n) (detector.assess.group_bar); "
    f"more than {MAX_FACES} faces: not judged; the stability check scores the versions of "
    "the faces read 'Likely real' or 'Likely fake' within stability_margin logits of the "
    f"edge of their band, as close as all but {MAX_MISSED_UNSTABLE:.0%} of the calibration "
    "faces whose assessment one of their versions changed")
# The bands fitted on the study's left-out runs (`dfd-train clip`).
LEFT_OUT_BANDS_RULE = (
    f"Bands are fitted on the left-out runs: likely_real below the highest P(fake) under which at "
    f"most {MAX_FAKE_SHARE:.0%} of each fake kind's left-out fakes lie, likely_fake from the "
    f"lowest at or above which at most {MAX_REAL_SHARE:.0%} of each real source's left-out reals "
    "lie (each left-out source scored by the run that never saw it, at the served prior). "
    "Neither contradicts the label: likely_fake starts above the label threshold and "
    "likely_real ends at or under it (detector.assess.agree moves an edge on the wrong side to "
    "the threshold).")

# Issue 11's targets at the served threshold, by set; "left-out" is a real source a model never
# trained on (leave-one-real-source-out runs). `dfd-train verdicts` checks them.
ISSUE11_TARGETS = {
    "real_called_fake_max": {"fairface-real/test": 0.05, "ff-crops/test": 0.10,
                             "stylegan-faces/test": 0.10, "dfdc-faces/test": 0.30,
                             "left-out": 0.20},
    "fakes_caught_min": {"ff-crops/test": 0.85, "stylegan-faces/test": 0.90,
                         "dfdc-faces/test": 0.75},
    "auc_min": {"ff-crops/test": 0.96, "dfdc-faces/test": 0.85, "stylegan-faces/test": 0.95},
    "likely_fake_on_reals_max": {"pooled": 0.03},
}
ISSUE11_PRIORS = tuple(round(0.05 * k, 2) for k in range(1, 11))  # 0.05 .. 0.5
ISSUE11_PRIOR_RULE = (
    "The prior share of fakes to serve, chosen on the calibration split alone: the "
    "largest (closest to 50/50, so catching the most fakes) under which every "
    "source's real faces called Fake at the threshold stay within issue 11's limits; "
    "if none does, the largest under which the most sources do. Harm to real people "
    "first, then as many fakes caught as that allows.")

# Issue 18's targets, checked in the CLIP card (training.clip.tables.targets_met).
ISSUE18_TARGETS = {
    "left_out_auc_mean_min": 0.85, "left_out_auc_min": 0.75,
    "auc_min": {"ff-crops": 0.96, "stylegan-faces": 0.95, "dfdc-faces": 0.85,
                "sdfd-faces": 0.95},
    "real_called_fake_max": 0.03, "real_called_fake_max_fairface": 0.01,
    "fakes_caught_pooled_min": 0.70, "likely_real_left_out_fakes_max": 0.10,
    "likely_fake_left_out_reals_max": 0.03,
}
ISSUE18_PRIORS = (0.005, 0.01, 0.02, 0.03, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)
ISSUE18_PRIOR_RULE = (
    "The served prior share of fakes is the largest of the grid under which, on every real "
    "source's calibration reals, the share called Fake is at most issue 18's limit (3%, FairFace "
    "1%) and the shipped model is not beaten on harm: the new share's 95% Wilson lower bound "
    "does not exceed the shipped model's share on the same files; if no prior meets it, the "
    "smallest of the grid.")


def shares_at(z: np.ndarray, prior: float, threshold: float, labels: np.ndarray,
              sources: np.ndarray) -> dict:
    """{source: (share of its reals called Fake, share of its fakes caught)} at the threshold
    when the served P(fake) assumes `prior`; z: logits at 50/50; None where a class is absent."""
    said = z + logit(prior) > logit(threshold)
    out = {}
    for src in np.unique(sources):
        real, fake = (sources == src) & (labels == 0), (sources == src) & (labels == 1)
        out[str(src)] = (float(said[real].mean()) if real.any() else None,
                         float(said[fake].mean()) if fake.any() else None)
    return out


def choose_prior_issue11(labels: np.ndarray, p50: np.ndarray, sources: np.ndarray,
                         threshold: float) -> tuple[float, list[dict]]:
    """The prior share of fakes to serve and the table it was chosen from, by
    ISSUE11_PRIOR_RULE. p50: served P(fake) with no prior (0.5)."""
    limits = ISSUE11_TARGETS["real_called_fake_max"]
    z = logit(p50)
    rows = []
    for prior in ISSUE11_PRIORS:
        row = {"prior_fake": prior, "reals_called_fake": {}, "fakes_caught": {}, "real_ok": 0}
        for src, (fp, caught) in shares_at(z, prior, threshold, labels, sources).items():
            if fp is not None:
                row["reals_called_fake"][src] = fp
                row["real_ok"] += fp <= limits.get(f"{src}/test", 1.0)
            if caught is not None:
                row["fakes_caught"][src] = caught
        rows.append(row)
    best = max(rows, key=lambda r: (r["real_ok"], r["prior_fake"]))
    return best["prior_fake"], rows


def choose_prior_issue18(study, z50: np.ndarray, z_old: np.ndarray, old_prior: float
                         ) -> tuple[float, list[dict]]:
    """ISSUE18_PRIOR_RULE on the calibration part of a training.clip.study.Study, against the
    shipped model's logits z_old at its prior; returns (prior, grid rows)."""
    cal_real = study.mask("calib") & (study.labels == 0)
    old_said = z_old + logit(old_prior) > logit(SEED_THRESHOLD)
    return choose_prior_against(study.sources[cal_real], z50[cal_real], old_said[cal_real])


def choose_prior_against(sources: np.ndarray, z50: np.ndarray, old_said: np.ndarray
                         ) -> tuple[float, list[dict]]:
    """ISSUE18_PRIOR_RULE on real calibration faces: their sources, the new model's logits at
    50/50 and whether the shipped model, as served, calls each Fake; returns (prior, grid)."""
    grid = []
    for prior in ISSUE18_PRIORS:
        said = z50 + logit(prior) > logit(SEED_THRESHOLD)
        row: dict = {"prior_fake": prior, "reals_called_fake": {}, "shipped": {}, "ok": True}
        for src in sorted(set(sources.tolist())):
            m = sources == src
            new, old = M.share(said[m]), M.share(old_said[m])
            lim = ISSUE18_TARGETS["real_called_fake_max_fairface" if src == "fairface-real"
                                  else "real_called_fake_max"]
            row["reals_called_fake"][src], row["shipped"][src] = new, old
            row["ok"] &= new["share"] <= lim and new["ci"][0] <= old["share"]
        grid.append(row)
    ok = [r["prior_fake"] for r in grid if r["ok"]]
    return (max(ok) if ok else ISSUE18_PRIORS[0]), grid


# Standing rule 7's gate, written before any new model was scored against the shipped one: on the
# held-out test files, through the serving path (`dfd-train verdicts --gate NAME`), file by file.
RULE7_ALPHA = 0.05
RULE7_GATE_RULE = (
    "A model replaces the shipped one only if, on the same held-out test files scored through the "
    "serving path, per source and pooled, it neither calls more real faces Fake nor reads more "
    "fakes 'Likely real' (reassures them). 'More' is tested on the files where the two models "
    "disagree (an exact one-sided McNemar test): the new model's extra cases b against the "
    f"shipped model's c, more when P(X >= b | X ~ Binomial(b + c, 1/2)) < {RULE7_ALPHA}. "
    "Added after the first candidate was scored (docs/MODEL.md run 10), both stricter: real faces "
    "read 'Likely fake' are tested too, and a model whose served prior met the harm rule on the "
    "calibration reals at no prior of the grid (ISSUE18_PRIOR_RULE) does not ship either.")


def paired_more(b: int, c: int) -> tuple[float, bool]:
    """(one-sided exact McNemar p-value, more?) for b cases only the new model has, c only the
    shipped one has."""
    from math import comb

    n = b + c
    pval = sum(comb(n, k) for k in range(b, n + 1)) / 2 ** n if n else 1.0
    return pval, pval < RULE7_ALPHA


def rule7_gate(new: list[dict], old: list[dict], prior_met: bool = True) -> dict:
    """RULE7_GATE_RULE on per-file results ({'path', 'source', 'label', 'fake', 'assessment'})
    of the new and the shipped model; returns the rows and whether the new model may ship.
    prior_met: whether the served prior met ISSUE18_PRIOR_RULE's harm test on calibration."""
    old_by = {f["path"]: f for f in old}
    pairs = [(f, old_by[f["path"]]) for f in new if f["path"] in old_by]
    rows = []
    for where in sorted({f["source"] for f, _ in pairs}) + ["pooled"]:
        sel = [(a, b) for a, b in pairs if where in ("pooled", a["source"])]
        for what, label, hit in (("reals called Fake", 0, lambda r: r["fake"]),
                                 ("reals read Likely fake",
                                  0, lambda r: r["assessment"] == "likely_fake"),
                                 ("fakes read Likely real",
                                  1, lambda r: r["assessment"] == "likely_real")):
            cls = [(a, b) for a, b in sel if a["label"] == label]
            if not cls:
                continue
            b_only = sum(hit(a) and not hit(b) for a, b in cls)
            c_only = sum(hit(b) and not hit(a) for a, b in cls)
            pval, more = paired_more(b_only, c_only)
            rows.append({"set": where, "what": what, "n": len(cls),
                         "new": sum(hit(a) for a, _ in cls), "shipped": sum(hit(b) for _, b in cls),
                         "new_only": b_only, "shipped_only": c_only, "p": pval, "more": more})
    return {"rule": RULE7_GATE_RULE, "rows": rows, "files": len(pairs), "prior_met": prior_met,
            "ships": prior_met and not any(r["more"] for r in rows)}

"""`dfd-train bands MODEL_DIR`: fit the assessment's bands, the smallest face the model judges
and whether to serve the variants' mean, on the calibration split; written into card.json.

Run by `dfd-train train` at the end; this command fits them for a model trained before (the
weights, and so the version, do not change).
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

from detector.assess import MAX_FACES
from detector.chunks import in_chunks
from detector.stability import VARIANTS
from training.common import metrics as M
from training.common.calibrate import logit

MAX_REAL_SHARE = 0.03  # likely_fake: at most this share of any source's held-out real faces
MAX_FAKE_SHARE = 0.10  # likely_real: at most this share of any source's held-out fakes
FACE_SIDES = (16, 24, 32, 48, 64, 96, 128)
MAX_AUC_DROP = 0.03  # a face side is judged when its AUC is within this of full-size crops'
# The stability check may skip faces far from the threshold: at most this share of the
# calibration faces whose label flipped under a variant lie beyond the margin.
MAX_MISSED_UNSTABLE = 0.02
MEAN_GAIN = 0.005  # serve the variants' mean only if it raises the mean calibration AUC this much
RULE = (f"likely_fake from the lowest P(fake) at or above which at most {MAX_REAL_SHARE:.0%} of "
        "each source's calibration real faces lie; likely_real below the highest P(fake) under "
        f"which at most {MAX_FAKE_SHARE:.0%} of each source's calibration fakes lie (the two "
        "meet if they cross); real-only sources count for the first; faces whose shorter side "
        f"is under the smallest size whose pooled calibration AUC is within {MAX_AUC_DROP} of "
        f"full-size crops are not judged; with n > 1 faces judged, likely_fake from a bar raised "
        "as if each face's prior were 1 - (1 - prior)^(1/n) (detector.assess.group_bar); "
        f"more than {MAX_FACES} faces: not judged; the stability "
        "check scores the variants of faces within stability_margin logits of the threshold, as "
        f"close as all but {MAX_MISSED_UNSTABLE:.0%} of the calibration faces whose label flipped "
        "under one of their variants")


def fit_bands(by_source: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict:
    """Band edges from each source's (labels, served P(fake)) on the calibration split."""
    highs, lows = [], []
    for y, p in by_source.values():
        real, fake = np.sort(p[y == 0])[::-1], np.sort(p[y == 1])
        if len(real):  # at most floor(share * n) reals strictly above the k-th highest
            highs.append(float(np.nextafter(real[int(MAX_REAL_SHARE * len(real))], 2.0)))
        if len(fake):
            lows.append(float(fake[int(MAX_FAKE_SHARE * len(fake))]))
    # Rounded to 6 decimals outwards, so rounding never lets one more face into a band.
    high = math.ceil((max(highs) if highs else 1.0) * 1e6) / 1e6
    low = math.floor(min(min(lows) if lows else 0.0, high) * 1e6) / 1e6
    return {"likely_real_below": low, "likely_fake_from": high}


def shrink(crops: np.ndarray, side: int) -> np.ndarray:
    """Crops as a face of `side` pixels would give them: down to side, back up to 224 (bilinear,
    as detector.crop.crop_resize enlarges a small face)."""
    size = crops.shape[1]
    return np.stack([np.asarray(Image.fromarray(c).resize((side, side), Image.BILINEAR)
                                .resize((size, size), Image.BILINEAR)) for c in crops])


def min_face_side(predict, crops: np.ndarray, y: np.ndarray) -> tuple[int, dict]:
    """(smallest judged face side, {side: AUC}) on pooled calibration crops."""
    full = M.roc_auc(y, predict(crops))
    curve = {int(s): M.roc_auc(y, predict(shrink(crops, s))) for s in FACE_SIDES}
    ok = [s for s in FACE_SIDES if curve[s] >= full - MAX_AUC_DROP]
    # The smallest side from which every larger one also holds up.
    side = next((s for s in FACE_SIDES if all(t in ok for t in FACE_SIDES if t >= s)), 224)
    return side, {"full": full, **{str(k): v for k, v in curve.items()}}


def stability_margin(p_var: np.ndarray, threshold: float) -> tuple[float, int]:
    """(margin in logits, unstable calibration faces): the distance from the threshold within
    which all but MAX_MISSED_UNSTABLE of the faces whose variants straddle it lie."""
    z = logit(p_var[:, 0])
    unstable = (p_var.min(axis=1) <= threshold) & (p_var.max(axis=1) > threshold)
    if not unstable.any():
        return 0.0, 0
    dist = np.abs(z - logit(threshold))[unstable]
    return float(np.quantile(dist, 1 - MAX_MISSED_UNSTABLE)), int(unstable.sum())


def fit_assessment(predict, crops: np.ndarray, labels: np.ndarray, sources: np.ndarray,
                   variants_fn, threshold: float) -> dict:
    """The card's `assessment` entry. predict: crops -> served-scale P(fake) (calibrated)."""
    # In chunks: five variants of a few thousand crops would hold gigabytes at once.
    p_var = in_chunks(lambda part: predict(variants_fn(part)).reshape(-1, len(VARIANTS)), crops,
                      256)
    aucs = {m: float(np.nanmean([M.roc_auc(labels[sources == s], p[sources == s])
                                 for s in np.unique(sources)]))
            for m, p in (("original", p_var[:, 0]), ("mean of variants", p_var.mean(axis=1)))}
    served = "mean of variants" if aucs["mean of variants"] >= aucs["original"] + MEAN_GAIN \
        else "original"
    p = p_var.mean(axis=1) if served == "mean of variants" else p_var[:, 0]
    margin, n_unstable = stability_margin(p_var, threshold)
    bands = fit_bands({s: (labels[sources == s], p[sources == s]) for s in np.unique(sources)})
    both = np.isin(sources, [s for s in np.unique(sources)
                             if len(np.unique(labels[sources == s])) == 2])
    side, curve = min_face_side(predict, crops[both], labels[both])
    return {**bands, "min_face_px": side, "max_faces": MAX_FACES,
            "max_real_share": MAX_REAL_SHARE, "max_fake_share": MAX_FAKE_SHARE,
            "served": served, "stability_margin": round(margin, 4),
            "stability_calibration": {"faces": int(len(p_var)), "unstable": n_unstable,
                                      "max_missed_share": MAX_MISSED_UNSTABLE},
            "calibration_auc": aucs,
            "face_side_auc": curve, "rule": RULE}


PRIORS = tuple(round(0.05 * k, 2) for k in range(1, 11))  # 0.05 .. 0.5


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


# How choose_prior picks the prior (written into the card as prior_choice.rule).
PRIOR_RULE = ("The prior share of fakes to serve, chosen on the calibration split alone: the "
              "largest (closest to 50/50, so catching the most fakes) under which every "
              "source's real faces called Fake at the threshold stay within issue 11's limits; "
              "if none does, the largest under which the most sources do. Harm to real people "
              "first, then as many fakes caught as that allows.")


def choose_prior(labels: np.ndarray, p50: np.ndarray, sources: np.ndarray,
                 threshold: float) -> tuple[float, list[dict]]:
    """The prior share of fakes to serve and the table it was chosen from, by PRIOR_RULE.
    p50: served P(fake) with no prior (0.5)."""
    from training.mnv2.verdicts import TARGETS

    z = logit(p50)
    rows = []
    for prior in PRIORS:
        row = {"prior_fake": prior, "reals_called_fake": {}, "fakes_caught": {}, "real_ok": 0}
        for src, (fp, caught) in shares_at(z, prior, threshold, labels, sources).items():
            if fp is not None:
                row["reals_called_fake"][src] = fp
                row["real_ok"] += fp <= TARGETS["real_called_fake_max"].get(f"{src}/test", 1.0)
            if caught is not None:
                row["fakes_caught"][src] = caught
        rows.append(row)
    best = max(rows, key=lambda r: (r["real_ok"], r["prior_fake"]))
    return best["prior_fake"], rows


def calibration_set(split: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(crops, labels, sources) of a split.json's calibration files, through the crop cache."""
    from training.common.data import read_split
    from training.common.prep import build_cache

    doc = json.loads(split.read_text())
    listed = [i for s in doc["sources"] for i in read_split(split, s, "calib")]
    # ff-crops/train was thinned after older models were trained: score what is still there.
    items = [i for i in listed if Path(i.path).is_file()]
    if len(items) < len(listed):
        print(f"{len(listed) - len(items)} of {len(listed)} calibration files are gone; "
              f"fitting on the other {len(items)}")
    crops, _ = build_cache([i.path for i in items])
    return (np.asarray(crops), np.array([i.label for i in items]),
            np.array([i.source for i in items]))


def scores_at_even_prior(root: Path, card: dict, crops: np.ndarray) -> np.ndarray:
    """Served P(fake) with no prior (0.5), whatever prior the card states (card unchanged)."""
    from detector.model import LoadedModel

    model = LoadedModel(root, {**card, "prior_fake": 0.5}, "tflite", threads=2)
    return in_chunks(model.predict, crops, 64)


def main(argv: list[str] | None = None) -> int:
    """Fit and write the assessment entry of an existing model directory."""
    from detector.model import LoadedModel, _card
    from detector.stability import all_variants
    from training.mnv2.export import card_markdown

    p = argparse.ArgumentParser(prog="dfd-train bands", description=__doc__)
    p.add_argument("model", help="model directory (card.json, model.tflite, split.json)")
    p.add_argument("--split", help="split.json (default: the model directory's)")
    p.add_argument("--prior-fake", metavar="P|auto",
                   help="state that the served P(fake) assumes this share of fakes (0.5: as "
                   "many as reals, as the calibration split has), or 'auto': chosen on the "
                   "calibration split (choose_prior); written into card.json")
    args = p.parse_args(argv)
    root, card = _card(args.model)
    if args.prior_fake not in (None, "auto"):
        try:
            card["prior_fake"] = float(args.prior_fake)
        except ValueError:
            raise SystemExit("--prior-fake takes a number or 'auto'") from None
        if not 0 < card["prior_fake"] < 1:
            raise SystemExit("--prior-fake must lie strictly between 0 and 1")
    crops, labels, sources = calibration_set(Path(args.split or root / "split.json"))
    card.setdefault("assessment", {"likely_real_below": 0, "likely_fake_from": 1,
                                   "min_face_px": 0, "max_faces": 1, "max_real_share": 0})
    if args.prior_fake == "auto":
        p50 = scores_at_even_prior(root, card, crops)
        card["prior_fake"], table = choose_prior(labels, p50, sources, float(card["threshold"]))
        card["prior_choice"] = {"rule": PRIOR_RULE, "grid": table}
        print(f"prior share of fakes chosen on the calibration split: {card['prior_fake']}")
    model = LoadedModel(root, card, "tflite", threads=2)
    entry = fit_assessment(lambda x: in_chunks(model.predict, x, 64),
                           crops, labels, sources, all_variants,
                           float(card["threshold"]))
    card["assessment"] = entry
    if args.prior_fake is not None and card.get("metrics"):
        # The training run's table was made at the prior it had then.
        card["metrics_note"] = (
            "These were computed when training ended, before the served prior was set to "
            f"{card['prior_fake']} by `dfd-train bands`, so accuracy and recall here are not what "
            "users get: the per-source tables under 'What users see' are. AUC does not depend on "
            "the prior.")
    (root / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (root / "MODEL_CARD.md").write_text(card_markdown(card))
    print(json.dumps({k: v for k, v in entry.items() if k != "rule"}, indent=1))
    return 0

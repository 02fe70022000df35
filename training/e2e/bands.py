"""`dfd-train bands MODEL_DIR`: fit the assessment's bands, the smallest face the model judges
and whether to serve the variants' mean, on the calibration split; written into card.json.

Run by `dfd-train train` at the end; this command fits them for a model trained before (the
weights, and so the version, do not change).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from detector.chunks import in_chunks
from training.common.assessment import fit_assessment
from training.policy import ISSUE11_PRIOR_RULE, choose_prior_issue11


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
    from detector.model import load_model

    model = load_model(root, "tflite", threads=2, card={**card, "prior_fake": 0.5})
    return in_chunks(model.predict, crops, 64)


def main(argv: list[str] | None = None) -> int:
    """Fit and write the assessment entry of an existing model directory."""
    from detector.model import load_model, read_card
    from detector.stability import all_variants
    from training.common.templating import card_markdown

    p = argparse.ArgumentParser(prog="dfd-train bands", description=__doc__)
    p.add_argument("model", help="model directory (card.json, model.tflite, split.json)")
    p.add_argument("--split", help="split.json (default: the model directory's)")
    p.add_argument("--prior-fake", metavar="P|auto",
                   help="state that the served P(fake) assumes this share of fakes (0.5: as "
                   "many as reals, as the calibration split has), or 'auto': chosen on the "
                   "calibration split (training.policy.choose_prior_issue11); written into "
                   "card.json")
    args = p.parse_args(argv)
    root, card = read_card(args.model)
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
        card["prior_fake"], table = choose_prior_issue11(labels, p50, sources,
                                                         float(card["threshold"]))
        card["prior_choice"] = {"rule": ISSUE11_PRIOR_RULE, "grid": table}
        print(f"prior share of fakes chosen on the calibration split: {card['prior_fake']}")
    model = load_model(root, "tflite", threads=2, card=card)
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

"""`dfd-train clip-serving MODEL`: fit what serving needs beyond the head, through the runtime.

The stability check's margin (training.common.assessment.stability_margin: from the edge of the
band a face is read in) on a seeded sample of the calibration crops: each crop and its benign
variants scored by the served model (ONNX Runtime, detail normalisation included), so the margin
is measured on the served scores. A sample, because every variant costs a pass of the tower
(about a quarter of a second here). On the same sample, the smallest face judged
(training.common.assessment.min_face_side: each crop shrunk to a face side and enlarged again,
the smallest side from which the AUC stays within MAX_AUC_DROP of full-size crops).
`--only margin|min-face` fits one of them and keeps the card's other.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from training.common.assessment import min_face_side, stability_margin
from training.policy import FACE_SIDES, MAX_AUC_DROP, MAX_MISSED_UNSTABLE


def calibration_sample(split: dict, n: int, seed: int) -> list[str]:
    paths = [str(Path(src["root"]) / p) for src in split["sources"].values()
             for p in src["calib"]]
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(paths, min(n, len(paths)), replace=False).tolist())


def fit_margin(root: Path, card: dict, paths: list[str]) -> dict:
    from detector.assess import Bands
    from detector.explain import grid_for
    from detector.model import load_model
    from detector.stability import CHECKED, all_variants, near_edge
    from training.common.prep import build_cache

    crops, _ = build_cache(paths)
    model = load_model(root, "onnx", threads=1, card=card)  # as a worker process runs it
    t0 = time.perf_counter()
    model.predict(np.asarray(crops[:16]))
    per_crop = (time.perf_counter() - t0) / min(16, len(paths))
    p_var = np.concatenate([model.predict(all_variants(np.asarray(crops[s:s + 16]), CHECKED))
                            .reshape(-1, len(CHECKED)) for s in range(0, len(paths), 16)])
    # Each calibration crop is a photo of one face: its bar is the card's band.
    bands = Bands.from_card(card).at(float(card["threshold"]))
    edges = bands.likely_real_below, bands.likely_fake_from
    margin, unstable = stability_margin(p_var, *edges)
    checked = near_edge(p_var[:, 0], *edges, margin)
    return {"explain": {"grid": grid_for(per_crop), "seconds_per_crop": round(per_crop, 4)},
            "stability_margin": round(margin, 4),
            "stability_calibration": {"faces": len(paths), "unstable": unstable,
                                      "max_missed_share": MAX_MISSED_UNSTABLE,
                                      "checked_share": float(checked.mean()),
                                      "sample": "seeded sample of the calibration crops"}}


def fit_min_face(root: Path, card: dict, paths: list[str]) -> dict:
    """min_face_px and its AUC curve through the served runtime (labels from the paths)."""
    from detector.model import load_model
    from training.common.data import label_of
    from training.common.prep import build_cache

    crops, _ = build_cache(paths)
    y = np.array([label_of(p) for p in paths])
    model = load_model(root, "onnx", threads=2, card=card)
    side, curve = min_face_side(model.predict, np.asarray(crops), y)
    return {"min_face_px": int(side), "min_face_curve": {k: round(float(v), 4)
                                                        for k, v in curve.items()},
            "min_face_note": f"fitted through the served runtime on {len(paths)} calibration "
                             f"crops: the smallest of {', '.join(map(str, FACE_SIDES))} px from "
                             f"which the AUC stays within {MAX_AUC_DROP} of full-size crops"}


def main(argv: list[str] | None = None) -> int:
    from detector.model import read_card
    from training.clip.export import clip_card_markdown

    p = argparse.ArgumentParser(prog="dfd-train clip-serving", description=__doc__)
    p.add_argument("model")
    p.add_argument("--n", type=int, default=300, help="calibration crops in the sample")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--only", choices=("margin", "min-face"), help="fit only this one")
    args = p.parse_args(argv)
    root, card = read_card(args.model)
    split = json.loads((root / "split.json").read_text())
    sample = calibration_sample(split, args.n, args.seed)
    entry = {}
    if args.only != "min-face":
        entry = fit_margin(root, card, sample)
        card["explain"] = entry.pop("explain")
    if args.only != "margin":
        entry.update(fit_min_face(root, card, sample))
    card["assessment"].update(entry)
    (root / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    (root / "MODEL_CARD.md").write_text(clip_card_markdown(card))
    print(json.dumps(entry, indent=1))
    return 0

"""`python -m research.probe`: what a model's score follows on one set, cue by cue."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from research.cues import crop_cues, signed_auc
from research.robustness import CachedDetector, apply_change, held_out_sets
from training.common import metrics as M

CHANGES = ("blur", "sharpen", "half_and_back", "jpeg_q70")


def stratified_auc(labels, scores, cue, bins: int = 5) -> float:
    """The score's AUC within quantile bins of a cue, pooled by pairs: the AUC with the cue held
    (nearly) fixed, so a cue that explains a below-chance AUC moves this toward 0.5 or above."""
    y, p, v = np.asarray(labels), np.asarray(scores, np.float64), np.asarray(cue, np.float64)
    edges = np.quantile(v, np.linspace(0, 1, bins + 1)[1:-1])
    which = np.searchsorted(edges, v, side="right")
    total = weight = 0.0
    for b in range(bins):
        m = which == b
        pairs = float(np.sum(y[m] == 1)) * float(np.sum(y[m] == 0))
        if pairs:
            total += pairs * M.roc_auc(y[m], p[m])
            weight += pairs
    return total / weight if weight else float("nan")


def probe(items: list, model, detector, changes=CHANGES, log=print) -> dict:
    """Scores, crop cues and changed-image scores of items; the table of how they relate."""
    from detector.analyze import analyze
    from detector.crop import face_crops
    from shared.images import decode_image

    t0 = time.time()
    y = np.array([it.label for it in items])
    p, cues, changed = [], [], {c: [] for c in changes}
    for it in items:
        rgb = decode_image(Path(it.path).read_bytes())
        crops, _ = face_crops(rgb, detector)
        cues.append(crop_cues(crops[0]))
        p.append(analyze(rgb, detector, model)["p_fake"])
        for c in changes:
            changed[c].append(analyze(decode_image(apply_change(rgb, c)), detector,
                                      model)["p_fake"])
    p = np.array(p)
    log(f"probed {len(items)} images in {time.time() - t0:.0f}s")
    out = {"n_real": int(np.sum(y == 0)), "n_fake": int(np.sum(y == 1)),
           "auc": M.roc_auc(y, p), "auc_ci95": M.auc_ci(y, p),
           "mean_p_fake": {"real": float(p[y == 0].mean()), "fake": float(p[y == 1].mean())},
           "cues": {}, "changes": {}}
    for name in cues[0]:
        v = np.array([c[name] for c in cues])
        out["cues"][name] = {
            "signed_auc": signed_auc(y, v),
            "rho_real": M.spearman(p[y == 0], v[y == 0]),
            "rho_fake": M.spearman(p[y == 1], v[y == 1]),
            "median_real": float(np.median(v[y == 0])), "median_fake": float(np.median(v[y == 1])),
            "model_auc_within_cue_bins": stratified_auc(y, p, v)}
    for c, q in changed.items():
        q = np.array(q)
        out["changes"][c] = {"auc": M.roc_auc(y, q),
                             "mean_dp_real": float((q - p)[y == 0].mean()),
                             "mean_dp_fake": float((q - p)[y == 1].mean())}
    return out


def table(res: dict) -> str:
    """The probe's result as two Markdown tables."""
    lines = [f"model AUC {res['auc']:.3f} (95% {res['auc_ci95'][0]:.3f}-{res['auc_ci95'][1]:.3f}),"
             f" mean P(fake) real {res['mean_p_fake']['real']:.3f} fake "
             f"{res['mean_p_fake']['fake']:.3f}", "",
             "| crop cue | signed AUC | median real / fake | rho(score, cue) real / fake | "
             "model AUC within cue bins |", "| --- | --- | --- | --- | --- |"]
    for n, r in res["cues"].items():
        lines.append(f"| {n} | {r['signed_auc']:.3f} | {r['median_real']:.4g} / "
                     f"{r['median_fake']:.4g} | {r['rho_real']:+.2f} / {r['rho_fake']:+.2f} | "
                     f"{r['model_auc_within_cue_bins']:.3f} |")
    lines += ["", "| every image changed by | model AUC | mean dP(fake) real / fake |",
              "| --- | --- | --- |"]
    for c, r in res["changes"].items():
        lines.append(f"| {c} | {r['auc']:.3f} | {r['mean_dp_real']:+.3f} / "
                     f"{r['mean_dp_fake']:+.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line: probe one model on one set; print the tables, write the JSON."""
    p = argparse.ArgumentParser(prog="python -m research.probe", description=__doc__)
    p.add_argument("--model", required=True, help="model directory")
    p.add_argument("--set", required=True, help="ff-crops/val, stylegan-faces/test, "
                   "stylegan-faces/all, dfdc-faces/test or dfdc-faces/all")
    p.add_argument("--split", default="models/dfd-mnv2/split.json", help="split.json")
    p.add_argument("--data", default="../shared/data", help="data root")
    p.add_argument("--limit", type=int, help="at most N images (seeded, balanced)")
    p.add_argument("--json", help="write the result here")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    from detector.faces import FaceDetector
    from detector.model import load_model

    sets = held_out_sets(Path(a.data), Path(a.split), a.limit, whole=True)
    if a.set not in sets:
        p.error(f"unknown set {a.set!r}; known: {', '.join(sets)}")
    res = probe(sets[a.set], load_model(a.model), CachedDetector(FaceDetector()))
    res |= {"model": a.model, "set": a.set, "limit": a.limit}
    print(table(res))
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

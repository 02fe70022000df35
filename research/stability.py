"""`dfd-research stability MODEL`: what the stability check catches and costs, by rule and by
version.

A seeded sample of the calibration split, drawn as `dfd-train clip-serving` draws it, is scored
in every version of detector.stability.VARIANTS through the served runtime (1 thread, as a
worker process runs it; cached under cache/). Each crop is a photo of one face. From those
scores alone, with the card's threshold and bands under the label rule (detector.assess.agree):

- the truth: which faces' shown decision some version changes (the label, for the rule served
  before; the assessment, "Likely real" or "Likely fake" left for another band, for the new);
- the rule served before: versions of faces within the card's margin of the label threshold,
  all four scored (the crop itself again too): share checked, flips caught, model passes;
- the new rule (detector.stability.to_check, its margin fitted by
  training.common.assessment.stability_margin): the same, scoring only the versions the crop has
  not had;
- per set of versions: the assessment flips it finds, of those all of them find, and its cost.

`--write` puts the served versions' margin and its calibration into card.json (and
MODEL_CARD.md); training.policy.STABILITY_VERSIONS_RULE says how the versions served
(detector.stability.CHECKED) were chosen.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from itertools import combinations
from pathlib import Path

import numpy as np

from detector.assess import band
from detector.model import logit
from detector.stability import VARIANTS, near_edge
from training.common.assessment import stability_margin
from training.policy import MAX_MISSED_UNSTABLE, STABILITY_BUDGET, STABILITY_VERSIONS_RULE

EXTRA = VARIANTS[1:]  # the versions beside the crop as found
# The margin of the rule served before issue 24 (models/dfd-clip, fitted from the label
# threshold by `dfd-train clip-serving`); the card now holds the new rule's.
BEFORE_MARGIN = 4.4313


def version_scores(root: Path, card: dict, paths: list[str], threads: int = 1) -> np.ndarray:
    """(N, len(VARIANTS)) served P(fake) of each crop's versions; cached by model and sample."""
    from detector.model import load_model
    from detector.stability import all_variants
    from training.common.prep import CACHE_DIR, build_cache

    key = hashlib.sha256(json.dumps([card["version"], card.get("prior_fake"), VARIANTS,
                                     paths]).encode()).hexdigest()[:16]
    path = CACHE_DIR / f"versions-{key}.npz"
    if path.is_file():
        return np.load(path)["p"]
    crops, _ = build_cache(paths)
    model = load_model(root, "tflite", threads=threads, card=card)  # a trunk model: ONNX
    t0, out = time.perf_counter(), []
    for s in range(0, len(paths), 8):
        out.append(model.predict(all_variants(np.asarray(crops[s:s + 8]))).reshape(
            -1, len(VARIANTS)))
        print(f"{s + len(out[-1])}/{len(paths)} crops, {time.perf_counter() - t0:.0f} s",
              flush=True)
    p = np.concatenate(out)
    CACHE_DIR.mkdir(exist_ok=True)
    np.savez(path, p=p)
    return p


def _share(mask: np.ndarray) -> float:
    return round(float(np.mean(mask)), 4) if np.size(mask) else 0.0


def moved(p: np.ndarray, edges: tuple[float, float], cols: list[int] | None = None) -> np.ndarray:
    """Faces read "Likely real" or "Likely fake" (column 0) that a version of `cols` (default:
    every other column) puts in another band."""
    cols = list(range(1, p.shape[1])) if cols is None else cols
    kind = band(p[:, 0], *edges)
    return (kind != 0) & (band(p[:, cols], *edges) != kind[:, None]).any(axis=1)


def shown(p: np.ndarray, edges: tuple[float, float], unstable: np.ndarray,
          labels: np.ndarray) -> dict:
    """The share of each class's faces shown in each assessment ("Can't tell" where unstable)."""
    kind = np.where(unstable, 0, band(p[:, 0], *edges))
    return {cls: {name: _share(kind[labels == y] == k) for name, k in
                  (("likely_real", -1), ("uncertain", 0), ("likely_fake", 1))}
            for cls, y in (("real", 0), ("fake", 1))}


def before(p: np.ndarray, threshold: float, margin: float, edges: tuple[float, float],
           labels: np.ndarray) -> dict:
    """The rule served before: faces near the label threshold, four versions each (the crop
    itself again too); a face whose versions straddle the threshold read "Can't tell"."""
    checked = np.abs(logit(p[:, 0]) - logit(threshold)) < margin
    straddle = (p.min(axis=1) <= threshold) & (p.max(axis=1) > threshold)
    flips = moved(p, edges)
    return {"margin": margin, "versions": list(VARIANTS), "checked_share": _share(checked),
            "passes_per_face": round(len(VARIANTS) * _share(checked), 3),
            "label_flips": _share(straddle), "label_flips_caught": _share(straddle & checked),
            "assessment_flips": _share(flips),
            "assessment_flips_caught": _share(flips & checked & straddle),
            "shown": shown(p, edges, checked & straddle, labels)}


def by_versions(p: np.ndarray, edges: tuple[float, float], labels: np.ndarray) -> list[dict]:
    """Each set of versions, its margin fitted on its own flips: the assessment flips it finds
    (of those all find), those its rule catches, its cost and what users would be shown."""
    every = max(1, int(moved(p, edges).sum()))
    rows = []
    for k in range(1, len(EXTRA) + 1):
        for names in combinations(EXTRA, k):
            sub = p[:, [0] + [VARIANTS.index(n) for n in names]]
            margin, _ = stability_margin(sub, *edges)
            checked = near_edge(p[:, 0], *edges, margin)
            found = moved(sub, edges)
            rows.append({"versions": list(names), "margin": round(margin, 4),
                         "checked_share": _share(checked),
                         "passes_per_face": round(len(names) * _share(checked), 3),
                         "found": round(float(found.sum() / every), 4),
                         "caught": round(float((found & checked).sum() / every), 4),
                         "shown": shown(p, edges, found & checked, labels)})
    return rows


def report(p: np.ndarray, labels: np.ndarray, card: dict,
           before_margin: float = BEFORE_MARGIN) -> dict:
    """Both rules and every set of versions, from (N, len(VARIANTS)) scores."""
    from detector.assess import Bands
    from detector.stability import CHECKED

    threshold = float(card["threshold"])
    b = Bands.from_card(card).at(threshold)
    edges = (b.likely_real_below, b.likely_fake_from)
    kind = band(p[:, 0], *edges)
    rows = by_versions(p, edges, labels)
    affordable = [r for r in rows if r["passes_per_face"] <= STABILITY_BUDGET]
    chosen = max(affordable, key=lambda r: (r["caught"], -r["passes_per_face"]))
    served = next(r for r in rows if r["versions"] == list(CHECKED[1:]))
    return {"faces": int(len(p)), "fakes": int(np.sum(labels)), "threshold": threshold,
            "bands": {"likely_real_below": edges[0], "likely_fake_from": edges[1]},
            "bands_share": {"likely_real": _share(kind < 0), "likely_fake": _share(kind > 0)},
            "assessment_flips": _share(moved(p, edges)), "rule": STABILITY_VERSIONS_RULE,
            "before": before(p, threshold, before_margin, edges, labels),
            "after": served, "chosen_by_rule": chosen["versions"], "by_versions": rows}


def markdown(r: dict) -> str:
    """The report as the tables of docs/MODEL.md."""
    b, a = r["before"], r["after"]
    pct = "{:.1%}".format

    def seen(s: dict) -> str:
        return " / ".join(pct(s[c]["likely_real"]) + " real, " + pct(s[c]["likely_fake"]) +
                          " fake" for c in ("real", "fake"))

    lines = [f"{r['faces']} calibration faces ({r['fakes']} fake), one face a photo; bands "
             f"{r['bands']['likely_real_below']:.6g} and {r['bands']['likely_fake_from']:.6g} "
             f"(likely real {pct(r['bands_share']['likely_real'])}, likely fake "
             f"{pct(r['bands_share']['likely_fake'])}); a version moves the assessment of "
             f"{pct(r['assessment_flips'])} of the faces.", "",
             "| rule | versions | margin (logits) | faces checked | model passes per face | "
             "assessment flips caught | shown likely real / likely fake (reals / fakes) |",
             "| --- | --- | --- | --- | --- | --- | --- |",
             f"| before: near the threshold | {len(b['versions'])} | {b['margin']:.2f} | "
             f"{pct(b['checked_share'])} | {b['passes_per_face']:.2f} | "
             f"{pct(b['assessment_flips_caught'])} of faces | {seen(b['shown'])} |",
             f"| after: near a band edge | {len(a['versions']) + 1} | {a['margin']:.2f} | "
             f"{pct(a['checked_share'])} | {a['passes_per_face']:.2f} | "
             f"{pct(a['caught'] * r['assessment_flips'])} of faces | {seen(a['shown'])} |", "",
             f"Before, {pct(b['label_flips'])} of the faces had a version across the label "
             f"threshold ({pct(b['label_flips_caught'])} checked and caught).", "",
             "| versions beside the crop | margin | faces checked | model passes per face | "
             "flips found (of all) | caught |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {' + '.join(v['versions'])} | {v['margin']:.2f} | {pct(v['checked_share'])} | "
              f"{v['passes_per_face']:.2f} | {pct(v['found'])} | {pct(v['caught'])} |"
              for v in r["by_versions"]]
    lines += ["", f"Chosen by the rule: {' + '.join(r['chosen_by_rule'])}."]
    return "\n".join(lines)


def write_card(root: Path, card: dict, r: dict, sample: str) -> None:
    """The served versions' margin and its calibration into card.json (and MODEL_CARD.md)."""
    a = r["after"]
    card["assessment"]["stability_margin"] = a["margin"]
    card["assessment"]["stability_calibration"] = {
        "faces": r["faces"], "assessment_flips": r["assessment_flips"],
        "versions": ["original", *a["versions"]], "checked_share": a["checked_share"],
        "passes_per_face": a["passes_per_face"], "caught": a["caught"],
        "max_missed_share": MAX_MISSED_UNSTABLE, "rule": STABILITY_VERSIONS_RULE, "sample": sample}
    (root / "card.json").write_text(json.dumps(card, indent=1) + "\n")
    if "trunk" in card:
        from training.clip.export import clip_card_markdown

        (root / "MODEL_CARD.md").write_text(clip_card_markdown(card))


def main(argv: list[str] | None = None) -> int:
    from detector.model import read_card
    from training.clip.serving import calibration_sample
    from training.common.data import label_of

    p = argparse.ArgumentParser(prog="dfd-research stability", description=__doc__)
    p.add_argument("model", help="model directory (card.json, split.json)")
    p.add_argument("--n", type=int, default=300, help="calibration crops in the sample")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", help="write the report as JSON here")
    p.add_argument("--before-margin", type=float, default=BEFORE_MARGIN,
                   help="the margin (logits from the threshold) of the rule served before")
    p.add_argument("--write", action="store_true", help="put the served versions' margin and "
                   "its calibration into the model's card")
    args = p.parse_args(argv)
    root, card = read_card(args.model)
    paths = calibration_sample(json.loads((root / "split.json").read_text()), args.n, args.seed)
    scores = version_scores(root, card, paths, args.threads)
    r = report(scores, np.array([label_of(x) for x in paths]), card, args.before_margin)
    if args.out:
        Path(args.out).write_text(json.dumps(r, indent=1) + "\n")
    print(markdown(r))
    if args.write:
        write_card(root, card, r, f"seeded sample (seed {args.seed}) of the calibration crops, "
                   "scored by `dfd-research stability`")
    return 0

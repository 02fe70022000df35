"""`dfd-train verdicts MODEL`: what users see, per source and pooled, with 95% intervals.

How it counts is PROTOCOL (written into the card). The result goes into card.json as `verdicts`
and MODEL_CARD.md is rendered again.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from shared.schema import ASSESSMENTS
from training.common import metrics as M
from training.common.data import read_split
from training.policy import ISSUE11_TARGETS, rule7_gate

PROTOCOL = ("Every held-out test image goes through the serving path (decode, BlazeFace, the "
            "crop, the model, the stability check, the assessment: "
            "detector.analyze.analyze_many) and is counted: the share of real faces called Fake "
            "and of fakes caught at the served threshold, the ROC AUC, and how often each "
            "assessment occurs. The held-out lists are MODEL's split.json, used for every model "
            "compared (other models of the same seed hold out the same files; a source one "
            "never trained on is marked).")


def _share(k: int, n: int) -> dict:
    lo, hi = M.wilson(k, n)
    return {"k": int(k), "n": int(n), "share": k / n if n else float("nan"), "ci": [lo, hi]}


def score_set(items, face_finder, model, batch: int = 16) -> list[dict]:
    """Serving-path results for the items' files, in order."""
    from detector.analyze import DECODE_SIZE, analyze_many
    from shared.images import decode_pil

    out = []
    for s in range(0, len(items), batch):
        imgs = [decode_pil(Path(i.path).read_bytes(), reduce_to=DECODE_SIZE)
                for i in items[s:s + batch]]
        out += analyze_many(imgs, face_finder, model)
    return out


def summarise(labels: np.ndarray, results: list[dict]) -> dict:
    """Counts, shares with Wilson intervals, AUC with a bootstrap interval, assessment shares."""
    p = np.array([r["p_fake"] for r in results])
    fake_said = np.array([r["label"] == "Fake" for r in results])
    assess = np.array([r["assessment"] for r in results])
    real, fake = labels == 0, labels == 1
    out = {"n_real": int(real.sum()), "n_fake": int(fake.sum()),
           "real_called_fake": _share(int((fake_said & real).sum()), int(real.sum())),
           "fakes_caught": _share(int((fake_said & fake).sum()), int(fake.sum())),
           "assessment": {cls: {a: _share(int(((assess == a) & m).sum()), int(m.sum()))
                                for a in ASSESSMENTS}
                          for cls, m in (("real", real), ("fake", fake)) if m.any()}}
    if real.any() and fake.any():
        out["auc"] = M.roc_auc(labels, p)
        out["auc_ci"] = list(M.auc_ci(labels, p, n_boot=500))
    return out


def evaluate(model_dir: Path, split: Path, trained_on: set[str]) -> dict:
    """Per-source and pooled summaries of one model on the split's test parts."""
    from detector.faces import FaceDetector
    from detector.model import load_model

    model, face_finder = load_model(model_dir), FaceDetector()
    doc = json.loads(split.read_text())
    per, all_labels, all_results, files = {}, [], [], []
    for src in doc["sources"]:
        items = [i for i in read_split(split, src, "test") if Path(i.path).is_file()]
        labels = np.array([i.label for i in items])
        results = score_set(items, face_finder, model)
        per[f"{src}/test"] = summarise(labels, results) | {"seen": src in trained_on}
        all_labels.append(labels)
        all_results += results
        files += [{"path": i.path, "source": src, "label": int(i.label),
                   "fake": r["label"] == "Fake", "assessment": r["assessment"]}
                  for i, r in zip(items, results, strict=True)]
    pooled = summarise(np.concatenate(all_labels), all_results)
    # Per file only for the rule-7 gate and --json: the card keeps the summaries.
    return {"model": model.version, "sets": per, "pooled": pooled, "files": files}


def trained_sources(card: dict) -> dict[str, str]:
    """source -> what training saw of it: 'all', 'fakes only' (its reals left out), or none."""
    tr = card.get("training", {})
    left = set(tr.get("left_out_reals") or [])
    out = {}
    if isinstance(tr.get("sources"), list):  # a CLIP card: every listed source, both classes
        return {src: "all" for src in tr["sources"]}
    for src, s in tr.get("sources", {}).items():
        c = s.get("counts", {}).get("train", {})
        if c.get("real") or c.get("fake"):
            out[src] = "fakes only" if src in left or not c.get("real") else "all"
    return out


def targets(v: dict, left_out: set[str]) -> list[dict]:
    """Each target of ISSUE11_TARGETS that applies: measured value, limit, met or not."""
    rows = []
    for name, limits in ISSUE11_TARGETS.items():
        for where, limit in limits.items():
            sets = [f"{s}/test" for s in left_out] if where == "left-out" else [where]
            for s in sets:
                d = v["pooled"] if s == "pooled" else v["sets"].get(s)
                if d is None:
                    continue
                if name == "auc_min":
                    val = d.get("auc")
                elif name == "likely_fake_on_reals_max":
                    val = d["assessment"]["real"]["likely_fake"]["share"]
                else:
                    val = d[name.rsplit("_", 1)[0]]["share"]
                if val is None:
                    continue
                met = val <= limit if name.endswith("_max") else val >= limit
                rows.append({"target": name, "set": s, "value": val, "limit": limit,
                             "met": bool(met)})
    return rows


def measure(name: str, model_dir: Path, split: Path) -> dict:
    """One model's verdict tables on a split's test parts, with what it saw and its targets."""
    seen = trained_sources(json.loads((model_dir / "card.json").read_text()))
    v = evaluate(model_dir, split, set(seen))
    # Real faces the model never saw: reals left out, or a real-only source not trained on.
    left = {s for s, what in seen.items() if what == "fakes only"} | {
        set_.split("/")[0] for set_, d in v["sets"].items()
        if set_.split("/")[0] not in seen and d["n_real"] and not d["n_fake"]}
    return v | {"name": name, "trained_on": seen, "left_out_reals": sorted(left),
                "targets": targets(v, left)}


def main(argv: list[str] | None = None) -> int:
    """Evaluate MODEL (and others beside it) and write `verdicts` into MODEL's card."""
    from training.common.templating import card_markdown

    p = argparse.ArgumentParser(prog="dfd-train verdicts", description=__doc__)
    p.add_argument("model", type=Path, help="the model directory whose card gets the tables")
    p.add_argument("--compare", action="append", default=[], metavar="NAME=DIR",
                   help="another model to score on the same files (previous, ablations, "
                   "leave-one-real-source-out runs); repeatable")
    p.add_argument("--json", type=Path, help="also write everything measured here; a model "
                   "already measured in that file (same name and version) is not scored again")
    p.add_argument("--gate", metavar="NAME", help="a --compare model served now: apply standing "
                   "rule 7's gate (training.policy.RULE7_GATE_RULE) and write it into the card")
    args = p.parse_args(argv)
    split = args.model / "split.json"
    models = {"this model": args.model} | {n: Path(d) for n, d in
                                           (c.split("=", 1) for c in args.compare)}
    out = {}
    before = json.loads(args.json.read_text()) if args.json and args.json.exists() else {}
    for name, d in models.items():
        card = json.loads((d / "card.json").read_text())
        if before.get(name, {}).get("model") == card["version"] and "files" in before[name]:
            out[name] = before[name]
            continue
        out[name] = v = measure(name, d, split)
        print(f"{name}: {v['model']} pooled reals called Fake "
              f"{v['pooled']['real_called_fake']['share']:.3f}, fakes caught "
              f"{v['pooled']['fakes_caught']['share']:.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    card = json.loads((args.model / "card.json").read_text())
    card["verdicts"] = {"protocol": PROTOCOL, "models": {
        n: {k: x for k, x in v.items() if k != "files"} for n, v in out.items()}}
    if args.gate:
        if args.gate not in out:
            raise SystemExit(f"--gate {args.gate}: name one of the --compare models")
        grid = card.get("prior_choice", {}).get("grid", [])
        met = any(r.get("ok") for r in grid if r["prior_fake"] == card.get("prior_fake"))
        card["rule7"] = rule7_gate(out["this model"]["files"], out[args.gate]["files"],
                                   prior_met=met) | {
            "shipped": f"{args.gate} {out[args.gate]['model']}"}
        print(json.dumps({k: v for k, v in card["rule7"].items() if k != "rule"}, indent=1))
    (args.model / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (args.model / "MODEL_CARD.md").write_text(card_markdown(card))
    return 0

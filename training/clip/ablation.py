"""`dfd-train clip-ablation DATA...`: the ablations the study left open, on one smaller draw.

A seeded draw of the study's images (at most PER_PART[part] per source, part and label) is run
leave-one-source-out exactly as the study runs (training.clip.study.run_config, same penalties) for:
- where to read the tower: the class token after blocks 4, 6, 8, 10 and 12, and the projected
  512-d embedding, on the detail-normalised crops the service scores;
- the crop: block-6 features of the plain crop against the detail-normalised one;
- pseudo-fakes: self-blended fakes (training.common.sbi) made from the train reals of the sources
  a run trains on, added to its training part as one more fake source, with the block-6 head.
Its AUCs compare these variants with each other on the same files; the draw is smaller than the
study's, so they are not the card's headline numbers. Writes JSON and a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from training.clip import study as S

PER_PART = {"train": 250, "calib": 60, "test": 100}
OUTPUTS = ("b4", "b6", "b8", "b10", "b12", "embed")
PSEUDO = "pseudo-fakes"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def draw(roots: list[str], seed: int) -> list[tuple[str, str, object]]:
    """(source, part, item) of the study's images, at most PER_PART per source, part and label."""
    from training.clip.features import study_items

    rows = study_items(roots, seed)
    rng = np.random.default_rng(seed)
    keep = []
    for key in sorted({(s, p, it.label) for s, p, it in rows}):
        idx = [i for i, (s, p, it) in enumerate(rows) if (s, p, it.label) == key]
        cap = PER_PART[key[1]]
        keep += idx if len(idx) <= cap else rng.choice(idx, cap, replace=False).tolist()
    return [rows[i] for i in sorted(keep)]


def pseudo_features(paths: list[str], seed: int, threads: int) -> np.ndarray:
    """Block-6 features of one self-blended fake per file's crop (cached beside the crops)."""
    from detector import trunk as T
    from detector.crop import normalise_detail
    from training.clip.features import features_key
    from training.common.prep import CACHE_DIR, build_cache
    from training.common.sbi import crop_keypoints, self_blend

    crops, meta = build_cache(paths, log=log)
    path = CACHE_DIR / f"pseudo-{features_key(meta['key'], ('b6',))}-{seed}.npz"
    if path.is_file():
        with np.load(path) as z:
            return z["b6"]
    kps = crop_keypoints(crops, np.arange(len(paths)))
    rng = np.random.default_rng(seed)
    fakes = np.stack([self_blend(np.asarray(c), rng, None if np.isnan(k).any() else k)[0]
                      for c, k in zip(crops, kps, strict=True)])
    feats = T.Tower(("b6",), threads=threads).features(normalise_detail(fakes))["b6"]
    np.savez(path, b6=feats)
    return feats


def pseudo_config(study: S.Study, pseudo: np.ndarray, origin: np.ndarray, c: float) -> dict:
    """run_config for block 6 with pseudo-fakes of the trained sources in every training part."""
    aucs = {}
    for src in sorted(set(study.sources.tolist())):
        use = origin != src  # never a pseudo-fake made from the left-out source's reals
        n = int(use.sum())
        aug = S.Study({"b6": np.concatenate([study.feats["b6"], pseudo[use]])},
                      np.concatenate([study.labels, np.ones(n, int)]),
                      np.concatenate([study.sources, np.full(n, PSEUDO)]),
                      np.concatenate([study.parts, np.full(n, "train")]))
        run = S.train_run(aug, ("b6",), c, leave_out=src)
        rows, y = S.left_out_rows(aug, src)
        aucs[src] = S.auc_row(y, run["z50"][rows])
    mean = float(np.mean([aucs[s]["auc"] for s in S.FAKE_KINDS if s in aucs]))
    log(f"ablation: b6 + pseudo-fakes C={c}: mean left-out fake AUC {mean:.3f}")
    return {"inputs": ["b6"], "C": c, "variant": "b6 + pseudo-fakes", "left_out": aucs,
            "mean_left_out_auc": mean}


def variant(study: S.Study, inputs: tuple[str, ...], name: str) -> list[dict]:
    """The study's run_config at each penalty, labelled."""
    out = []
    for c in S.PENALTIES:
        r = S.run_config(study, inputs, c, log=log)
        out.append({"variant": name, **{k: v for k, v in r.items() if k != "runs"}})
    return out


def run(roots: list[str], seed: int, threads: int) -> dict:
    from training.clip.features import extract

    rows = draw(roots, seed)
    paths = [r[2].path for r in rows]
    labels = np.array([r[2].label for r in rows])
    sources, parts = np.array([r[0] for r in rows]), np.array([r[1] for r in rows])
    log(f"ablation draw: {len(rows)} images")
    feats, _ = extract(paths, OUTPUTS, threads=threads, log=log)
    study = S.Study(feats, labels, sources, parts)
    results = []
    for out in OUTPUTS:
        results += variant(study, (out,), f"{out}, detail-normalised crop")
    plain, _ = extract(paths, ("b6",), threads=threads, log=log, detail=False)
    results += variant(S.Study(plain, labels, sources, parts), ("b6",), "b6, plain crop")
    reals = (parts == "train") & (labels == 0)
    pseudo = pseudo_features([p for p, r in zip(paths, reals, strict=True) if r], seed, threads)
    results += [pseudo_config(study, pseudo, sources[reals], c) for c in S.PENALTIES]
    counts = {f"{s}/{p}": int(((sources == s) & (parts == p)).sum())
              for s, p in sorted(set(zip(sources.tolist(), parts.tolist(), strict=True)))}
    return {"seed": seed, "per_part": PER_PART, "images": counts,
            "pseudo_fakes": int(reals.sum()), "results": results}


def table(out: dict) -> str:
    """One row per variant and penalty: left-out AUC per source and the mean over fake kinds."""
    srcs = sorted(out["results"][0]["left_out"])
    head = ["variant", "C", *srcs, "mean (fake kinds)"]
    n = sum(out["images"].values())
    lines = ["# Ablations of the frozen-feature head (`dfd-train clip-ablation`)", "",
             f"A seeded draw (seed {out['seed']}) of {n} of the study's images, at most "
             f"{out['per_part']['train']} / {out['per_part']['calib']} / "
             f"{out['per_part']['test']} per source, label and part (train / calib / test); "
             f"{out['pseudo_fakes']} pseudo-fakes made from its train reals. Each row is run "
             "leave-one-source-out as the study runs (training.clip.study.run_config): the AUC of "
             "each source scored by a head that never saw it (95% bootstrap interval). The draw "
             "is smaller than the study's, so compare the rows with each other, not with the "
             "card's headline.", "",
             "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in out["results"]:
        cells = [f"{r['left_out'][s]['auc']:.3f} ({r['left_out'][s]['ci'][0]:.2f}-"
                 f"{r['left_out'][s]['ci'][1]:.2f})" for s in srcs]
        lines.append(f"| {r['variant']} | {r['C']:g} | " + " | ".join(cells) +
                     f" | **{r['mean_left_out_auc']:.3f}** |")
    return "\n".join(lines)


def summary(out: dict) -> dict:
    """What the model card keeps of a run: the draw and each row's left-out AUCs."""
    return {"seed": out["seed"], "images": sum(out["images"].values()),
            "per_part": out["per_part"], "pseudo_fakes": out["pseudo_fakes"],
            "rows": [{"variant": r["variant"], "C": r["C"],
                      "mean_left_out_auc": r["mean_left_out_auc"],
                      "left_out": {s: {"auc": v["auc"], "ci": v["ci"]}
                                   for s, v in r["left_out"].items()}}
                     for r in out["results"]]}


def into_card(model_dir: Path, out: dict) -> None:
    """The run's summary into the card (card.json `study.ablation`) and its MODEL_CARD.md."""
    from training.clip.export import clip_card_markdown

    path = model_dir / "card.json"
    raw = path.read_text()
    card = json.loads(raw)
    card.setdefault("study", {})["ablation"] = summary(out)
    # The card's own layout (indent) is kept, so the diff shows only what changed.
    indent = 1 if raw.startswith('{\n "') else 2
    path.write_text(json.dumps(card, indent=indent) + "\n")
    (model_dir / "MODEL_CARD.md").write_text(clip_card_markdown(card))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dfd-train clip-ablation", description=__doc__)
    p.add_argument("data", nargs="+", help="data roots (the study's sources)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default="var/clip-ablation.json")
    p.add_argument("--markdown", help="also write the table to this file")
    p.add_argument("--card", help="a model directory whose card gets the table (card.json "
                   "study.ablation, MODEL_CARD.md)")
    p.add_argument("--from-json", help="render an earlier run's JSON instead of running")
    args = p.parse_args(argv)
    if args.from_json:
        out = json.loads(Path(args.from_json).read_text())
    else:
        out = run(args.data, args.seed, args.threads)
    if not args.from_json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(out, indent=1))
    md = table(out)
    if args.markdown:
        Path(args.markdown).write_text(md + "\n")
    if args.card:
        into_card(Path(args.card), out)
    print(md)
    return 0

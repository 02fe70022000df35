"""`dfd-train study-tables`: score each run of `make study` on what it never saw.

A run that left a fake kind out is scored on that whole source (the CLIP study's rule: a paired
source on its own reals and fakes, the fake-only sdfd-faces against the test reals of the sources
the run trained on), and on the test parts of the sources it did train on; every table again on
copies re-saved as a phone or a social network would (shorter side x0.8 bicubic, JPEG 80, no
metadata), both classes alike. Numbers are at the run's own served threshold, prior and bands.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from training.common import metrics as M
from training.common.data import Item, list_images, split_source
from training.common.scores import scored

# Which fake kind each study run leaves out, by the run's name (see the Makefile's STUDY_RUNS).
LEFT_OUT = {"sdfd": "sdfd-faces", "ff": "ff-crops", "dfdc": "dfdc-faces",
            "stylegan": "stylegan-faces"}
FAKE_KINDS = ("ff-crops", "stylegan-faces", "dfdc-faces", "sdfd-faces")
LAUNDER = "shorter side x0.8 (bicubic), JPEG quality 80 (4:2:0), metadata dropped"
PER_LABEL = 600  # images a label of a left-out source (seeded); the test parts keep 400
PER_TEST = 400


def launder(path: str) -> bytes:
    """The file as a phone or social network re-saves it (LAUNDER)."""
    img = Image.open(path).convert("RGB")
    w, h = img.size
    img = img.resize((max(1, round(w * 0.8)), max(1, round(h * 0.8))), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=80, subsampling=2)  # a fresh file: no EXIF, ICC or XMP
    return buf.getvalue()


def laundered_paths(paths: list[str]) -> list[str]:
    """Laundered copies on disk (cached by the original's bytes), in the same order."""
    from training.common.prep import CACHE_DIR

    out_dir = CACHE_DIR / "laundered"
    out_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for p in paths:
        target = out_dir / (hashlib.sha256(Path(p).read_bytes()).hexdigest()[:20] + ".jpg")
        if not target.exists():
            target.write_bytes(launder(p))
        out.append(str(target))
    return out


def _sample(items: list[Item], k: int, seed: int) -> list[Item]:
    rng = np.random.default_rng(seed)
    out = []
    for label in (0, 1):
        its = [i for i in items if i.label == label]
        if len(its) > k:
            its = [its[j] for j in np.sort(rng.choice(len(its), k, replace=False))]
        out.extend(its)
    return out


def eval_sets(data: Path, seed: int) -> dict[str, dict[str, list[Item]]]:
    """{source: {'whole': sample of every file, 'test': sample of the split's test part}}, the
    split made anew from the data (by group and seed: the same in every run, and no file that a
    source has since dropped)."""
    out = {}
    for src in ("ff-crops", "stylegan-faces", "dfdc-faces", "fairface-real", "sdfd-faces"):
        root = data / src
        whole = list_images(root / "val" if (root / "val").is_dir() else root, src)
        test = split_source(root, seed)["test"]
        out[src] = {"whole": _sample(whole, PER_LABEL, seed), "test": _sample(test, PER_TEST, seed)}
    return out


def row(y: np.ndarray, p: np.ndarray, threshold: float, bands: dict) -> dict:
    """AUC with its interval, reals called Fake, fakes caught and each band's share per class."""
    out: dict = {"n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum())}
    if out["n_real"] and out["n_fake"]:
        lo, hi = M.auc_ci(y, p, n_boot=300)
        out |= {"auc": float(M.roc_auc(y, p)), "auc_ci": [float(lo), float(hi)]}
    fake = p >= threshold
    for name, label, rate in (("reals_called_fake", 0, fake), ("fakes_caught", 1, fake)):
        k, n = int(rate[y == label].sum()), int((y == label).sum())
        if n:
            out[name] = {"rate": k / n, "ci": list(M.wilson(k, n))}
    lr, lf = bands["likely_real_below"], bands["likely_fake_from"]
    for cls, label in (("real", 0), ("fake", 1)):
        q = p[y == label]
        if len(q):
            out[f"bands_{cls}"] = {"likely_real": float(np.mean(q < lr)),
                                   "likely_fake": float(np.mean(q >= lf)),
                                   "cant_tell": float(np.mean((q >= lr) & (q < lf)))}
    return out


def aligned_test(sets: dict, trained: set[str], per_source: int = 100) -> list[Item]:
    """Test reals of the trained sources beside their own TAEF2 reconstructions: whether the run
    learned the decoder's fingerprint at all (no test real is ever reconstructed for training)."""
    from training.common import aligned

    reals = [i for s in sorted(trained) for i in
             [j for j in sets[s]["test"] if j.label == 0][:per_source]]
    return reals + aligned.reconstruct(reals, log=lambda m: None)


def left_out_of(run: Path) -> str:
    """The fake kind a study run left out, by its name (the Makefile's STUDY_RUNS)."""
    return LEFT_OUT[run.name.split("-out")[0]]


def left_out_part(sets: dict, left_out: str, trained) -> list[Item]:
    """The left-out source's sample; a fake-only one (sdfd-faces) against the test reals of the
    sources the run trained on."""
    items = sets[left_out]["whole"]
    if {i.label for i in items} == {1}:
        items = items + [i for s in sorted(trained) for i in sets[s]["test"] if i.label == 0]
    return items


def run_tables(run: Path, sets: dict, left_out: str, log=print) -> dict:
    """Left-out and in-distribution tables of one run, as served and laundered."""
    card = json.loads((run / "card.json").read_text())
    trained = set(json.loads((run / "split.json").read_text())["sources"])
    if left_out in trained:
        raise SystemExit(f"{run}: trained on {left_out}, so it cannot be scored as left out")
    parts = {}
    if left_out != "none":  # a model trained on every source has only its test parts
        parts["left_out"] = left_out_part(sets, left_out, trained)
    for src in sorted(trained):
        parts[src] = sets[src]["test"]
    parts["aligned"] = aligned_test(sets, trained)
    paths = sorted({i.path for its in parts.values() for i in its})
    washed = laundered_paths(paths)
    t0 = time.time()
    p = dict(zip(paths, scored(run, paths, log), strict=True))
    pw = dict(zip(paths, scored(run, washed, log), strict=True))
    log(f"{run.name}: scored {len(paths)} files twice in {time.time() - t0:.0f}s")
    out: dict = {"left_out_source": left_out, "version": card["version"],
                 "threshold": card["threshold"], "prior_fake": card["prior_fake"],
                 "training": {k: card["training"].get(k) for k in
                              ("seconds", "epochs_run", "images_seen", "machine")
                              if k in card.get("training", {})}}
    for name, its in parts.items():
        y = np.array([i.label for i in its])
        out[name] = {"served": row(y, np.array([p[i.path] for i in its]), card["threshold"],
                                   card["assessment"]),
                     "laundered": row(y, np.array([pw[i.path] for i in its]), card["threshold"],
                                      card["assessment"])}
    return out


def _pct(r: dict, key: str, sub: str | None = None) -> str:
    v = r.get(key)
    if not v:
        return ""
    if sub:
        return f"{100 * v[sub]:.1f}%"
    return f"{100 * v['rate']:.1f}% ({100 * v['ci'][0]:.1f}-{100 * v['ci'][1]:.1f})"


def markdown(doc: dict) -> str:
    """One table per run: what it never saw first, then the test parts of what it trained on."""
    head = ("| set | real / fake | AUC (95% interval) | laundered AUC | reals called Fake | "
            "fakes caught | fakes Likely real | reals Likely real | reals Likely fake |\n"
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    out = [f"Laundered: {doc['launder']}. At most {doc['per_label']} images a label of a "
           f"left-out source, {doc['per_test']} of a test part; served threshold, prior and "
           "bands of each run (bands without the stability check)."]
    for name, run in doc["runs"].items():
        t = run.get("training", {})
        out += ["", f"**{name}** (left out: {run['left_out_source']}; version {run['version']}, "
                f"prior {run['prior_fake']:g}; {t.get('images_seen', '?')} images seen in "
                f"{round(t.get('seconds', 0) / 60)} min)", "", head]
        for part, r in run.items():
            if not isinstance(r, dict) or "served" not in r:
                continue
            s, w = r["served"], r["laundered"]
            auc = f"{s['auc']:.3f} ({s['auc_ci'][0]:.3f}-{s['auc_ci'][1]:.3f})" if "auc" in s \
                else ""
            wash = f"{w['auc']:.3f} ({w['auc'] - s['auc']:+.3f})" if "auc" in w else ""
            label = f"{run['left_out_source']} (left out)" if part == "left_out" else part
            out.append(f"| {label} | {s['n_real']} / {s['n_fake']} | {auc} | {wash} | "
                       f"{_pct(s, 'reals_called_fake')} | {_pct(s, 'fakes_caught')} | "
                       f"{_pct(s, 'bands_fake', 'likely_real')} | "
                       f"{_pct(s, 'bands_real', 'likely_real')} | "
                       f"{_pct(s, 'bands_real', 'likely_fake')} |")
    return "\n".join(out) + "\n"


def into_card(run: Path, tables: dict, launder: str) -> None:
    """Each part's served and laundered rows into the card (tables.laundered), and its
    MODEL_CARD.md rendered anew from it (standing rule 7: every test part re-saved)."""
    from training.common.templating import write_card

    path = run / "card.json"
    card = json.loads(path.read_text())
    card.setdefault("tables", {})["laundered"] = {
        "how": launder, "parts": {k: v for k, v in tables.items()
                                  if isinstance(v, dict) and "served" in v}}
    write_card(path, card)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of `dfd-train study-tables`."""
    p = argparse.ArgumentParser(prog="dfd-train study-tables", description=__doc__)
    p.add_argument("runs", nargs="+", help="study run directories (names as in STUDY_RUNS)")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--json", required=True, help="write the tables here")
    p.add_argument("--markdown", help="also write the tables as Markdown here")
    p.add_argument("--left-out", help="the source every run left out (default: by run name; "
                   "'none' for a model trained on every source: its test parts only)")
    p.add_argument("--card", action="store_true", help="also put each run's laundered table in "
                   "its card.json (tables.laundered) and render its MODEL_CARD.md again")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Score every finished run; runs without a card are named and skipped."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    out: dict = {"launder": LAUNDER, "per_label": PER_LABEL, "per_test": PER_TEST, "runs": {}}
    sets = None
    for run in map(Path, args.runs):
        if not (run / "card.json").is_file():
            print(f"{run.name}: not finished, skipped", flush=True)
            continue
        if sets is None:  # the split is by group and seed, the same in every run
            sets = eval_sets(Path(args.data), json.loads((run / "split.json").read_text())["seed"])
        left_out = args.left_out or left_out_of(run)
        out["runs"][run.name] = run_tables(run, sets, left_out)
        if args.card:
            into_card(run, out["runs"][run.name], out["launder"])
        Path(args.json).write_text(json.dumps(out, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(markdown(out))
    return 0

"""`dfd-train study-compare`: two study runs on the same files of the kind both left out.

An ablation (with and without a part of the recipe) or a second seed is judged by how far two
runs' AUCs on the unseen kind lie apart. Separate intervals (study-tables) each carry the
sampling noise of the 1,200 files; the same files scored by both runs and resampled together
leave only what differs between the runs (training.common.metrics.paired_auc_diff). Both as the
files are and laundered (fold_tables.LAUNDER).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from training.common import fold_tables as F
from training.common import metrics as M
from training.common.scores import scored


def left_out_files(run_a: Path, run_b: Path, data: Path) -> tuple[list[str], np.ndarray]:
    """The left-out files both runs are scored on: study-tables' own sample (the fake-only
    sdfd-faces against the test reals of the sources both trained on), and their labels."""
    kind = F.left_out_of(run_a)
    if F.left_out_of(run_b) != kind:
        raise SystemExit(f"{run_a.name} and {run_b.name} left out different kinds")
    splits = [json.loads((r / "split.json").read_text()) for r in (run_a, run_b)]
    if splits[0]["seed"] != splits[1]["seed"]:
        raise SystemExit(f"{run_a.name} and {run_b.name} were split with different seeds")
    trained = [sorted(sp["sources"]) for sp in splits]
    if trained[0] != trained[1]:
        raise SystemExit(f"{run_a.name} and {run_b.name} trained on different sources")
    items = F.left_out_part(F.eval_sets(data, splits[0]["seed"]), kind, trained[0])
    return [i.path for i in items], np.array([i.label for i in items])


# What a pair's two runs may differ by, as the cards record it (a card without the key: default).
RECIPE = {"arch": "mobilenetv2", "precision": "float32", "train_seed": None, "sbi_rate": None,
          "aligned_train": 0, "internal_size": None, "lora_rank": None, "images_seen": None,
          "init_model": None, "aug_strength": None, "lr": None, "served_weights": "float32"}


def recipe(run: Path) -> dict:
    """The recipe fields of a run's card (the aligned fakes as the number it trained on, the
    served weights int8 where `dfd-train quantize` made the directory)."""
    card = json.loads((run / "card.json").read_text())
    training = card["training"]
    aligned = training["sources"].get("aligned", {}).get("counts", {}).get("train", {})
    out = {k: training.get(k, d) for k, d in RECIPE.items()
           if k not in ("aligned_train", "served_weights")}
    if out["train_seed"] is None:  # cards before --train-seed: the training drew from --seed
        out["train_seed"] = training.get("seed")
    return out | {"aligned_train": aligned.get("fake", 0),
                  "served_weights": "int8" if "quantized" in card else "float32"}


def differs(run_a: Path, run_b: Path) -> list[str]:
    """What b changes against a, one 'field a -> b' each: the row says what was compared."""
    a, b = recipe(run_a), recipe(run_b)
    return [f"{k} {a[k]} -> {b[k]}" for k in RECIPE if a[k] != b[k]]


def version(run: Path) -> str:
    return json.loads((run / "card.json").read_text())["version"]


def compare(run_a: Path, run_b: Path, data: Path, log=print) -> dict:
    """AUC(b) - AUC(a) on the unseen kind, served and laundered, with paired intervals."""
    paths, y = left_out_files(run_a, run_b, data)
    out: dict = {"a": run_a.name, "b": run_b.name, "left_out_source": F.left_out_of(run_a),
                 "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum()),
                 "versions": [version(run_a), version(run_b)], "differs": differs(run_a, run_b)}
    for name, files in (("served", paths), ("laundered", F.laundered_paths(paths))):
        out[name] = M.paired_auc_diff(y, scored(run_a, files, log), scored(run_b, files, log))
        r = out[name]
        log(f"{run_b.name} - {run_a.name} ({name}): {r['diff']:+.3f} "
            f"({r['ci'][0]:+.3f} to {r['ci'][1]:+.3f})")
    return out


def markdown(rows: list[dict]) -> str:
    """One line per pair: what b changes, both AUCs and the paired difference, served and
    laundered (rendered from training/templates/study_pairs.md.j2, as the card's section is)."""
    from training.common.templating import render

    return render("study_pairs.md.j2", pairs={"how": how(), "rows": rows}, heading=False)


def how() -> str:
    return (f"Paired: the same files of the left-out kind scored by both runs, resampled "
            f"together (1,000 draws within each class); laundered: {F.LAUNDER}.")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of `dfd-train study-compare`."""
    p = argparse.ArgumentParser(prog="dfd-train study-compare", description=__doc__)
    p.add_argument("pairs", nargs="+", metavar="A:B",
                   help="two study run directories that left out the same kind, joined by ':'")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--json", required=True, help="write the comparisons here")
    p.add_argument("--markdown", help="also write them as Markdown here")
    p.add_argument("--card", help="also put them in this model card (card.json, and its "
                   "MODEL_CARD.md again): the study beside the served model")
    return p.parse_args(argv)


def _reusable(json_path: Path) -> dict:
    """Rows of an earlier --json by (a, b, versions): a pair of the same trained runs is not
    scored again (a retrained run has another version, so it is)."""
    if not json_path.is_file():
        return {}
    return {(r["a"], r["b"], tuple(r.get("versions", ()))): r
            for r in json.loads(json_path.read_text())}


def to_card(card_path: Path, rows: list[dict]) -> None:
    """The pairs as the card's `study_pairs`, and MODEL_CARD.md rendered again from it."""
    from training.common.templating import write_card

    card = json.loads(card_path.read_text())
    card["study_pairs"] = {"how": how(), "rows": rows}
    write_card(card_path, card)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    done, rows = _reusable(Path(args.json)), []
    for pair in args.pairs:
        a, sep, b = pair.partition(":")
        if not sep or not b:
            raise SystemExit(f"{pair!r}: give a pair as RUN_A:RUN_B")
        key = (Path(a).name, Path(b).name, (version(Path(a)), version(Path(b))))
        if key in done:
            print(f"{key[1]} - {key[0]}: scored before (same versions), kept")
            rows.append(done[key] | {"differs": differs(Path(a), Path(b))})
        else:
            rows.append(compare(Path(a), Path(b), Path(args.data)))
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows))
    if args.card:
        to_card(Path(args.card), rows)
    return 0

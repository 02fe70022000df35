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


def compare(run_a: Path, run_b: Path, data: Path, log=print) -> dict:
    """AUC(b) - AUC(a) on the unseen kind, served and laundered, with paired intervals."""
    paths, y = left_out_files(run_a, run_b, data)
    out: dict = {"a": run_a.name, "b": run_b.name, "left_out_source": F.left_out_of(run_a),
                 "n_real": int((y == 0).sum()), "n_fake": int((y == 1).sum())}
    for name, files in (("served", paths), ("laundered", F.laundered_paths(paths))):
        out[name] = M.paired_auc_diff(y, F.scored(run_a, files, log), F.scored(run_b, files, log))
        r = out[name]
        log(f"{run_b.name} - {run_a.name} ({name}): {r['diff']:+.3f} "
            f"({r['ci'][0]:+.3f} to {r['ci'][1]:+.3f})")
    return out


def markdown(rows: list[dict]) -> str:
    """One line per pair: both AUCs and the paired difference, served and laundered."""
    lines = [f"Paired: the same files of the left-out kind scored by both runs, resampled "
             f"together (1,000 draws within each class); laundered: {F.LAUNDER}.", "",
             "| a | b | left out | real / fake | AUC a | AUC b | b - a (95% interval) | "
             "laundered b - a |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        s, w = r["served"], r["laundered"]
        lines.append(f"| {r['a']} | {r['b']} | {r['left_out_source']} | {r['n_real']} / "
                     f"{r['n_fake']} | {s['auc_a']:.3f} | {s['auc_b']:.3f} | {s['diff']:+.3f} "
                     f"({s['ci'][0]:+.3f} to {s['ci'][1]:+.3f}) | {w['diff']:+.3f} "
                     f"({w['ci'][0]:+.3f} to {w['ci'][1]:+.3f}) |")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line of `dfd-train study-compare`."""
    p = argparse.ArgumentParser(prog="dfd-train study-compare", description=__doc__)
    p.add_argument("pairs", nargs="+", metavar="A:B",
                   help="two study run directories that left out the same kind, joined by ':'")
    p.add_argument("--data", default="../shared/data")
    p.add_argument("--json", required=True, help="write the comparisons here")
    p.add_argument("--markdown", help="also write them as Markdown here")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    rows = []
    for pair in args.pairs:
        a, sep, b = pair.partition(":")
        if not sep or not b:
            raise SystemExit(f"{pair!r}: give a pair as RUN_A:RUN_B")
        rows.append(compare(Path(a), Path(b), Path(args.data)))
        Path(args.json).write_text(json.dumps(rows, indent=1))
    if args.markdown:
        Path(args.markdown).write_text(markdown(rows))
    return 0

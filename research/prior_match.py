"""`dfd-research prior-match NEW --shipped OLD`: the serving prior at which a new model accuses no
source's calibration real faces more often than the shipped model does at its own prior.

A candidate must not call more real faces Fake than the model it replaces (the project's rule).
Both models score the calibration split of the shipped model's split.json (no prior); then, for
each prior on a grid, the share of each source's real faces called Fake and of its fakes caught
at the threshold. The answer is the largest prior under which every source's share of real
faces called Fake is at most the shipped model's. Serve it with `dfd-train bands NEW
--prior-fake P`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from training.policy import shares_at as shares

GRID = tuple(round(0.005 * k, 3) for k in range(2, 101))  # 0.01 .. 0.5


def match(z_new: np.ndarray, z_old: np.ndarray, old_prior: float, threshold: float,
          labels: np.ndarray, sources: np.ndarray) -> tuple[float | None, dict, list[dict]]:
    """(largest prior of GRID that accuses no source's reals more than the shipped model, the
    shipped model's shares, the grid's rows); None when no prior does."""
    old = shares(z_old, old_prior, threshold, labels, sources)
    rows, best = [], None
    for prior in GRID:
        new = shares(z_new, prior, threshold, labels, sources)
        ok = all(new[s][0] <= old[s][0] for s in new if new[s][0] is not None)
        rows.append({"prior_fake": prior, "ok": ok, "sources": new})
        if ok:
            best = prior
    return best, old, rows


def _logits(model_dir: str, crops: np.ndarray) -> tuple[np.ndarray, dict]:
    from detector.model import logit, read_card
    from training.e2e.bands import scores_at_even_prior

    root, card = read_card(model_dir)
    return logit(scores_at_even_prior(root, card, crops)), {
        "prior": float(card.get("prior_fake", 0.5)), "threshold": float(card["threshold"]),
        "version": card["version"]}


def main(argv: list[str] | None = None) -> int:
    from training.e2e.bands import calibration_set

    p = argparse.ArgumentParser(prog="dfd-research prior-match", description=__doc__)
    p.add_argument("model", help="the candidate model directory")
    p.add_argument("--shipped", required=True, help="the model it would replace")
    p.add_argument("--json", help="also write the grid here")
    args = p.parse_args(argv)
    crops, labels, sources = calibration_set(Path(args.shipped) / "split.json")
    z_new, new = _logits(args.model, crops)
    z_old, old = _logits(args.shipped, crops)
    best, old_shares, rows = match(z_new, z_old, old["prior"], old["threshold"], labels, sources)
    print(f"shipped {old['version']} at prior {old['prior']}: " + ", ".join(
        f"{s} {100 * r:.1f}% reals called Fake" for s, (r, _) in old_shares.items()
        if r is not None))
    for row in rows:
        if row["prior_fake"] in (best, old["prior"]):
            mark = " (chosen)" if row["prior_fake"] == best else ""
            print(f"{new['version']} at {row['prior_fake']}{mark}, reals called Fake / fakes "
                  "caught: " + ", ".join(
                      f"{s} {100 * r:.1f}%" + (f" / {100 * f:.1f}%" if f is not None else "")
                      for s, (r, f) in row["sources"].items()))
    if args.json:
        Path(args.json).write_text(json.dumps({"chosen": best, "shipped": old_shares,
                                               "grid": rows}, indent=1))
    print(f"prior: {best}" if best is not None else "no prior keeps every source's reals")
    return 0 if best is not None else 1

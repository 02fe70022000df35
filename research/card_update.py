"""Merge robustness measurements into a model card and re-render MODEL_CARD.md (version kept)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

FLIP_TARGET = 0.03
CROSS_TARGET = 0.75
PROTOCOL = ("Each row is a model, each column a held-out set scored through the serving path "
            "(decode, BlazeFace, face_crops, calibrated model: detector.analyze.analyze). A cell "
            "is cross-source (marked x) when the model never trained on that source. ff-crops/val "
            "is the given val split; the stylegan and dfdc test parts are the seeded held-out "
            "files of split.json (the same for every model: same seed); a /all column is every "
            "file of that source, scored only for models that never trained on it. In brackets: "
            "95% bootstrap interval of the AUC (1,000 resamples within each class).")
FLIP_RULE = ("Real images only. Rate = images judged Real as uploaded and Fake after the change, "
             "over images judged Real as uploaded; target <= 3% for every change and set.")


def _merge(files: list[Path]) -> dict:
    """One measurement dict from several robustness JSONs (same sets; models by name)."""
    out: dict = {"models": {}, "auc": {}, "flip_rates": {}, "cues": {}, "sets": {}}
    for f in files:
        doc = json.loads(Path(f).read_text())
        for key in ("models", "auc", "flip_rates"):
            out[key].update(doc.get(key, {}))
        out["sets"].update(doc.get("sets", {}))
        for s, cues in doc.get("cues", {}).items():
            out["cues"].setdefault(s, {}).update(cues)
        for key in ("changes", "cue_definitions", "cue_auc_rule", "train_batch_cues", "limit"):
            if doc.get(key) is not None:
                out[key] = doc[key]
    return out


def _row(name: str, info: dict, auc: dict) -> dict:
    """A cross-source table row: what the model trained on (from its card) and its AUCs."""
    card = json.loads((Path(info["dir"]) / "card.json").read_text())
    tr = card.get("training", {})
    trained = sorted(tr.get("sources", {}))
    return {"version": info["version"], "dir": info["dir"], "trained_on": trained,
            "sbi_rate": tr.get("sbi_rate") or 0.0, "init_model": tr.get("init_model"),
            "epochs": tr.get("epochs"), "images_seen": tr.get("images_seen"),
            "train_seconds": tr.get("seconds"),
            "auc": {s: r["auc"] for s, r in auc.items()},
            "auc_ci95": {s: r.get("auc_ci95") for s, r in auc.items()},
            "cross": {s: s.split("/")[0] not in trained for s in auc}}


def _cross_cells(row: dict) -> list[str]:
    """A row's cross-source cells, the whole-source one standing for its held-out part."""
    cells = [s for s in row["auc"] if row["cross"][s]]
    return [s for s in cells if s.replace("/test", "/all") == s or
            s.replace("/test", "/all") not in cells]


def _worst(rows: dict, recipe_sbi: bool) -> dict | None:
    """Lowest cross-source AUC among rows trained with the given recipe (SBI or not)."""
    cells = [(r["auc"][s], n, s) for n, r in rows.items() if (r["sbi_rate"] > 0) == recipe_sbi
             and not r.get("kept") for s in _cross_cells(r)]
    if not cells:
        return None
    auc, n, s = min(cells)
    return {"auc": auc, "model": n, "set": s}


def _worst_flip(flips: dict) -> dict:
    """The highest flip rate over sets and changes (NaN when no image was judged Real)."""
    cells = [(r["rate"], s, c) for s, per in flips.items() for c, r in per.items()
             if r["rate"] == r["rate"]]
    if not cells:
        return {"rate": float("nan"), "set": None, "change": None}
    rate, s, c = max(cells)
    return {"rate": rate, "set": s, "change": c}


def update(card_dir: Path, files: list[Path], shipped: str, previous: str | None,
           notes: list[str], keep_rows: tuple[str, ...] = ()) -> dict:
    """Add cross_source, flip_rates, cues, previous and targets to card.json; re-render.
    keep_rows: rows of the card's earlier cross-source table to carry over as they were."""
    from training.common.templating import card_markdown

    m = _merge(files)
    card = json.loads((card_dir / "card.json").read_text())
    version = card["version"]
    if m["models"][shipped]["version"] != version:
        raise ValueError(f"measurements of {shipped} are for version "
                         f"{m['models'][shipped]['version']}, the card is {version}")
    rows = {n: _row(n, info, m["auc"][n]) for n, info in m["models"].items() if n in m["auc"]}
    earlier = card.get("cross_source", {}).get("rows", {})
    for n in keep_rows:
        if n not in earlier:
            raise ValueError(f"--keep-row {n}: the card has no such row ({', '.join(earlier)})")
        rows[n] = earlier[n] | {"kept": True}
    sets = m["sets"] | {s: v for s, v in card.get("cross_source", {}).get("sets", {}).items()
                        if keep_rows and s not in m["sets"]}
    card["cross_source"] = {"protocol": PROTOCOL, "sets": sets, "rows": rows,
                            "shipped": shipped, "previous": previous, "limit": m.get("limit")}
    card["flip_rates"] = {"rule": FLIP_RULE, "target": FLIP_TARGET, "changes": m.get("changes"),
                          "sets": m["flip_rates"][shipped],
                          "worst": _worst_flip(m["flip_rates"][shipped])}
    model_cols = {n: f"model:{n}" for n in (shipped, previous) if n}
    card["cues"] = {"rule": m.get("cue_auc_rule"), "definitions": m.get("cue_definitions"),
                    "sets": {s: {k: v for k, v in c.items() if not k.startswith("model:")}
                             | {"model": c.get(model_cols[shipped])} for s, c in
                             m["cues"].items()},
                    "train_batches": m.get("train_batch_cues")}
    sbi = rows[shipped]["sbi_rate"] > 0
    worst = _worst(rows, sbi)
    targets = {"cross_source_min_auc": CROSS_TARGET, "flip_rate_max": FLIP_TARGET,
               "cross_source_recipe": "with SBI" if sbi else "without SBI",
               "worst_cross_cell": worst,
               "cross_source_met": None if worst is None else worst["auc"] >= CROSS_TARGET,
               "worst_flip": card["flip_rates"]["worst"],
               "flips_met": card["flip_rates"]["worst"]["rate"] <= FLIP_TARGET, "notes": notes}
    card["generalisation_targets"] = targets
    if previous:
        prev_card = json.loads((Path(m["models"][previous]["dir"]) / "card.json").read_text())
        card["previous"] = {
            "version": m["models"][previous]["version"], "row": previous,
            "metrics": {k: {"auc": v["auc"], "accuracy": v["accuracy"]}
                        for k, v in prev_card.get("metrics", {}).items()},
            "flip_rates": {"sets": m["flip_rates"].get(previous),
                           "worst": _worst_flip(m["flip_rates"][previous])
                           if previous in m["flip_rates"] else None},
            "cues": {s: {"model": c.get(model_cols[previous])} for s, c in m["cues"].items()},
            "worst_cross_cell": _worst(rows, rows[previous]["sbi_rate"] > 0)}
    assert card["version"] == version  # measurements never change what the version names
    (card_dir / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (card_dir / "MODEL_CARD.md").write_text(card_markdown(card))
    return card



def main(argv: list[str] | None = None) -> int:
    """Command line: merge measurement files into a model directory's card."""
    p = argparse.ArgumentParser(prog="python -m research.card_update", description=__doc__)
    p.add_argument("card_dir", type=Path, help="model directory whose card.json to update")
    p.add_argument("--measurements", type=Path, action="append", required=True,
                   help="robustness JSON (repeatable; merged by model name)")
    p.add_argument("--shipped", required=True, help="name of this card's model in the JSONs")
    p.add_argument("--previous", help="name of the previous model in the JSONs")
    p.add_argument("--note", action="append", default=[], help="a line for the targets section")
    p.add_argument("--keep-row", action="append", default=[], metavar="NAME",
                   help="carry this row of the card's cross-source table over unmeasured")
    a = p.parse_args(sys.argv[1:] if argv is None else argv)
    card = update(a.card_dir, a.measurements, a.shipped, a.previous, a.note,
                  tuple(a.keep_row))
    print(json.dumps(card["generalisation_targets"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
    from training.export import card_markdown

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
    (card_dir / "MODEL_CARD.md").write_text(card_markdown(card) + generalisation_markdown(card))
    return card


def _f(v, pct: bool = False) -> str:
    if v is None or v != v:
        return "n/a"
    return f"{100 * v:.1f}%" if pct else f"{v:.3f}"


def _ci(ci, pct: bool = False) -> str:
    """' (lo-hi)' for a 95% interval, '' when there is none."""
    if not ci or ci[0] != ci[0]:
        return ""
    return f" ({100 * ci[0]:.0f}-{100 * ci[1]:.0f}%)" if pct else f" ({ci[0]:.2f}-{ci[1]:.2f})"


def _auc_cell(row: dict, s: str) -> str:
    """One cross-source cell: AUC, interval, x when cross-source; '-' when not scored."""
    if s not in row["auc"]:
        return "-"
    return (f"{_f(row['auc'][s])}{_ci((row.get('auc_ci95') or {}).get(s))}"
            f"{' x' if row['cross'].get(s) else ''}")


def generalisation_markdown(card: dict) -> str:
    """The cross-source, flip-rate and cue tables of a card, as Markdown ('' if none)."""
    cs = card.get("cross_source")
    if not cs:
        return ""
    sets = list(cs["sets"])
    prev = card.get("previous", {})
    tr = card.get("training", {})
    lines = ["", "## Generalisation (issue 6)", ""]
    if tr.get("sbi_rate"):
        how = ("each got a pseudo-fake copy in place of one of the batch's fakes (classes stay "
               "50/50)" if tr.get("sbi_mode") == "replace-fake" else "became pseudo-fakes")
        lines += [f"Trained with pseudo-fakes: {tr['sbi_rate']:.0%} of real training crops per "
                  f"batch {how}: {tr.get('pseudo_fakes')}."
                  + (f" Started from the weights of {tr['init_model']}." if tr.get("init_model")
                     else ""), ""]
    lines += ["### Cross-source ROC AUC", "", cs["protocol"],
             "", "| model | trained on | SBI | " + " | ".join(
                 f"{s} ({cs['sets'][s]['n_real']}/{cs['sets'][s]['n_fake']})" for s in sets) + " |",
             "| --- | --- | --- | " + " | ".join("---" for _ in sets) + " |"]
    for n, r in cs["rows"].items():
        tag = " (shipped)" if n == cs["shipped"] else " (previous)" if n == cs["previous"] else ""
        tag += " (measured for an earlier card)" if r.get("kept") else ""
        cells = [_auc_cell(r, s) for s in sets]
        lines.append(f"| {n}{tag} | {', '.join(r['trained_on'])} | {r['sbi_rate'] or '-'} | "
                     + " | ".join(cells) + " |")
    fr = card["flip_rates"]
    pf = (prev.get("flip_rates") or {}).get("sets") or {}
    lines += ["", "### Benign-change flip rates (shipped / previous)", "",
              fr["rule"] + " In brackets: the shipped model's 95% Wilson interval.", "",
              "| change | " + " | ".join(
                  f"{s} (n {next(iter(fr['sets'][s].values()))['n']})"
                  for s in fr["sets"]) + " |",
              "| --- | " + " | ".join("---" for _ in fr["sets"]) + " |"]
    for c, desc in (fr.get("changes") or {}).items():
        cells = [f"{_f(fr['sets'][s][c]['rate'], True)}"
                 f"{_ci(fr['sets'][s][c].get('ci95'), True)} / "
                 f"{_f(pf.get(s, {}).get(c, {}).get('rate'), True)}" for s in fr["sets"]]
        lines.append(f"| {c}: {desc} | " + " | ".join(cells) + " |")
    if any("mean_dp" in r for per in fr["sets"].values() for r in per.values()):
        lines += ["", "How far the shipped model's P(fake) moved on the reals it judged Real: "
                  "mean change / share moved by more than 0.1 (median P(fake) before: " + ", ".join(
                      f"{s} {_f(next(iter(fr['sets'][s].values())).get('p_before_median'))}"
                      for s in fr["sets"]) + "; the threshold is 0.3).", "",
                  "| change | " + " | ".join(fr["sets"]) + " |",
                  "| --- | " + " | ".join("---" for _ in fr["sets"]) + " |"]
        for c in fr.get("changes") or {}:
            lines.append(f"| {c} | " + " | ".join(
                f"{fr['sets'][s][c].get('mean_dp', float('nan')):+.3f} / "
                f"{_f(fr['sets'][s][c].get('moved_over_0.1'), True)}" for s in fr["sets"]) + " |")
    cu = card["cues"]
    lines += ["", "### Shortcut cues against the labels", "",
              f"Cue AUC: {cu.get('rule')}; beside them the model's own AUC.", "",
              "| set | " + " | ".join(cu.get("definitions") or {}) + " | shipped model | "
              "previous model |", "| --- " * (len(cu.get("definitions") or {}) + 3) + "|"]
    for s, c in cu["sets"].items():
        pm = prev.get("cues", {}).get(s, {}).get("model")
        lines.append(f"| {s} | " + " | ".join(_f(c.get(k)) for k in cu.get("definitions") or {})
                     + f" | {_f(c.get('model'))} | {_f(pm)} |")
    lines += [""] + [f"- {k}: {v}" for k, v in (cu.get("definitions") or {}).items()]
    tb = cu.get("train_batches")
    if tb:
        lines += ["", "Cue AUC on training crops: as cropped, after the augmentation (what the "
                  "model is trained on), and augmented reals against augmented pseudo-fakes.", "",
                  "| source | cue | crops | augmented | SBI vs real |", "| --- | --- | --- | --- "
                  "| --- |"]
        for src, per in tb.items():
            for cue, v in per.items():
                if isinstance(v, dict):
                    lines.append(f"| {src} | {cue} | {_f(v['crops'])} | {_f(v['augmented'])} | "
                                 f"{_f(v['sbi_vs_real_augmented'])} |")
    t = card.get("generalisation_targets", {})
    w, wf = t.get("worst_cross_cell"), t.get("worst_flip")
    lines += ["", "### Targets", ""]
    if w:
        lines.append(f"- Cross-source AUC >= {t['cross_source_min_auc']} "
                     f"({t['cross_source_recipe']} recipe): "
                     f"{'met' if t['cross_source_met'] else 'NOT met'}; lowest cell "
                     f"{_f(w['auc'])} ({w['model']} on {w['set']}"
                     + ("" if t["cross_source_met"] else
                        f", short by {t['cross_source_min_auc'] - w['auc']:.3f}") + ").")
    else:
        lines.append(f"- Cross-source AUC: no single-source run with the shipped recipe "
                     f"({t.get('cross_source_recipe')}) was measured.")
    lines.append(f"- Flip rate <= {_f(t.get('flip_rate_max'), True)}: "
                 f"{'met' if t.get('flips_met') else 'NOT met'}; highest "
                 f"{_f(wf['rate'], True)} ({wf['change']} on {wf['set']}"
                 + ("" if t.get("flips_met") else
                    f", over by {100 * (wf['rate'] - t['flip_rate_max']):.1f} points") + ").")
    lines += [f"- {n}" for n in t.get("notes", [])]
    if prev:
        lines += ["", f"### Previous model ({prev['version']}): in-distribution metrics", "",
                  "| set | previous AUC | shipped AUC |", "| --- | --- | --- |"]
        for k, v in prev.get("metrics", {}).items():
            now = card.get("metrics", {}).get(k, {}).get("auc")
            lines.append(f"| {k} | {_f(v['auc'])} | {_f(now)} |")
    return "\n".join(lines) + "\n"


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

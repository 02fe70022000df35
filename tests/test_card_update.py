"""Merging robustness measurements into a model card: rows, intervals, worst cells, kept rows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from research.card_update import update

ROOT = Path(__file__).resolve().parents[1]
SETS = {"ff-crops/val": (20, 20), "stylegan-faces/test": (10, 10), "stylegan-faces/all": (50, 50)}
CHANGES = {"blur": "Gaussian blur", "png": "lossless"}


def _model(tmp: Path, name: str, version: str, sources: list[str], sbi: float) -> str:
    d = tmp / name
    d.mkdir(exist_ok=True)
    (d / "card.json").write_text(json.dumps({
        "version": version, "training": {"sources": {s: {} for s in sources}, "sbi_rate": sbi},
        "metrics": {"ff-crops/val": {"auc": 0.9, "accuracy": 0.8}}}))
    return str(d)


def _cell(auc: float) -> dict:
    return {"auc": auc, "auc_ci95": [auc - 0.05, auc + 0.05], "accuracy": 0.5, "eer": 0.3,
            "n_real": 10, "n_fake": 10}


def _flips(rate: float) -> dict:
    return {s: {c: {"rate": rate if c == "blur" else 0.0, "flipped": 1, "real_before": 10,
                    "n": 20, "ci95": [0.01, 0.4], "mean_dp": 0.05, "moved_over_0.1": 0.1,
                    "p_before_median": 0.21} for c in CHANGES} for s in SETS
            if not s.endswith("/all")}


@pytest.fixture
def card_dir(tmp_path: Path) -> Path:
    d = tmp_path / "shipped"
    d.mkdir()
    shutil.copy(ROOT / "models" / "dfd-mnv2" / "card.json", d / "card.json")
    return d


def _measure(tmp: Path, card_dir: Path) -> Path:
    version = json.loads((card_dir / "card.json").read_text())["version"]
    both = ["ff-crops", "stylegan-faces"]
    models = {"main": {"dir": str(card_dir), "version": version},
              "old": {"dir": _model(tmp, "old", "oldversion", both, 0.0), "version": "oldversion"},
              "ff-only": {"dir": _model(tmp, "ff", "ffv", ["ff-crops"], 0.25), "version": "ffv"}}
    # The shipped card.json names its own sources; the measured cells follow them.
    auc = {"main": {"ff-crops/val": _cell(0.93), "stylegan-faces/test": _cell(0.88)},
           "old": {"ff-crops/val": _cell(0.92), "stylegan-faces/test": _cell(0.87)},
           "ff-only": {"ff-crops/val": _cell(0.89), "stylegan-faces/test": _cell(0.40),
                       "stylegan-faces/all": _cell(0.47)}}
    doc = {"models": models, "auc": auc,
           "sets": {s: {"n_real": r, "n_fake": f} for s, (r, f) in SETS.items()},
           "flip_rates": {"main": _flips(0.2), "old": _flips(0.3)}, "changes": CHANGES,
           "cues": {s: {"sharpness": 0.4, "model:main": 0.9, "model:old": 0.88} for s in SETS},
           "cue_definitions": {"sharpness": "Laplacian variance"}, "cue_auc_rule": "signed"}
    f = tmp / "m.json"
    f.write_text(json.dumps(doc))
    return f


def test_whole_source_cell_stands_for_the_held_out_part(tmp_path, card_dir):
    card = update(card_dir, [_measure(tmp_path, card_dir)], "main", "old", ["a note"])
    worst = card["generalisation_targets"]["worst_cross_cell"]
    # ff-only's stylegan test part (0.40, 20 images) is left for the whole source (0.47).
    assert worst == {"auc": 0.47, "model": "ff-only", "set": "stylegan-faces/all"}
    assert card["generalisation_targets"]["cross_source_met"] is False
    md = (card_dir / "MODEL_CARD.md").read_text()
    assert "| ff-only | ff-crops | 0.25 | 0.890 (0.84-0.94) | 0.400 (0.35-0.45) x | " \
           "0.470 (0.42-0.52) x |" in md
    assert "| main (shipped) |" in md and "| - |" in md  # main is not scored on a source it saw
    assert "20.0% (1-40%) / 30.0%" in md and "- a note" in md
    assert "| blur | +0.050 / 10.0% | +0.050 / 10.0% |" in md and "ff-crops/val 0.210" in md
    assert card["previous"]["version"] == "oldversion"


def test_kept_rows_are_carried_over_and_left_out_of_the_worst_cell(tmp_path, card_dir):
    # An earlier card's cross-source row, as the shipped card once carried them.
    update(card_dir, [_measure(tmp_path, card_dir)], "main", "old", [], ())
    doc = json.loads((card_dir / "card.json").read_text())
    rows = doc["cross_source"]["rows"]
    rows["ff-only-earlier"] = dict(rows["ff-only"], auc={k: 0.01 for k in rows["ff-only"]["auc"]})
    (card_dir / "card.json").write_text(json.dumps(doc))
    before = rows
    kept = "ff-only-earlier"
    card = update(card_dir, [_measure(tmp_path, card_dir)], "main", "old", [], (kept,))
    assert card["cross_source"]["rows"][kept]["auc"] == before[kept]["auc"]
    assert card["cross_source"]["rows"][kept]["kept"] is True
    assert card["generalisation_targets"]["worst_cross_cell"]["model"] == "ff-only"
    assert "(measured for an earlier card)" in (card_dir / "MODEL_CARD.md").read_text()
    with pytest.raises(ValueError, match="no such row"):
        update(card_dir, [_measure(tmp_path, card_dir)], "main", "old", [], ("nope",))


def test_measurements_of_another_version_are_refused(tmp_path, card_dir):
    f = _measure(tmp_path, card_dir)
    doc = json.loads(f.read_text())
    doc["models"]["main"]["version"] = "not-this-one"
    f.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match="version"):
        update(card_dir, [f], "main", "old", [])

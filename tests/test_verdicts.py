"""The card's verdict tables: counts, intervals and targets on known results."""

from __future__ import annotations

import numpy as np
import pytest

from training.e2e.verdicts import summarise, targets, trained_sources


def res(p: float, assessment: str) -> dict:
    return {"p_fake": p, "label": "Fake" if p > 0.3 else "Real", "assessment": assessment}


def test_summary_counts_both_sides_with_intervals():
    labels = np.array([0, 0, 0, 0, 1, 1])
    results = [res(0.1, "likely_real"), res(0.2, "likely_real"), res(0.5, "uncertain"),
               res(0.9, "likely_fake"), res(0.95, "likely_fake"), res(0.2, "uncertain")]
    s = summarise(labels, results)
    assert s["n_real"] == 4 and s["n_fake"] == 2
    assert s["real_called_fake"]["k"] == 2 and s["real_called_fake"]["share"] == 0.5
    lo, hi = s["real_called_fake"]["ci"]
    assert 0.1 < lo < 0.5 < hi < 0.9
    assert s["fakes_caught"]["k"] == 1
    assert s["assessment"]["real"]["likely_fake"]["share"] == 0.25
    assert s["assessment"]["fake"]["uncertain"]["share"] == 0.5
    assert s["auc"] == pytest.approx(5.5 / 8)  # 0.95 beats all 4 reals; 0.2 beats 0.1, ties 0.2


def test_reals_only_set_has_no_auc_and_no_fake_side():
    s = summarise(np.zeros(3, int), [res(0.1, "likely_real")] * 3)
    assert "auc" not in s and "fake" not in s["assessment"] and s["fakes_caught"]["n"] == 0


def test_targets_name_what_is_met_and_what_is_not():
    v = {"sets": {"ff-crops/test": {"real_called_fake": {"share": 0.08},
                                    "fakes_caught": {"share": 0.8}, "auc": 0.97},
                  "fairface-real/test": {"real_called_fake": {"share": 0.3}}},
         "pooled": {"assessment": {"real": {"likely_fake": {"share": 0.02}}}}}
    rows = {(r["target"], r["set"]): r["met"] for r in targets(v, {"fairface-real"})}
    assert rows[("real_called_fake_max", "ff-crops/test")] is True
    assert rows[("fakes_caught_min", "ff-crops/test")] is False
    assert rows[("auc_min", "ff-crops/test")] is True
    assert rows[("real_called_fake_max", "fairface-real/test")] is False  # 0.3 > 0.05 and 0.2
    assert rows[("likely_fake_on_reals_max", "pooled")] is True


def test_what_training_saw_of_each_source():
    card = {"training": {"left_out_reals": ["dfdc-faces"], "sources": {
        "ff-crops": {"counts": {"train": {"real": 5, "fake": 5}}},
        "dfdc-faces": {"counts": {"train": {"real": 0, "fake": 5}}},
        "fairface-real": {"counts": {"train": {"real": 0, "fake": 0}}}}}}
    assert trained_sources(card) == {"ff-crops": "all", "dfdc-faces": "fakes only"}


def test_gate_is_written_into_the_card_and_files_stay_out_of_it(tmp_path, monkeypatch):
    import json

    from training.e2e import verdicts as V

    new, old = tmp_path / "new", tmp_path / "old"
    for d, version in ((new, "n1"), (old, "o1")):
        d.mkdir()
        (d / "card.json").write_text(json.dumps({"name": d.name, "version": version,
                                                 "threshold": 0.3, "training": {}}))
    (new / "split.json").write_text("{}")

    def evaluate(model_dir, split, trained_on):
        calls = {"new": 6, "old": 0}[model_dir.name]
        files = [{"path": f"r{i}", "source": "s", "label": 0, "fake": i < calls,
                  "assessment": "uncertain"} for i in range(20)]
        return {"model": model_dir.name, "sets": {}, "files": files,
                "pooled": V.summarise(np.zeros(20, int), [
                    {"p_fake": 0.1, "label": "Fake" if f["fake"] else "Real",
                     "assessment": "uncertain"} for f in files])}

    monkeypatch.setattr(V, "evaluate", evaluate)
    monkeypatch.setattr("training.common.templating.card_markdown", lambda card: "card\n")
    assert V.main([str(new), "--compare", f"shipped={old}", "--gate", "shipped",
                   "--json", str(tmp_path / "v.json")]) == 0
    card = json.loads((new / "card.json").read_text())
    assert card["rule7"]["ships"] is False and card["rule7"]["shipped"] == "shipped old"
    assert all("files" not in v for v in card["verdicts"]["models"].values())
    assert "files" in json.loads((tmp_path / "v.json").read_text())["shipped"]


def test_a_clip_card_lists_the_sources_it_trained_on():
    card = {"training": {"sources": ["dfdc-faces", "ff-crops"]}}
    assert trained_sources(card) == {"dfdc-faces": "all", "ff-crops": "all"}

"""What an end-to-end model serves (training.e2e.serve_policy) and standing rule 7's gate
(training.policy.rule7_gate): plain functions on made-up scores, no model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training import policy as P
from training.common.assessment import fit_bands
from training.e2e import serve_policy as S


def test_paired_more_is_an_exact_one_sided_mcnemar_test():
    assert P.paired_more(0, 0) == (1.0, False)
    assert P.paired_more(4, 0)[1] is False  # 1/16 = 0.0625
    assert P.paired_more(5, 0) == (1 / 32, True)
    assert P.paired_more(5, 5)[1] is False  # as many the other way: no evidence of more
    assert P.paired_more(20, 8)[1] is True


def _file(path, source, label, fake=False, assessment="uncertain"):
    return {"path": path, "source": source, "label": label, "fake": fake,
            "assessment": assessment}


def test_the_gate_stops_a_model_that_calls_more_reals_fake():
    old = [_file(f"r{i}", "a", 0) for i in range(40)]
    new = [_file(f"r{i}", "a", 0, fake=i < 6) for i in range(40)]
    gate = P.rule7_gate(new, old)
    row = next(r for r in gate["rows"] if r["set"] == "a" and r["what"] == "reals called Fake")
    assert (row["new"], row["shipped"], row["new_only"], row["more"]) == (6, 0, 6, True)
    assert gate["ships"] is False and gate["files"] == 40


def test_the_gate_stops_a_model_that_reassures_more_fakes_and_passes_an_even_trade():
    old = [_file(f"f{i}", "b", 1, assessment="likely_real" if i < 3 else "uncertain")
           for i in range(50)]
    even = [_file(f"f{i}", "b", 1, assessment="likely_real" if 2 <= i < 6 else "uncertain")
            for i in range(50)]
    assert P.rule7_gate(even, old)["ships"] is True  # 3 new, 1 gone: not shown to be more
    worse = [_file(f"f{i}", "b", 1, assessment="likely_real") for i in range(50)]
    gate = P.rule7_gate(worse, old)
    assert gate["ships"] is False
    assert {r["set"] for r in gate["rows"] if r["more"]} == {"b", "pooled"}


def test_the_prior_never_harms_real_faces_more_than_the_shipped_model():
    rng = np.random.default_rng(0)
    sources = np.array(["x"] * 400 + ["y"] * 400)
    z50 = rng.normal(-6, 1.5, 800)
    old_said = np.zeros(800, bool)
    old_said[:4] = True  # the shipped model calls 1% of x's reals Fake and none of y's
    prior, grid = P.choose_prior_against(sources, z50, old_said)
    chosen = next(r for r in grid if r["prior_fake"] == prior)
    assert chosen["ok"]
    for src in ("x", "y"):
        assert chosen["reals_called_fake"][src]["ci"][0] <= chosen["shipped"][src]["share"]
    # Every larger prior of the grid broke the rule.
    assert not any(r["ok"] for r in grid if r["prior_fake"] > prior)


def test_bands_from_left_out_runs_hold_each_kind_to_its_share():
    rng = np.random.default_rng(1)
    by_source = {"kind-a": (np.r_[np.zeros(300), np.ones(300)],
                            np.r_[rng.uniform(0, 0.02, 300), rng.uniform(0.001, 0.9, 300)]),
                 "kind-b": (np.ones(200), rng.uniform(0.0005, 0.5, 200))}
    bands = fit_bands(by_source, 0.3)
    shares = S.band_table(by_source, bands)
    assert shares["kind-a"]["likely_real_on_fakes"] <= P.MAX_FAKE_SHARE
    assert shares["kind-b"]["likely_real_on_fakes"] <= P.MAX_FAKE_SHARE
    assert shares["kind-a"]["likely_fake_on_reals"] <= P.MAX_REAL_SHARE
    assert bands["likely_real_below"] <= 0.3 < bands["likely_fake_from"]


def test_a_real_source_no_run_left_out_counts_with_its_calibration_reals():
    labels = np.array([0, 0, 1, 0, 1])
    sources = np.array(["fairface-real", "fairface-real", "ff-crops", "ff-crops", "ff-crops"])
    z50 = np.array([-2.0, 0.0, 1.0, -1.0, 2.0])
    out = S.no_fold_reals(labels, sources, z50, 0.5, {"ff-crops": {}})
    assert list(out) == ["fairface-real"]
    y, p = out["fairface-real"]
    assert y.tolist() == [0, 0] and p == pytest.approx([float(S.sigmoid(-2.0)), 0.5])


def test_a_fold_must_leave_out_exactly_one_fake_kind(tmp_path):
    kinds = ("ff-crops", "dfdc-faces", "sdfd-faces")
    (tmp_path / "split.json").write_text(json.dumps({"sources": {"ff-crops": {}}}))
    with pytest.raises(SystemExit, match="exactly one"):
        S.left_out_kind(tmp_path, kinds)
    (tmp_path / "split.json").write_text(json.dumps({"sources": {"ff-crops": {},
                                                                 "dfdc-faces": {}}}))
    assert S.left_out_kind(tmp_path, kinds) == "sdfd-faces"


def test_the_gate_counts_reals_read_likely_fake_and_the_prior_rule():
    old = [_file(f"r{i}", "a", 0) for i in range(30)]
    new = [_file(f"r{i}", "a", 0, assessment="likely_fake" if i < 5 else "uncertain")
           for i in range(30)]
    gate = P.rule7_gate(new, old)
    assert [r["set"] for r in gate["rows"] if r["more"]] == ["a", "pooled"]
    assert {r["what"] for r in gate["rows"] if r["more"]} == {"reals read Likely fake"}
    same = P.rule7_gate(old, old, prior_met=False)
    assert not any(r["more"] for r in same["rows"]) and same["ships"] is False


def test_missing_folds_are_named_with_the_command_that_makes_them(tmp_path):
    """`make train` on a fresh clone has no study folds yet: the error says how to make them."""
    made = tmp_path / "made"
    made.mkdir()
    (made / "card.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"no trained fold in .*absent: `make study`"):
        S.main([str(tmp_path / "model"), "--fold", str(made), "--fold", str(tmp_path / "absent"),
                "--shipped", str(tmp_path / "shipped")])

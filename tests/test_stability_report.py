"""`dfd-research stability` on known scores: the rule served before, the new rule, and the set of
versions chosen by the budget (training.policy.STABILITY_VERSIONS_RULE)."""

from __future__ import annotations

import numpy as np
import pytest

from research.stability import markdown, report
from training.policy import STABILITY_BUDGET as BUDGET

CARD = {"threshold": 0.3, "assessment": {"likely_real_below": 0.01, "likely_fake_from": 0.8,
                                         "min_face_px": 96, "max_real_share": 0.03}}


def test_the_report_counts_flips_and_costs_of_both_rules():
    # Columns: original, flip, half_size, shift. Four faces in a band whose half-size version
    # leaves it; one "Likely fake" face whose shift alone leaves it; one far "Likely real" face
    # whose mirror leaves it (the old rule never checked it: far from the threshold); the rest
    # between the bands, moving a lot (no flip: they read "Can't tell" anyway) or calm.
    rows = [[0.9, 0.9, 0.7, 0.9]] * 4 + [[0.85, 0.85, 0.85, 0.5]] + [[1e-5, 0.05, 1e-5, 1e-5]]
    rows += [[0.5, 0.02, 0.99, 0.5]] * 4 + [[0.001, 0.001, 0.001, 0.001]] * 10
    p = np.array(rows)
    labels = np.array([1] * 5 + [0] + [1] * 4 + [0] * 10)
    r = report(p, labels, CARD, before_margin=3.5)
    assert r["faces"] == 20 and r["assessment_flips"] == 0.3  # 6 of 20
    b = r["before"]
    # Before: 4 versions of the faces within 3.5 logits of 0.3 (at 0.9, 0.85 and 0.5); it tested
    # the label, so it caught the "Can't tell" faces' threshold crossings and none of the six
    # faces that left their band, and never looked at the far "Likely real" one.
    assert b["checked_share"] == 0.45 and b["passes_per_face"] == 1.8
    assert b["label_flips"] == b["label_flips_caught"] == 0.2
    assert b["assessment_flips_caught"] == 0.0
    sets = {tuple(v["versions"]): v for v in r["by_versions"]}
    every = sets[("flip", "half_size", "shift")]
    assert every["found"] == 1.0
    assert sets[("half_size",)]["found"] == round(4 / 6, 4)
    # The budget picks the set that catches the most flips within half a pass per face.
    chosen = sets[tuple(r["chosen_by_rule"])]
    assert chosen["passes_per_face"] <= BUDGET
    assert all(v["caught"] <= chosen["caught"] for v in r["by_versions"]
               if v["passes_per_face"] <= BUDGET)
    # A set's own margin reaches its own flips (the four half-size ones: 0.81 logits from 0.8).
    assert sets[("half_size",)]["caught"] == sets[("half_size",)]["found"]
    # The served versions are reported, with what users would be shown.
    assert r["after"]["versions"] == ["flip", "half_size"]
    for cls in ("real", "fake"):
        assert sum(r["after"]["shown"][cls].values()) == pytest.approx(1.0)
    md = markdown(r)
    assert "| before: near the threshold | 4 | 3.50 | 45.0% | 1.80 |" in md
    assert "Chosen by the rule:" in md

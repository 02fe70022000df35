"""One story per card: the assessment and the label come from one rule (detector.assess.agree)
and cannot contradict each other, in the fitting, in the card checks and at serving time."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from detector.assess import Bands, agree, assess
from detector.model import ModelError, check_model
from detector.stability import summary
from shared.schema import build_result
from training.common.assessment import fit_bands

MODELS = Path(__file__).resolve().parents[1] / "models"


def bands(below: float, fake_from: float) -> Bands:
    return Bands(likely_real_below=below, likely_fake_from=fake_from, min_face_px=50,
                 max_faces=12, real_share=0.03)


def test_agree_moves_an_edge_on_the_wrong_side_to_the_threshold():
    # The shipped card's mistake: likely_fake from 0.2835 under a label threshold of 0.3.
    below, fake_from = agree(0.000525, 0.28353, 0.3)
    assert below == 0.000525 and 0.3 < fake_from < 0.3 + 1e-12
    assert agree(0.5, 0.9, 0.3) == (0.3, 0.9)
    assert agree(0.01, 0.66, 0.3) == (0.01, 0.66)  # already agreeing: unchanged
    assert bands(0.01, 0.28).at(0.3).likely_fake_from == fake_from


def test_the_card_check_refuses_a_contradictory_card(tmp_path):
    card = {"name": "m", "version": "v", "threshold": 0.3, "files": {},
            "assessment": {"likely_real_below": 0.0005, "likely_fake_from": 0.2835,
                           "min_face_px": 96, "max_real_share": 0.03}}
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match=r"contradicts itself: likely_fake_from 0.2835 is not "
                                         r"above the label threshold 0.3.*Fit the bands again"):
        check_model(tmp_path)
    card["assessment"].update(likely_real_below=0.4, likely_fake_from=0.9)
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="likely_real_below 0.4 is above the label threshold"):
        check_model(tmp_path)
    assert bands(0.3, 0.3000001).contradiction(0.3) is None


@pytest.mark.parametrize("name", ["dfd-e2e", "dfd-clip", "dfd-mnv2"])
def test_the_shipped_cards_agree_with_their_labels(name):
    card = json.loads((MODELS / name / "card.json").read_text())
    assert Bands.from_card(card).contradiction(float(card["threshold"])) is None


def test_fitted_bands_never_cross_the_threshold():
    rng = np.random.default_rng(4)
    y = np.r_[np.zeros(500), np.ones(500)].astype(int)
    # Reals that often score over the threshold put the 3% edge under it; fakes that score
    # high put the 10% edge over it: both move to the threshold.
    p = np.r_[rng.uniform(0.0, 0.25, 500), rng.uniform(0.5, 1.0, 500)]
    loose = fit_bands({"x": (y, p)}, threshold=0.1)
    assert loose["likely_fake_from"] > 0.1 and loose["likely_real_below"] <= 0.1
    assert bands(loose["likely_real_below"], loose["likely_fake_from"]).contradiction(0.1) is None
    tight = fit_bands({"x": (y, p)}, threshold=0.9)
    assert tight["likely_fake_from"] > 0.9 and tight["likely_real_below"] <= 0.9


@pytest.mark.parametrize("threshold", [0.05, 0.3, 0.5, 0.9])
def test_no_assessment_sits_over_the_opposite_label(threshold):
    """Random photos (1-5 faces, some too small, versions that move) against bands that
    contradict the threshold on purpose, as an operator's DFD_THRESHOLD can make them."""
    rng = np.random.default_rng(int(threshold * 100))
    b = bands(0.2, 0.28)
    for _ in range(400):
        n = int(rng.integers(1, 6))
        p = np.clip(rng.uniform(0, 1, (n, 1)) + rng.normal(0, 0.05, (n, 4)) * [0, 1, 1, 1],
                    0, 1)
        sides = list(rng.choice([30.0, 120.0], n, p=[0.3, 0.7]))
        verdict = assess(p, sides, threshold, b, prior_fake=0.02)
        boxes = [[0, 0, s, s] for s in sides]
        result = build_result(list(p[:, 0]), boxes, [0.9] * n, threshold,
                              {"name": "m", "version": "v"}, (640, 480), assessment=verdict,
                              stability=[summary(row, threshold) for row in p],
                              image_stability=summary(p.max(axis=0), threshold),
                              prior_fake=0.02)
        want = {"likely_fake": "Fake", "likely_real": "Real"}.get(result["assessment"])
        assert want in (None, result["label"]), (threshold, p.round(3).tolist(), sides, result)
        for face in result["faces"]:
            own = {"likely_fake": "Fake", "likely_real": "Real"}.get(face["assessment"])
            assert own in (None, "Fake" if face["p_fake"] > threshold else "Real"), face

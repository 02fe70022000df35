"""The metrics and the temperature fit moved to scikit-learn and scipy (issue 19): the numbers
below are what the hand-written numpy versions gave on the same fixed inputs before the move."""

from __future__ import annotations

import numpy as np
import pytest

from training.common import calibrate, metrics


@pytest.fixture(scope="module")
def scores():
    rng = np.random.default_rng(19)
    y = rng.integers(0, 2, 400)
    p = np.round(np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1), 2)  # rounded: many ties
    return y, p, rng


def test_report_matches_the_numpy_implementation(scores):
    y, p, _ = scores
    r = metrics.report(y, p, 0.5)
    assert r["confusion"] == {"tp": 158, "fp": 41, "tn": 146, "fn": 55}
    expected = {"accuracy": 0.76, "auc": 0.8330948256383219, "eer": 0.23999999999999996,
                "ece": 0.07119999999999999}
    for name, value in expected.items():
        assert r[name] == pytest.approx(value, rel=1e-12, abs=1e-15), name
    assert r["precision"] == pytest.approx({"fake": 0.7939698492462312,
                                            "real": 0.7263681592039801}, rel=1e-12)
    assert r["recall"] == pytest.approx({"fake": 0.7417840375586855,
                                         "real": 0.7807486631016043}, rel=1e-12)
    assert metrics.auc_ci(y, p, n_boot=200) == pytest.approx(
        (0.7916305766865004, 0.8678297055057618), rel=1e-12)


def test_roc_curve_matches_the_numpy_implementation(scores):
    y, p, _ = scores
    fpr, tpr, thresholds = metrics.roc_curve(y, p)
    assert len(fpr) == 96 and thresholds[0] == np.inf
    assert float(fpr.sum()) == pytest.approx(34.780748663101605, rel=1e-12)
    assert float(tpr.sum()) == pytest.approx(61.49295774647888, rel=1e-12)
    assert float(thresholds[1:].sum()) == pytest.approx(46.68, rel=1e-12)


def test_one_class_edge_cases_are_unchanged():
    fpr, tpr, thresholds = metrics.roc_curve([0, 0, 0], [0.1, 0.2, 0.2])
    assert fpr.tolist() == pytest.approx([0, 2 / 3, 1]) and tpr.tolist() == [0, 0, 0]
    assert thresholds.tolist() == [np.inf, 0.2, 0.1]
    assert metrics.eer([0, 0, 0], [0.1, 0.2, 0.2]) == 1.0
    assert np.isnan(metrics.roc_auc([1, 1], [0.2, 0.3]))
    assert np.isnan(metrics.spearman([1, 1, 1], [1, 2, 3]))


def test_spearman_and_temperature_match_the_numpy_implementation():
    rng = np.random.default_rng(7)
    a = rng.normal(size=50).round(1)
    b = a + rng.normal(size=50)
    # Computed here as the old rank-correlation code did: Pearson of average ranks.
    from scipy.stats import rankdata

    assert metrics.spearman(a, b) == pytest.approx(
        float(np.corrcoef(rankdata(a), rankdata(b))[0, 1]), rel=1e-12)
    rng = np.random.default_rng(19)
    rng.integers(0, 2, 400), rng.normal(size=400), rng.normal(size=100)  # the draws before
    z = rng.normal(0, 3, 500)
    y = (rng.random(500) < 1 / (1 + np.exp(-z / 2.5))).astype(int)
    # The golden-section search gave these; NLL is flat to 1e-16 within 1e-7 of its minimum.
    assert calibrate.fit_temperature(z, y) == pytest.approx(2.183763688952387, rel=1e-6)
    assert calibrate.fit_temperature(z * 0.1, y) == pytest.approx(0.21837636763559226, rel=1e-6)


def test_keras_cosine_schedule_matches_the_hand_written_one():
    import math

    from training.e2e.schedule import learning_rate

    def old(peak, s, full_steps):  # training/e2e/loop.py before issue 19
        frac = min(s / full_steps, 1.0)
        return peak * min(1.0, (s + 1) / 100) * (
            0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * frac)))

    for plan in (1, 150, 4000):
        for step in (0, 1, 50, 99, 100, 149, 1000, 3999, 5000):
            assert learning_rate(3e-4, step, plan) == pytest.approx(old(3e-4, step, plan),
                                                                    rel=1e-6), (plan, step)

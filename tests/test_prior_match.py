"""The prior that accuses no source's calibration reals more than the shipped model."""

from __future__ import annotations

import numpy as np

from detector.model import logit
from research.prior_match import match
from training.policy import shares_at as shares


def test_the_largest_prior_that_accuses_no_source_more_is_chosen():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 0, 1], 400)
    sources = np.repeat(["a", "a", "b", "b"], 400)
    z_old = np.where(labels == 1, 1.0, -1.0) + rng.normal(0, 1.5, labels.size)
    z_new = np.where(labels == 1, 2.0, -1.0) + rng.normal(0, 1.5, labels.size)
    best, old, rows = match(z_new, z_old, 0.05, 0.3, labels, sources)
    assert best is not None
    got = shares(z_new, best, 0.3, labels, sources)
    for s in ("a", "b"):
        assert got[s][0] <= old[s][0]
    # One grid step up accuses some source's reals more than the shipped model did.
    nxt = next(r for r in rows if r["prior_fake"] > best)
    assert not nxt["ok"]
    # A model that scores every real face far on the fake side cannot be matched.
    z_bad = np.full(labels.size, 9.0)
    assert match(z_bad, z_old, 0.05, 0.3, labels, sources)[0] is None
    assert logit(np.array([0.5]))[0] == 0.0

"""The two data checks behind issue 24's pairing and aligned-fake findings (docs/MODEL.md, run 9):
ff-crops' folder numbers against what the frames show, and the aligned fakes' spectral trace."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

from research.aligned_trace import paired_cv, spectrum, transfer
from research.ff_pairing import check


def _videos(root, names, scenes, rng, noise):
    for name, scene in zip(names, scenes, strict=True):
        (root / name).mkdir(parents=True)
        for f in range(2):
            frame = np.clip(scene + rng.normal(0, noise, scene.shape), 0, 255).astype(np.uint8)
            Image.fromarray(frame).save(root / name / f"{f:03d}.jpg", quality=90)


def test_ff_pairing_tells_paired_numbers_from_unrelated_ones(tmp_path):
    rng = np.random.default_rng(0)
    scenes = [rng.integers(0, 255, (8, 8, 3)).repeat(16, 0).repeat(16, 1).astype(np.float32)
              for _ in range(12)]
    names = [f"{k:05d}" for k in range(12)]
    for split, fake_scenes in (("same", scenes), ("shuffled", scenes[1:] + scenes[:1])):
        _videos(tmp_path / split / "real", names, scenes, rng, 3)
        # A swap keeps its target's scene; here each fake is its scene plus other noise.
        _videos(tmp_path / split / "fake", names, fake_scenes, rng, 10)
    same, shuffled = check(tmp_path / "same"), check(tmp_path / "shuffled")
    assert same["paired"] and same["nearest_real_has_same_id"] == 1.0
    assert not shuffled["paired"] and shuffled["nearest_real_has_same_id"] == 0.0
    # Off by one: the nearest real is within two numbers for all but the wrapped fake.
    assert shuffled["nearest_real_within_2"] >= 10 / 12


def test_aligned_trace_sees_a_decoder_that_blurs_and_not_a_copy():
    rng = np.random.default_rng(1)
    reals = [rng.integers(0, 255, (64, 64, 3)).astype(np.uint8) for _ in range(60)]

    def feats(make):
        return np.array([spectrum(a) for r in reals for a in (r, make(r))])

    def blur(r):
        return np.asarray(Image.fromarray(r).filter(ImageFilter.GaussianBlur(0.8)))

    def copy(r):
        return np.clip(r + rng.normal(0, 2, r.shape), 0, 255).astype(np.uint8)

    assert spectrum(reals[0]).shape == (66,)
    auc, paired = paired_cv(feats(blur))
    assert auc > 0.95 and paired > 0.95
    auc, _ = paired_cv(feats(copy))
    assert 0.2 < auc < 0.8  # a noisy copy carries no trace a linear model can hold on to
    # Fitted on the blurred pairs, it ranks other blurred images above other sharp ones.
    others = [rng.integers(0, 255, (64, 64, 3)).astype(np.uint8) for _ in range(20)]
    assert transfer(feats(blur), [spectrum(o) for o in others],
                    [spectrum(blur(o)) for o in others]) > 0.9

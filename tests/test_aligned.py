"""Aligned fakes: the TAEF2 port against a stored reconstruction, the files made beside their
reals (same size and JPEG tables), the batch pairing, and that no left-out source feeds them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from training.common import aligned
from training.common.data import Item

GOLDEN = Path(__file__).parent / "golden"
WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "weights" / "taef2_encoder.npz"
needs_weights = pytest.mark.skipif(not WEIGHTS.is_file(), reason="../shared/weights not here")


@pytest.fixture(scope="module")
def autoencoder():
    from training.common.taef2 import Autoencoder

    return Autoencoder()  # float32: the stored reference was made in float32


@needs_weights
def test_port_matches_the_stored_reference_reconstruction(autoencoder):
    """taef2-reference.png was made from taef2-input.png by an independent PyTorch rebuild of
    taesd.py's FLUX.2 variant from the same weights (float32)."""
    from training.common.taef2 import psnr

    x = np.asarray(Image.open(GOLDEN / "taef2-input.png").convert("RGB"))
    ref = np.asarray(Image.open(GOLDEN / "taef2-reference.png").convert("RGB"))
    out = autoencoder.reconstruct(x)
    assert out.shape == x.shape
    diff = np.abs(out.astype(int) - ref.astype(int))
    assert diff.max() <= 2 and np.mean(diff > 0) < 0.05  # float rounding only
    assert psnr(out, ref) > 50
    # and it is a reconstruction, not the identity nor noise
    assert 25 < psnr(out, x) < 45


@needs_weights
def test_odd_sizes_come_back_at_their_own_size(autoencoder):
    x = np.asarray(Image.open(GOLDEN / "taef2-input.png").convert("RGB"))[:61, :75]
    assert autoencoder.reconstruct(x).shape == (61, 75, 3)


@needs_weights
def test_reconstruction_keeps_size_and_jpeg_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(aligned, "cache_dir", lambda: tmp_path / "aligned")
    src = tmp_path / "real" / "a.jpg"
    src.parent.mkdir()
    Image.open(GOLDEN / "taef2-input.png").convert("RGB").save(src, "JPEG", quality=63)
    real = Item(str(src), 0, "real/a.jpg", "somewhere")
    (fake,) = aligned.reconstruct([real], log=lambda m: None)
    assert (fake.label, fake.group, fake.source) == (1, real.group, aligned.SOURCE)
    a, b = Image.open(src), Image.open(fake.path)
    assert a.size == b.size and a.quantization == b.quantization
    mtime = Path(fake.path).stat().st_mtime_ns
    aligned.reconstruct([real], log=lambda m: None)  # made once, then reused
    assert Path(fake.path).stat().st_mtime_ns == mtime


def test_pairing_puts_each_fake_in_its_reals_batch_and_keeps_the_balance():
    labels = np.array([0] * 10 + [1] * 10)
    partner = np.full(20, -1)
    partner[10:15] = [0, 1, 2, 3, 4]  # five aligned fakes of reals 0-4
    idx = np.array([5, 6, 7, 8, 9, 10, 11, 12, 15, 16])  # none of their reals drawn
    out = aligned.pair_up(idx, partner, labels, np.random.default_rng(0))
    assert sorted(labels[out]) == sorted(labels[idx])  # five real, five fake still
    pos = {r: k for k, r in enumerate(out.tolist())}
    for fake in (10, 11, 12):
        assert abs(pos[fake] - pos[partner[fake]]) == 1  # side by side: one batch


def test_aligned_fakes_never_come_from_a_left_out_source(monkeypatch):
    from training.e2e import train

    made = []
    monkeypatch.setattr(aligned, "reconstruct", lambda reals, log=None: made.extend(reals) or [
        Item(f"/x/{k}.jpg", 1, r.group, aligned.SOURCE) for k, r in enumerate(reals)])
    splits = {s: {"train": [Item(f"/{s}/{k}.jpg", k % 2, f"g{k}", s) for k in range(6)],
                  "calib": [], "test": []} for s in ("kept", "left")}
    args = train.parse_args(["x", "--aligned-cap", "10", "--leave-out-reals", "left"])
    train._add_aligned(splits, args)
    assert made and {i.source for i in made} == {"kept"}
    assert all(i.label == 0 for i in made)
    assert splits[aligned.SOURCE]["calib"] == [] and splits[aligned.SOURCE]["test"] == []


def test_a_second_training_seed_keeps_the_split_and_the_aligned_reals(monkeypatch):
    # A second seed of a study run must differ only in the training's own draws, so that the
    # spread it shows is the training's, not a new split's or new reconstructions'.
    from training.e2e import train

    def chosen(*argv: str) -> tuple[list[str], int]:
        made: list = []
        monkeypatch.setattr(aligned, "reconstruct", lambda reals, log=None: made.extend(reals)
                            or [Item(f"/x/{k}.jpg", 1, r.group, aligned.SOURCE)
                                for k, r in enumerate(reals)])
        splits = {"kept": {"train": [Item(f"/kept/{k}.jpg", 0, f"g{k}", "kept")
                                     for k in range(40)], "calib": [], "test": []}}
        args = train.parse_args(["x", "--aligned-cap", "5", *argv])
        train._add_aligned(splits, args)
        return [r.path for r in made], args.train_seed

    first, seed = chosen()
    second, seed2 = chosen("--train-seed", "2")
    assert (seed, seed2) == (1234, 2) and second == first
    assert chosen("--seed", "2")[0] != first


@pytest.mark.skipif(not (WEIGHTS.parents[1] / "data" / "sdfd-faces").is_dir(),
                    reason="../shared/data not here")
def test_shortcut_table_names_every_kind_and_its_cues():
    from research.shortcuts import CUES_AFTER, CUES_BEFORE, DRAWN, table

    res = table(WEIGHTS.parents[1] / "data", 1234, per_class=3)
    assert {"ff-crops", "stylegan-faces", "dfdc-faces", "sdfd-faces", DRAWN} <= set(res)
    for kind in ("ff-crops", "sdfd-faces", DRAWN):
        assert res[kind]["n_real"] == res[kind]["n_fake"] == 3
        assert set(res[kind]["before"]) == set(CUES_BEFORE)
        assert set(res[kind]["after"]) == set(CUES_AFTER)
        assert 0.0 <= res[kind]["before"]["sharpness"] <= 1.0


def test_study_rows_count_reals_called_fake_and_bands_at_the_served_numbers():
    from training.common.fold_tables import markdown, row

    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.01, 0.02, 0.5, 0.1, 0.9, 0.2, 0.7, 0.001])
    r = row(y, p, 0.3, {"likely_real_below": 0.05, "likely_fake_from": 0.6})
    assert r["reals_called_fake"]["rate"] == 0.25 and r["fakes_caught"]["rate"] == 0.5
    assert r["bands_real"] == {"likely_real": 0.5, "likely_fake": 0.0, "cant_tell": 0.5}
    assert r["bands_fake"]["likely_real"] == 0.25 and r["bands_fake"]["likely_fake"] == 0.5
    assert r["auc"] == pytest.approx(11 / 16)  # fake above real in 11 of the 16 pairs
    doc = {"launder": "x", "per_label": 1, "per_test": 1, "runs": {"r": {
        "left_out_source": "s", "version": "v", "prior_fake": 0.5, "training": {},
        "left_out": {"served": r, "laundered": r}}}}
    assert "| s (left out) | 4 / 4 | 0.688" in markdown(doc)


def test_laundering_shrinks_and_recompresses_without_metadata(tmp_path):
    from training.common.fold_tables import launder

    src = tmp_path / "a.png"
    Image.open(GOLDEN / "taef2-input.png").save(src, pnginfo=None)
    out = Image.open(__import__("io").BytesIO(launder(str(src))))
    assert out.format == "JPEG" and out.size == (77, 77) and not out.info.get("exif")


def test_laundered_table_goes_into_the_card_and_its_markdown(tmp_path):
    import json
    import shutil

    from training.common.fold_tables import into_card, row

    shipped = Path(__file__).resolve().parents[1] / "models" / "dfd-clip" / "card.json"
    shutil.copy(shipped, tmp_path / "card.json")
    r = row(np.array([0, 1]), np.array([0.1, 0.9]), 0.3,
            {"likely_real_below": 0.01, "likely_fake_from": 0.5})
    into_card(tmp_path, {"left_out_source": "none", "ff-crops": {"served": r, "laundered": r}},
              "re-saved")
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["tables"]["laundered"]["parts"]["ff-crops"]["served"]["auc"] == 1.0
    text = (tmp_path / "MODEL_CARD.md").read_text()
    assert "## Laundered" in text and "| ff-crops | 1 / 1 | 1.000 | 1.000 |" in text

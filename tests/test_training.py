"""Training code: calibration and metric maths, splits, augmentation, frozen BatchNorm, export."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import numpy as np
import pytest

from training.common import calibrate as C
from training.common import metrics as M
from training.common.augment import augment, augment_batch
from training.common.data import list_images, split_source

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
WEIGHTS = ROOT.parent / "shared" / "weights" / "mobilenetv2_0.35_224_imagenet_notop.npz"
SHIPPED = ROOT / "models" / "dfd-mnv2"


# --- calibration -----------------------------------------------------------------------------

def test_temperature_recovers_known_value():
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2.5, 60000)
    y = (rng.random(len(z)) < C.sigmoid(z)).astype(int)
    # Logits stretched by 2.5: an over-confident model whose fitted T must be about 2.5.
    t = C.fit_temperature(z * 2.5, y)
    assert abs(t - 2.5) < 0.1
    assert C.nll(z * 2.5, y, t) < C.nll(z * 2.5, y, 1.0)


def test_apply_temperature_matches_formula():
    p = np.array([0.01, 0.3, 0.5, 0.9, 0.999])
    expected = 1 / (1 + np.exp(-np.log(p / (1 - p)) / 3.0))
    assert np.allclose(C.apply_temperature(p, 3.0), expected)
    assert np.allclose(C.apply_temperature(p, 1.0), p)


def test_ece_of_calibrated_set_is_near_zero():
    rng = np.random.default_rng(1)
    p = rng.random(200000)
    y = (rng.random(len(p)) < p).astype(int)
    assert M.ece(y, p) < 0.01


def test_ece_of_miscalibrated_set_matches_hand_computation():
    # 10 images at p=0.9 (predicted fake, confidence 0.9), 6 of them fake: gap 0.3.
    # 5 images at p=0.2 (predicted real, confidence 0.8), all real: gap 0.2.
    p = np.array([0.9] * 10 + [0.2] * 5)
    y = np.array([1] * 6 + [0] * 4 + [0] * 5)
    assert M.ece(y, p) == pytest.approx((10 * 0.3 + 5 * 0.2) / 15)


# --- metrics ---------------------------------------------------------------------------------

def test_auc_of_known_ranking_and_ties():
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert M.roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.5)
    assert M.roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert M.roc_auc([0, 1, 1], [0.3, 0.3, 0.9]) == pytest.approx(0.75)  # tie counts one half
    assert np.isnan(M.roc_auc([1, 1], [0.2, 0.3]))


def test_paired_auc_difference_takes_the_sets_own_noise_out():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 300)
    a = rng.normal(size=600) + 0.6 * y  # a model with AUC about 0.66
    b = a + rng.normal(scale=0.2, size=600) + 0.15 * y  # the same, a little better
    r = M.paired_auc_diff(y, a, b, n_boot=300)
    assert r["diff"] == pytest.approx(r["auc_b"] - r["auc_a"]) and r["diff"] > 0
    lo, hi = r["ci"]
    assert 0 < lo < r["diff"] < hi
    # Separate intervals overlap: only the pairing shows the gain is not the draw of files.
    assert M.auc_ci(y, b, 300)[0] < M.auc_ci(y, a, 300)[1]
    same = M.paired_auc_diff(y, a, a, n_boot=50)
    assert same["diff"] == 0 and same["ci"] == [0, 0]


def test_study_compare_refuses_runs_that_left_out_different_kinds(tmp_path):
    from training.common.fold_compare import left_out_files

    for name in ("ff-out", "dfdc-out"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "split.json").write_text('{"seed": 1, "sources": {}}')
    with pytest.raises(SystemExit, match="different kinds"):
        left_out_files(tmp_path / "ff-out", tmp_path / "dfdc-out", tmp_path)


def test_study_compare_reuses_pairs_of_unchanged_runs_and_puts_them_in_the_card(tmp_path):
    # A pair of the same trained runs (same card versions) is not scored again; the row says what
    # b changes, and the card gets the section. A retrained run (new version) is scored again.
    import shutil

    from training.common import fold_compare as FC

    runs = {}
    for name, training in (("sdfd-out-a", {"seed": 7, "sbi_rate": 0.25}),
                           ("sdfd-out-b", {"seed": 7, "sbi_rate": 0.25, "arch": "clip-lora",
                                           "train_seed": 7})):
        runs[name] = tmp_path / name
        runs[name].mkdir()
        (runs[name] / "card.json").write_text(json.dumps(
            {"version": name[-1] * 12, "training": {"sources": {}, **training}}))
    served = {"auc_a": 0.6, "auc_b": 0.65, "diff": 0.05, "ci": [0.01, 0.09]}
    row = {"a": "sdfd-out-a", "b": "sdfd-out-b", "left_out_source": "sdfd-faces", "n_real": 3,
           "n_fake": 2, "versions": ["a" * 12, "b" * 12], "served": served,
           "laundered": served}
    (tmp_path / "compare.json").write_text(json.dumps([row]))
    card = tmp_path / "model" / "card.json"
    card.parent.mkdir()
    shutil.copy(ROOT / "models" / "dfd-e2e" / "card.json", card)
    pair = f"{runs['sdfd-out-a']}:{runs['sdfd-out-b']}"
    FC.main([pair, "--json", str(tmp_path / "compare.json"), "--card", str(card)])
    got = json.loads((tmp_path / "compare.json").read_text())
    assert got[0]["differs"] == ["arch mobilenetv2 -> clip-lora"]
    text = (card.parent / "MODEL_CARD.md").read_text()
    assert "paired on the unseen kind" in text
    assert "| sdfd-out-a | sdfd-out-b | arch mobilenetv2 -> clip-lora | sdfd-faces | 3 / 2 | " \
           "0.600 | 0.650 | +0.050 (+0.010 to +0.090) |" in text
    (runs["sdfd-out-b"] / "card.json").write_text(json.dumps(
        {"version": "c" * 12, "training": {"sources": {}}}))
    with pytest.raises(FileNotFoundError):  # scored again: the runs here have no split.json
        FC.main([pair, "--json", str(tmp_path / "compare.json")])


def test_eer_accuracy_and_confusion():
    y = [0, 0, 0, 0, 1, 1, 1, 1]
    p = [0.1, 0.2, 0.3, 0.6, 0.4, 0.7, 0.8, 0.9]
    assert M.eer(y, p) == pytest.approx(0.25)
    assert M.eer([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 0.0
    assert M.confusion(y, p, 0.5) == {"tp": 3, "fp": 1, "tn": 3, "fn": 1}
    assert M.accuracy(y, p, 0.5) == 0.75
    r = M.report(y, p, 0.35)  # fake iff p > 0.35: one real (0.6) called fake, all fakes caught
    assert r["confusion"] == {"tp": 4, "fp": 1, "tn": 3, "fn": 0}
    assert r["recall"] == {"fake": 1.0, "real": 0.75}
    assert r["precision"]["fake"] == pytest.approx(0.8)
    assert (r["n_real"], r["n_fake"]) == (4, 4)


# --- data splits -----------------------------------------------------------------------------

def _touch(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")


def test_intervals_and_rank_correlation_on_known_inputs():
    lo, hi = M.wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    assert M.wilson(0, 10)[0] == 0.0 and np.isnan(M.wilson(0, 0)[0])
    assert M.auc_ci([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == (1.0, 1.0)  # separated in every resample
    rng = np.random.default_rng(3)
    y = np.repeat([0, 1], 200)
    p = rng.normal(size=400) + 0.8 * y
    lo, hi = M.auc_ci(y, p, seed=1)
    assert lo < M.roc_auc(y, p) < hi and 0.03 < hi - lo < 0.15
    assert M.auc_ci(y, p, seed=1) == (lo, hi)  # seeded
    assert M.spearman([1, 2, 3, 4], [10, 20, 25, 100]) == pytest.approx(1.0)
    assert M.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert np.isnan(M.spearman([1, 2, 3], [5, 5, 5]))


def test_stratified_auc_removes_what_a_cue_explains():
    from research.probe import stratified_auc

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 1000)
    cue = rng.normal(size=2000) - 1.0 * y  # reals have more of the cue
    follows_cue = cue + 0.05 * rng.normal(size=2000)  # a score that only follows the cue
    assert M.roc_auc(y, follows_cue) < 0.3
    assert 0.4 < stratified_auc(y, follows_cue, cue, bins=10) < 0.6
    real_signal = rng.normal(size=2000) + 1.5 * y  # a score the cue does not explain
    assert stratified_auc(y, real_signal, cue) > 0.8


def test_collapse_is_a_constant_output_on_every_source():
    from training.common.metrics import roc_auc
    from training.e2e.loop import collapsed

    y = np.array([0, 1, 0, 1, 1, 0])
    constant = roc_auc(y, np.full(6, 0.5))  # what a dead net's scores give
    assert collapsed({"a": constant, "b": float("nan")})
    assert not collapsed({"a": constant, "b": roc_auc(y, np.array([.1, .9, .2, .8, .7, .3]))})
    assert not collapsed({})


def test_split_keeps_source_video_groups_together(tmp_path):
    root = tmp_path / "dfdc-faces"
    for k in range(60):
        _touch(root / "real" / f"src{k}" / "a.jpg")
        _touch(root / "fake" / f"src{k}" / "b.jpg")
    parts = split_source(root, seed=3)
    assert sum(len(v) for v in parts.values()) == 120
    side = {}
    for part, items in parts.items():
        for i in items:
            assert side.setdefault(i.group, part) == part  # real and fake of a source together
    assert parts["calib"] and parts["test"]
    assert split_source(root, seed=3) == parts  # seeded: same split again


def test_train_val_layout_keeps_val_and_splits_videos(tmp_path):
    root = tmp_path / "ff-crops"
    for split in ("train", "val"):
        for label in ("real", "fake"):
            for v in range(30):
                for f in range(3):
                    _touch(root / split / label / f"{label}{v}" / f"{f}.jpg")
    parts = split_source(root, seed=0)
    assert len(parts["test"]) == 180 and all("/val/" in i.path for i in parts["test"])
    calib_groups = {i.group for i in parts["calib"]}
    assert calib_groups and not calib_groups & {i.group for i in parts["train"]}
    flat = tmp_path / "flat"
    _touch(flat / "real" / "1.jpg")
    _touch(flat / "fake" / "1.jpg")
    assert {i.group for i in list_images(flat)} == {".:real/1.jpg", ".:fake/1.jpg"}


# --- augmentation ----------------------------------------------------------------------------

def test_augmentation_takes_no_label_and_is_seeded():
    # No label among the inputs; the blend mask only follows the image's geometry.
    assert list(inspect.signature(augment).parameters) == ["rgb", "rng", "strength", "mask"]
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (224, 224, 3), dtype=np.uint8)
    a = augment(img, np.random.default_rng(5))
    b = augment(img, np.random.default_rng(5))
    assert a.shape == img.shape and a.dtype == np.uint8 and np.array_equal(a, b)
    batch = augment_batch(np.stack([img] * 8), np.random.default_rng(1))
    assert batch.shape == (8, 224, 224, 3)
    assert sum(not np.array_equal(x, img) for x in batch) >= 6  # strong: most copies change
    # With a mask: the image is the same as without one (same random draws), and the mask
    # moves with it: on a half-white, half-black image masked on its white half, the mask
    # still covers the bright side after any flip and shift.
    two = np.zeros((224, 224, 3), np.uint8)
    two[:, :112] = 255
    mask = np.zeros((224, 224), np.float32)
    mask[:, :112] = 1
    sides = set()
    for seed in range(12):
        plain = augment(two, np.random.default_rng(seed))
        out, m = augment(two, np.random.default_rng(seed), mask=mask)
        assert np.array_equal(out, plain) and m.shape == (224, 224)
        lum = out.astype(float).mean(axis=2)
        assert lum[m > 0.9].mean() > lum[m < 0.1].mean() + 50, seed
        sides.add(bool(m[:, 112:].mean() > m[:, :112].mean()))
    assert sides == {True, False}  # some copies were flipped, and their masks with them
    xs, ms = augment_batch(np.stack([img] * 3), np.random.default_rng(1),
                           masks=np.stack([mask] * 3))
    assert xs.shape == (3, 224, 224, 3) and ms.shape == (3, 224, 224)


def test_a_clip_run_takes_its_own_input_and_refuses_mobilenetv2_options():
    # CLIP's position embedding fixes its input at 224 px; the card must not claim a MobileNetV2
    # width or a 160 px trunk for it, and options only MobileNetV2 has are refused by name.
    from training.e2e import train
    from training.e2e.arch import ARCHS, arch_of

    args = train.parse_args(["x", "--arch", "clip-lora", "--width", "1.0"])
    assert (args.internal_size, args.width, args.weights) == (224, None, None)
    assert arch_of(args).card_name == "dfd-clip-lora"
    assert train.parse_args(["x"]).arch == "mobilenetv2" and set(ARCHS) >= {"clip-ln"}
    with pytest.raises(SystemExit):
        train.parse_args(["x", "--arch", "clip-ln", "--mask-weight", "0.5"])


# --- model: frozen BatchNorm and export ------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_model():
    from training.e2e.model import build_model

    weights = WEIGHTS if WEIGHTS.exists() else None
    return build_model(weights, internal_size=64)


def test_batchnorm_statistics_do_not_move_under_fit(tiny_model):
    import keras

    from training.e2e.model import batchnorm_stats, set_trunk_trainable, trunk_of

    model = tiny_model
    set_trunk_trainable(model, True)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    before = batchnorm_stats(model)
    kernel = keras.ops.convert_to_numpy(trunk_of(model).get_layer("Conv1").kernel)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (8, 224, 224, 3)).astype(np.float32)
    y = rng.integers(0, 2, (8, 1)).astype(np.float32)
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    after = batchnorm_stats(model)
    assert len(before) == 2 * 52  # moving mean and variance of MobileNetV2's 52 BatchNorms
    assert all(np.array_equal(a, b) for a, b in zip(before, after, strict=True))
    after_kernel = keras.ops.convert_to_numpy(trunk_of(model).get_layer("Conv1").kernel)
    assert not np.array_equal(kernel, after_kernel)


def test_tflite_export_agrees_with_keras(tiny_model, tmp_path):
    from training.e2e.export import check_agreement, to_tflite

    path = tmp_path / "m.tflite"
    path.write_bytes(to_tflite(tiny_model))
    x = np.random.default_rng(2).integers(0, 256, (6, 224, 224, 3), dtype=np.uint8)
    assert check_agreement(tiny_model, path, x) <= 1e-3


def test_model_file_loads_in_safe_mode(tiny_model, tmp_path):
    import keras

    from training.e2e.model import weights_hash

    tiny_model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert weights_hash(loaded) == weights_hash(tiny_model)


# --- the shipped model on real data ----------------------------------------------------------

needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"training data not present at {DATA}")


def _sample(folder: Path, n: int, seed: int = 0) -> list:
    items = list_images(folder)
    pick = np.random.default_rng(seed).choice(len(items), min(n, len(items)), replace=False)
    return [items[i] for i in sorted(pick)]


@pytest.mark.data
@needs_data
def test_shipped_export_agrees_over_200_real_images():
    import keras

    from detector.faces import FaceDetector
    from training.common.prep import crop_one
    from training.e2e.export import check_agreement

    card = json.loads((SHIPPED / "card.json").read_text())
    model = keras.saving.load_model(SHIPPED / card["files"]["keras"], safe_mode=True)
    reals = [i for i in _sample(DATA / "ff-crops" / "val", 600) if i.label == 0][:200]
    det = FaceDetector()
    crops = np.stack([crop_one(i.path, det)[0] for i in reals])
    assert len(crops) == 200
    assert check_agreement(model, SHIPPED / card["files"]["tflite"], crops) <= 1e-3


@pytest.mark.data
@needs_data
def test_shipped_model_tells_real_from_fake_through_worker_path():
    from detector.faces import FaceDetector
    from detector.model import load_model
    from training.common.evaluate import score_images

    model = load_model(SHIPPED)
    items = _sample(DATA / "ff-crops" / "val", 30, seed=1) + \
        _sample(DATA / "stylegan-faces", 30, seed=1)
    results = score_images([i.path for i in items], FaceDetector(), model)
    y = [i.label for i in items]
    p = [r["p_fake"] for r in results]
    assert all(r["model"]["version"] == model.version for r in results)
    assert M.roc_auc(y, p) >= 0.85
    assert M.accuracy(y, p, model.threshold) >= 0.75

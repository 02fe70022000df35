"""Generalisation tooling: self-blended pseudo-fakes, label-free augmentation, flips and cues."""

from __future__ import annotations

import inspect
import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from research import cues as Q
from research import robustness as R
from training.common.augment import augment, augment_batch
from training.common.sbi import face_mask, face_outline, hull, sbi_batch, self_blend

SIZE = 224
# A frontal face in a 224 crop: right eye, left eye, nose, mouth, right ear, left ear.
KEYPOINTS = np.array([[85, 95], [139, 95], [112, 125], [112, 150], [55, 105], [169, 105]],
                     np.float32)


def _face_like(seed: int = 0) -> np.ndarray:
    """A textured 224x224 image: smooth colour field plus noise (JPEG-free, no real face)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIZE, 0:SIZE] / SIZE
    base = np.stack([120 + 80 * x, 100 + 60 * y, 90 + 50 * x * y], axis=2)
    return np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)


# --- pseudo-fakes ----------------------------------------------------------------------------

def test_hull_is_convex_outline():
    pts = np.array([[0, 0], [4, 0], [4, 4], [0, 4], [2, 2], [1, 3]])
    assert {tuple(p) for p in hull(pts)} == {(0, 0), (4, 0), (4, 4), (0, 4)}


@pytest.mark.parametrize("keypoints", [KEYPOINTS, None], ids=["landmarks", "ellipse"])
def test_mask_lies_inside_the_face_with_a_soft_edge(keypoints):
    for seed in range(20):
        m = face_mask(SIZE, np.random.default_rng(seed), keypoints)
        assert m.shape == (SIZE, SIZE) and m.min() >= 0 and m.max() <= 1
        assert m[112, 112] > 0.9  # the face centre is covered
        corners = np.concatenate([m[:24, :24].ravel(), m[:24, -24:].ravel(),
                                  m[-24:, :24].ravel(), m[-24:, -24:].ravel()])
        assert corners.max() == 0  # the crop's corners (background, hair) are never blended
        # All of the mask lies in the face outline's box, grown by 30% for the wobble and soft edge.
        if keypoints is not None:
            poly = face_outline(keypoints)
            (x0, y0), (x1, y1) = poly.min(0), poly.max(0)
        else:
            # The largest ellipse ellipse_outline draws: centre (0.53, 0.57), axes 0.36 and 0.42.
            x0, x1 = (0.5 - 0.39) * SIZE, (0.5 + 0.39) * SIZE
            y0, y1 = (0.54 - 0.45) * SIZE, (0.54 + 0.45) * SIZE
        gx, gy = (x1 - x0) * 0.3, (y1 - y0) * 0.3
        ys, xs = np.nonzero(m > 0.02)
        assert xs.min() >= x0 - gx and xs.max() <= x1 + gx
        assert ys.min() >= y0 - gy and ys.max() <= y1 + gy
        # Soft edge: along the row through the eyes the mask rises through in-between values.
        row = m[112]
        assert np.sum((row > 0.1) & (row < 0.9)) >= 4
        assert np.mean((m > 0.02) & (m < 0.98)) > 0.03


def test_landmark_mask_follows_the_keypoints():
    poly = face_outline(KEYPOINTS)
    # The outline spans the ears and reaches below the mouth (to the chin).
    assert poly[:, 0].min() < 70 and poly[:, 0].max() > 154 and poly[:, 1].max() > 185
    shifted = KEYPOINTS + np.array([30, 0], np.float32)
    a = face_mask(SIZE, np.random.default_rng(1), KEYPOINTS)
    b = face_mask(SIZE, np.random.default_rng(1), shifted)
    cols = np.arange(SIZE)
    # The mask's centre of mass moves with the face.
    assert (b.sum(0) @ cols) / b.sum() - (a.sum(0) @ cols) / a.sum() == pytest.approx(30, abs=4)


def test_self_blend_changes_pixels_only_under_the_mask():
    img = _face_like()
    for seed in range(10):
        out, mask = self_blend(img, np.random.default_rng(seed), KEYPOINTS if seed % 2 else None)
        assert out.shape == img.shape and out.dtype == np.uint8
        assert np.array_equal(out[mask == 0], img[mask == 0])
        inside = mask > 0.5 * mask.max()
        assert np.mean(np.abs(out.astype(int) - img)[inside]) > 0.5  # and it does change
    with pytest.raises(ValueError):
        self_blend(np.zeros((10, 20, 3), np.uint8), np.random.default_rng(0))


def test_pseudo_fakes_are_labelled_fake_and_real_fakes_stay_fake():
    x = np.stack([_face_like(k) for k in range(6)])
    y = np.array([0, 0, 0, 1, 1, 1])
    xs, ys = sbi_batch(x, y, 1.0, np.random.default_rng(0))
    assert ys.tolist() == [1] * 6
    assert all(not np.array_equal(xs[i], x[i]) for i in range(3))
    assert all(np.array_equal(xs[i], x[i]) for i in range(3, 6))  # real fakes untouched
    x0, y0 = sbi_batch(x, y, 0.0, np.random.default_rng(0))
    assert np.array_equal(x0, x) and np.array_equal(y0, y)
    assert y.tolist() == [0, 0, 0, 1, 1, 1]  # the caller's arrays are not modified


def test_balanced_pseudo_fakes_take_the_place_of_fakes_and_keep_the_reals():
    x = np.stack([_face_like(k) for k in range(8)])
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    xs, ys = sbi_batch(x, y, 1.0, np.random.default_rng(0), balanced=True)
    assert ys.tolist() == y.tolist()  # the classes stay 50/50
    assert all(np.array_equal(xs[i], x[i]) for i in range(4))  # every real stays real
    for i in range(4, 8):  # each fake slot now holds a pseudo-fake made from one of the reals
        assert not np.array_equal(xs[i], x[i])
        assert min(np.mean(np.abs(xs[i].astype(int) - x[j])) for j in range(4)) < 8
    # More reals picked than fakes to replace: only as many pseudo-fakes as there are fakes.
    xs, ys = sbi_batch(x[:6], y[:6], 1.0, np.random.default_rng(0), balanced=True)
    assert ys.tolist() == y[:6].tolist()
    assert all(np.array_equal(xs[i], x[i]) for i in range(4))


def test_training_batches_add_pseudo_fakes_in_either_mode():
    from training.e2e.batches import Batches

    crops = np.stack([_face_like(k) for k in range(64)])
    labels = np.array([0] * 32 + [1] * 32)
    order = np.random.default_rng(3).permutation(64)  # mixed batches, as epochs draw them
    # Batches reads each batch's rows in sorted order (memmap locality).
    expect = np.concatenate([labels[np.sort(order[b:b + 32])] for b in (0, 32)])
    unbalanced = np.concatenate([y.ravel() for _, y in Batches(
        crops, order, labels, 32, (0, 0), sbi_rate=0.5, sbi_balanced=False)])
    assert np.all(unbalanced[expect == 1] == 1)  # fakes stay fake
    assert 0.2 < unbalanced[expect == 0].mean() < 0.8  # about half the reals relabelled
    batches = list(Batches(crops, order, labels, 32, (0, 0), sbi_rate=0.5))  # balanced default
    assert np.array_equal(np.concatenate([y.ravel() for _, y in batches]), expect)
    plain = list(Batches(crops, order, labels, 32, (0, 0)))
    assert np.array_equal(np.concatenate([y.ravel() for _, y in plain]), expect)


# --- augmentation: both classes alike --------------------------------------------------------

def test_augmentation_has_no_label_input():
    assert "label" not in str(inspect.signature(augment))
    assert "label" not in str(inspect.signature(augment_batch))


def test_training_batches_augment_both_classes_alike():
    from training.e2e.batches import Batches

    # The same 64 images once labelled real and once fake: what augmentation does to them must
    # not tell the labels apart (a cue AUC near 0.5), while it does change them strongly.
    imgs = np.stack([_face_like(k % 8) for k in range(64)])
    crops = np.concatenate([imgs, imgs])
    labels = np.array([0] * 64 + [1] * 64)
    xs, ys = [], []
    for x, y in Batches(crops, np.arange(128), labels, 32, (0, 0)):
        xs.append(x)
        ys.append(y.ravel())
    x, y = np.concatenate(xs).astype(np.uint8), np.concatenate(ys)
    sharp = [Q.laplacian_variance(im) for im in x]
    assert 0.35 < Q.signed_auc(y, sharp) < 0.65
    assert 0.35 < Q.signed_auc(y, [im.mean() for im in x]) < 0.65
    before = np.median([Q.laplacian_variance(im) for im in imgs])
    assert np.std(np.log(sharp)) > 0.3 and np.median(sharp) != before


# --- flip rates and cues ---------------------------------------------------------------------

def test_flip_rate_counts_real_to_fake_only():
    r = R.flip_rate([False, False, False, False, True], [True, False, False, False, False])
    assert r["rate"] == 0.25 and r["flipped"] == 1 and r["real_before"] == 4
    assert r["fake_to_real"] == 1 and r["n"] == 5
    assert np.isnan(R.flip_rate([True], [True])["rate"])
    assert r["ci95"][0] < 0.25 < r["ci95"][1]


def test_flip_rates_report_drift_of_the_reals_judged_real(tmp_path, model_dir):
    from detector.faces import FaceDetector
    from detector.model import load_model
    from training.common.data import Item

    rng = np.random.default_rng(0)
    items = []
    for k in range(4):
        path = tmp_path / f"{k}.png"
        Image.fromarray(rng.integers(0, 255, (96, 128, 3), np.uint8)).save(path)
        items.append(Item(str(path), k % 2, "noise", str(k)))
    model = load_model(model_dir)
    model.threshold = 1.0  # every image judged Real, so every real counts for the drift
    res = R.flip_rates({"noise": items}, {"tiny": model}, R.CachedDetector(FaceDetector()))
    png = res["tiny"]["noise"]["png"]  # the same pixels: nothing moves, nothing flips
    assert png["n"] == 2 and png["real_before"] == 2 and png["flipped"] == 0
    assert png["mean_dp"] == 0.0 and png["moved_over_0.1"] == 0.0
    assert 0.0 < png["p_before_median"] < 1.0
    assert set(res["tiny"]["noise"]) == set(R.CHANGES)
    d = R.drift([0.2, 0.25, 0.1], [0.35, 0.2, 0.1])
    assert d["mean_dp"] == pytest.approx(0.1 / 3) and d["moved_over_0.1"] == pytest.approx(1 / 3)


def test_whole_sources_are_scored_only_by_models_that_never_saw_them():
    class Card:
        def __init__(self, *sources):
            self.card = {"training": {"sources": dict.fromkeys(sources, {})}}

    ff_only, mixed = Card("ff-crops"), Card("ff-crops", "stylegan-faces", "dfdc-faces")
    assert R.applies("stylegan-faces/all", ff_only) and R.applies("dfdc-faces/all", ff_only)
    assert R.applies("stylegan-faces/test", mixed) and R.applies("ff-crops/val", mixed)
    assert not R.applies("stylegan-faces/all", mixed)


def test_benign_changes_do_what_they_say():
    img = _face_like()
    for name in R.CHANGES:
        data = R.apply_change(img, name)
        out = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        if name == "png":
            assert np.array_equal(out, img)
        elif name == "crop_90":
            assert out.shape == (202, 202, 3)
        elif name == "screenshot":
            assert out.shape == (280, 280, 3)
        else:
            assert out.shape == img.shape
    assert Q.jpeg_quality(R.apply_change(img, "jpeg_q70")) == 70
    assert Q.jpeg_quality(R.apply_change(img, "jpeg_q90")) == 90
    assert np.isnan(Q.jpeg_quality(R.apply_change(img, "png")))
    with pytest.raises(ValueError):
        R.apply_change(img, "rotate")


def test_cues_on_known_inputs():
    flat = np.full((32, 32, 3), 77, np.uint8)
    assert Q.laplacian_variance(flat) == 0.0
    img = _face_like()
    blurred = np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(2)))
    assert Q.laplacian_variance(blurred) < Q.laplacian_variance(img) / 4
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=10)
    jpeg = np.asarray(Image.open(buf).convert("RGB"))
    assert Q.blockiness(jpeg) > 1.3 > Q.blockiness(img)
    # Signed AUC: a cue that is larger for fakes is > 0.5; reversed, < 0.5; strength folds both.
    assert Q.signed_auc([0, 0, 1, 1], [1, 2, 3, 4]) == 1.0
    assert Q.signed_auc([0, 0, 1, 1], [4, 3, 2, 1]) == 0.0
    assert Q.strength(0.2) == pytest.approx(0.8)
    assert Q.signed_auc([0, 1, 0, 1], [1, 1, np.nan, np.nan]) == 0.5  # NaN cues are left out


def test_cached_detector_detects_each_image_once():
    class Counting:
        calls = 0

        def detect(self, img):
            Counting.calls += 1
            return [img.size]

    det = R.CachedDetector(Counting(), keep=2)
    a, b = _face_like(1), _face_like(2)
    # An array and the PIL image of the same pixels are the same image.
    assert det.detect(a) == det.detect(Image.fromarray(a.copy())) == [(SIZE, SIZE)]
    det.detect(b)
    assert Counting.calls == 2


def test_crop_cues_on_known_crops():
    flat = np.full((64, 64, 3), 128, np.uint8)
    c = Q.crop_cues(flat)
    assert c["sharpness"] == 0.0 and c["high_freq"] == 0.0 and c["contrast"] == 0.0
    assert c["brightness"] == 128.0 and c["saturation"] == 0.0 and c["red_minus_blue"] == 0.0
    red = np.zeros((64, 64, 3), np.uint8)
    red[..., 0] = 255
    assert Q.crop_cues(red)["red_minus_blue"] == 255.0 and Q.crop_cues(red)["saturation"] == 255.0
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[:, ::2] = 255  # all energy at the Nyquist frequency
    assert Q.crop_cues(stripes)["high_freq"] == pytest.approx(1.0)


def test_probe_reports_cues_and_changes_through_the_serving_path(tmp_path, model_dir):
    from detector.faces import FaceDetector
    from detector.model import load_model
    from research.probe import CHANGES, probe
    from training.common.data import Item

    rng = np.random.default_rng(1)
    items = []
    for k in range(6):
        path = tmp_path / f"{k}.png"
        Image.fromarray(rng.integers(0, 255, (80, 100, 3), np.uint8)).save(path)
        items.append(Item(str(path), k % 2, str(k), "noise"))
    res = probe(items, load_model(model_dir), R.CachedDetector(FaceDetector()), log=lambda _: 0)
    assert res["n_real"] == 3 and res["n_fake"] == 3 and 0.0 <= res["auc"] <= 1.0
    assert set(res["cues"]) == set(Q.crop_cues(np.zeros((8, 8, 3), np.uint8)))
    assert set(res["changes"]) == set(CHANGES)
    assert all(-1.0 <= r["mean_dp_real"] <= 1.0 for r in res["changes"].values())

"""Fakes drawn at the face sizes the reals have (issue 24 point 3): the crop cache records each
face's size, a large face of a drawn source comes out at a size drawn from the given reals
(deterministic per file, never enlarged), and a left-out source's reals shape nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector.faces import Face
from training.common import prep
from training.common import real_sizes as RS
from training.common.data import Item
from training.policy import DRAW_AT_REAL_SIZES

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


class RedSquareFinder:
    """Finds the one red square of a synthetic picture at any scale, so the test measures the
    draw's geometry exactly (BlazeFace finds no face in a drawn picture)."""

    def detect(self, image) -> list[Face]:
        a = np.asarray(image).astype(int)
        ys, xs = np.nonzero((a[..., 0] > 110) & (a[..., 1] < 70))
        if not len(xs):
            return []
        box = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
        return [Face(box, 0.9, ())]


def portrait(path: Path, side: int = 768, face: int = 400, seed: int = 0) -> Path:
    """A smooth blue-green background with a red, finely textured square 'face' in the middle."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    img = np.stack([20 + 20 * x, 90 + 60 * y, 140 + 40 * x], axis=2)
    o = (side - face) // 2
    img[o:o + face, o:o + face] = [200, 20, 20] + rng.normal(0, 30, (face, face, 3)) * [1, .3, .3]
    Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(path, "PNG")
    return path


def detail(crop: np.ndarray) -> float:
    """High-frequency energy in the middle of a crop: mean absolute Laplacian of the grey image."""
    g = crop[60:164, 60:164].astype(float).mean(axis=2)
    return float(np.abs(g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
                        - 4 * g[1:-1, 1:-1]).mean())


def test_large_face_comes_out_at_a_drawn_real_size(tmp_path):
    finder, pool = RedSquareFinder(), np.array([70.0, 90.0, 110.0, 130.0])
    path = str(portrait(tmp_path / "woman,1.png"))
    plain = prep.crop_one(path, finder)
    assert plain.scale == 1.0 and plain.face_px == pytest.approx(400, abs=1)
    drawn = prep.crop_one(path, finder, pool)
    target = RS.target_side(path, pool)
    assert target in pool  # one real face's side
    assert drawn.scale == pytest.approx(target / 400, rel=1e-6)
    assert drawn.face_px == pytest.approx(target, abs=3)  # found again at that size
    # The crop is blown up from a face of ~100 px, not cut down from 400: far less fine detail.
    assert detail(drawn.crop) < 0.5 * detail(plain.crop)
    again = prep.crop_one(path, finder, pool)
    assert np.array_equal(again.crop, drawn.crop) and again.scale == drawn.scale


def test_sizes_follow_the_reals_distribution(tmp_path):
    pool = np.array([60.0] * 30 + [150.0] * 10)
    drawn = [RS.target_side(str(tmp_path / f"p,{k}.jpg"), pool) for k in range(400)]
    assert set(drawn) == {60.0, 150.0}
    assert np.mean(np.array(drawn) == 60.0) == pytest.approx(0.75, abs=0.07)


def test_never_enlarged(tmp_path):
    finder = RedSquareFinder()
    path = str(portrait(tmp_path / "small,2.png", side=256, face=120))
    plain = prep.crop_one(path, finder)
    drawn = prep.crop_one(path, finder, np.array([300.0, 500.0]))
    assert drawn.scale == 1.0 and np.array_equal(drawn.crop, plain.crop)


def test_left_out_reals_shape_nothing():
    labels = np.array([0, 0, 1, 0, 0, 0, 1])
    face_px = np.array([64, 96, 300, 200, 210, 500, 700], float)
    ranges = {("ff-crops", "train"): np.array([0, 1, 2]), ("dfdc-faces", "train"): np.array([3]),
              ("fairface-real", "train"): np.array([4]), ("ff-crops", "test"): np.array([5]),
              ("sdfd-faces", "train"): np.array([6])}
    everything = RS.size_pool(face_px, ranges, labels, {"sdfd-faces"})
    assert everything.tolist() == [64, 96, 200, 210]  # training reals only, sorted
    fold = RS.size_pool(face_px, ranges, labels, {"sdfd-faces", "dfdc-faces", "fairface-real"})
    assert fold.tolist() == [64, 96]
    assert RS.draw_spec(everything) != RS.draw_spec(fold)  # another fold: another cache


def synthetic(path: Path, side: int, seed: int) -> str:
    """A small textured picture without a face (the face finder falls back to the centre)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side] / side
    base = np.stack([120 + 80 * x, 100 + 60 * y, 90 + 50 * x * y], axis=2)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
                    ).save(path, "JPEG", quality=90)
    return str(path)


def test_training_draws_from_its_own_reals_through_the_cache(tmp_path, monkeypatch):
    """The whole path training takes (prep.build_cache with the serving face finder in its
    workers): face_px recorded, the sdfd training rows re-cut at the sizes of the reals kept,
    never at a left-out source's, and its calibration row left as stored."""
    assert "sdfd-faces" in DRAW_AT_REAL_SIZES
    monkeypatch.setattr(prep, "CACHE_DIR", tmp_path / "cache")
    spec = [("ff-crops", "train", 0, 64), ("ff-crops", "train", 0, 96),
            ("dfdc-faces", "train", 0, 200), ("sdfd-faces", "train", 1, 512),
            ("sdfd-faces", "train", 1, 480), ("sdfd-faces", "calib", 1, 500)]
    items = [Item(synthetic(tmp_path / s / f"{k}.jpg", side, k), y, str(k), s)
             for k, (s, _, y, side) in enumerate(spec)]
    ranges = {(s, p): np.array([k for k, r in enumerate(spec) if r[:2] == (s, p)])
              for s, p, _, _ in spec}
    labels = np.array([r[2] for r in spec])
    crops, meta = prep.build_cache([i.path for i in items], processes=1, log=lambda m: None)
    assert meta["n_faces"] == [0] * 6 and meta["face_px"] == [r[3] for r in spec]
    out, record = prep.at_real_sizes(crops, meta, items, ranges, labels, ["dfdc-faces"], [],
                                   log=lambda m: None)
    assert record["n"] == 2 and record["n_reals"] == 2
    drawn = prep.build_cache([items[3].path, items[4].path], processes=1, log=lambda m: None,
                             pool=np.array([64.0, 96.0]))[1]
    assert drawn["key"] == record["key"] and all(
        min(abs(s - 64), abs(s - 96)) <= 1 for s in drawn["face_px"])
    assert not np.array_equal(out[3], crops[3]) and np.array_equal(out[5], crops[5])
    assert np.array_equal(out[[5, 0, 3]], np.stack([crops[5], crops[0], out[3]]))
    assert np.array_equal(out[2:5], np.stack([crops[2], out[3], out[4]]))
    _, with_dfdc = prep.at_real_sizes(crops, meta, items, ranges, labels, [], [],
                                    log=lambda m: None)
    assert with_dfdc["key"] != record["key"] and with_dfdc["n_reals"] == 3
    assert prep.at_real_sizes(crops, meta, items, ranges, labels, [], ["ff-crops", "dfdc-faces"],
                            log=lambda m: None)[1] is None  # no reals left: as stored
    assert prep.at_real_sizes(crops, meta, items, ranges, labels, ["sdfd-faces"], [],
                            log=lambda m: None)[1] is None  # left out: nothing to draw


@pytest.mark.data
@pytest.mark.skipif(not (DATA / "sdfd-faces").is_dir(), reason=f"no data at {DATA}")
def test_blazeface_finds_sdfd_faces_again_at_real_sizes():
    from detector.faces import FaceDetector

    det, pool = FaceDetector(), np.array([80.0, 110.0, 140.0, 170.0])
    for path in sorted(str(p) for p in (DATA / "sdfd-faces" / "fake").glob("*.jpg"))[:3]:
        plain, drawn = prep.crop_one(path, det), prep.crop_one(path, det, pool)
        assert plain.n_faces and drawn.n_faces and drawn.scale < 1
        assert drawn.face_px == pytest.approx(RS.target_side(path, pool), rel=0.15)

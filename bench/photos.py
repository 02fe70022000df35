"""640x480 JPEG test photos with one face: real face images pasted on varied backgrounds.

The faces come from `../shared/data/stylegan-faces/{real,fake}` (256x256 FFHQ / StyleGAN images).
Each photo gets its own background (a colour gradient, low-frequency blobs or fine noise), a face
size of 140-320 px (the face itself about 60% of that), a random position and JPEG quality 85-93,
so every photo is distinct bytes and the service's reuse of results for identical bytes never
inflates a number. Nothing is invented: without the face folder the benchmark stops.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT.parent / "shared" / "data" / "stylegan-faces"
WIDTH, HEIGHT = 640, 480


class NoFacesError(RuntimeError):
    """The face images the photos are made from are missing."""


def face_files(folder: Path = FACES) -> list[Path]:
    """Face images under folder/real and folder/fake, interleaved, sorted within each."""
    lists = [sorted(p for p in (folder / sub).glob("*") if p.suffix.lower() in (".jpg", ".png"))
             for sub in ("real", "fake")]
    files = [f for pair in zip(*lists, strict=False) for f in pair]
    if not files:
        raise NoFacesError(
            f"no face images under {folder}/real or {folder}/fake: the benchmark composes its "
            "test photos from real face images and will not invent any (fetch the shared data "
            "set stylegan-faces next to this checkout)")
    return files


def _background(rng: np.random.Generator) -> Image.Image:
    kind = rng.integers(3)
    if kind == 0:  # a two-colour gradient at a random angle
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
        ang = rng.uniform(0, np.pi)
        t = (xx * np.cos(ang) + yy * np.sin(ang))
        t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
        arr = a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]
        return Image.fromarray(arr.astype(np.uint8))
    if kind == 1:  # low-frequency colour blobs, like an out-of-focus room
        small = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        img = Image.fromarray(small).resize((WIDTH, HEIGHT), Image.BICUBIC)
        return img.filter(ImageFilter.GaussianBlur(8))
    base = rng.integers(40, 216, 3)  # fine texture on a flat colour
    noise = rng.normal(0, 18, (HEIGHT, WIDTH, 1))
    return Image.fromarray(np.clip(base[None, None] + noise, 0, 255).astype(np.uint8))


def make_photo(face: Path, rng: np.random.Generator) -> bytes:
    """One 640x480 JPEG: the face image resized to 140-320 px at a random place."""
    canvas = _background(rng)
    side = int(rng.integers(140, 321))
    with Image.open(face) as im:
        pasted = im.convert("RGB").resize((side, side), Image.BILINEAR)
    x, y = int(rng.integers(0, WIDTH - side + 1)), int(rng.integers(0, HEIGHT - side + 1))
    canvas.paste(pasted, (x, y))
    buf = io.BytesIO()
    canvas.save(buf, "JPEG", quality=int(rng.integers(85, 94)))
    return buf.getvalue()


def make_photos(n: int, seed: int = 0, folder: Path = FACES) -> list[bytes]:
    """n distinct 640x480 JPEG photos, each with one face (raises NoFacesError without faces)."""
    files = face_files(folder)
    rng = np.random.default_rng(seed)
    photos, seen = [], set()
    i = 0
    while len(photos) < n:
        data = make_photo(files[i % len(files)], rng)
        i += 1
        digest = hashlib.sha256(data).digest()
        if digest not in seen:  # a repeat is vanishingly unlikely, but reuse must not count
            seen.add(digest)
            photos.append(data)
    return photos


def make_large_photo(face: Path, rng: np.random.Generator, size=(4032, 3024)) -> bytes:
    """A phone-camera-sized JPEG (12 MP) with one face, to measure reduced-size decoding."""
    small = Image.open(io.BytesIO(make_photo(face, rng)))
    buf = io.BytesIO()
    small.resize(size, Image.BICUBIC).save(buf, "JPEG", quality=90)
    return buf.getvalue()

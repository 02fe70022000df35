"""Quality-symmetric augmentation: the same random degradations whatever the label."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

_RESAMPLE = (Image.NEAREST, Image.BILINEAR, Image.BICUBIC, Image.LANCZOS, Image.BOX)


def _geometry(img: Image.Image, rng: np.random.Generator, mask: Image.Image | None = None
              ) -> tuple[Image.Image, Image.Image | None]:
    """Small scale, rotation and shift, as a detector's box jitters between images (the same
    transform moves the blend mask, when there is one)."""
    w, h = img.size
    # Wide enough to cover a re-cropped upload, where the detector's box lands elsewhere.
    s = rng.uniform(0.85, 1.15)
    a = np.deg2rad(rng.uniform(-8, 8))
    tx, ty = rng.uniform(-0.1, 0.1, 2) * (w, h)
    cos, sin = np.cos(a) / s, np.sin(a) / s
    cx, cy = w / 2, h / 2
    # Inverse map (output -> input) about the centre, as PIL's AFFINE transform expects.
    coeffs = (cos, sin, cx - cos * cx - sin * cy + tx, -sin, cos, cy + sin * cx - cos * cy + ty)
    out = img.transform((w, h), Image.AFFINE, coeffs, Image.BILINEAR, fillcolor=None)
    return out, None if mask is None else mask.transform((w, h), Image.AFFINE, coeffs,
                                                         Image.BILINEAR)


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=int(quality), subsampling=int(quality < 75) * 2)
    buf.seek(0)
    return Image.open(buf).convert("RGB")


def augment(rgb: np.ndarray, rng: np.random.Generator, strength: float = 1.0,
            mask: np.ndarray | None = None):
    """One augmented copy of an HxWx3 uint8 image; takes no label, so both classes get alike.
    With mask (HxW float, the blend mask), returns (image, mask moved with the image)."""
    # Blur, sharpening, resolution and compression all vary strongly and independently of the
    # label, so none of them can serve as a shortcut (in ff-crops the fakes are the blurrier).
    img = Image.fromarray(rgb)
    w, h = img.size
    p = strength
    blend = None if mask is None else Image.fromarray(np.asarray(mask, np.float32), "F")
    if rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
        blend = None if blend is None else blend.transpose(Image.FLIP_LEFT_RIGHT)
    if rng.random() < 0.5 * p:
        img, blend = _geometry(img, rng, blend)
    if rng.random() < 0.4 * p:
        f = rng.uniform(0.25, 0.8)
        small = (max(8, int(w * f)), max(8, int(h * f)))
        img = img.resize(small, _RESAMPLE[rng.integers(len(_RESAMPLE))])
        img = img.resize((w, h), _RESAMPLE[rng.integers(1, 4)])
    r = rng.random()
    if r < 0.3 * p:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.4, 2.2)))
    elif r < 0.6 * p:
        img = img.filter(ImageFilter.UnsharpMask(radius=rng.uniform(0.8, 3.0),
                                                 percent=int(rng.uniform(60, 250)), threshold=0))
    x = np.asarray(img, dtype=np.float32)
    if rng.random() < 0.8 * p:
        # Colour jitter in one vectorised pass: gain per channel, brightness, contrast,
        # saturation (towards the grey image), gamma.
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * rng.uniform(0.5, 1.5)
        x = x * rng.uniform(0.92, 1.08, 3).astype(np.float32)
        m = x.mean()
        x = (x - m) * rng.uniform(0.65, 1.35) + m * rng.uniform(0.65, 1.35)
        x = 255.0 * (np.clip(x, 0, 255) / 255.0) ** rng.uniform(0.7, 1.4)
    if rng.random() < 0.05:
        x = np.repeat(x.mean(axis=2, keepdims=True), 3, axis=2)
    if rng.random() < 0.3 * p:
        x = x + rng.normal(0.0, rng.uniform(2, 12), x.shape).astype(np.float32)
    out = np.clip(x + 0.5, 0, 255).astype(np.uint8)
    if rng.random() < 0.7 * p:
        out = np.asarray(_jpeg(Image.fromarray(out), rng.integers(30, 96)))
    return out if mask is None else (out, np.asarray(blend, np.float32))


def augment_batch(batch: np.ndarray, rng: np.random.Generator, strength: float = 1.0,
                  masks: np.ndarray | None = None):
    """augment() for each image of an (N,H,W,3) uint8 batch; with masks (N,H,W), also returns
    the masks moved with their images."""
    if masks is None:
        return np.stack([augment(im, rng, strength) for im in batch])
    pairs = [augment(im, rng, strength, m) for im, m in zip(batch, masks, strict=True)]
    return np.stack([a for a, _ in pairs]), np.stack([b for _, b in pairs])

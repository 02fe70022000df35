"""Self-blended pseudo-fakes (Shiohara and Yamasaki, CVPR 2022) made from real 224x224 crops."""

from __future__ import annotations

import multiprocessing as mp

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

# Blend ratios as in the paper: mostly a full swap, sometimes a partial one.
BLEND_RATIOS = (0.25, 0.5, 0.75, 1.0, 1.0, 1.0)
N_KEYPOINTS = 6  # BlazeFace: right eye, left eye, nose, mouth, right ear, left ear
_RESAMPLE = (Image.BILINEAR, Image.BICUBIC, Image.LANCZOS)

_det = None  # one FaceDetector per keypoint worker process
_crops = None  # the crop cache, inherited by the forked keypoint workers


def hull(points: np.ndarray) -> np.ndarray:
    """Convex hull (counter-clockwise, Andrew's monotone chain) of an (N, 2) point array."""
    pts = sorted(map(tuple, np.asarray(points, np.float64)))
    if len(pts) < 3:
        return np.asarray(pts)

    def half(seq):
        out: list = []
        for p in seq:
            while len(out) >= 2 and ((out[-1][0] - out[-2][0]) * (p[1] - out[-2][1])
                                     - (out[-1][1] - out[-2][1]) * (p[0] - out[-2][0])) <= 0:
                out.pop()
            out.append(p)
        return out
    lower, upper = half(pts), half(reversed(pts))
    return np.asarray(lower[:-1] + upper[:-1])


def face_outline(keypoints: np.ndarray) -> np.ndarray:
    """Polygon of the inner face (brows to chin, ear to ear) from the 6 BlazeFace keypoints."""
    k = np.asarray(keypoints, np.float64)
    eyes = (k[0] + k[1]) / 2
    down = k[3] - eyes  # eyes -> mouth: the face's vertical axis and scale
    across = k[4] - k[5]  # ear to ear
    chin = k[3] + 0.8 * down
    brow = eyes - 0.55 * down
    # BlazeFace has no chin or jaw points: add them from the face's own axes, so the hull
    # reaches the jaw line where face swaps are blended.
    jaw = [chin + 0.3 * across, chin - 0.3 * across, k[3] + 0.42 * across, k[3] - 0.42 * across]
    temples = [brow + 0.35 * across, brow - 0.35 * across]
    return hull(np.vstack([k[:4], k[4:6] * 0.85 + eyes * 0.15, chin, brow, *jaw, *temples]))


def ellipse_outline(size: int, rng: np.random.Generator) -> np.ndarray:
    """A face-sized ellipse polygon for a tight crop whose keypoints are unknown."""
    # Tight crops run cheek to cheek and brow to chin: the inner face sits a little low.
    cx, cy = size * (0.5 + rng.uniform(-0.03, 0.03)), size * (0.54 + rng.uniform(-0.03, 0.03))
    ax, ay = size * rng.uniform(0.28, 0.36), size * rng.uniform(0.34, 0.42)
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    return np.stack([cx + ax * np.cos(t), cy + ay * np.sin(t)], axis=1)


def deform(poly: np.ndarray, rng: np.random.Generator, amount: float = 0.06) -> np.ndarray:
    """Resample a closed polygon to 64 points and push them in or out smoothly (elastic edge)."""
    closed = np.vstack([poly, poly[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    s = np.concatenate([[0], np.cumsum(seg)])
    u = np.linspace(0, s[-1], 64, endpoint=False)
    pts = np.stack([np.interp(u, s, closed[:, 0]), np.interp(u, s, closed[:, 1])], axis=1)
    centre = pts.mean(axis=0)
    ang = 2 * np.pi * u / max(s[-1], 1e-9)
    # A few low-frequency harmonics: a wobbly outline, never a jagged one.
    wobble = sum(rng.uniform(-amount, amount) / h * np.cos(h * ang + rng.uniform(0, 2 * np.pi))
                 for h in (1, 2, 3, 5))
    return centre + (pts - centre) * (rng.uniform(0.9, 1.08) + wobble)[:, None]


def face_mask(size: int, rng: np.random.Generator, keypoints=None) -> np.ndarray:
    """(size, size) float32 mask in [0, 1]: a deformed face outline with a blurred, soft edge."""
    usable = keypoints is not None and np.all(np.isfinite(keypoints))
    poly = face_outline(keypoints) if usable else ellipse_outline(size, rng)
    poly = deform(poly, rng)
    img = Image.new("L", (size, size), 0)
    ImageDraw.Draw(img).polygon([tuple(p) for p in poly], fill=255)
    # Two blurs as in the paper: a wide one sets how far the edge fades, a small one smooths it.
    img = img.filter(ImageFilter.GaussianBlur(size * rng.uniform(0.015, 0.05)))
    img = img.filter(ImageFilter.GaussianBlur(size * 0.01))
    m = np.asarray(img, np.float32) / 255.0
    return m / max(float(m.max()), 1e-6)


def _source(rgb: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The copy blended in: colour, scale, shift and sharpness changed slightly."""
    size = rgb.shape[0]
    img = Image.fromarray(rgb)
    s = rng.uniform(0.95, 1.05)
    tx, ty = rng.uniform(-0.03, 0.03, 2) * size
    c = size / 2
    # Inverse affine about the centre (output -> input), as PIL's AFFINE expects.
    img = img.transform((size, size), Image.AFFINE, (1 / s, 0, c - c / s + tx, 0, 1 / s,
                                                       c - c / s + ty), Image.BILINEAR)
    r = rng.random()
    if r < 0.35:
        img = img.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.6)))
    elif r < 0.6:
        f = rng.uniform(0.4, 0.8)  # a swap is often rendered smaller and scaled up
        small = max(16, int(size * f))
        img = img.resize((small, small), _RESAMPLE[rng.integers(3)]).resize(
            (size, size), _RESAMPLE[rng.integers(3)])
    elif r < 0.85:
        img = img.filter(ImageFilter.UnsharpMask(radius=rng.uniform(1, 2.5),
                                                 percent=int(rng.uniform(50, 150)), threshold=0))
    x = np.asarray(img, np.float32)
    if rng.random() < 0.9:
        x = x * rng.uniform(0.92, 1.08) + rng.uniform(-18, 18, 3)  # contrast, RGB shift
        grey = x.mean(axis=2, keepdims=True)
        x = grey + (x - grey) * rng.uniform(0.8, 1.2)  # saturation
    return np.clip(x, 0, 255)


def self_blend(rgb: np.ndarray, rng: np.random.Generator, keypoints=None
               ) -> tuple[np.ndarray, np.ndarray]:
    """(pseudo-fake uint8 image, blend mask in [0, 1]); the caller labels the image fake."""
    if rgb.ndim != 3 or rgb.shape[0] != rgb.shape[1] or rgb.shape[2] != 3:
        raise ValueError(f"expected a square HxWx3 crop, got {rgb.shape}")
    mask = face_mask(rgb.shape[0], rng, keypoints)
    mask *= BLEND_RATIOS[rng.integers(len(BLEND_RATIOS))]
    target = rgb.astype(np.float32)
    out = target + mask[..., None] * (_source(rgb, rng) - target)
    # Where the mask is 0 the sum is the exact original integer: the image is unchanged there.
    return np.clip(np.rint(out), 0, 255).astype(np.uint8), mask


def sbi_batch(x: np.ndarray, y: np.ndarray, rate: float, rng: np.random.Generator,
              keypoints: np.ndarray | None = None, balanced: bool = False,
              with_masks: bool = False):
    """Pseudo-fakes (label 1) from about `rate` of the real (label 0) images of a batch.

    with_masks: also return (N, H, W) float32 blend masks: a pseudo-fake's own mask, zeros for a
    real, -1 ("unknown") for a real fake."""
    # Unbalanced, the real itself becomes the pseudo-fake, so the batch has fewer reals and the
    # model's P(fake) drifts up. Balanced, the real stays and its pseudo-fake takes the place of
    # one of the batch's fakes: the 50/50 balance holds and each pseudo-fake meets its original.
    x, y = np.array(x, copy=True), np.array(y, copy=True)
    flat = y.reshape(len(y), -1)[:, 0]
    picks = np.flatnonzero((flat == 0) & (rng.random(len(y)) < rate))
    if balanced:
        slots = rng.permutation(np.flatnonzero(flat == 1))[:len(picks)]
        picks = picks[:len(slots)]
    else:
        slots = picks
    masks = np.where(flat[:, None, None] == 1, -1.0, 0.0).astype(np.float32) * \
        np.ones((1, *x.shape[1:3]), np.float32)
    for src, dst in zip(picks, slots, strict=True):
        kp = None if keypoints is None else keypoints[src]
        x[dst], masks[dst] = self_blend(np.asarray(x[src], np.uint8), rng, kp)
        y.reshape(len(y), -1)[dst] = 1
    return (x, y, masks) if with_masks else (x, y)


def _init_worker() -> None:
    global _det
    from detector.faces import FaceDetector

    _det = FaceDetector(num_threads=1)


def _kps(rows: np.ndarray) -> np.ndarray:
    out = np.full((len(rows), N_KEYPOINTS, 2), np.nan, np.float32)
    for i, r in enumerate(rows):
        faces = _det.detect(np.asarray(_crops[r]))
        if faces:
            out[i] = faces[0].keypoints
    return out


def crop_keypoints(crops, rows: np.ndarray, processes: int = 2) -> np.ndarray:
    """(len(rows), 6, 2) BlazeFace keypoints of cache crops, in crop pixels; NaN where none."""
    global _crops
    rows = np.asarray(rows)
    if not len(rows):
        return np.zeros((0, N_KEYPOINTS, 2), np.float32)
    _crops = crops  # read by the children through fork, not pickled through a pipe
    chunks = np.array_split(rows, max(1, len(rows) // 512))
    try:
        # The same detector serving uses. Fork is safe before TensorFlow is imported.
        with mp.get_context("fork").Pool(processes, initializer=_init_worker) as pool:
            return np.concatenate(pool.map(_kps, chunks))
    finally:
        _crops = None

"""Cheap single cues (sharpness, JPEG quality, blockiness, colour) and their AUC on labels."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

from training.common import metrics as M

CUES = {
    "sharpness": "variance of the 3x3 Laplacian of the grey image (high = sharp)",
    "jpeg_quality": "libjpeg quality estimated from the luminance quantisation table",
    "pixels": "image width x height",
    "face_box": "area of the best face box over the image area (BlazeFace, serving detector)",
}

# IJG's standard luminance table (quality 50); libjpeg scales it for every other quality.
_STD_LUMA = np.array([
    16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69,
    56, 14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104,
    113, 92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], np.float64)


def laplacian_variance(rgb: np.ndarray) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image: the usual blur/sharpness score."""
    g = np.asarray(rgb, np.float64).mean(axis=2) if rgb.ndim == 3 else np.asarray(rgb, float)
    lap = g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:] - 4 * g[1:-1, 1:-1]
    return float(lap.var())


def blockiness(rgb: np.ndarray) -> float:
    """Mean step across 8x8 block edges over the mean step elsewhere (1 = no JPEG grid)."""
    g = np.asarray(rgb, np.float64).mean(axis=2)
    dx = np.abs(np.diff(g, axis=1)).mean(axis=0)  # step between column j and j+1
    dy = np.abs(np.diff(g, axis=0)).mean(axis=1)
    cols, rows = np.arange(len(dx)), np.arange(len(dy))
    edge = np.concatenate([dx[cols % 8 == 7], dy[rows % 8 == 7]])
    inner = np.concatenate([dx[cols % 8 != 7], dy[rows % 8 != 7]])
    return float(edge.mean() / max(inner.mean(), 1e-9))


def jpeg_quality(data: bytes) -> float:
    """libjpeg quality (1-100) whose luminance table is nearest the file's; NaN if not a JPEG."""
    try:
        img = Image.open(io.BytesIO(data))
        tables = getattr(img, "quantization", None)
    except OSError:
        return float("nan")
    if img.format != "JPEG" or not tables:
        return float("nan")
    luma = np.asarray(tables[min(tables)], np.float64)  # Pillow gives natural (row) order
    q = np.arange(1, 101)
    scale = np.where(q < 50, 5000 / q, 200 - 2 * q)
    std = np.clip(np.floor((_STD_LUMA[None] * scale[:, None] + 50) / 100), 1, 255)
    return float(q[np.argmin(np.abs(std - luma[None]).sum(axis=1))])


def crop_cues(crop: np.ndarray) -> dict[str, float]:
    """Image statistics of a face crop that a model could take as a label cue."""
    rgb = np.asarray(crop, np.float64)
    grey = rgb.mean(axis=2)
    spectrum = np.abs(np.fft.rfft2(grey - grey.mean())) ** 2
    fy = np.abs(np.fft.fftfreq(grey.shape[0]))[:, None]
    fx = np.fft.rfftfreq(grey.shape[1])[None, :]
    high = np.maximum(fy, fx) > 0.25  # above half the Nyquist frequency on either axis
    hsv = np.asarray(Image.fromarray(np.asarray(crop, np.uint8)).convert("HSV"), np.float64)
    return {"sharpness": laplacian_variance(rgb), "high_freq": float(
                spectrum[high].sum() / max(spectrum.sum(), 1e-9)),
            "brightness": float(grey.mean()), "contrast": float(grey.std()),
            "saturation": float(hsv[..., 1].mean()),
            "red_minus_blue": float((rgb[..., 0] - rgb[..., 2]).mean())}


def signed_auc(labels, values) -> float:
    """ROC AUC of a cue as a fake score: > 0.5 means larger values go with fakes, < 0.5 reals."""
    y, v = np.asarray(labels), np.asarray(values, np.float64)
    ok = np.isfinite(v)
    return M.roc_auc(y[ok], v[ok]) if ok.any() else float("nan")


def strength(auc: float) -> float:
    """max(AUC, 1 - AUC): how well a cue separates the classes whichever way it points."""
    return float(max(auc, 1 - auc)) if auc == auc else float("nan")


def train_batch_cues(data: Path, split_seed: int, per_class: int, seed: int = 0,
                     strength: float = 1.0) -> dict:
    """Cue AUCs on training crops: as cropped, after augment(), and reals vs pseudo-fakes."""
    from detector.faces import FaceDetector
    from training.common.augment import augment
    from training.common.data import split_source
    from training.common.prep import crop_one
    from training.common.sbi import self_blend

    det = FaceDetector()
    rng = np.random.default_rng(seed)
    out = {}
    for src in ("ff-crops", "stylegan-faces", "dfdc-faces"):
        train = split_source(data / src, split_seed)["train"]
        labels = np.array([i.label for i in train])
        pick = np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class]
                               for c in (0, 1)])
        crops = [crop_one(train[i].path, det)[0] for i in pick]
        y = labels[pick]
        aug = [augment(c, rng, strength) for c in crops]
        reals = [c for c, lab in zip(crops, y, strict=True) if lab == 0]
        # Pseudo-fakes are then augmented like every other image, before the model sees them.
        sbi = [augment(self_blend(c, rng, None)[0], rng, strength) for c in reals]
        real_aug = [augment(c, rng, strength) for c in reals]
        y_sbi = np.array([0] * len(real_aug) + [1] * len(sbi))
        res = {}
        for cue, fn in (("sharpness", laplacian_variance), ("blockiness", blockiness)):
            res[cue] = {"crops": signed_auc(y, [fn(c) for c in crops]),
                        "augmented": signed_auc(y, [fn(c) for c in aug]),
                        "sbi_vs_real_augmented": signed_auc(y_sbi, [fn(c) for c in
                                                                    real_aug + sbi])}
        res["n"], res["aug_strength"] = int(len(pick)), strength
        out[src] = res
    return out



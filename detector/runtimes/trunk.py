"""A frozen trunk's runtime: tower features, the stacked logit where the head reads one, and the
numpy head; the same head whichever tower runs (ONNX int8 on a CPU, Keras float on a GPU)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from detector.head import Head
from detector.runtimes import checked_crops

# An extra head input computed from the raw crops (the stacked model's logit), as (N, 1).
Extra = Callable[[np.ndarray], np.ndarray]


class KerasTower:
    """The Keras float rebuild of the tower (detector.clip_keras), for DFD_DEVICE=gpu workers:
    TensorFlow places it on the GPU. Its features agree with the int8 tower's to cosine
    0.93-0.996 by block (bench/results/trunk.txt)."""

    max_batch: int | None = None  # float, inference mode: each crop's features are its own

    def __init__(self, outputs: tuple[str, ...]):
        from detector.clip_keras import load_keras_tower

        self.outputs = tuple(outputs)
        self._model = load_keras_tower(self.outputs)

    def features(self, crops: np.ndarray) -> dict[str, np.ndarray]:
        from detector.clip_keras import features

        return features(self._model, crops, self.outputs)

    def describe(self) -> dict:
        return {"tower": "keras-float"}


class TrunkRuntime:
    """Crops -> detail-normalised crops -> tower features (+ extra inputs) -> Head -> P(fake)."""

    def __init__(self, name: str, tower, head: Head, detail: dict,
                 extra: dict[str, Extra] | None = None, check: dict | None = None):
        self.name, self.tower, self.head = name, tower, head
        self.extra, self.check = dict(extra or {}), check
        self._px, self._quality = int(detail["px"]), int(detail["jpeg_quality"])
        # The stacked model (LiteRT or Keras) batches freely; the tower states its own limit.
        self.max_batch: int | None = tower.max_batch

    def predict_raw(self, crops: np.ndarray) -> np.ndarray:
        from detector.crop import normalise_detail

        x = np.asarray(checked_crops(crops), np.uint8)
        feats = self.tower.features(normalise_detail(x, self._px, self._quality))
        for name, fn in self.extra.items():
            feats[name] = fn(x)
        return self.head.p_fake(feats)

    def describe(self) -> dict:
        out = {"runtime": self.name, **self.tower.describe(), "max_batch": self.max_batch}
        return {**out, "check": self.check} if self.check else out

"""Ways of running a model: each one a class behind `predict_raw(crops)`, picked once per process
by `detector.model.load_model` (as TorchServe's handler picks its runtime in `initialize`).

- `litert.LiteRTRuntime`: a network's .tflite file on LiteRT (the CPU path of a whole network).
- `keras.KerasRuntime`: a network's .keras file (GPU workers, or a directory without .tflite).
- `trunk.TrunkRuntime`: a frozen trunk's features, the stacked model's logit where the head reads
  one, and the numpy head (`detector.head.Head`). The trunk is the ONNX int8 tower in the weight
  layout chosen for this CPU (`choice.onnx_tower`, guarded by a numeric self-check) or, on a GPU
  worker, the Keras float tower (`trunk.KerasTower`): the same head either way.

Every runtime states `max_batch`, the most crops one call of its engine takes: None where a
crop's output does not depend on the others in the call (LiteRT, Keras), so the crops of several
jobs share one call; 1 where it does (the ONNX tower quantises activations per tensor over the
batch), so each crop gets a call of its own whatever the caller passes.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

SHAPE = (224, 224, 3)


class Runtime(Protocol):
    """What the model calls: uncalibrated P(fake) per crop, and what it runs on."""

    name: str
    max_batch: int | None

    def predict_raw(self, crops: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict: ...


def checked_crops(crops) -> np.ndarray:
    """(N, 224, 224, 3) crops as given, refused with ValueError in any other shape."""
    x = np.asarray(crops)
    if x.ndim != 4 or x.shape[1:] != SHAPE:
        raise ValueError(f"expected (N, 224, 224, 3) crops, got {x.shape}")
    return x

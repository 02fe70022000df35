"""A network's .keras file on TensorFlow: GPU workers, or a model directory without .tflite."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.card import ModelError
from detector.runtimes import checked_crops


def require_gpu(device: str) -> None:
    """Refuse DFD_DEVICE=gpu when TensorFlow sees no GPU (rather than run on the CPU unasked)."""
    if device != "gpu":
        return
    import tensorflow as tf

    if not tf.config.list_physical_devices("GPU"):
        raise ModelError("DFD_DEVICE=gpu but TensorFlow sees no GPU: install "
                          "tensorflow[and-cuda] on a CUDA machine, or use DFD_DEVICE=auto or cpu")


def load_keras(path: Path):
    """A saved network in safe mode (refuses Lambda layers and other deserialised code), with
    the layers a tuned CLIP network holds registered first."""
    import keras

    import detector.clip_keras  # noqa: F401  registers CLIP's layers

    return keras.saving.load_model(path, safe_mode=True)


class KerasRuntime:
    """The saved network, loaded in safe mode, called with predict_on_batch (no per-call cost)."""

    name: str = "keras"
    max_batch: int | None = None  # inference mode: no batch statistics, each crop's own output

    def __init__(self, path: Path, device: str = "cpu"):
        self.path = Path(path)
        self._model = load_keras(self.path)
        require_gpu(device)

    def predict_raw(self, crops: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(checked_crops(crops), dtype=np.float32)
        return np.asarray(self._model.predict_on_batch(x)).reshape(-1)

    def describe(self) -> dict:
        return {"runtime": self.name, "file": self.path.name}

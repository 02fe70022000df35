"""A network's .tflite file on LiteRT: the CPU runtime of a whole network (MobileNetV2)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.runtimes import checked_crops


class LiteRTRuntime:
    """One interpreter, resized when the number of crops changes; crops as float32 0..255."""

    name: str = "tflite"
    max_batch: int | None = None  # a float network: a crop's output is its own in any batch

    def __init__(self, path: Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.path = Path(path)
        self._interp = Interpreter(model_path=str(self.path), num_threads=threads)
        self._inp = self._interp.get_input_details()[0]["index"]
        self._out = self._interp.get_output_details()[0]["index"]
        self._batch = 0

    def predict_raw(self, crops: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(checked_crops(crops), dtype=np.float32)
        if self._batch != len(x):
            self._interp.resize_tensor_input(self._inp, list(x.shape))
            self._interp.allocate_tensors()
            self._batch = len(x)
        self._interp.set_tensor(self._inp, x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out).reshape(-1).copy()

    def describe(self) -> dict:
        return {"runtime": self.name, "file": self.path.name}

"""The served model: the card's numbers and a runtime, picked once by load_model.

`load_model` is the one place that decides how a model runs (detector.runtimes): LiteRT for a
network on the CPU, Keras on a GPU (or without a .tflite file), and for a frozen-trunk model the
ONNX int8 tower in the weight layout this CPU runs faithfully (self-checked) or, on a GPU, the
Keras float tower; both under the same numpy head. After that, scoring never asks which.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector.assess import Bands
from detector.card import (
    HOW_TO_FIX,
    STACKED,
    ModelError,
    check_card,
    check_model,
    head_path,
    model_root,
    network_files,
    read_card,
    tower_outputs,
)
from detector.runtimes import Runtime

__all__ = ["LoadedModel", "ModelError", "calibrate", "check_model", "load_model", "logit",
           "read_card"]
log = logging.getLogger(__name__)
RUNTIMES = ("auto", "tflite", "keras", "onnx")


def logit(p) -> np.ndarray:
    """log(p / (1 - p)), with p kept away from 0 and 1 (float32 sigmoids saturate)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def calibrate(p_raw: np.ndarray, temperature: float, prior_fake: float = 0.5) -> np.ndarray:
    """Temperature scaling, then the card's prior: sigmoid(logit(p) / T + logit(prior)).

    T is fitted on a calibration split with as many fakes as reals; prior_fake states the share
    of fakes the served probability assumes instead (0.5: none assumed; see the model card)."""
    return 1.0 / (1.0 + np.exp(-(logit(p_raw) / float(temperature) + logit(prior_fake))))


@dataclass
class LoadedModel:
    """A model ready to score (N,224,224,3) uint8 face crops: the card's numbers and a runtime.
    The threshold may be overridden once after loading (DFD_THRESHOLD)."""

    root: Path
    card: dict
    runtime: Runtime
    name: str
    version: str
    threshold: float
    temperature: float
    prior_fake: float
    bands: Bands
    served_mean: bool
    stability_margin: float  # faces within this many logits of their band's edge get the check

    @classmethod
    def from_card(cls, root: Path, card: dict, runtime: Runtime) -> LoadedModel:
        served_mean = card["assessment"].get("served") == "mean of variants"
        return cls(root, card, runtime, card["name"], card["version"], float(card["threshold"]),
                   float(card.get("temperature", 1.0)), float(card.get("prior_fake", 0.5)),
                   Bands.from_card(card), served_mean,
                   float("inf") if served_mean else
                   float(card["assessment"].get("stability_margin", float("inf"))))

    def info(self) -> dict:
        """Name, version and threshold, as announced to the web side and named in results."""
        return {"name": self.name, "version": self.version, "threshold": self.threshold}

    def predict_raw(self, crops: np.ndarray) -> np.ndarray:
        """Uncalibrated P(fake) per crop, exactly as the runtime outputs it."""
        return self.runtime.predict_raw(crops)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Calibrated P(fake) per crop."""
        return calibrate(self.runtime.predict_raw(crops), self.temperature, self.prior_fake)


def gpu_available() -> bool:
    """An NVIDIA GPU and a TensorFlow install are present (checked without importing TF)."""
    import importlib.util

    return Path("/dev/nvidia0").exists() and importlib.util.find_spec("tensorflow") is not None


def choose_runtime(device: str, has_tflite: bool, keras_only: bool = False) -> str:
    """tflite on the CPU (fastest there); keras when a GPU is asked for or found (device auto)."""
    if device == "gpu" or (device == "auto" and gpu_available()):
        return "keras"
    return "tflite" if has_tflite and not keras_only else "keras"


def load_model(path: str | os.PathLike, runtime: str = "auto", threads: int = 1,
               device: str = "cpu", card: dict | None = None) -> LoadedModel:
    """Load a model directory with its runtime: 'auto' picks by device (choose_runtime); a trunk
    model runs 'onnx' on the CPU ('tflite' means the same there), 'keras' on a GPU. `card`
    replaces the directory's card numbers (training scores at other priors with it)."""
    if runtime not in RUNTIMES:
        raise ModelError(f"unknown runtime {runtime!r}: use {', '.join(RUNTIMES)}")
    root = model_root(path)
    card = check_model(path) if card is None else check_card(root, card)
    if "trunk" in card:
        on_gpu = runtime == "keras" or (runtime == "auto" and (
            device == "gpu" or (device == "auto" and gpu_available())))
        runtime = "keras" if on_gpu else "onnx"
    elif runtime == "onnx":
        raise ModelError(f"runtime 'onnx' runs a frozen trunk; the model in {root} is a whole "
                         "network: use auto, tflite or keras")
    elif runtime == "auto":
        runtime = choose_runtime(device, network_files(root, card)[0].is_file(),
                                 Path(path).suffix == ".keras")
    try:
        model = LoadedModel.from_card(root, card, _runtime(root, card, runtime, threads, device))
    except ModelError:
        raise
    except Exception as exc:  # a corrupt file surfaces as many different exception types
        raise ModelError(f"cannot load the model in {root} ({exc}): {HOW_TO_FIX}") from exc
    log.info("process %d: %s %s runs on %s", os.getpid(), model.name, model.version,
             model.runtime.describe())
    return model


def _runtime(root: Path, card: dict, runtime: str, threads: int, device: str) -> Runtime:
    """The runtime object for a resolved runtime name ('tflite', 'keras' or 'onnx')."""
    from detector.runtimes.keras import KerasRuntime, require_gpu
    from detector.runtimes.litert import LiteRTRuntime

    if "trunk" not in card:
        tfl, ker = network_files(root, card)
        return LiteRTRuntime(tfl, threads) if runtime == "tflite" else KerasRuntime(ker, device)
    from detector.head import Head
    from detector.runtimes.trunk import KerasTower, TrunkRuntime

    head = Head.load(head_path(root, card))
    extra = {}
    if "stack" in card:  # the head reads the stacked model's logit too, at a 50/50 prior
        stack_root, stack_card = read_card(root / card["stack"]["model"])
        stacked = load_model(stack_root, "tflite" if runtime == "onnx" else "keras", threads,
                             device, {**stack_card, "prior_fake": 0.5})
        extra[STACKED] = lambda crops: logit(stacked.predict(crops))[:, None]
    detail = card["input"]["crop"]["detail"]
    if runtime == "keras":
        require_gpu(device)
        return TrunkRuntime("keras", KerasTower(tower_outputs(head.inputs)), head, detail, extra)
    from detector.runtimes.choice import onnx_tower

    tower, check = onnx_tower(tower_outputs(head.inputs), threads)
    return TrunkRuntime("onnx", tower, head, detail, extra, check)

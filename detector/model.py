"""The served model: a model directory (card.json, model.keras, model.tflite) and its runtime."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np

from detector.assess import Bands

CARD = "card.json"
TFLITE_MAGIC = b"TFL3"  # FlatBuffer file identifier at byte offset 4
HOW_TO_FIX = ("train one with `make train`, or point DFD_MODEL_PATH at a model directory "
              "holding card.json and model.tflite or model.keras")


class ModelError(RuntimeError):
    """The model is missing or unusable; the message says what to do."""


def _card(path: str | os.PathLike) -> tuple[Path, dict]:
    root = Path(path)
    if root.suffix == ".keras":
        root = root.parent
    card_path = root / CARD
    if not root.is_dir():
        raise ModelError(f"model directory {root} does not exist: {HOW_TO_FIX}")
    if not card_path.is_file():
        raise ModelError(f"{card_path} is missing: {HOW_TO_FIX}")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{card_path} is not valid JSON ({exc}): {HOW_TO_FIX}") from None
    for key in ("name", "version", "threshold", "files"):
        if key not in card:
            raise ModelError(f"{card_path} lacks {key!r}: {HOW_TO_FIX}")
    return root, card


def check_model(path: str | os.PathLike) -> dict:
    """Check the model files without loading TensorFlow (safe before the fork); returns the card."""
    root, card = _card(path)
    try:
        Bands.from_card(card)
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{root / CARD} has no usable assessment bands ({exc!r} missing or "
                         f"wrong): fit them with `dfd-train bands {root}`") from None
    files = card["files"]
    if "trunk" in card:
        _check_trunk_model(root, card)
        return card
    tfl, ker = root / files.get("tflite", "model.tflite"), root / files.get("keras", "model.keras")
    if tfl.is_file():
        with open(tfl, "rb") as fh:
            head = fh.read(8)
        if head[4:8] != TFLITE_MAGIC:
            raise ModelError(f"{tfl} is not a TFLite model (corrupt or truncated): {HOW_TO_FIX}")
    elif ker.is_file():
        if not zipfile.is_zipfile(ker):
            raise ModelError(f"{ker} is not a .keras archive (corrupt or truncated): {HOW_TO_FIX}")
    else:
        raise ModelError(f"{root} holds neither {tfl.name} nor {ker.name}: {HOW_TO_FIX}")
    return card


STACKED = "mnv2"  # the head input that is the stacked model's logit


def _stacked_model(root: Path, card: dict, threads: int) -> LoadedModel:
    """The model whose logit a stacked head reads, at a 50/50 prior (as it was trained on)."""
    stack_root, stack_card = _card(root / card["stack"]["model"])
    return LoadedModel(stack_root, {**stack_card, "prior_fake": 0.5}, "tflite", threads)


def _check_trunk_model(root: Path, card: dict) -> None:
    """A frozen-trunk model: its head file parses and the pinned trunk file is there, unchanged
    (the sha256 check reads 90 MB: about a second, once per worker start)."""
    from detector.head import Head
    from detector.trunk import TrunkError, checked_file

    head_path = root / card["files"].get("head", "head.json")
    try:
        Head.load(head_path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{head_path} is missing or not a usable head ({exc!r}): "
                         f"{HOW_TO_FIX}") from None
    try:
        checked_file(expected=card["trunk"]["sha256"])
    except TrunkError as exc:
        raise ModelError(f"the model in {root} needs its trunk: {exc}") from None
    if "stack" in card:
        stack = check_model(root / card["stack"]["model"])
        if stack["version"] != card["stack"]["version"]:
            raise ModelError(f"the model in {root} stacks {card['stack']['name']} "
                             f"{card['stack']['version']}, but {card['stack']['model']} holds "
                             f"version {stack['version']}: {HOW_TO_FIX}")


def logit(p) -> np.ndarray:
    """log(p / (1 - p)), with p kept away from 0 and 1 (float32 sigmoids saturate)."""
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def calibrate(p_raw: np.ndarray, temperature: float, prior_fake: float = 0.5) -> np.ndarray:
    """Temperature scaling, then the card's prior: sigmoid(logit(p) / T + logit(prior)).

    T is fitted on a calibration split with as many fakes as reals; prior_fake states the share
    of fakes the served probability assumes instead (0.5: none assumed; see the model card)."""
    return 1.0 / (1.0 + np.exp(-(logit(p_raw) / float(temperature) + logit(prior_fake))))


class LoadedModel:
    """A model ready to score (N,224,224,3) uint8 face crops; the runtime is chosen at load."""

    def __init__(self, root: Path, card: dict, runtime: str, threads: int, device: str = "cpu"):
        self.root, self.card, self.runtime = root, card, runtime
        self.name, self.version = card["name"], card["version"]
        self.threshold = float(card["threshold"])
        self.temperature = float(card.get("temperature", 1.0))
        self.prior_fake = float(card.get("prior_fake", 0.5))
        self.bands = Bands.from_card(card)
        self.served_mean = card["assessment"].get("served") == "mean of variants"
        # Faces scored within this many logits of the threshold get the stability check.
        self.stability_margin = float("inf") if self.served_mean else \
            float(card["assessment"].get("stability_margin", float("inf")))
        files = card["files"]
        if runtime == "keras" and "trunk" in card:
            self._detail = card["input"]["crop"]["detail"]
            self._gpu_trunk(root, card, threads, device)
            _require_gpu(device)
        elif runtime == "onnx":
            from detector.head import Head
            from detector.trunk import Tower

            self._head = Head.load(root / files.get("head", "head.json"))
            self._tower = Tower(tuple(k for k in self._head.inputs if k != STACKED),
                                threads=threads)
            self._detail = card["input"]["crop"]["detail"]
            # A stacked head reads the previous model's logit too (card "stack").
            self._stack = _stacked_model(root, card, threads) if "stack" in card else None
        elif runtime == "tflite":
            from ai_edge_litert.interpreter import Interpreter

            self._interp = Interpreter(model_path=str(root / files["tflite"]), num_threads=threads)
            self._inp = self._interp.get_input_details()[0]["index"]
            self._out = self._interp.get_output_details()[0]["index"]
            self._batch = 0
        else:
            import keras

            # safe_mode refuses Lambda layers and other deserialised code.
            self._keras = keras.saving.load_model(root / files["keras"], safe_mode=True)
            _require_gpu(device)

    def _gpu_trunk(self, root: Path, card: dict, threads: int, device: str) -> None:
        """The GPU path of a trunk model: the Keras float tower (detector.clip_keras). Alone, the
        tower and head are one Keras model; a stacked head also reads the stacked model's logit,
        that model running on Keras too, and the head (one dot product) runs in numpy."""
        if "stack" not in card:
            from detector.clip_gpu import build_gpu_model

            self._keras, self._stack = build_gpu_model(root), None
            return
        from detector.clip_keras import load_keras_tower
        from detector.head import Head

        self._head = Head.load(root / card["files"].get("head", "head.json"))
        self._tower_inputs = tuple(k for k in self._head.inputs if k != STACKED)
        self._keras = load_keras_tower(self._tower_inputs)
        stack_root, stack_card = _card(root / card["stack"]["model"])
        self._stack = LoadedModel(stack_root, {**stack_card, "prior_fake": 0.5}, "keras",
                                  threads, device)

    def info(self) -> dict:
        """Name, version and threshold, as announced to the web side and named in results."""
        return {"name": self.name, "version": self.version, "threshold": self.threshold}

    def predict_raw(self, crops: np.ndarray) -> np.ndarray:
        """Uncalibrated P(fake) per crop, exactly as the exported network outputs it."""
        x = np.ascontiguousarray(crops, dtype=np.float32)
        if x.ndim != 4 or x.shape[1:] != (224, 224, 3):
            raise ValueError(f"expected (N, 224, 224, 3) crops, got {x.shape}")
        if "trunk" in self.card and (self.runtime == "onnx" or self._stack is not None):
            return self._trunk_p(crops)
        if self.runtime == "keras" and "trunk" in self.card:  # tower and head: one Keras model
            x = self._detailed(crops).astype(np.float32)
        if self.runtime == "keras":
            return np.asarray(self._keras.predict_on_batch(x)).reshape(-1)
        if self._batch != len(x):
            self._interp.resize_tensor_input(self._inp, list(x.shape))
            self._interp.allocate_tensors()
            self._batch = len(x)
        self._interp.set_tensor(self._inp, x)
        self._interp.invoke()
        return self._interp.get_tensor(self._out).reshape(-1).copy()

    def _detailed(self, crops: np.ndarray) -> np.ndarray:
        from detector.crop import normalise_detail

        return normalise_detail(np.asarray(crops, np.uint8), self._detail["px"],
                                self._detail["jpeg_quality"])

    def _trunk_p(self, crops: np.ndarray) -> np.ndarray:
        """A trunk head's P(fake): the tower's features (ONNX Runtime, or the Keras rebuild on
        the GPU path), the stacked model's logit where the head reads one, then the head."""
        if self.runtime == "onnx":
            feats = self._tower.features(self._detailed(crops))
        else:
            from detector.clip_keras import features

            feats = features(self._keras, self._detailed(crops), self._tower_inputs)
        if self._stack is not None:
            feats[STACKED] = logit(self._stack.predict(crops))[:, None]
        return self._head.p_fake(feats)

    def predict(self, crops: np.ndarray) -> np.ndarray:
        """Calibrated P(fake) per crop."""
        return calibrate(self.predict_raw(crops), self.temperature, self.prior_fake)


def _require_gpu(device: str) -> None:
    if device == "gpu":
        import tensorflow as tf

        if not tf.config.list_physical_devices("GPU"):
            raise ModelError("DFD_DEVICE=gpu but TensorFlow sees no GPU: install "
                             "tensorflow[and-cuda] on a CUDA machine, or use "
                             "DFD_DEVICE=auto or cpu")


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
               device: str = "cpu") -> LoadedModel:
    """Load a model directory; runtime 'auto' picks by device (see choose_runtime)."""
    card = check_model(path)
    root = Path(path).parent if Path(path).suffix == ".keras" else Path(path)
    has_tflite = (root / card["files"].get("tflite", "model.tflite")).is_file()
    if "trunk" in card:
        # A frozen CLIP trunk: ONNX Runtime on the CPU, the Keras float rebuild on a GPU
        # (detector.clip_gpu; its features agree with the served ones to cosine 0.97-0.998).
        if runtime == "auto":
            on_gpu = device == "gpu" or (device == "auto" and gpu_available())
            runtime = "keras" if on_gpu else "onnx"
        elif runtime == "tflite":
            runtime = "onnx"
    elif runtime == "auto":
        runtime = choose_runtime(device, has_tflite, Path(path).suffix == ".keras")
    if runtime not in ("tflite", "keras", "onnx"):
        raise ModelError(f"unknown runtime {runtime!r}: use auto, tflite or keras")
    try:
        return LoadedModel(root, card, runtime, threads, device)
    except ModelError:
        raise
    except Exception as exc:  # a corrupt file surfaces as many different exception types
        raise ModelError(f"cannot load the model in {root} ({exc}): {HOW_TO_FIX}") from exc

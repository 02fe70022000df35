"""Write the model directory: model.keras, model.tflite (checked against Keras), card, card.md."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from detector.chunks import in_chunks
from training.common.templating import card_markdown

NAME = "dfd-mobilenetv2"


def to_tflite(model, int8: bool = False) -> bytes:
    """TFLite flatbuffer of a Keras model (builtin ops only, XNNPACK-friendly): float32, or with
    int8 weights (LiteRT dynamic-range quantisation, `dfd-train quantize`)."""
    import tensorflow as tf

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if int8:
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    return conv.convert()


def tflite_predict(tflite_path: str | Path, x: np.ndarray, threads: int = 2) -> np.ndarray:
    """P(fake) for a float32 (N,224,224,3) batch through ai-edge-litert, as the worker runs it."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(tflite_path), num_threads=threads)
    inp = interp.get_input_details()[0]["index"]
    out = interp.get_output_details()[0]["index"]
    res = []
    for s in range(0, len(x), 32):
        b = np.ascontiguousarray(x[s:s + 32], dtype=np.float32)
        interp.resize_tensor_input(inp, list(b.shape))
        interp.allocate_tensors()
        interp.set_tensor(inp, b)
        interp.invoke()
        res.append(interp.get_tensor(out).reshape(-1).copy())
    return np.concatenate(res) if res else np.zeros(0, np.float32)


def keras_predict(model, x: np.ndarray, batch: int = 64) -> np.ndarray:
    """P(fake) through Keras predict_on_batch (no per-call overhead of predict())."""
    return in_chunks(lambda part: np.asarray(model.predict_on_batch(
        np.asarray(part, np.float32))).reshape(-1), x, batch)


def check_agreement(model, tflite_path: str | Path, crops: np.ndarray) -> float:
    """max |P_keras - P_tflite| over the crops (uint8 or float 0..255)."""
    x = np.asarray(crops, dtype=np.float32)
    return float(np.max(np.abs(keras_predict(model, x) - tflite_predict(tflite_path, x))))


def export_model(model, out_dir: str | Path, card: dict, check_crops: np.ndarray | None,
                 tol: float = 1e-3) -> dict:
    """Save model.keras + model.tflite, verify agreement, write card.json and MODEL_CARD.md."""
    from training.e2e.model import weights_hash

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")  # Keras 3 saves no optimizer state for an uncompiled model
    (out / "model.tflite").write_bytes(to_tflite(model))
    card = dict(card)
    card.setdefault("name", NAME)
    card["version"] = weights_hash(model)
    card.setdefault("created_at", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    card["files"] = {"keras": "model.keras", "tflite": "model.tflite"}
    if check_crops is not None and len(check_crops):
        delta = check_agreement(model, out / "model.tflite", check_crops)
        card["export_check"] = {"n_images": int(len(check_crops)), "max_abs_delta_p_fake": delta,
                                "tolerance": tol}
        if delta > tol:
            raise RuntimeError(f"TFLite export disagrees with Keras: max |dP| {delta:.2e} > {tol}")
    (out / "card.json").write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    (out / "MODEL_CARD.md").write_text(card_markdown(card))
    return card

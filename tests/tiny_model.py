"""A small, real Keras model saved the way training saves one, for pipeline tests."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path


def build_tiny_model_dir(out: Path, seed: int = 0) -> Path:
    """Write model.keras, model.tflite and card.json of a tiny seeded CNN into out."""
    import keras
    import numpy as np
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    inp = keras.Input((224, 224, 3), dtype="float32")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.AveragePooling2D(8)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out_t = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inp, out_t, name="tiny")
    out.mkdir(parents=True, exist_ok=True)
    model.save(out / "model.keras")
    (out / "model.tflite").write_bytes(tf.lite.TFLiteConverter.from_keras_model(model).convert())
    digest = hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights()))
    card = {"name": "tiny-test-model", "version": digest.hexdigest()[:12],
            "input": {"shape": [224, 224, 3], "dtype": "float32", "range": [0, 255]},
            "files": {"keras": "model.keras", "tflite": "model.tflite"},
            "threshold": 0.3, "temperature": 1.0}
    (out / "card.json").write_text(json.dumps(card, indent=2))
    return out


if __name__ == "__main__":
    import sys

    print(build_tiny_model_dir(Path(sys.argv[1])))

"""Small, real Keras models saved the way training saves one, for pipeline and service tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# Test bands (not fitted: these models are not detectors). The shipped model's come from
# `dfd-train bands` on the calibration split.
TEST_ASSESSMENT = {"likely_real_below": 0.2, "likely_fake_from": 0.8, "min_face_px": 90,
                   "max_faces": 4, "max_real_share": 0.03, "max_fake_share": 0.1,
                   "served": "original"}


def _export(model, out: Path, name: str) -> Path:
    from training.e2e.export import export_model

    # Saved exactly as training saves a model, so the worker loads it through its real path.
    export_model(model, out, {"name": name, "threshold": 0.3, "temperature": 1.0,
                              "input": {"shape": [224, 224, 3], "dtype": "float32",
                                        "range": [0, 255]},
                              "assessment": dict(TEST_ASSESSMENT)}, None)
    return out


def build_tiny_model_dir(out: Path, seed: int = 0) -> Path:
    """Write model.keras, model.tflite and card.json of a tiny seeded CNN into out."""
    import keras

    keras.utils.set_random_seed(seed)
    inp = keras.Input((224, 224, 3), dtype="float32")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.AveragePooling2D(8)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out_t = keras.layers.Dense(1, activation="sigmoid")(x)
    return _export(keras.Model(inp, out_t, name="tiny"), out, "tiny-test-model")


def build_controlled_model_dir(out: Path, brightness: float, asymmetry: float) -> Path:
    """A model whose P(fake) is known from the crop: sigmoid(brightness * (mean - 128) / 64 +
    asymmetry * (left half's mean - right half's) / 64). Bright faces score fake, dark ones
    real; with asymmetry, a mirrored crop scores the other way (an unstable verdict)."""
    import keras

    inp = keras.Input((224, 224, 3), dtype="float32")
    x = keras.layers.AveragePooling2D(112)(inp)  # 2x2 cells x 3 channels
    x = keras.layers.Flatten()(x)  # (row, column, channel): column 0 is the left half
    dense = keras.layers.Dense(1, activation="sigmoid")
    out_t = dense(x)
    left = np.array([1.0 if (i // 3) % 2 == 0 else -1.0 for i in range(12)])
    w = brightness / (12 * 64) + asymmetry * left / (6 * 64)
    dense.set_weights([w.reshape(12, 1).astype(np.float32),
                       np.array([-brightness * 128 / 64], np.float32)])
    return _export(keras.Model(inp, out_t, name="controlled"), out, "controlled-test-model")


if __name__ == "__main__":
    import sys

    print(build_tiny_model_dir(Path(sys.argv[1])))

"""A small, real Keras model saved the way training saves one, for pipeline tests."""

from __future__ import annotations

from pathlib import Path


def build_tiny_model_dir(out: Path, seed: int = 0) -> Path:
    """Write model.keras, model.tflite and card.json of a tiny seeded CNN into out."""
    import keras

    from training.export import export_model

    keras.utils.set_random_seed(seed)
    inp = keras.Input((224, 224, 3), dtype="float32")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.AveragePooling2D(8)(x)
    x = keras.layers.Conv2D(8, 3, activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out_t = keras.layers.Dense(1, activation="sigmoid")(x)
    model = keras.Model(inp, out_t, name="tiny")
    # Saved exactly as training saves a model, so the worker loads it through its real path.
    export_model(model, out, {"name": "tiny-test-model", "threshold": 0.3, "temperature": 1.0,
                              "input": {"shape": [224, 224, 3], "dtype": "float32",
                                        "range": [0, 255]}}, None)
    return out


if __name__ == "__main__":
    import sys

    print(build_tiny_model_dir(Path(sys.argv[1])))

"""The detector network: MobileNetV2-0.35 ImageNet trunk with a one-unit sigmoid head."""

from __future__ import annotations

from pathlib import Path

import numpy as np

INPUT_SIZE = 224
TRUNK_NAME = "trunk"


def _keras():
    import keras

    return keras


def load_trunk_weights(trunk, weights_npz: str | Path) -> int:
    """Set the trunk's layer weights from the `LAYER/WEIGHT` npz; returns arrays set."""
    data = np.load(weights_npz)
    # Group keys by layer, keeping file order: each layer's arrays are stored in the order
    # Keras' get_weights() returns them.
    by_layer: dict[str, list[str]] = {}
    for key in data.files:
        layer, _ = key.split("/", 1)
        by_layer.setdefault(layer, []).append(key)
    count = 0
    for layer in trunk.layers:
        if not layer.weights:
            continue
        keys = by_layer.pop(layer.name, None)
        if keys is None:
            raise ValueError(f"no weights for trunk layer {layer.name!r}")
        arrays = [data[k] for k in keys]
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise ValueError(f"{layer.name}: shapes {[a.shape for a in arrays]} != {expected}")
        layer.set_weights(arrays)
        count += len(arrays)
    if by_layer:
        raise ValueError(f"unused weights for layers: {sorted(by_layer)[:5]}")
    return count


def build_model(weights_npz: str | Path | None, internal_size: int = INPUT_SIZE,
                dropout: float = 0.2, seed: int = 0, mask_head: bool = False,
                width: float = 0.35):
    """Input 224x224x3 float 0..255 -> P(fake); preprocessing is inside the model. With
    mask_head, a second output: the blend mask on the trunk's grid (serving_model drops it)."""
    keras = _keras()
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), dtype="float32", name="image")
    x = inputs
    if internal_size != INPUT_SIZE:
        # Resizing inside the model keeps the serving contract (224 in) fixed while the trunk
        # runs at a cheaper resolution. Plain bilinear: antialiased resizing has no TFLite
        # builtin op (it would need the Flex delegate, which ai-edge-litert lacks).
        x = keras.layers.Resizing(internal_size, internal_size, interpolation="bilinear",
                                  name="resize")(x)
    x = keras.layers.Rescaling(1.0 / 127.5, offset=-1.0, name="to_unit_range")(x)
    trunk = keras.applications.MobileNetV2(
        input_shape=(internal_size, internal_size, 3), alpha=width, include_top=False,
        weights=None)
    trunk.name = TRUNK_NAME
    if weights_npz is not None:
        load_trunk_weights(trunk, weights_npz)
    freeze_batchnorm(trunk)
    features = trunk(x)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    x = keras.layers.Dropout(dropout, seed=seed, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="p_fake")(x)
    if mask_head:
        # Face X-ray's idea on a budget: where on the trunk's grid a blend boundary lies.
        mask = keras.layers.Conv2D(1, 1, activation="sigmoid", name="blend_mask")(features)
        return keras.Model(inputs, [outputs, mask], name="dfd_mobilenetv2_masked")
    return keras.Model(inputs, outputs, name="dfd_mobilenetv2")


def serving_model(model):
    """The P(fake)-only model (same layers and weights): what is exported and served."""
    if len(model.outputs) == 1:
        return model
    keras = _keras()
    return keras.Model(model.inputs, model.get_layer("p_fake").output, name="dfd_mobilenetv2")


def masked_bce(y_true, y_pred):
    """Binary cross-entropy over mask cells whose target is >= 0; -1 marks "no target" (a real
    fake: where it was blended is unknown). Mean over the cells that have one."""
    import keras.ops as K

    have = K.cast(y_true >= 0, "float32")
    t = K.clip(y_true, 0.0, 1.0)
    p = K.clip(y_pred, 1e-6, 1.0 - 1e-6)
    cell = -(t * K.log(p) + (1.0 - t) * K.log(1.0 - p)) * have
    return K.sum(cell) / K.maximum(K.sum(have), 1.0)


def trunk_of(model):
    """The MobileNetV2 sub-model inside a detector model."""
    return model.get_layer(TRUNK_NAME)


def freeze_batchnorm(trunk) -> int:
    """Make every BatchNorm layer non-trainable (Keras 3 then runs it in inference mode)."""
    keras = _keras()
    n = 0
    for layer in trunk.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
            n += 1
    return n


def set_trunk_trainable(model, trainable: bool) -> None:
    """Head-only (False) or full fine-tune (True); BatchNorm layers stay frozen either way."""
    trunk = trunk_of(model)
    trunk.trainable = trainable
    if trainable:
        # trunk.trainable=True re-enables every sub-layer, BatchNorm included: freeze it again.
        freeze_batchnorm(trunk)


def batchnorm_stats(model) -> list[np.ndarray]:
    """Copies of every trunk BatchNorm moving mean and variance, to compare before/after fit."""
    keras = _keras()
    out = []
    for layer in trunk_of(model).layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            out.append(np.array(keras.ops.convert_to_numpy(layer.moving_mean)))
            out.append(np.array(keras.ops.convert_to_numpy(layer.moving_variance)))
    return out


def weights_hash(model) -> str:
    """12 hex of the sha256 over all weight arrays' bytes, in model order (content version)."""
    import hashlib

    h = hashlib.sha256()
    for w in model.get_weights():
        h.update(np.ascontiguousarray(w).tobytes())
    return h.hexdigest()[:12]

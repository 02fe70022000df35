"""Crops -> P(fake) as one Keras model: the CLIP tower and a head, for DFD_DEVICE=gpu workers.

On a CPU the worker runs the tower on ONNX Runtime (or LiteRT) and the head in numpy; on a GPU
the whole path is one Keras model built from the float rebuild (detector.clip_keras), so the
trunk runs where TensorFlow puts it. Only built-in layers and clip_keras' registered ones, so the
saved model loads in safe mode.

Head format (written by training, `head.json` beside the card; the card names the trunk's served
outputs in `trunk.outputs`):
    {"inputs": ["b8", "embed"], "mean": [...], "scale": [...], "coef": [...], "intercept": b}
features are the tower's outputs concatenated in `inputs` order, standardised `(x - mean) /
scale`, then P(fake) = sigmoid(x . coef + intercept).
"""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
from keras import layers

from detector import clip_keras, trunk

WIDTH = {trunk.EMBED: clip_keras.EMBED_DIM}


def load_head(path: str | Path) -> dict:
    """The head's JSON, checked for consistent widths."""
    head = json.loads(Path(path).read_text())
    inputs = tuple(head["inputs"])
    width = sum(WIDTH.get(n, clip_keras.DIM) for n in inputs)
    for key in ("mean", "scale", "coef"):
        if len(head[key]) != width:
            raise ValueError(f"{path}: {key} has {len(head[key])} values, the inputs "
                             f"{'+'.join(inputs)} give {width} features")
    if min(head["scale"]) <= 0:
        raise ValueError(f"{path}: scale must be positive")
    return {**head, "inputs": inputs, "intercept": float(head["intercept"])}


def head_layers(x, head: dict):
    """Standardise then logistic, as built-in layers (Normalization divides by sqrt(variance))."""
    mean = np.asarray(head["mean"], np.float32)
    var = np.square(np.asarray(head["scale"], np.float32))
    x = layers.Normalization(mean=mean, variance=var, name="standardise")(x)
    dense = layers.Dense(1, activation="sigmoid", name="logistic")
    out = dense(x)
    dense.set_weights([np.asarray(head["coef"], np.float32)[:, None],
                       np.asarray([head["intercept"]], np.float32)])
    return out


def build_gpu_model(card: str | Path, head: str | Path | None = None,
                    source: Path | None = None) -> keras.Model:
    """(N,224,224,3) float crops in 0..255 (as the worker passes them) -> (N,1) P(fake), raw
    (before the card's calibration). `card` is card.json or its directory; the head defaults
    to head.json beside it. The tower is cut after the last block the head reads."""
    card = Path(card)
    card_file = card / "card.json" if card.is_dir() else card
    head = load_head(Path(head) if head else card_file.parent / "head.json")
    served = clip_keras.card_outputs(card_file)
    missing = [n for n in head["inputs"] if n not in served]
    if missing:
        raise ValueError(f"the head reads {missing}, not among the card's trunk.outputs {served}")
    tower = clip_keras.load_keras_tower(head["inputs"], source)
    inp = keras.Input((clip_keras.SIZE, clip_keras.SIZE, 3), name="crops")
    x = layers.Normalization(mean=trunk.MEAN * 255.0, variance=np.square(trunk.STD * 255.0),
                             name="clip_normalise")(inp)
    feats = tower(x)
    feats = feats if isinstance(feats, list | tuple) else [feats]
    # Each input scaled to unit length, as detector.head.Head does on the CPU.
    feats = [layers.UnitNormalization(axis=-1, name=f"unit_{n}")(f)
             for n, f in zip(head["inputs"], feats, strict=True)]
    x = feats[0] if len(feats) == 1 else layers.Concatenate(name="features")(list(feats))
    return keras.Model(inp, head_layers(x, head), name="clip_head")


def numpy_head(feats: dict[str, np.ndarray], head: dict) -> np.ndarray:
    """The same head in numpy, on trunk.Tower features: the CPU path (detector.head.Head)."""
    from detector.head import Head

    return Head.from_json({**head, "inputs": list(head["inputs"]), "kind": "logistic"}
                          ).p_fake(feats).astype(np.float64)

"""CLIP's first blocks tuned end to end (issue 24, point 2): `dfd-train train --arch clip-lora`
or `--arch clip-ln`.

The frozen-feature model (training/clip/study.py) reads the class token of a frozen tower; this one
trains the tower's first blocks where the low-level traces live, on the same batches, augmentation,
pseudo-fakes and aligned fakes as the MobileNetV2 recipe (training/e2e/loop.py), so the two are
compared on the same left-out folds:
- `clip-lora`: a low-rank residual (LoRA, Keras' own `Dense.enable_lora`, B started at zero so the
  tower starts as the frozen one) on every projection of blocks 1..6: q, k, v, out, fc1, fc2.
- `clip-ln`: the LayerNorms of blocks 1..6 (and the one before them) tuned, everything else frozen
  (the light tuning `../shared/data/README.md` measured on a smaller draw).
Both read the class token after block 6 through a LayerNorm and a one-unit head. The served model
is the same network with each adapter merged into its weight matrix (`serving_model`): no LoRA
layer is saved, and it costs what the frozen tower cut at block 6 costs.
"""

from __future__ import annotations

import numpy as np

from detector import trunk

BLOCK = 6  # the block the head reads (the frozen study's b6: half the tower's cost)
TRUNK_NAME = "trunk"
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "out_proj")
TUNES = ("lora", "ln")


def _dense_layers(tower) -> list:
    """Every projection of blocks 1..BLOCK, in a fixed order."""
    out = []
    for k in range(1, BLOCK + 1):
        attn = tower.get_layer(f"b{k}_attn")
        out += [getattr(attn, p) for p in PROJECTIONS]
        out += [tower.get_layer(f"b{k}_fc1"), tower.get_layer(f"b{k}_fc2")]
    return out


def _tuned(path: str, tune: str) -> bool:
    """Whether a tower variable (by its path) is trained under this kind of tuning."""
    leaf = path.split("/")[-1]
    if tune == "lora":
        return leaf.startswith("lora_kernel")
    return ("_ln" in path or "pre_layrnorm" in path) and leaf in ("gamma", "beta")


def build_tuned_model(tune: str, rank: int = 8, dropout: float = 0.2, seed: int = 0,
                      load_weights: bool = True):
    """Input 224x224x3 float 0..255 -> P(fake); CLIP's normalisation is inside the model.
    rank 0 builds the plain network (what serving_model fills with merged weights)."""
    import keras
    from keras import layers

    from detector import clip_keras

    if tune not in TUNES:
        raise ValueError(f"tune must be one of {TUNES}, got {tune!r}")
    tower = (clip_keras.build_keras_tower((f"b{BLOCK}",)) if load_weights
             else clip_keras._graph((f"b{BLOCK}",), BLOCK))
    tower.name = TRUNK_NAME
    if tune == "lora" and rank:
        for dense in _dense_layers(tower):
            dense.enable_lora(rank)
    inputs = keras.Input((clip_keras.SIZE, clip_keras.SIZE, 3), dtype="float32", name="image")
    # The tower's own preprocessing (detector.trunk.pixel_values) on 224 px crops: /255, then
    # CLIP's per-channel mean and std.
    x = layers.Normalization(mean=(trunk.MEAN * 255).tolist(),
                             variance=((trunk.STD * 255) ** 2).tolist(), name="clip_norm")(inputs)
    feats = tower(x)
    feats = feats[0] if isinstance(feats, list | tuple) else feats
    # The residual stream's class token has a few huge channels: normalise before the head.
    x = layers.LayerNormalization(epsilon=1e-5, name="head_norm")(feats)
    x = layers.Dropout(dropout, seed=seed, name="dropout")(x)
    out = layers.Dense(1, activation="sigmoid", dtype="float32", name="p_fake")(x)
    model = keras.Model(inputs, out, name=f"dfd_clip_{tune}")
    set_phase(model, full=False)
    return model


def tune_of(model) -> str:
    """'lora' or 'ln', from the model's name."""
    return model.name.rsplit("_", 1)[-1]


def set_phase(model, full: bool) -> None:
    """Head only (full=False) or head and the tuned tower variables; the rest stays frozen."""
    tune = tune_of(model)
    tower = model.get_layer(TRUNK_NAME)
    tower.trainable = full  # Keras sets every variable's flag from this: set them again below
    for v in tower.weights:
        v.trainable = full and _tuned(v.path, tune)


def _absorbs(path: str, tune: str) -> bool:
    """A projection matrix under LoRA: Keras saves it with its adapter merged in (and loads the
    adapter back as zeros), so after a save and load it legitimately differs from CLIP's."""
    return tune == "lora" and path.endswith("/kernel") and "patch_embedding" not in path


def frozen_weights(model) -> list[np.ndarray]:
    """Copies of every tower variable that is neither tuned nor a matrix that absorbs its
    adapter when saved: they must not move in training."""
    import keras

    tune = tune_of(model)
    return [np.array(keras.ops.convert_to_numpy(v)) for v in model.get_layer(TRUNK_NAME).weights
            if not _tuned(v.path, tune) and not _absorbs(v.path, tune)]


def after_load(model, seed: int = 0) -> None:
    """Draw each adapter's A again after a load (a resume, or going back to the best epoch).
    Keras loads a LoRA layer with its adapter merged into the matrix and A = B = 0; with both
    zero the adapter's gradients are zero too and it would never learn again. B stays zero, so
    the model computes exactly what was saved."""
    import keras

    if tune_of(model) != "lora":
        return
    init = keras.initializers.HeUniform(seed=seed)
    for dense in _dense_layers(model.get_layer(TRUNK_NAME)):
        if dense.lora_enabled:
            dense.lora_kernel_a.assign(init(dense.lora_kernel_a.shape))


def serving_model(model):
    """The same network in float32 with every adapter merged into its matrix (W + A B alpha/r):
    plain Dense layers only, so the saved file needs no LoRA and costs the plain tower."""
    import keras

    tune = tune_of(model)
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")  # a bf16-trained model serves in float32
    try:
        plain = build_tuned_model(tune, rank=0, load_weights=False)
    finally:
        keras.config.set_dtype_policy(policy)
    for layer in model.layers:
        if layer.name != TRUNK_NAME and layer.weights:
            plain.get_layer(layer.name).set_weights(layer.get_weights())
    src, dst = model.get_layer(TRUNK_NAME), plain.get_layer(TRUNK_NAME)
    for d_src, d_dst in zip(_dense_layers(src), _dense_layers(dst), strict=True):
        # Dense.kernel is the merged matrix when LoRA is on.
        d_dst.set_weights([np.asarray(keras.ops.convert_to_numpy(w), np.float32)
                           for w in (d_src.kernel, d_src.bias)])
    for layer in src.layers:
        if layer.weights and not layer.name.endswith(("_attn", "_fc1", "_fc2")):
            dst.get_layer(layer.name).set_weights(layer.get_weights())
    return plain

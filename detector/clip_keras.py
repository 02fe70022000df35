"""The CLIP ViT-B/16 image tower as a Keras 3 model, rebuilt from the pinned ONNX file's weights.

The ONNX file (detector.trunk) holds int8 weight matrices with one scale per output channel and
zero point 0; `W = q * scale` gives the float tower with only weight rounding left. Each
initializer is mapped to its layer by tracing the graph's node names
(`/vision_model/encoder/layers.K/self_attn/q_proj/MatMul_quant` -> block K+1's query projection).

The model takes CLIP-normalised NHWC float crops (`detector.trunk.pixel_values` transposed back to
NHWC), is cut after the last block it needs, and outputs, in the order asked, the class token of
the residual stream (pre-LayerNorm) after the named blocks ('b1'..'b12') and/or 'embed' (the
projected 512-d embedding, post-LayerNorm): the same names and order as `detector.trunk.Tower`.
Only built-in layers and the small registered layers below are used, so the saved file loads with
`keras.saving.load_model(..., safe_mode=True)`. It serves DFD_DEVICE=gpu workers and is the source
of the LiteRT conversion (bench/trunk_bench.py).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from detector import trunk

DIM, HEADS, MLP, TOKENS, PATCH, SIZE, EMBED_DIM = 768, 12, 3072, 197, 16, 224, 512
EPS = 1e-5
DEFAULT_OUTPUTS = ("b12", trunk.EMBED)


@keras.saving.register_keras_serializable(package="dfd")
class ClassPosEmbed(layers.Layer):
    """Prepends the class embedding to the patch tokens and adds the position embedding."""

    def build(self, input_shape):
        self.class_embedding = self.add_weight(shape=(DIM,), name="class_embedding")
        self.position_embedding = self.add_weight(shape=(TOKENS, DIM), name="position_embedding")

    def call(self, x):
        cls = ops.broadcast_to(self.class_embedding, (ops.shape(x)[0], 1, DIM))
        return ops.concatenate([ops.cast(cls, x.dtype), x], axis=1) + self.position_embedding

    def compute_output_shape(self, input_shape):
        return (input_shape[0], TOKENS, DIM)


@keras.saving.register_keras_serializable(package="dfd")
class ClsToken(layers.Layer):
    """Token 0 of a (N, T, D) sequence."""

    def call(self, x):
        return x[:, 0, :]

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])


@keras.saving.register_keras_serializable(package="dfd")
class QuickGelu(layers.Layer):
    """CLIP's activation: x * sigmoid(1.702 x)."""

    def call(self, x):
        return x * ops.sigmoid(1.702 * x)


@keras.saving.register_keras_serializable(package="dfd")
class SelfAttention(layers.Layer):
    """Multi-head self-attention with separate q/k/v/out projections (Dense, as CLIP has them)."""

    def __init__(self, dim: int = DIM, heads: int = HEADS, **kwargs):
        super().__init__(**kwargs)
        self.dim, self.heads = dim, heads
        self.q_proj = layers.Dense(dim, name="q_proj")
        self.k_proj = layers.Dense(dim, name="k_proj")
        self.v_proj = layers.Dense(dim, name="v_proj")
        self.out_proj = layers.Dense(dim, name="out_proj")

    def build(self, input_shape):
        for proj in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            proj.build(input_shape)

    def _split(self, y, tokens):
        y = ops.reshape(y, (-1, tokens, self.heads, self.dim // self.heads))
        return ops.transpose(y, (0, 2, 1, 3))

    def call(self, x):
        tokens = x.shape[1]
        scale = (self.dim // self.heads) ** -0.5
        q = self._split(self.q_proj(x), tokens) * scale
        k = self._split(self.k_proj(x), tokens)
        v = self._split(self.v_proj(x), tokens)
        attn = ops.softmax(ops.matmul(q, ops.transpose(k, (0, 1, 3, 2))), axis=-1)
        out = ops.transpose(ops.matmul(attn, v), (0, 2, 1, 3))
        return self.out_proj(ops.reshape(out, (-1, tokens, self.dim)))

    def get_config(self):
        return {**super().get_config(), "dim": self.dim, "heads": self.heads}


def onnx_weights(source: Path | None = None) -> dict[str, np.ndarray]:
    """Float weights named as in CLIP (`vision_model.encoder.layers.0.self_attn.q_proj.weight`,
    (in, out) for matrices), from the checked ONNX file: int8 matrices dequantised per output
    channel, each found through the MatMulInteger node that uses it."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(trunk.checked_file(source)))
    inits = {t.name: t for t in model.graph.initializer}
    weights = {name: numpy_helper.to_array(t).astype(np.float32) for name, t in inits.items()
               if not name.startswith("onnx::")}
    for node in model.graph.node:
        if node.op_type != "MatMulInteger":
            continue
        qname, zname = node.input[1], node.input[3]
        if not np.all(numpy_helper.to_array(inits[zname]) == 0):
            raise trunk.TrunkError(f"{zname}: non-zero weight zero point, not the pinned file")
        q = numpy_helper.to_array(inits[qname]).astype(np.float32)
        scale = numpy_helper.to_array(inits[qname.replace("_quantized", "_scale")])
        path = node.name.strip("/").split("/")[:-1]  # drop "MatMul_quant"
        weights[".".join(path) + ".weight"] = q * scale.astype(np.float32)[None, :]
    return weights


def _parse(outputs) -> tuple[tuple[str, ...], int]:
    """The outputs as a tuple, and the number of blocks the tower must keep."""
    outputs = tuple(outputs)
    if not outputs or len(set(outputs)) != len(outputs):
        raise ValueError(f"outputs must be distinct and non-empty, got {outputs}")
    blocks = []
    for name in outputs:
        if name == trunk.EMBED:
            blocks.append(trunk.BLOCKS)
        elif name.startswith("b") and name[1:].isdigit() and 1 <= int(name[1:]) <= trunk.BLOCKS:
            blocks.append(int(name[1:]))
        else:
            raise ValueError(f"unknown trunk output {name!r}: 'b1'..'b12' or 'embed'")
    return outputs, max(blocks)


def _block(x, k: int):
    h = layers.LayerNormalization(epsilon=EPS, name=f"b{k}_ln1")(x)
    x = layers.Add(name=f"b{k}_add1")([x, SelfAttention(name=f"b{k}_attn")(h)])
    h = layers.LayerNormalization(epsilon=EPS, name=f"b{k}_ln2")(x)
    h = QuickGelu(name=f"b{k}_gelu")(layers.Dense(MLP, name=f"b{k}_fc1")(h))
    return layers.Add(name=f"b{k}_add2")([x, layers.Dense(DIM, name=f"b{k}_fc2")(h)])


def _graph(outputs: tuple[str, ...], last: int) -> keras.Model:
    inp = keras.Input((SIZE, SIZE, 3), name="pixel_values")
    x = layers.Conv2D(DIM, PATCH, strides=PATCH, use_bias=False, name="patch_embedding")(inp)
    x = ClassPosEmbed(name="embeddings")(layers.Reshape((TOKENS - 1, DIM), name="patches")(x))
    x = layers.LayerNormalization(epsilon=EPS, name="pre_layrnorm")(x)
    feats = {}
    for k in range(1, last + 1):
        x = _block(x, k)
        if f"b{k}" in outputs:
            feats[f"b{k}"] = ClsToken(name=f"b{k}")(x)
    if trunk.EMBED in outputs:
        h = layers.LayerNormalization(epsilon=EPS, name="post_layernorm")(ClsToken(name="cls")(x))
        feats[trunk.EMBED] = layers.Dense(EMBED_DIM, use_bias=False, name=trunk.EMBED)(h)
    return keras.Model(inp, [feats[n] for n in outputs], name="clip_" + "_".join(outputs))


def _load_weights(model: keras.Model, w: dict[str, np.ndarray], last: int) -> None:
    names = {layer.name for layer in model.layers}
    vm = "vision_model."
    conv = w[vm + "embeddings.patch_embedding.weight"].transpose(2, 3, 1, 0)  # OIHW -> HWIO
    model.get_layer("patch_embedding").set_weights([conv])
    model.get_layer("embeddings").set_weights([w[vm + "embeddings.class_embedding"],
                                               w[vm + "embeddings.position_embedding.weight"]])

    def norm(layer: str, prefix: str):
        model.get_layer(layer).set_weights([w[prefix + ".weight"], w[prefix + ".bias"]])

    norm("pre_layrnorm", vm + "pre_layrnorm")
    for k in range(1, last + 1):
        p = f"{vm}encoder.layers.{k - 1}."
        norm(f"b{k}_ln1", p + "layer_norm1")
        norm(f"b{k}_ln2", p + "layer_norm2")
        attn = model.get_layer(f"b{k}_attn")
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            getattr(attn, proj).set_weights([w[f"{p}self_attn.{proj}.weight"],
                                             w[f"{p}self_attn.{proj}.bias"]])
        for fc in ("fc1", "fc2"):
            model.get_layer(f"b{k}_{fc}").set_weights([w[f"{p}mlp.{fc}.weight"],
                                                       w[f"{p}mlp.{fc}.bias"]])
    if trunk.EMBED in names:
        norm("post_layernorm", vm + "post_layernorm")
        model.get_layer(trunk.EMBED).set_weights([w["visual_projection.weight"]])


def build_keras_tower(outputs=DEFAULT_OUTPUTS, source: Path | None = None) -> keras.Model:
    """The float tower cut after the last block needed; input (N,224,224,3) CLIP-normalised,
    outputs [(N,768) per block asked, (N,512) for 'embed'] in the order asked."""
    outputs, last = _parse(outputs)
    model = _graph(outputs, last)
    _load_weights(model, onnx_weights(source), last)
    return model


def keras_path(outputs) -> Path:
    """Where the cached .keras file of these outputs lives (keyed like trunk.cut_name: the float
    tower's weights, dequantised)."""
    name = trunk.cut_name(_parse(outputs)[0], layout=trunk.FLOAT)
    return trunk.CACHE / name.replace(".onnx", ".keras")


def cached_keras_tower(outputs=DEFAULT_OUTPUTS, source: Path | None = None) -> Path:
    """The .keras file of the tower, built once from the checked ONNX file and cached."""
    path = keras_path(outputs)
    if path.is_file():
        return path
    model = build_keras_tower(outputs, source)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.keras")  # processes may race
    model.save(tmp)
    tmp.replace(path)  # atomic: a half-written file is never taken for a cached one
    return path


def load_keras_tower(outputs=DEFAULT_OUTPUTS, source: Path | None = None) -> keras.Model:
    """The cached tower, loaded in safe mode (built first if missing)."""
    return keras.saving.load_model(cached_keras_tower(outputs, source), safe_mode=True)


def keras_inputs(crops: np.ndarray) -> np.ndarray:
    """(N,224,224,3) uint8 RGB crops -> the tower's CLIP-normalised NHWC float32 input."""
    return np.ascontiguousarray(trunk.pixel_values(crops).transpose(0, 2, 3, 1))


def features(model: keras.Model, crops: np.ndarray, outputs) -> dict[str, np.ndarray]:
    """{output: (N, d)} of uint8 crops, as trunk.Tower.features returns them."""
    got = model.predict_on_batch(keras_inputs(crops))
    got = got if isinstance(got, list | tuple) else [got]
    return {n: np.asarray(g) for n, g in zip(tuple(outputs), got, strict=True)}


def card_outputs(card: str | Path | None) -> tuple[str, ...]:
    """The served trunk outputs: a model card's `trunk.outputs`, else b12 and embed."""
    if not card:
        return DEFAULT_OUTPUTS
    return _parse(json.loads(Path(card).read_text())["trunk"]["outputs"])[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m detector.clip_keras",
                                description="Build the ONNX cut in this CPU's layout, its "
                                "self-check's float reference and the Keras tower (cached).")
    p.add_argument("--card", help="model card (card.json) whose trunk.outputs are served")
    args = p.parse_args(argv)
    from detector.runtimes.choice import onnx_tower

    outputs = card_outputs(args.card)
    print(f"trunk outputs {', '.join(outputs)}")
    tower, check = onnx_tower(outputs)  # the cut in this CPU's layout, and the float reference
    print(f"onnx cut:     {trunk.CACHE / trunk.cut_name(outputs, layout=tower.layout)} "
          f"(layout {check['layout']}, self-check cosine {check['cosine']:.4f})")
    print(f"keras tower:  {cached_keras_tower(outputs)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

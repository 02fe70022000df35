"""Operations per image of the served model, counted from its own graphs, int8 and float apart.

A frozen-trunk model (card "trunk") is counted on the pinned ONNX file, only the nodes that the
card's outputs depend on (the tower cut after the last block the head reads): MatMul and
MatMulInteger as 2 x M x K x N, Conv as 2 x the output size x the kernel's inputs. A stacked
model (card "stack") adds its own count. A Keras model is counted layer by layer, 2 x
multiply-accumulates of each layer, from its output shape and kernel:
- Conv2D: 2 * H_out * W_out * C_out * (k_h * k_w * C_in)
- DepthwiseConv2D: 2 * H_out * W_out * C_out * (k_h * k_w)
- Dense: 2 * units_in * units_out
at the resolution the trunk really runs at. Biases, normalisation, activations, softmax, pooling
and resizing are left out: a few percent of the total at most. The head (one dot product) is
left out too.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

COUNTED = ("Conv2D", "DepthwiseConv2D", "Dense")
INT8_OPS = ("MatMulInteger", "ConvInteger")


def served_flops(model_dir: str) -> dict:
    """{"total", "int8", "float", "parts": [...]} per image; run it in a child process (a Keras
    count imports TensorFlow)."""
    root = Path(model_dir)
    card = json.loads((root / "card.json").read_text())
    parts = []
    if "trunk" in card:
        parts.append(trunk_flops(card))
    else:
        parts.append(keras_part(root, card))
    if "stack" in card:
        parts += served_flops(str(root / card["stack"]["model"]))["parts"]
    known = [p for p in parts if p["total"] is not None]
    whole = len(known) == len(parts)
    return {"total": sum(p["total"] for p in known) if whole else None,
            "int8": sum(p["int8"] for p in known) if whole else None,
            "float": sum(p["float"] for p in known) if whole else None, "parts": parts}


def trunk_flops(card: dict) -> dict:
    """The pinned tower, cut where the card's outputs are (b6: after block 6)."""
    import onnx

    from detector.trunk import block_output, checked_file

    outputs = card["trunk"]["outputs"]
    names = ["image_embeds" if o == "embed" else block_output(int(o.removeprefix("b")))
             for o in outputs]
    got = onnx_flops(onnx.load(str(checked_file(expected=card["trunk"]["sha256"]))), names)
    return {"part": f"CLIP tower to {'+'.join(outputs)} (ONNX graph)", **got}


def keras_part(root: Path, card: dict) -> dict:
    """A Keras/LiteRT model counted on its .keras file (None where only a .tflite ships)."""
    path = root / card["files"].get("keras", "model.keras")
    part = f"{card['name']} {card['version']} (Keras layers)"
    if not path.is_file():
        return {"part": part, "total": None, "int8": None, "float": None,
                "note": f"no {path.name} to count from"}
    import keras

    model = keras.saving.load_model(path, safe_mode=True)
    got = count_keras(model)
    return {"part": part, "total": got["total"], "int8": 0, "float": got["total"],
            "internal_size": got["internal"], "params": int(model.count_params())}


def onnx_flops(model, outputs: list[str]) -> dict:
    """Operations per image of the nodes that `outputs` depend on (batch fixed at 1)."""
    from onnx import shape_inference

    for inp in model.graph.input:
        dim = inp.type.tensor_type.shape.dim
        if dim and not dim[0].HasField("dim_value"):
            dim[0].ClearField("dim_param")
            dim[0].dim_value = 1
    model = shape_inference.infer_shapes(model, data_prop=True)
    g = model.graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in (*g.value_info, *g.output, *g.input)}
    shapes.update({t.name: list(t.dims) for t in g.initializer})
    int8 = flt = 0
    for node in _needed(g, outputs):
        ops = _node_ops(node, shapes)
        if node.op_type in INT8_OPS:
            int8 += ops
        else:
            flt += ops
    return {"total": int8 + flt, "int8": int8, "float": flt}


def _needed(graph, outputs: list[str]) -> list:
    """The nodes the outputs depend on (graph order is topological)."""
    needed, keep = set(outputs), []
    for node in reversed(graph.node):
        if any(o in needed for o in node.output):
            keep.append(node)
            needed.update(i for i in node.input if i)
    return keep


def _node_ops(node, shapes: dict) -> int:
    if node.op_type in ("MatMul", "MatMulInteger"):
        a, out = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not a or not out or 0 in out:
            raise ValueError(f"no static shape for {node.name}: cannot count its operations")
        return 2 * int(np.prod(out)) * a[-1]
    if node.op_type in ("Conv", "ConvInteger"):
        w, out = shapes.get(node.input[1]), shapes.get(node.output[0])
        if not w or not out or 0 in out:
            raise ValueError(f"no static shape for {node.name}: cannot count its operations")
        return 2 * int(np.prod(out)) * int(np.prod(w[1:]))
    return 0


def _layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _layers(layer)
        else:
            yield layer


def count_keras(model) -> dict:
    """FLOPs per image of a Keras model, by layer type (see the module docstring)."""
    by_type = dict.fromkeys(COUNTED, 0)
    internal = None
    for layer in _layers(model):
        kind = type(layer).__name__
        if kind == "Resizing":
            internal = int(layer.output.shape[1])
        if kind not in COUNTED:
            continue
        out = [int(d) for d in layer.output.shape[1:]]
        k = [int(d) for d in layer.kernel.shape]
        if kind == "Conv2D":
            macs = np.prod(out) * k[0] * k[1] * k[2] // max(int(getattr(layer, "groups", 1)), 1)
        elif kind == "DepthwiseConv2D":
            macs = np.prod(out) * k[0] * k[1]
        else:
            macs = k[0] * k[1]
        by_type[kind] += int(2 * macs)
    return {"total": sum(by_type.values()), "by_type": by_type,
            "input": int(model.input.shape[1]), "internal": internal or int(model.input.shape[1])}

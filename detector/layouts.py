"""The CLIP tower's int8 weights laid out three ways, the same numbers each (detector.trunk applies
one to the pinned file before cutting it):

- `u8s8`, as shipped: uint8 activations x int8 weights, ONNX Runtime's AMX and VNNI kernels;
- `u8u8`, stored unsigned around zero point 128: the kernels that do not saturate on AVX2-only
  CPUs;
- `f32`, dequantised to float with float matmuls: the float tower, the self-check's reference.
"""

from __future__ import annotations

import numpy as np

SHIPPED, UNSIGNED, FLOAT = "u8s8", "u8u8", "f32"


def unsigned_weights(model):
    """The same int8 tower with its weights stored as uint8 around a zero point of 128.

    Why: on CPUs without VNNI or AMX (an AVX2-only AMD EPYC), ONNX Runtime's uint8 x int8
    kernels saturate their 16-bit sums, and the class tokens came out with cosine 0.59-0.65 to
    the float tower (blocks 4-8; 0.17-0.31 at block 12). Its uint8 x uint8 kernels do not
    saturate: with W + 128 and zero point 128 (the same numbers) the cosine is 0.998, 0.995 and
    0.968 at blocks 4, 6 and 8 (docs/PERFORMANCE.md). Where VNNI or AMX is there, the file as
    shipped gives the same outputs bit for bit, 4x faster on AMX (../shared/MEASURED.md)."""
    from onnx import numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    graph.initializer.append(numpy_helper.from_array(np.array(128, np.uint8), "dfd_w_zp128"))
    done = set()
    for n in graph.node:
        if n.op_type != "MatMulInteger":
            continue
        w = n.input[1]
        if w not in done:
            q = numpy_helper.to_array(inits[w]).astype(np.int16) + 128
            inits[w].CopyFrom(numpy_helper.from_array(q.astype(np.uint8), w))
            done.add(w)
        ins = [*n.input, "", "", ""][:4]
        ins[3] = "dfd_w_zp128"
        del n.input[:]
        n.input.extend(ins)
    return model


def float_weights(model):
    """The float tower: each MatMulInteger (with the Cast and the Mul by both scales after it)
    replaced by a float MatMul of the layer's input and W = q * scale; the now unused dynamic
    quantisation of activations is pruned with the cut. Agrees with detector.clip_keras."""
    from onnx import helper, numpy_helper

    graph = model.graph
    inits = {t.name: t for t in graph.initializer}
    producer = {o: n for n in graph.node for o in n.output}
    users: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    replace, drop = {}, set()
    for n in graph.node:
        if n.op_type != "MatMulInteger":
            continue
        x = producer[n.input[0]].input[0]  # DynamicQuantizeLinear's float input
        cast = users[n.output[0]][0]
        mul = users[cast.output[0]][0]
        q = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        s = numpy_helper.to_array(inits[n.input[1].replace("_quantized", "_scale")])
        name = n.input[1].replace("_quantized", "_float")
        graph.initializer.append(numpy_helper.from_array(q * s[None, :], name))
        replace[id(n)] = helper.make_node("MatMul", [x, name], [mul.output[0]], name=n.name)
        drop.update({id(cast), id(mul)})
    kept = [replace.get(id(n), n) for n in graph.node if id(n) not in drop]  # topological order
    del graph.node[:]
    graph.node.extend(kept)
    return model


LAYOUTS = {SHIPPED: lambda model: model, UNSIGNED: unsigned_weights, FLOAT: float_weights}
LAYOUT_TAGS = {SHIPPED: "s8", UNSIGNED: "u8", FLOAT: "f32"}  # in cached file names

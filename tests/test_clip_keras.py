"""The Keras rebuild of the CLIP tower against the ONNX file it comes from (real trunk file).

- Keras float vs the same ONNX graph with its weights dequantised and float MatMuls in place of
  MatMulInteger/DynamicQuantizeLinear: the same network, so cosine >= 0.9999 per crop.
- Keras float vs the shipped int8 ONNX (activations quantised per tensor at run time): far
  looser (see INT8_BOUNDS); the figures are printed.
"""

from __future__ import annotations

import glob

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("keras")

from detector import trunk  # noqa: E402

try:
    SOURCE = trunk.checked_file()
except trunk.TrunkError as exc:  # the wheel is a project dependency; say so if absent
    pytest.skip(f"no trunk file: {exc}", allow_module_level=True)

pytestmark = pytest.mark.slow
OUTPUTS = ("b6", "b12", "embed")
FACES = "../shared/data/fairface-real/real/*.jpg"


def crops(n: int = 4) -> np.ndarray:
    """Real faces where the data is at hand, else seeded noise crops."""
    from PIL import Image

    files = sorted(glob.glob(FACES))[:n]
    if len(files) == n:
        return np.stack([np.asarray(Image.open(f).convert("RGB").resize((224, 224),
                                                                          Image.BICUBIC))
                         for f in files])
    return np.random.default_rng(0).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def float_onnx(outputs: tuple[str, ...]):
    """The ONNX graph with weights W = q*scale and float MatMuls, outputs the residual streams
    after the named blocks (N,197,768) and image_embeds."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(SOURCE))
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    producer = {o: n for n in g.node for o in n.output}
    users: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            users.setdefault(i, []).append(n)
    replace, drop = {}, set()
    for n in g.node:
        if n.op_type != "MatMulInteger":
            continue
        x = producer[n.input[0]].input[0]  # DynamicQuantizeLinear's float input
        cast = users[n.output[0]][0]
        mul = users[cast.output[0]][0]
        q = numpy_helper.to_array(inits[n.input[1]]).astype(np.float32)
        s = numpy_helper.to_array(inits[n.input[1].replace("_quantized", "_scale")])
        wname = n.input[1].replace("_quantized", "_float")
        g.initializer.append(numpy_helper.from_array(q * s[None, :], wname))
        replace[id(n)] = helper.make_node("MatMul", [x, wname], [mul.output[0]], name=n.name)
        drop.update({id(cast), id(mul)})
    kept = [replace.get(id(n), n) for n in g.node if id(n) not in drop]  # topological order
    del g.node[:]
    g.node.extend(kept)
    outs = [o for o in g.output if o.name == "image_embeds"]
    for name in outputs:
        if name != "embed":
            outs.append(helper.make_tensor_value_info(trunk.block_output(int(name[1:])),
                                                      onnx.TensorProto.FLOAT, ["batch", 197, 768]))
    del g.output[:]
    g.output.extend(outs)
    return trunk._prune(model)


def run_float_onnx(x: np.ndarray, outputs: tuple[str, ...]) -> dict[str, np.ndarray]:
    import onnxruntime as ort

    model = float_onnx(outputs)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    got = dict(zip(names, sess.run(names, {"pixel_values": trunk.pixel_values(x)}), strict=True))
    return {n: got["image_embeds"] if n == "embed" else got[trunk.block_output(int(n[1:]))][:, 0]
            for n in outputs}


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


@pytest.fixture(scope="module")
def keras_feats():
    from detector import clip_keras

    x = crops()
    model = clip_keras.build_keras_tower(OUTPUTS)
    return x, clip_keras.features(model, x, OUTPUTS)


def test_weights_traced_from_graph():
    from detector import clip_keras

    w = clip_keras.onnx_weights()
    mats = [k for k, v in w.items() if v.ndim == 2 and "position" not in k]
    assert len(mats) == 73  # 12 x (q, k, v, out, fc1, fc2) + the visual projection
    assert w["vision_model.encoder.layers.11.mlp.fc1.weight"].shape == (768, 3072)
    assert w["visual_projection.weight"].shape == (768, 512)


def test_keras_matches_dequantised_onnx(keras_feats):
    x, got = keras_feats
    ref = run_float_onnx(x, OUTPUTS)
    for name in OUTPUTS:
        cos = cosine(got[name], ref[name])
        print(f"keras float vs dequantised float onnx, {name}: min cosine {cos.min():.6f}")
        assert got[name].shape == ref[name].shape
        assert cos.min() >= 0.9999, name


# Measured on 4 FairFace crops (2026-12-03): b1 0.998-0.999, b3 0.83, b6 0.63-0.66, b8 0.61-0.65,
# b12 0.21-0.31, embed 0.44-0.53. The shipped file quantises every matmul's input per tensor at
# run time; CLIP's outlier channels make that coarse, and the error compounds block by block
# (the dequantised-weight float graph agrees with Keras to 1e-6, so it is the activations).
# Bounds: block 1 pins that both are the same network; later ones only catch a gross change.
INT8_BOUNDS = {"b1": 0.99, "b6": 0.5, "b12": 0.1, "embed": 0.3}


def test_keras_vs_shipped_int8():
    from detector import clip_keras

    x = crops()
    outputs = tuple(INT8_BOUNDS)
    got = clip_keras.features(clip_keras.build_keras_tower(outputs), x, outputs)
    ref = trunk.Tower(outputs, threads=2).features(x)
    for name, bound in INT8_BOUNDS.items():
        cos = cosine(got[name], ref[name])
        print(f"keras float vs shipped int8 onnx, {name}: cosine {cos.min():.4f}-{cos.max():.4f}")
        assert cos.min() >= bound, name


def test_saved_file_loads_in_safe_mode(tmp_path, monkeypatch):
    from detector import clip_keras

    monkeypatch.setattr(trunk, "CACHE", tmp_path)
    outputs = ("b2", "b1")
    x = clip_keras.keras_inputs(crops(2))
    path = clip_keras.cached_keras_tower(outputs)
    assert path.name == trunk.cut_name(outputs).replace(".onnx", ".keras")
    loaded = clip_keras.load_keras_tower(outputs)
    fresh = clip_keras.build_keras_tower(outputs)
    for a, b in zip(loaded.predict_on_batch(x), fresh.predict_on_batch(x), strict=True):
        assert a.shape == (2, 768)
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_bad_outputs_refused():
    from detector import clip_keras

    for bad in [(), ("b0",), ("b13",), ("pool",), ("b1", "b1")]:
        with pytest.raises(ValueError):
            clip_keras.build_keras_tower(bad)


def test_gpu_model_is_tower_plus_head(tmp_path, monkeypatch):
    import json

    import keras

    from detector import clip_gpu, clip_keras

    monkeypatch.setattr(trunk, "CACHE", tmp_path)
    (tmp_path / "card.json").write_text(json.dumps({"trunk": {"outputs": ["b2", "b1"]}}))
    rng = np.random.default_rng(1)
    head = {"inputs": ["b1", "b2"], "mean": rng.normal(size=1536).tolist(),
            "scale": rng.uniform(0.5, 2, 1536).tolist(),
            "coef": (rng.normal(size=1536) / 40).tolist(), "intercept": 0.3}
    (tmp_path / "head.json").write_text(json.dumps(head))
    model = clip_gpu.build_gpu_model(tmp_path)
    model.save(tmp_path / "gpu.keras")
    model = keras.saving.load_model(tmp_path / "gpu.keras", safe_mode=True)
    x = crops(2)
    got = np.asarray(model.predict_on_batch(x.astype(np.float32))).reshape(-1)
    feats = clip_keras.features(clip_keras.build_keras_tower(("b1", "b2")), x, ("b1", "b2"))
    want = clip_gpu.numpy_head(feats, clip_gpu.load_head(tmp_path / "head.json"))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    head = {**head, "inputs": ["b3"], **{k: head[k][:768] for k in ("mean", "scale", "coef")}}
    (tmp_path / "head.json").write_text(json.dumps(head))
    with pytest.raises(ValueError, match="not among the card"):
        clip_gpu.build_gpu_model(tmp_path)


def test_the_served_stacked_model_runs_on_the_gpu_path(tmp_path, monkeypatch):
    """DFD_DEVICE=gpu serves the shipped card (CLIP block-6 head with the MobileNetV2 logit
    stacked in) through Keras: the float tower and the stacked model's Keras network. Run here
    on the CPU (the same Keras graph TensorFlow would place on a GPU), it agrees with the
    ONNX Runtime path within the int8 tower's error (see INT8_BOUNDS)."""
    from pathlib import Path

    from detector.model import load_model

    monkeypatch.setattr(trunk, "CACHE", tmp_path)
    served = Path(__file__).resolve().parents[1] / "models" / "dfd-clip"
    x = crops(4)
    gpu = load_model(served, runtime="keras", device="cpu")
    cpu = load_model(served, runtime="onnx")
    assert gpu.runtime == "keras" and gpu.version == cpu.version
    a, b = gpu.predict(x), cpu.predict(x)
    za, zb = np.log(a / (1 - a)), np.log(b / (1 - b))
    print("gpu path vs onnx, logits:", np.round(za, 2), np.round(zb, 2))
    assert np.all(np.isfinite(za)) and np.abs(za - zb).max() < 1.5

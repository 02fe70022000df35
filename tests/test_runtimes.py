"""The runtime seam: load_model picks one runtime per model (and, for the ONNX tower, the weight
layout for the CPU's flags, refused when its features disagree with the float tower's), and each
runtime says whether crops may share an engine call. Real files throughout: the pinned trunk, the
shipped models, ONNX Runtime, LiteRT and Keras."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from detector import trunk
from detector.layouts import unsigned_weights
from detector.model import ModelError, load_model
from detector.runtimes import choice

ROOT = Path(__file__).resolve().parents[1]
CLIP, MNV2 = ROOT / "models" / "dfd-clip", ROOT / "models" / "dfd-mnv2"
OUT = ("b2",)  # a short cut: the same kernels as the served one, a tenth of the time
# Flag sets as /proc/cpuinfo lists them on the kinds of host the project has run on.
HOSTS = {
    "xeon-amx": {"avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "amx_bf16"},
    "epyc-zen4": {"avx2", "avx512f", "avx512_vnni", "avx512_bf16"},
    "core-avx-vnni": {"avx2", "avx_vnni"},
    "epyc-avx2": {"avx2", "fma"},
    "skylake-avx512": {"avx2", "avx512f", "avx512bw"},  # no VNNI: vpmaddubsw saturates
    "arm": set(),
}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """A fresh trunk cache for this module: cuts and the float reference built from scratch."""
    with pytest.MonkeyPatch.context() as mp:
        path = tmp_path_factory.mktemp("trunk")
        mp.setattr(trunk, "CACHE", path)
        yield path


def shifted_weights(model):
    """A wrong layout on purpose: the weights stored unsigned (W + 128) but read with zero point
    0, as a kernel that misreads them would; every product is off."""
    model = unsigned_weights(model)
    for node in model.graph.node:
        if node.op_type == "MatMulInteger":
            node.input[3] = ""
    return model


@pytest.fixture
def broken_layout(monkeypatch):
    monkeypatch.setitem(trunk.LAYOUTS, "shifted", shifted_weights)
    monkeypatch.setitem(trunk.LAYOUT_TAGS, "shifted", "shifted")
    return "shifted"


def crops(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def test_flags_are_read_from_cpuinfo_text():
    text = "processor\t: 0\nflags\t\t: fpu avx2 avx512_vnni amx_int8\nbugs\t\t: none\n"
    flags = choice.cpu_flags(text)
    assert flags == {"fpu", "avx2", "avx512_vnni", "amx_int8"}
    assert choice.cpu_kind(flags) == "avx2-avx512_vnni-amx_int8"
    assert choice.cpu_flags("processor : 0\n") == frozenset()
    assert choice.cpu_kind(frozenset()) == "other"


@pytest.mark.parametrize("host, first", [
    ("xeon-amx", trunk.SHIPPED), ("epyc-zen4", trunk.SHIPPED), ("core-avx-vnni", trunk.SHIPPED),
    ("epyc-avx2", trunk.UNSIGNED), ("skylake-avx512", trunk.UNSIGNED), ("arm", trunk.UNSIGNED)])
def test_the_layout_tried_first_follows_the_cpu_flags(host, first):
    """The file as shipped where the uint8 x int8 kernels sum in 32 bits (VNNI, AMX); the
    unsigned rewrite where they saturate; the other layout always as the fallback."""
    order = choice.layout_candidates(frozenset(HOSTS[host]))
    assert order[0] == first and set(order) == {trunk.SHIPPED, trunk.UNSIGNED}


@pytest.mark.parametrize("host", ["xeon-amx", "epyc-avx2"])
def test_a_simulated_host_gets_its_layout_after_the_self_check(cache, host):
    """On this CPU both layouts pass, so the simulated flags alone decide the one served."""
    flags = frozenset(HOSTS[host])
    tower, check = choice.onnx_tower(OUT, flags=flags)
    assert tower.layout == check["layout"] == choice.layout_candidates(flags)[0]
    assert check["cpu"] == choice.cpu_kind(flags) and check["refused"] == []
    assert check["cosine"] >= choice.MIN_COSINE == check["bound"]
    assert (cache / trunk.cut_name(OUT, layout=tower.layout)).is_file()


def test_the_two_int8_layouts_agree_bit_for_bit_here():
    """Where this CPU has VNNI or AMX the layouts are the same numbers run by exact kernels."""
    if not choice.cpu_flags() & choice.EXACT_U8S8:
        pytest.skip("this CPU has neither VNNI nor AMX")
    x = crops(2, seed=4)
    a = trunk.Tower(OUT, layout=trunk.SHIPPED).features(x)["b2"]
    b = trunk.Tower(OUT, layout=trunk.UNSIGNED).features(x)["b2"]
    assert np.array_equal(a, b)


def test_a_layout_whose_features_disagree_is_refused(cache, broken_layout, caplog):
    tower, check = choice.onnx_tower(OUT, candidates=(broken_layout, trunk.UNSIGNED))
    assert tower.layout == check["layout"] == trunk.UNSIGNED
    [refused] = check["refused"]
    assert refused["layout"] == broken_layout and refused["cosine"] < choice.MIN_COSINE
    assert f"trunk layout {broken_layout} refused" in caplog.text
    with pytest.raises(ModelError, match="no weight layout of the CLIP tower agrees"):
        choice.onnx_tower(OUT, candidates=(broken_layout,))


def test_the_float_reference_is_cached_by_file_hash(cache):
    ref = choice.reference(OUT)
    [path] = cache.glob("clip-*-ref*-b2.npz")
    assert path.name.startswith(f"clip-{trunk.SHA256[:12]}-")
    again = choice.reference(OUT)
    assert np.array_equal(again["b2"], ref["b2"]) and ref["b2"].shape == (choice.CHECK_CROPS, 768)
    path.write_bytes(b"half a file")  # unreadable: computed again, and written again
    assert np.array_equal(choice.reference(OUT)["b2"], ref["b2"])
    assert np.load(path, allow_pickle=False)["b2"].shape == (choice.CHECK_CROPS, 768)


def test_load_model_picks_one_runtime_per_model():
    clip = load_model(CLIP)
    desc = clip.runtime.describe()
    assert desc["runtime"] == "onnx" and desc["layout"] == desc["check"]["layout"]
    assert desc["check"]["cosine"] >= choice.MIN_COSINE
    assert desc["check"]["layout"] == choice.layout_candidates(choice.cpu_flags())[0]
    assert load_model(MNV2).runtime.name == "tflite"
    assert load_model(MNV2, runtime="keras").runtime.name == "keras"
    with pytest.raises(ModelError, match="runtime 'onnx' runs a frozen trunk"):
        load_model(MNV2, runtime="onnx")
    with pytest.raises(ModelError, match="unknown runtime"):
        load_model(MNV2, runtime="torch")


def _alone_and_among(model, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return model.predict_raw(x[2:3])[0], model.predict_raw(x)[2]


@pytest.mark.parametrize("path, runtime", [(MNV2, "tflite"), (MNV2, "keras"), (CLIP, "keras")])
def test_runtimes_that_batch_give_a_crop_the_same_score_in_any_batch(path, runtime):
    """LiteRT and Keras batch crops freely: a crop alone or among others scores the same (to
    float rounding: a GEMM's blocking depends on its row count)."""
    model = load_model(path, runtime=runtime)
    assert model.runtime.max_batch is None
    alone, among = _alone_and_among(model, crops(5, seed=1))
    np.testing.assert_allclose(alone, among, rtol=1e-5, atol=1e-6)


def test_the_onnx_tower_scores_one_crop_per_engine_call():
    """The int8 file quantises activations per tensor over the whole batch: in one engine call
    a crop's features depend on the others, so the runtime makes one call per crop, and a crop
    scores bit for bit the same alone or among others."""
    model = load_model(CLIP)
    assert model.runtime.max_batch == 1
    x = crops(5, seed=2)
    x[0] = 255  # an extreme neighbour widens the batch's activation range
    alone, among = _alone_and_among(model, x)
    assert alone == among
    import onnxruntime as ort

    cut = trunk.build_cut(("b6",), layout=model.runtime.tower.layout)
    session = ort.InferenceSession(str(cut), providers=["CPUExecutionProvider"])
    one = session.run(None, {"pixel_values": trunk.pixel_values(x[2:3])})[0][0]
    batched = session.run(None, {"pixel_values": trunk.pixel_values(x)})[0][2]
    assert not np.allclose(one, batched, atol=1e-4)

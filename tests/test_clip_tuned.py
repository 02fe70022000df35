"""CLIP's first blocks tuned end to end (training/e2e/clip_tuned.py) on the real trunk file: the
adapters start as the frozen tower, only what is tuned moves, and the served model (adapters
merged into the matrices) computes what the trained one does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
keras = pytest.importorskip("keras")

from detector import trunk  # noqa: E402

try:
    trunk.checked_file()
except trunk.TrunkError as exc:  # the wheel is a project dependency; say so if absent
    pytest.skip(f"no trunk file: {exc}", allow_module_level=True)

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (4, 224, 224, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def lora():
    from training.e2e.clip_tuned import build_tuned_model

    keras.utils.set_random_seed(0)
    return build_tuned_model("lora", rank=4)


def _np(v) -> np.ndarray:
    return np.array(keras.ops.convert_to_numpy(v))


def _tower_out(model, x):
    sub = keras.Model(model.inputs, model.get_layer("head_norm").input)
    return np.asarray(sub.predict_on_batch(x))


def test_adapters_start_as_the_frozen_tower(lora, crops):
    from detector import clip_keras

    plain = clip_keras.build_keras_tower(("b6",))
    want = np.asarray(plain.predict_on_batch(clip_keras.keras_inputs(crops.astype(np.uint8))))
    got = _tower_out(lora, crops)
    assert np.abs(got - want).max() < 1e-3 * np.abs(want).max()


def test_each_phase_trains_only_what_it_should(lora):
    from training.e2e.clip_tuned import build_tuned_model, set_phase

    set_phase(lora, full=False)
    assert sorted(v.path for v in lora.trainable_variables) == [
        "head_norm/beta", "head_norm/gamma", "p_fake/bias", "p_fake/kernel"]
    set_phase(lora, full=True)
    tower = [v.path for v in lora.trainable_variables if not v.path.startswith(("head", "p_"))]
    assert len(tower) == 2 * 6 * 6 and all("lora_kernel" in p for p in tower)
    ln = build_tuned_model("ln", load_weights=False)
    set_phase(ln, full=True)
    tuned = [v.path for v in ln.trainable_variables if not v.path.startswith(("head", "p_"))]
    assert len(tuned) == 2 + 6 * 2 * 2  # pre_layrnorm and two LayerNorms a block, gamma and beta
    assert all(p.endswith(("gamma", "beta")) for p in tuned)


def test_a_step_moves_the_adapters_only_and_the_merged_model_agrees(lora, crops, tmp_path):
    from training.e2e.clip_tuned import after_load, frozen_weights, serving_model, set_phase

    set_phase(lora, full=True)
    lora.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy")
    tower = lora.get_layer("trunk")
    kernels = [_np(v) for v in tower.weights if v.path.endswith("q_proj/kernel")]
    frozen = frozen_weights(lora)
    lora.train_on_batch(crops, np.array([[0.0], [1.0], [0.0], [1.0]], np.float32))
    assert all(np.array_equal(a, b) for a, b in zip(frozen, frozen_weights(lora), strict=True))
    assert all(np.array_equal(a, _np(v)) for a, v in zip(
        kernels, [v for v in tower.weights if v.path.endswith("q_proj/kernel")], strict=True))
    assert any(np.abs(_np(v)).max() > 0 for v in tower.weights
               if v.path.endswith("lora_kernel_b"))

    served = serving_model(lora)
    assert not [v for v in served.weights if "lora" in v.path]
    want = np.asarray(lora.predict_on_batch(crops)).ravel()
    assert np.abs(np.asarray(served.predict_on_batch(crops)).ravel() - want).max() < 1e-5
    served.save(tmp_path / "model.keras")
    again = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert np.abs(np.asarray(again.predict_on_batch(crops)).ravel() - want).max() < 1e-5
    # A GPU worker loads it through the Keras runtime, in a process that never built one.
    np.save(tmp_path / "crops.npy", crops)
    code = ("import sys, numpy as np; from detector.runtimes.keras import KerasRuntime; "
            "print(KerasRuntime(sys.argv[1]).predict_raw(np.load(sys.argv[2])).tolist())")
    got = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model.keras"),
                          str(tmp_path / "crops.npy")], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout.strip().splitlines()[-1]
    assert np.abs(np.array(json.loads(got)) - want).max() < 1e-5

    # A resume: Keras saves the adapter merged and loads it as A = B = 0 (dead); after_load
    # draws A again, and the model still computes what was saved.
    lora.save_weights(tmp_path / "w.weights.h5")
    lora.load_weights(tmp_path / "w.weights.h5")
    after_load(lora)
    assert all(np.abs(_np(v)).max() > 0 for v in tower.weights
               if v.path.endswith("lora_kernel_a"))
    assert np.abs(np.asarray(lora.predict_on_batch(crops)).ravel() - want).max() < 1e-5

"""`dfd-train quantize`: the int8 copy of a trained network is a model directory of its own that
the serving loader runs, named apart from the float model (so study scores never mix), and close
to it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from detector.model import load_model  # noqa: E402
from training.cli import main as dfd_train  # noqa: E402
from training.common.fold_compare import differs  # noqa: E402


def test_int8_copy_serves_close_to_the_float_model(model_dir, tmp_path):
    src = tmp_path / "float"
    shutil.copytree(model_dir, src)
    (src / "split.json").write_text(json.dumps({"seed": 0, "rule": "test", "sources": ["a"]}))
    card = json.loads((src / "card.json").read_text())
    (src / "card.json").write_text(json.dumps(card | {"training": {"sources": {}}}))
    images = tmp_path / "faces"
    (images / "real").mkdir(parents=True)
    rng = np.random.default_rng(0)
    from PIL import Image

    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (240, 240, 3), dtype=np.uint8)).save(
            images / "real" / f"{i}.jpg")
    out = tmp_path / "int8"
    assert dfd_train(["quantize", str(src), "--out", str(out), "--check", str(images)]) == 0

    card = json.loads((out / "card.json").read_text())
    float_card = json.loads((src / "card.json").read_text())
    assert card["version"] == float_card["version"] + "-int8"
    assert card["files"] == {"tflite": "model.tflite"} and "export_check" not in card
    assert card["quantized"]["from_version"] == float_card["version"]
    assert card["quantized"]["n_images"] == 3 and card["quantized"]["max_abs_delta_p_fake"] < 0.05
    assert (out / "split.json").read_text() == (src / "split.json").read_text()
    assert differs(src, out) == ["served_weights float32 -> int8"]  # study-compare's row
    assert f"Quantised from {src} (version {float_card['version']})" in (
        out / "MODEL_CARD.md").read_text()
    # smaller: the weights are int8 now
    assert (out / "model.tflite").stat().st_size < (src / "model.tflite").stat().st_size

    x = rng.integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
    int8, flt = load_model(out), load_model(src)
    assert int8.runtime.describe()["runtime"] == "tflite"
    assert np.abs(int8.predict(x) - flt.predict(x)).max() < 0.05


def test_a_frozen_trunk_model_is_refused(tmp_path):
    src = tmp_path / "trunk"
    src.mkdir()
    (src / "card.json").write_text(json.dumps({"version": "x", "trunk": {}, "files": {}}))
    assert dfd_train(["quantize", str(src), "--out", str(tmp_path / "o")]) == 1

"""`dfd-train quantize MODEL_DIR --out DIR`: a trained network as a LiteRT dynamic-range int8 file.

The served runtime is float32 LiteRT. A network that is too slow so (CLIP's first six blocks, 171
ms a crop on one thread) may be cheap enough with its weights in int8. Whether it still separates
as well is a question for the study, not for a tolerance: the int8 copy is written as a model
directory of its own, with its own version, so `dfd-train study-compare FLOAT:INT8` scores the
two on the same unseen files (a paired AUC difference) and `bench` times it as a side-by-side row.
The card says where it came from and how far it moved P(fake) on real face crops.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np

from detector.card import network_files
from detector.runtimes.keras import load_keras
from training.common.data import list_images
from training.common.templating import write_card
from training.e2e.export import tflite_predict, to_tflite

METHOD = "LiteRT dynamic-range int8: int8 weights, float activations quantised per call"


def check_crops(source: Path | None, n: int) -> np.ndarray:
    """The one crop of the first n images of a source folder (none: no check)."""
    if source is None:
        return np.zeros((0, 224, 224, 3), np.uint8)
    from training.common.prep import build_cache

    files = [i.path for i in list_images(source)]
    if not files:
        raise SystemExit(f"quantize: no images under {source}/real or {source}/fake")
    crops, _ = build_cache(files[:n], log=lambda *_: None)
    return np.asarray(crops)


def quantize(src: Path, out: Path, crops: np.ndarray) -> dict:
    """Write out/ (model.tflite int8, card.json, MODEL_CARD.md, split.json) from src/."""
    card = json.loads((src / "card.json").read_text())
    if "trunk" in card:
        raise SystemExit(f"quantize: {src} is a frozen-trunk model; its tower is int8 already")
    tfl, ker = network_files(src, card)
    out.mkdir(parents=True, exist_ok=True)
    (out / "model.tflite").write_bytes(to_tflite(load_keras(ker), int8=True))
    note: dict = {"from": str(src), "from_version": card["version"], "method": METHOD}
    if len(crops):
        x = crops.astype(np.float32)
        delta = np.abs(tflite_predict(out / "model.tflite", x) - tflite_predict(tfl, x))
        note.update(n_images=int(len(x)), max_abs_delta_p_fake=float(delta.max()),
                    mean_abs_delta_p_fake=float(delta.mean()))
    card.update(version=f"{card['version']}-int8", files={"tflite": "model.tflite"},
                quantized=note)
    card.pop("export_check", None)  # it checked the float file against Keras, not this one
    if (src / "split.json").is_file():  # study-tables and study-compare read the run's split
        shutil.copy(src / "split.json", out / "split.json")
    write_card(out / "card.json", card)
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="dfd-train quantize", description=__doc__.split("\n\n")[0])
    p.add_argument("model_dir", type=Path, help="a trained network's directory (model.keras)")
    p.add_argument("--out", type=Path, required=True, help="the int8 model's directory")
    p.add_argument("--check", type=Path, help="a source folder (real/, fake/) of face images "
                   "to measure how far P(fake) moves")
    p.add_argument("--check-n", type=int, default=64)
    args = p.parse_args(argv)
    card = quantize(args.model_dir, args.out, check_crops(args.check, args.check_n))
    print(json.dumps({"version": card["version"], **card["quantized"]}, indent=1))
    return 0

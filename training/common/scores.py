"""Served P(fake) of files through a run's model, cached per file by content and model.

`dfd-train study-tables` and `study-compare` score the same unseen files with the same runs
(tables first, then each pair), and a CLIP run costs about 0.1 s a crop on 2 cores; the score of
one file by one model is frozen work, so it is kept. The key of a model is its card's version
(a hash of its weights) with the temperature and prior it serves at; the key of a file is its
path, size and mtime with the crop settings (training.common.prep.cache_key of that one file).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from training.common.prep import CACHE_DIR, build_cache, cache_key

SCORES = CACHE_DIR / "scores"


def model_key(model_dir: Path) -> str:
    """The served model's identity: version, temperature and prior of its card."""
    card = json.loads((model_dir / "card.json").read_text())
    return f"{card['version']}-t{card.get('temperature', 1.0):.6g}-p{card.get('prior_fake', 0.5):g}"


def _load(path: Path) -> dict[str, float]:
    return json.loads(path.read_text()) if path.is_file() else {}


def _save(path: Path, scores: dict[str, float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(scores))
    tmp.replace(path)  # atomic: a reader never sees half a file


def scored(model_dir: Path, paths: list[str], log=print) -> np.ndarray:
    """Served P(fake) of each file through the one crop and the run's model; files this model
    scored before (same content, same crop settings) are not scored again."""
    store = SCORES / f"{model_key(model_dir)}.json"
    known = _load(store)
    key_of = {p: cache_key([p]) for p in paths}  # a stat and a hash a file: once
    todo = sorted(p for p, k in key_of.items() if k not in known)
    if todo:
        from detector.model import load_model

        crops, _ = build_cache(todo, log=log)
        model = load_model(model_dir, threads=2)
        p = np.concatenate([model.predict(np.asarray(crops[s:s + 64]))
                            for s in range(0, len(todo), 64)])
        known = _load(store)  # another process may have added scores meanwhile
        known.update({key_of[f]: float(v) for f, v in zip(todo, p, strict=True)})
        _save(store, known)
    else:
        log(f"{model_dir.name}: {len(paths)} files scored before, reused")
    return np.array([known[key_of[p]] for p in paths], np.float64)

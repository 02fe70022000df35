"""The frozen-feature study on synthetic features: heads, left-out runs, selection, prior, card."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from detector.head import Head
from training import policy as P
from training.clip import study as S

SOURCES = {"ff-crops": (0, 1), "stylegan-faces": (0, 1), "dfdc-faces": (0, 1),
           "fairface-real": (0,), "sdfd-faces": (1,)}


def synthetic_study(n: int = 60, seed: int = 0) -> S.Study:
    """Features where fakes differ from reals along one shared direction (a 'fake cue' every
    source shares) plus a per-source offset, so left-out runs can still rank."""
    rng = np.random.default_rng(seed)
    labels, sources, parts, rows = [], [], [], []
    direction = rng.normal(size=16)
    for src, classes in SOURCES.items():
        offset = rng.normal(size=16) * 0.5
        for label in classes:
            for part in ("train",) * 4 + ("calib", "test"):
                x = rng.normal(size=(n // 6, 16)) + offset + 1.5 * label * direction
                rows.append(x)
                labels += [label] * len(x)
                sources += [src] * len(x)
                parts += [part] * len(x)
    x = np.concatenate(rows)
    feats = {"b4": x, "b6": x * 2 + rng.normal(size=x.shape), "embed": x[:, :8]}
    return S.Study(feats, np.array(labels), np.array(sources), np.array(parts))


def test_head_round_trips_and_ranks():
    study = synthetic_study()
    run = S.train_run(study, ("b4",), 0.5)
    head = Head.from_json(json.loads(json.dumps(run["head"].to_json())))
    assert np.allclose(head.logits(study.feats), run["head"].logits(study.feats))
    test = study.mask("test")
    from training.common import metrics as M

    assert M.roc_auc(study.labels[test], run["z50"][test]) > 0.9
    with pytest.raises(ValueError):
        Head.from_json({**run["head"].to_json(), "coef": [1.0]})


def test_left_out_rows_for_one_class_sources():
    study = synthetic_study()
    rows, y = S.left_out_rows(study, "sdfd-faces")
    assert set(y.tolist()) == {0, 1}
    assert set(study.sources[rows & (study.labels == 0)].tolist()) <= set(SOURCES) - {"sdfd-faces"}
    assert set(study.parts[rows & (study.labels == 0)].tolist()) == {"test"}
    rows, y = S.left_out_rows(study, "ff-crops")
    assert set(study.sources[rows].tolist()) == {"ff-crops"}


def test_selection_prefers_the_cheaper_of_tied_configs():
    a = {"inputs": ["b12"], "blocks": 12, "mean_left_out_auc": 0.80}
    b = {"inputs": ["b6"], "blocks": 6, "mean_left_out_auc": 0.797}
    c = {"inputs": ["b4"], "blocks": 4, "mean_left_out_auc": 0.70}
    assert S.select([a, b, c]) is b
    assert S.select([a, {**b, "mean_left_out_auc": 0.79}, c]) is a


def test_study_to_card(tmp_path, monkeypatch):
    """The whole fit on synthetic features, with the shipped model's logits faked as noise, and
    the card written and rendered."""
    from training.clip import export as clip_export
    from training.clip import fit as clip_fit

    study = synthetic_study()
    monkeypatch.setattr(S, "FEATURE_SETS", (("b4",), ("b4", "embed")))
    monkeypatch.setattr(S, "PENALTIES", (0.5,))
    z_old = np.random.default_rng(1).normal(size=len(study.labels))
    results, chosen, stack = clip_fit.run_study(study, z_old, log=lambda m: None)
    final = S.train_run(study, tuple(chosen["inputs"]), chosen["C"])
    prior, grid = P.choose_prior_issue18(study, final["z50"], z_old, 0.02)
    assert prior in P.ISSUE18_PRIORS and len(grid) == len(P.ISSUE18_PRIORS)
    old = {"likely_real_below": 0.01, "likely_fake_from": 0.9}
    tab = clip_fit.tables(study, final, chosen, z_old, prior, 0.02, old)
    assert tab["bands"]["likely_real_below"] <= tab["bands"]["likely_fake_from"]
    assert {"left_out", "test", "shipped_test", "targets"} <= set(tab)
    triples = zip(study.sources, study.parts, study.labels, strict=True)
    rows = [(s, p, SimpleNamespace(path=f"/x/{i}.jpg", label=int(y)))
            for i, (s, p, y) in enumerate(triples)]
    out = {"study": study, "rows": rows, "final": final, "prior": prior, "prior_grid": grid,
           "results": [clip_fit.strip_runs(r) for r in results],
           "chosen": clip_fit.strip_runs(chosen), "stack": clip_fit.strip_runs(stack),
           "tables": tab, "shipped_card": {"name": "old", "version": "v0", "prior_fake": 0.02,
                                           "assessment": {"min_face_px": 64, "max_faces": 4}}}
    args = SimpleNamespace(seed=1, data=["a", "b"])
    card = clip_export.write_model(tmp_path, out, args)
    assert json.loads((tmp_path / "card.json").read_text())["version"] == card["version"]
    text = (tmp_path / "MODEL_CARD.md").read_text()
    assert "Left out" in text and "sdfd-faces" in text and "Targets" in text
    Head.load(tmp_path / "head.json")


def test_pseudo_fakes_never_come_from_the_left_out_source(monkeypatch):
    """The pseudo-fake ablation adds pseudo-fakes to every run's training part, but never those
    made from the left-out source's reals, and never scores them."""
    from training.clip import ablation as A

    study = synthetic_study()
    reals = (study.parts == "train") & (study.labels == 0)
    origin = study.sources[reals]
    pseudo = study.feats["b6"][reals] + 3.0  # obviously 'fake' rows, tagged by their origin
    seen = []
    real_train_run = S.train_run

    def spy(aug, inputs, c, leave_out=None):
        extra = aug.sources == A.PSEUDO
        seen.append((leave_out, int(extra.sum()), set(aug.parts[extra].tolist())))
        return real_train_run(aug, inputs, c, leave_out=leave_out)

    monkeypatch.setattr(S, "train_run", spy)
    out = A.pseudo_config(study, pseudo, origin, 0.5)
    per_source = {s: int((origin == s).sum()) for s in set(origin.tolist())}
    for leave_out, n, parts in seen:
        assert n == len(origin) - per_source.get(leave_out, 0)
        assert parts == {"train"}
    assert set(out["left_out"]) == set(SOURCES)
    for src, row in out["left_out"].items():
        rows, _ = S.left_out_rows(study, src)
        assert row["n_real"] + row["n_fake"] == int(rows.sum())  # no pseudo-fake was scored


def test_ablation_table_goes_into_the_card(tmp_path):
    """`dfd-train clip-ablation --card DIR` keeps the rows in card.json and renders them."""
    import shutil
    from pathlib import Path

    from training.clip import ablation as A

    shipped = Path(__file__).resolve().parents[1] / "models" / "dfd-clip"
    for name in ("card.json", "head.json", "MODEL_CARD.md"):
        shutil.copy(shipped / name, tmp_path / name)
    row = {"auc": 0.612, "ci": [0.55, 0.67], "n_real": 10, "n_fake": 10}
    out = {"seed": 7, "images": {"a/train": 30, "a/test": 12}, "per_part": A.PER_PART,
           "pseudo_fakes": 5,
           "results": [{"variant": "b6 + pseudo-fakes", "C": 0.05, "mean_left_out_auc": 0.6123,
                        "left_out": {s: row for s in SOURCES}}]}
    A.into_card(tmp_path, out)
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["study"]["ablation"]["images"] == 42
    assert card["version"] == json.loads((shipped / "card.json").read_text())["version"]
    md = (tmp_path / "MODEL_CARD.md").read_text()
    assert "| b6 + pseudo-fakes | 0.05 |" in md and "0.612 (0.55-0.67)" in md
    assert "**0.612**" in md and "42 images" in md

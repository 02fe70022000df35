"""The kept models' outputs on fixed images, bit for bit (tests/golden.py says why), the CLIP
model's for each kind of CPU they were recorded on."""

from __future__ import annotations

import json
import math

import pytest

from tests.golden import DATA, MODELS, TRUNK_MODELS, cpu_kind, golden_file, outputs

pytestmark = pytest.mark.data
# On a CPU kind with no record yet, the CLIP model is held to the recorded labels and boxes
# exactly and to its P(fake) within this many logits (the spread measured between two kinds).
OTHER_CPU_LOGITS = 0.5


def _logit(hex_p: str) -> float:
    p = float.fromhex(hex_p)
    return math.log(p / (1 - p))


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_outputs_are_bit_identical_to_the_recorded_ones(name):
    model_dir = MODELS[name][0]
    golden = golden_file(name)
    exact = golden.is_file()
    want = json.loads((golden if exact else MODELS[name][1]).read_text())
    got = outputs(model_dir)
    assert got["version"] == want["version"], (
        f"the shipped model is {got['version']}, the golden outputs are of {want['version']}: "
        "after shipping a model, record its outputs with `python -m tests.golden --write`")
    assert got["images"].keys() == want["images"].keys()
    for image, expected in want["images"].items():
        if exact:
            assert got["images"][image] == expected, image
            continue
        # A CPU kind nobody recorded (only the trunk model's outputs depend on it).
        assert name in TRUNK_MODELS, f"{golden} missing"
        have = got["images"][image]
        assert have["label"] == expected["label"], image
        assert [f[:4] for f in have["faces"]] == [f[:4] for f in expected["faces"]], image
        for a, b in zip([have["p_fake"]] + [f[4] for f in have["faces"]],
                        [expected["p_fake"]] + [f[4] for f in expected["faces"]], strict=True):
            assert abs(_logit(a) - _logit(b)) < OTHER_CPU_LOGITS, (image, cpu_kind())


def test_the_cpu_kinds_recorded_agree_on_labels_and_boxes():
    """The CLIP model's records for each CPU kind differ at most by a little P(fake)."""
    records = sorted(MODELS["dfd-clip"][1].parent.glob("outputs-clip*.json"))
    assert len(records) >= 2, records
    base = json.loads(records[0].read_text())
    for path in records[1:]:
        other = json.loads(path.read_text())
        assert other["version"] == base["version"], path
        for image, rec in base["images"].items():
            o = other["images"][image]
            assert o["label"] == rec["label"] and len(o["faces"]) == len(rec["faces"]), image
            assert abs(_logit(o["p_fake"]) - _logit(rec["p_fake"])) < OTHER_CPU_LOGITS, image

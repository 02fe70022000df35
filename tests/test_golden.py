"""The shipped model's outputs on fixed images, bit for bit (tests/golden.py says why)."""

from __future__ import annotations

import json

import pytest

from tests.golden import DATA, MODELS, outputs

pytestmark = pytest.mark.data


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
@pytest.mark.parametrize("name", sorted(MODELS))
def test_outputs_are_bit_identical_to_the_recorded_ones(name):
    model_dir, golden = MODELS[name]
    want = json.loads(golden.read_text())
    got = outputs(model_dir)
    assert got["version"] == want["version"], (
        f"the shipped model is {got['version']}, the golden outputs are of {want['version']}: "
        "after shipping a model, record its outputs with `python -m tests.golden --write`")
    assert got["images"].keys() == want["images"].keys()
    for name, expected in want["images"].items():
        assert got["images"][name] == expected, name

"""The shipped model's outputs on fixed images, bit for bit (tests/golden.py says why)."""

from __future__ import annotations

import json

import pytest

from tests.golden import DATA, GOLDEN, outputs

pytestmark = pytest.mark.data


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
def test_outputs_are_bit_identical_to_the_recorded_ones():
    want = json.loads(GOLDEN.read_text())
    got = outputs()
    assert got["version"] == want["version"], (
        f"the shipped model is {got['version']}, the golden outputs are of {want['version']}: "
        "after shipping a model, record its outputs with `python -m tests.golden --write`")
    assert got["images"].keys() == want["images"].keys()
    for name, expected in want["images"].items():
        assert got["images"][name] == expected, name

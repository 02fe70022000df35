"""Every assessment value through the real worker: redis-server, `python -m worker`, gunicorn.

Models with a known response (tests/tiny_model.py: bright crops score fake, dark ones real; an
asymmetric one scores a mirrored crop the other way) and a real face photo from ../shared/data
make each outcome certain, so a test fails only when the service decides wrongly.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from detector.stability import CHECKED
from tests.conftest import DATA
from tests.test_faults import AUTH, Stack
from tests.tiny_model import build_controlled_model_dir

pytestmark = [pytest.mark.slow, pytest.mark.data,
              pytest.mark.skipif(not (DATA / "stylegan-faces").is_dir(),
                                 reason="needs ../shared/data")]


def photo(scale: float, offset: float, side: int = 300, left: float = 0.0) -> bytes:
    """A real face, its brightness set by scale/offset (and its left half by left), pasted into a
    640x480 grey photo at side px."""
    face = Image.open(DATA / "stylegan-faces" / "real" / "00001.jpg").convert("RGB")
    f = np.asarray(face.resize((side, side)), np.float32) * scale + offset
    f[:, : side // 2] += left
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    canvas.paste(Image.fromarray(np.clip(f, 0, 255).astype(np.uint8)), (170, 90))
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()


def pair() -> bytes:
    """Two real faces, 220 px, side by side in a 640x480 grey photo: one brightened (it scores
    fake under the controlled model), one darkened (real)."""
    face = np.asarray(Image.open(DATA / "stylegan-faces" / "real" / "00001.jpg").convert("RGB")
                      .resize((220, 220)), np.float32)
    canvas = Image.new("RGB", (640, 480), (128, 128, 128))
    for x, (scale, offset) in ((60, (0.4, 150)), (360, (0.5, 0))):
        canvas.paste(Image.fromarray(np.clip(face * scale + offset, 0, 255).astype(np.uint8)),
                     (x, 130))
    buf = io.BytesIO()
    canvas.save(buf, "PNG")
    return buf.getvalue()


def noise() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)).save(
        buf, "PNG")
    return buf.getvalue()


def results(stack: Stack, blobs: dict[str, bytes]) -> dict[str, dict]:
    out = {}
    for name, data in blobs.items():
        r = requests.post(f"{stack.url}/api/v1/jobs?wait=10", headers=AUTH, timeout=60,
                          files={"image": (f"{name}.png", data, "image/png")})
        assert r.status_code in (200, 202), r.text
        job = r.json()["jobs"][0]
        if job["status"] != "done":
            job = requests.get(f"{stack.url}/api/v1/jobs/{job['id']}?wait=10", headers=AUTH,
                               timeout=30).json()
        assert job["status"] == "done", job
        out[name] = job["result"]
    return out


@pytest.fixture
def stack_with(tmp_path):
    stacks = []

    def make(model_dir) -> Stack:
        s = Stack(tmp_path / model_dir.name, model_dir, concurrency=1)
        stacks.append(s)
        s.start_redis()
        s.start_worker()
        s.start_web()
        return s

    yield make
    for s in stacks:
        s.stop()


def test_each_assessment_through_the_worker(tmp_path, stack_with):
    stack = stack_with(build_controlled_model_dir(tmp_path / "brightness", 3.0, 0.0))
    got = results(stack, {"bright": photo(0.4, 150), "dark": photo(0.5, 0),
                          "middle": photo(0.5, 75), "tiny": photo(0.4, 150, side=110),
                          "noise": noise(), "pair": pair()})
    expect = {"bright": ("likely_fake", "high_score", "Fake"),
              "dark": ("likely_real", "low_score", "Real"),
              "middle": ("uncertain", "middle_score", "Fake"),
              "tiny": ("not_applicable", "face_too_small", "Fake"),
              "noise": ("not_applicable", "no_face", None)}
    for name, (assessment, reason, label) in expect.items():
        r = got[name]
        assert (r["assessment"], r["reasons"][0]) == (assessment, reason), (name, r)
        assert r["reason_text"], name
        # The seed's label and P(fake) stay what they were: Fake when P(fake) > threshold.
        assert r["label"] == ("Fake" if r["p_fake"] > r["threshold"] else "Real"), name
        if label:
            assert r["label"] == label, (name, r)
        # Only a face read "Likely real" or "Likely fake" has its versions scored (the test card
        # states no margin: every such face); between the bands, or not judged, it keeps its
        # decision whatever they score.
        st = r["stability"]
        sure = assessment in ("likely_real", "likely_fake")
        if len(r["faces"]) <= 1:
            assert st["variants"] == (len(CHECKED) if sure else 1), (name, st)
        assert not st["unstable"] and st["spread"] < 0.05, (name, st)
        assert st["p_fake_min"] <= r["p_fake"] <= st["p_fake_max"], (name, st)
        for face in r["faces"]:
            own = face["assessment"] in ("likely_real", "likely_fake")
            assert face["stability"]["variants"] == (len(CHECKED) if own else 1), (name, face)
    assert got["noise"]["faces"] == [] and got["tiny"]["faces"]
    # Each result says the prior its P(fake) assumes (the test card states none: 50/50), the
    # bands it was judged against and each face's own assessment.
    assert all(r["prior_fake"] == 0.5 for r in got.values())
    assert got["bright"]["bands"] == {"likely_real_below": 0.2, "likely_fake_from": 0.8,
                                      "faces_judged": 1}
    assert got["bright"]["faces"][0]["assessment"] == "likely_fake"
    assert got["tiny"]["faces"][0]["assessment"] == "not_judged"
    # Two faces: each judged on its own, against a higher bar than one face's.
    two = got["pair"]
    assert two["bands"]["faces_judged"] == 2 and two["bands"]["likely_fake_from"] > 0.8, two
    assert "several_faces" in two["reasons"]
    dark, bright = sorted(two["faces"], key=lambda f: f["p_fake"])
    assert dark["assessment"] == "likely_real", two
    assert two["assessment"] == bright["assessment"] in ("likely_fake", "uncertain"), two


def test_an_unstable_verdict_is_uncertain(tmp_path, stack_with):
    stack = stack_with(build_controlled_model_dir(tmp_path / "asymmetric", 0.0, 40.0))
    r = results(stack, {"lopsided": photo(0.5, 50, left=25)})["lopsided"]
    assert r["assessment"] == "uncertain" and r["reasons"] == ["unstable"], r
    assert r["stability"]["unstable"] and r["stability"]["spread"] > 0.9
    assert "out of the band that would decide it" in r["reason_text"]

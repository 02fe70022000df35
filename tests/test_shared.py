"""Unit tests of the shared pieces: settings, image validation, job records, results, storage."""

from __future__ import annotations

import io
import os
import time

import numpy as np
import pytest
from PIL import Image

from shared import settings
from shared.images import ImageError, decode_image, inspect_image
from shared.job_view import public_view
from shared.jobs import JobStore, new_job_id
from shared.schema import build_result, with_provenance
from shared.storage import Storage
from tests.conftest import make_jpeg


def png_bytes(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode).save(buf, "PNG")
    return buf.getvalue()


# settings -----------------------------------------------------------------------------------

def test_settings_defaults_and_parsing():
    s = settings.load({})
    assert s.UPLOAD_LIMIT == "5/minute" and s.RETENTION == 3600
    s = settings.load({"DFD_RETENTION": "15m", "DFD_UPLOAD_LIMIT": "10 per hour",
                       "DFD_API_KEYS": "batch:abcdefghijklmnop0:100/minute"})
    assert s.RETENTION == 900 and s.UPLOAD_LIMIT == "10 per hour"
    assert s.API_KEYS == {"abcdefghijklmnop0": {"name": "batch", "limit": "100/minute"}}


def test_settings_are_frozen_and_spec_is_read_off_the_fields():
    import dataclasses

    s = settings.load({})
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.PORT = 1
    assert [f.name for f in dataclasses.fields(settings.Settings)] == list(settings.SPEC)
    assert settings.read("PORT", {"DFD_PORT": "8081"}) == 8081 and settings.read("PORT", {}) == 5000
    assert s.replace(PORT=8080).PORT == 8080 and s.PORT == 5000


@pytest.mark.parametrize("name,value", [("PORT", "http"), ("RETENTION", "soon"),
                                        ("UPLOAD_LIMIT", "five"), ("API_KEYS", "x:short"),
                                        ("THRESHOLD", "1.5"), ("DEVICE", "tpu")])
def test_bad_settings_fail_with_the_variable_named(name, value):
    with pytest.raises(settings.SettingsError, match=f"DFD_{name}"):
        settings.load({f"DFD_{name}": value})


def test_create_app_fails_fast_on_bad_setting():
    from web import create_app

    with pytest.raises(settings.SettingsError, match="DFD_UPLOAD_LIMIT"):
        create_app({"ENV": {"DFD_UPLOAD_LIMIT": "lots"}})


def test_web_never_imports_tensorflow():
    import subprocess
    import sys

    code = ("import sys; import web.wsgi; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras')]; "
            "print(bad); sys.exit(1 if bad else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "DFD_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert out.returncode == 0, out.stdout + out.stderr


# images -------------------------------------------------------------------------------------

def test_valid_jpeg_and_png_decode_to_rgb():
    assert inspect_image(make_jpeg((64, 48)))["format"] == "JPEG"
    rgba = np.zeros((10, 12, 4), np.uint8)
    rgba[..., 3] = 255
    assert decode_image(png_bytes(rgba, "RGBA")).shape == (10, 12, 3)
    grey = decode_image(png_bytes(np.full((5, 6), 7, np.uint8), "L"))
    assert grey.shape == (5, 6, 3) and grey.dtype == np.uint8


@pytest.mark.parametrize("data,code", [
    (b"", "empty_file"),
    (b"GIF89a" + b"\0" * 40, "corrupt_image"),  # says GIF, is not one
    (b"BM" + b"\0" * 40, "unsupported_type"),
    (b"<html><body>hi</body></html>", "unsupported_type"),
])
def test_refused_bytes(data, code):
    with pytest.raises(ImageError) as info:
        inspect_image(data)
    assert info.value.code == code


def test_truncated_jpeg_is_corrupt():
    data = make_jpeg((200, 200))
    with pytest.raises(ImageError) as info:
        inspect_image(data[: len(data) // 2])
    assert info.value.code == "corrupt_image"


def test_pixel_cap():
    with pytest.raises(ImageError) as info:
        inspect_image(make_jpeg((300, 300)), max_pixels=300 * 299)
    assert info.value.code == "too_many_pixels"


def test_exif_orientation_applied():
    img = Image.new("RGB", (40, 20), "red")
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    assert decode_image(buf.getvalue()).shape == (40, 20, 3)


# results ------------------------------------------------------------------------------------

MODEL = {"name": "m", "version": "v1"}
ST = {"checked": True, "variants": 5, "p_fake_min": 0.1, "p_fake_max": 0.2, "spread": 0.1,
      "unstable": False}
VERDICT = {"assessment": "uncertain", "reasons": ["middle_score"], "reason_text": "t"}


def result(p, boxes, scores, threshold, size, **kw):
    kw = {"assessment": VERDICT, "stability": [ST] * max(len(boxes), 1), "image_stability": ST,
          **kw}
    return build_result(p, boxes, scores, threshold, MODEL, size, **kw)


def test_result_most_suspicious_face_decides():
    res = result([0.1, 0.8], [(0, 0, 10, 10), (20, 20, 30, 30)], [0.9, 0.95], 0.3, (64, 48))
    assert res["label"] == "Fake" and res["p_fake"] == 0.8 and res["confidence"] == 0.8
    assert [f["p_fake"] for f in res["faces"]] == [0.1, 0.8] and res["face_found"]
    assert res["assessment"] == "uncertain" and res["reasons"] == ["middle_score"]
    assert res["stability"] == ST and res["faces"][0]["stability"] == ST


def test_result_carries_the_prior_the_bands_and_each_faces_assessment():
    verdict = {**VERDICT, "faces": ["likely_real", "uncertain"],
               "bands": {"likely_real_below": 0.01, "likely_fake_from": 0.8, "faces_judged": 2}}
    res = result([0.1, 0.5], [(0, 0, 10, 10), (20, 20, 30, 30)], [0.9, 0.95], 0.3, (64, 48),
                 assessment=verdict, prior_fake=0.02)
    assert res["prior_fake"] == 0.02 and res["bands"] == verdict["bands"]
    assert [f["assessment"] for f in res["faces"]] == ["likely_real", "uncertain"]
    # The seed's label and confidence are unchanged.
    assert res["label"] == "Fake" and res["confidence"] == 0.5
    with pytest.raises(ValueError, match="one assessment per face"):
        result([0.1, 0.5], [(0, 0, 10, 10), (20, 20, 30, 30)], [0.9, 0.95], 0.3, (64, 48),
               assessment={**verdict, "faces": ["uncertain"]})


def test_result_refuses_an_unknown_assessment():
    with pytest.raises(ValueError, match="unknown assessment"):
        result([0.5], [], [], 0.3, (1, 1), assessment={"assessment": "probably", "reasons": [],
                                                       "reason_text": ""})


def test_result_is_built_through_its_typed_model():
    with pytest.raises(ValueError, match="extra"):  # a field the result does not declare
        result([0.5], [], [], 0.3, (1, 1), image_stability={**ST, "mood": "calm"})
    video = {"duration_s": None, "frames_sampled": 3, "frames_scored": 0, "tracks": [],
             "timeline": []}
    res = result([0.5], [], [], 0.3, (1, 1), video=video)
    assert res["media"] == "video" and res["video"] == video
    still = result([0.5], [], [], 0.3, (1, 1))
    assert still["media"] == "image" and "video" not in still and "bands" not in still
    prov = {"c2pa": {"present": False, "state": "absent"}, "markers": [], "summary": "none"}
    assert with_provenance(res, prov) == {**res, "provenance": prov}


def test_result_threshold_is_p_real_below_0_7():
    assert result([0.29], [], [], 0.3, (1, 1))["label"] == "Real"
    assert result([0.31], [], [], 0.3, (1, 1))["label"] == "Fake"
    whole = result([0.2], [], [], 0.3, (1, 1))
    assert whole["faces"] == [] and whole["face_found"] is False
    assert abs(whole["confidence"] - 0.8) < 1e-9


# job records ---------------------------------------------------------------------------------

@pytest.fixture
def jobs(clean_redis):
    return JobStore(clean_redis, ttl=60)


def test_job_lifecycle_and_single_finish(jobs, clean_redis):
    job_id = new_job_id()
    assert len(job_id) == 32 and job_id != new_job_id()
    jobs.create(job_id, filename="a.jpg", stored="x.jpg", sha256="s", client="ip:1")
    assert jobs.get(job_id)["status"] == "queued"
    assert 0 < clean_redis.ttl(jobs.key(job_id)) <= 60
    assert jobs.claim_ready(job_id, 0, owner="task-1").running == [job_id]
    # Its redelivery (its worker died) runs it again.
    assert jobs.claim_ready(job_id, 0, owner="task-1").running == [job_id]
    res = result([0.5], [], [], 0.3, (1, 1))
    assert jobs.finish(job_id, result=res) is True
    assert jobs.finish(job_id, error="late duplicate") is False
    rec = jobs.get(job_id)
    assert rec["status"] == "done" and rec["finishes"] == 1 and rec["attempts"] == 2
    view = public_view(rec)
    assert view["result"] == res and "error" not in view and view["finished_at"].endswith("Z")
    assert jobs.claim_ready(job_id, 0, owner="task-2").running == []  # final: never run again


def test_failed_job_view_and_unknown(jobs):
    job_id = new_job_id()
    jobs.create(job_id, filename="a.jpg", stored="x.jpg", sha256="s", client="ip:1")
    jobs.finish(job_id, error="boom")
    view = public_view(jobs.get(job_id))
    # Exactly the documented fields of a failed job: an error, no result, no internals.
    assert set(view) == {"id", "status", "created_at", "started_at", "finished_at", "age_s",
                         "error"}, view
    assert view["status"] == "failed" and view["error"] == "boom" and view["id"] == job_id
    assert view["started_at"] is None and view["finished_at"].endswith("Z")
    assert jobs.get(new_job_id()) is None


def test_wait_returns_when_finished(jobs):
    job_id = new_job_id()
    jobs.create(job_id, filename="a.jpg", stored="x.jpg", sha256="s", client="ip:1")
    jobs.finish(job_id, error="x")
    t0 = time.monotonic()
    jobs.wait(job_id, 5)
    jobs.wait(job_id, 5)  # a second waiter is woken too
    assert time.monotonic() - t0 < 1


# storage ------------------------------------------------------------------------------------

def test_storage_generated_names_and_sweep(tmp_path):
    st = Storage(tmp_path)
    name = st.save(b"abc", ".jpg")
    assert name.endswith(".jpg") and len(name) == 36 and st.read(name) == b"abc"
    with pytest.raises(ValueError):
        st.path("../etc/passwd")
    old = time.time() - 7200
    os.utime(st.path(name), (old, old))
    fresh = st.save(b"def", ".png")
    assert st.sweep(3600) == 1
    assert not st.path(name).exists() and st.path(fresh).exists()


def test_deprecations_from_our_code_are_errors():
    """pyproject's filterwarnings: a deprecation raised in our modules fails the test run; one
    raised inside a third-party package does not."""
    import warnings

    with pytest.raises(DeprecationWarning):
        warnings.warn("old API", DeprecationWarning, stacklevel=1)  # attributed to tests.*
    with warnings.catch_warnings(record=True):
        warnings.warn_explicit("old API", DeprecationWarning, "x.py", 1, module="somelib")

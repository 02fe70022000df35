"""The stills people send: WebP, GIF, HEIC/HEIF and AVIF taken by content, EXIF orientation
applied, names never deciding the type; through the real service."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from shared.images import ImageError, decode_pil, inspect_image
from tests.conftest import DATA

FORMATS = ["WEBP", "GIF", "HEIF", "AVIF", "JPEG", "PNG"]


def face() -> Image.Image:
    found = sorted((DATA / "stylegan-faces" / "real").glob("*.jpg"))[:1]
    if found:
        return Image.open(found[0]).convert("RGB")
    rng = np.random.default_rng(3)
    return Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_is_taken_by_content(fmt):
    img = face()
    info = inspect_image(encode(img, fmt))
    assert info == {"format": fmt, "width": img.width, "height": img.height}
    decoded = decode_pil(encode(img, fmt))
    assert decoded.mode == "RGB" and decoded.size == img.size


@pytest.mark.parametrize("fmt", ["WEBP", "JPEG", "HEIF", "AVIF"])
def test_exif_orientation_is_applied(fmt):
    img = Image.new("RGB", (60, 40), "white")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_pil(encode(img, fmt, exif=exif.tobytes()))
    assert decoded.size == (40, 60)


def test_animated_gif_of_10000_frames_judges_the_first_quickly():
    frames = [Image.new("P", (8, 8), i % 256) for i in range(10_000)]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=10)
    assert inspect_image(data)["format"] == "GIF"
    assert decode_pil(data).size == (8, 8)


def _with_declared_size(data: bytes, width: int, height: int) -> bytes:
    """A HEIF/AVIF whose 'ispe' box (the image's declared size) claims width x height."""
    at = data.index(b"ispe") + 8  # box type, then version/flags
    return data[:at] + width.to_bytes(4, "big") + height.to_bytes(4, "big") + data[at + 8:]


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_heif_and_avif_declaring_huge_dimensions_are_refused(fmt):
    bomb = _with_declared_size(encode(Image.new("RGB", (64, 64)), fmt), 60000, 60000)
    with pytest.raises(ImageError) as info:
        inspect_image(bomb)
    # pillow-heif reads the size and our cap refuses it; libavif refuses it itself on opening.
    assert (info.value.code, info.value.status) == (
        {"HEIF": "too_many_pixels", "AVIF": "corrupt_image"}[fmt], 400), info.value


def test_truncated_webp_is_corrupt_not_unknown():
    with pytest.raises(ImageError) as info:
        inspect_image(encode(face(), "WEBP")[:40])
    assert info.value.code == "corrupt_image"


def upload(live_server, data: bytes, name: str) -> requests.Response:
    return requests.post(f"{live_server.url}/api/v1/jobs", params={"wait": 10}, timeout=60,
                         headers={"Authorization": f"Bearer {live_server.api_key}"},
                         files=[("image", (name, data, "application/octet-stream"))])


@pytest.mark.slow
@pytest.mark.parametrize("fmt,name", [("WEBP", "saved.webp"), ("GIF", "anim.gif"),
                                      ("HEIF", "IMG_0001.HEIC"), ("AVIF", "photo.avif"),
                                      ("JPEG", "really-a-jpeg.heic"), ("HEIF", "named.jpg")])
def test_service_judges_each_format_whatever_its_name(live_server, fmt, name):
    r = upload(live_server, encode(face(), fmt), name)
    assert r.status_code == 200, r.text
    job = r.json()["jobs"][0]
    assert job["status"] == "done", job
    assert job["result"]["media"] == "image" and job["filename"] == name


@pytest.mark.slow
def test_other_types_are_refused_naming_the_accepted_ones(live_server):
    r = upload(live_server, encode(face(), "BMP"), "photo.bmp")
    assert r.status_code == 415
    message = r.json()["error"]["message"]
    for word in ("JPEG", "PNG", "WebP", "GIF", "HEIC", "AVIF", "MP4", "WebM"):
        assert word in message, message


@pytest.mark.parametrize("fmt", ["WEBP", "HEIF", "AVIF"])
def test_provenance_is_read_where_the_format_carries_it(fmt):
    from detector.provenance import provenance

    exif = Image.Exif()
    exif[0x0131] = "Adobe Photoshop 25.0"  # Software
    found = provenance(encode(Image.new("RGB", (64, 64)), fmt, exif=exif.tobytes()))
    assert [(m["kind"], m["name"]) for m in found["markers"]] == [("editor", "Adobe Photoshop")]
    assert "Adobe Photoshop" in found["summary"]

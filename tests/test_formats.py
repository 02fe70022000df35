"""One table of formats (shared/formats.py): every reader asks it, so a new format is one row.
A row added here (BMP, which Pillow reads) is taken end to end by the real web app: the page's
accept list and words, upload validation, the stored suffix, the OpenAPI document and `dfd
submit`'s folder search; a row switched off is refused everywhere."""

from __future__ import annotations

import io
import json
import re
import struct
from dataclasses import replace
from fractions import Fraction

import av
import numpy as np
import pytest
import redis
from PIL import Image

from batch.rows import collect_images
from detector import provenance
from shared import formats
from shared.media import VideoLimits, inspect_upload
from shared.storage import Storage
from web.uploads import suffix_of

BMP = formats.Format("BMP", "still", "BMP", ".bmp", "image/bmp", "BMP", magic=(rb"BM",),
                     also=(".dib",))
KEY = "formats-test-key"


def encode(fmt: str) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (48, 32), (200, 120, 40)).save(buf, fmt)
    return buf.getvalue()


def _clip(target, fmt: str, options: dict) -> None:
    """Five frames of Motion JPEG into target (bytes or, for faststart, a file it rewrites)."""
    with av.open(target, "w", format=fmt, options=options) as out:
        s = out.add_stream("mjpeg", rate=5)
        s.width, s.height, s.pix_fmt = 64, 48, "yuvj420p"
        for i in range(5):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), "rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 5)
            out.mux(s.encode(frame))
        out.mux(s.encode())


def movie(fmt: str) -> bytes:
    buf = io.BytesIO()
    _clip(buf, fmt, {})
    return buf.getvalue()


def moov_first(tmp_path) -> bytes:
    """A QuickTime file as older cameras wrote it: no ftyp box, the movie box first (faststart
    puts it before the media; the sample offsets move back by the ftyp box taken out)."""
    path = tmp_path / "faststart.mov"
    _clip(str(path), "mov", {"movflags": "faststart"})
    data = path.read_bytes()
    cut = struct.unpack(">I", data[:4])[0]
    body = bytearray(data[cut:])
    at = body.index(b"stco") + 4
    for i in range(struct.unpack(">I", body[at + 4:at + 8])[0]):
        o = at + 8 + 4 * i
        body[o:o + 4] = struct.pack(">I", struct.unpack(">I", body[o:o + 4])[0] - cut)
    assert body[4:8] == b"moov"
    return bytes(body)


def test_the_first_bytes_name_each_format():
    bmff = b"\0\0\0\x18ftyp%s\0\0\0\0mif1"
    webm = b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\xf7\x81\x01\x42\x82\x84webm"
    cases = [(encode("JPEG"), "JPEG"), (encode("PNG"), "PNG"), (encode("WEBP"), "WEBP"),
             (encode("GIF"), "GIF"), (bmff % b"heic", "HEIF"), (bmff % b"msf1", "HEIF"),
             (bmff % b"heim", "HEIF"), (bmff % b"avif", "AVIF"), (bmff % b"isom", "MP4"),
             (bmff % b"qt  ", "MOV"), (movie("mp4"), "MP4"), (movie("mov"), "MOV"),
             (webm, "WEBM"), (movie("matroska"), "MKV"), (encode("BMP"), None), (b"", None)]
    assert [getattr(formats.sniff(d), "name", None) for d, _ in cases] == [n for _, n in cases]
    # One list of brands: a HEIF image sequence is a still, not a video, for every reader.
    assert formats.sniff(bmff % b"heis").kind == "still"


def test_a_multi_picture_jpeg_is_taken_as_the_jpeg_it_is():
    buf = io.BytesIO()
    Image.new("RGB", (32, 32), "red").save(buf, "MPO", save_all=True,
                                           append_images=[Image.new("RGB", (32, 32), "blue")])
    info = inspect_upload(buf.getvalue())
    assert info["format"] == "JPEG" and suffix_of(info) == ".jpg"  # it was a KeyError: a 500


def test_a_mov_that_starts_with_its_movie_box_is_a_mov_everywhere(tmp_path, monkeypatch):
    data = moov_first(tmp_path)
    info = inspect_upload(data, video=VideoLimits())
    assert (info["media"], info["format"]) == ("video", "MOV") and suffix_of(info) == ".mov"
    # It reached the C2PA reader labelled image/jpeg (issue 26); now as what it is.
    seen = []
    monkeypatch.setattr(provenance, "read_c2pa",
                        lambda d, mime: seen.append(mime) or {"present": False, "state": "absent"})
    provenance.provenance(data)
    assert seen == ["video/quicktime"]
    assert provenance.mime_of(movie("mov")) == "video/quicktime"


@pytest.fixture
def app_with(tmp_path, redis_url):
    """A real web app (its own Redis database and upload folder, no worker behind it)."""
    from web import create_app

    url = redis_url.rsplit("/", 1)[0] + "/7"
    r = redis.Redis.from_url(url)
    r.flushdb()
    env = {"DFD_REDIS_URL": url, "DFD_UPLOAD_DIR": str(tmp_path / "uploads"),
           "DFD_API_KEYS": f"formats:{KEY}:1000/minute"}
    yield lambda: create_app({"ENV": env})
    r.flushdb()


def upload(app, data: bytes, name: str):
    return app.test_client().post("/api/v1/jobs", headers={"Authorization": f"Bearer {KEY}"},
                                  data={"image": (io.BytesIO(data), name,
                                                  "application/octet-stream")})


def page_formats(app) -> tuple[str, str, list]:
    page = app.test_client().get("/").get_data(as_text=True)
    accept = re.search(r'id="file-input"[^>]*accept="([^"]*)"', page).group(1)
    rows = json.loads(re.search(r"data-formats='([^']*)'", page).group(1))
    return accept, " ".join(page.split()), rows


def openapi_upload(app) -> tuple[str, str]:
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    body = doc["paths"]["/api/v1/jobs"]["post"]["requestBody"]["content"]["multipart/form-data"]
    return body["encoding"]["image"]["contentType"], body["schema"]["properties"]["image"][
        "description"]


def test_a_new_row_is_taken_end_to_end(app_with, monkeypatch, tmp_path):
    refused = upload(app_with(), encode("BMP"), "scan.bmp")
    assert refused.status_code == 415, refused.get_json()
    monkeypatch.setattr(formats, "TABLE", (*formats.TABLE, BMP))
    app = app_with()
    accept, words, rows = page_formats(app)
    assert ".bmp" in accept.split(",") and ".dib" in accept.split(",")
    assert "Photos: JPEG, PNG, WebP, GIF, HEIC/HEIF, AVIF or BMP" in words
    assert {"name": "BMP", "kind": "still", "words": "BMP", "names": [".bmp", ".dib"]} in rows
    r = upload(app, encode("BMP"), "scan.jpg")  # by content, whatever it is called
    assert r.status_code == 202, r.get_json()
    rec = app.extensions["dfd"]["jobs"].get(r.get_json()["jobs"][0]["id"])
    assert rec["stored"].endswith(".bmp") and (tmp_path / "uploads" / rec["stored"]).is_file()
    types, described = openapi_upload(app)
    assert "image/bmp" in types.split(", ") and "BMP" in described
    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "a.bmp").write_bytes(encode("BMP"))
    assert [p.name for p in collect_images([tmp_path / "folder"])] == ["a.bmp"]
    assert Storage(tmp_path / "s").save(b"x", ".bmp").endswith(".bmp")


def test_a_row_switched_off_is_refused_everywhere(app_with, monkeypatch, tmp_path):
    off = tuple(replace(f, accept=f.name != "GIF") for f in formats.TABLE)
    monkeypatch.setattr(formats, "TABLE", off)
    app = app_with()
    accept, words, rows = page_formats(app)
    assert ".gif" not in accept.split(",") and "GIF" not in words
    assert "GIF" not in {row["name"] for row in rows}
    r = upload(app, encode("GIF"), "anim.gif")
    assert r.status_code == 415 and "GIF" not in r.get_json()["error"]["message"]
    assert "image/gif" not in openapi_upload(app)[0]
    (tmp_path / "a.gif").write_bytes(encode("GIF"))
    assert collect_images([tmp_path]) == []

"""What a POST /jobs brings: its files (or the one a `url` points to), each read and checked by
content, stills and videos against their own limits (web.allowance counts them)."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import abort, request

from shared import formats
from shared.errors import InputError
from shared.fetch import fetch
from shared.images import ImageError
from shared.media import VideoLimits, inspect_upload, looks_like_video
from web.common import settings


def suffix_of(info: dict) -> str:
    """The stored file's suffix for a checked upload (its format's row in shared/formats)."""
    return formats.named(info["format"]).suffix


def _check(name: str, data: bytes) -> dict:
    dfd = settings()
    # Anything but a video is held to the photo limit before its content is even looked at.
    if len(data) > dfd.MAX_UPLOAD_MB * 1_000_000 and not looks_like_video(data):
        raise ImageError("too_large", f"{name}: the file is {len(data) / 1e6:.1f} MB; photos "
                         f"are limited to {dfd.MAX_UPLOAD_MB:g} MB", 413)
    try:
        return inspect_upload(data, dfd.MAX_PIXELS, VideoLimits.from_settings(dfd))
    except InputError as exc:
        raise exc.about(name) from None


def checked_files() -> list[tuple[str, bytes, dict]]:
    """Every uploaded file (or the linked one) read and checked by content; the first bad one
    fails the request."""
    if "url" in request.form:
        if request.files:
            abort(400, description="send either files in 'image' or one 'url', not both")
        return [_linked(request.form["url"].strip())]
    others = [name for name in request.files if name != "image"]
    files = request.files.getlist("image")
    if not files:
        hint = f" (got a file under {others[0]!r})" if others else ""
        abort(400, description="no image: send files in the multipart field 'image' (or a "
                               f"link in 'url'){hint}")
    limit = settings().MAX_FILES
    if len(files) > limit:
        abort(400, description=f"{len(files)} files in one request; the limit is {limit}")
    checked = []
    for f in files:
        # The client's name is only shown back; it never becomes a path, nor decides the type.
        name = (f.filename or "").replace("\x00", "")[-200:]
        if not name:
            abort(400, description="a file part has no filename")
        data = f.read()
        checked.append((name, data, _check(name, data)))
    return checked


def _linked(url: str) -> tuple[str, bytes, dict]:
    """The file a link points to, fetched by the server (shared/fetch) and checked as an upload."""
    if not url:
        abort(400, description="url is empty")
    dfd = settings()
    cap = int(max(dfd.MAX_UPLOAD_MB, dfd.VIDEO_MAX_MB) * 1_000_000)
    try:
        got = fetch(url, max_bytes=cap, timeout=dfd.FETCH_TIMEOUT,
                    allow_http=dfd.FETCH_ALLOW_HTTP, allow_private=dfd.FETCH_ALLOW_PRIVATE,
                    ca_file=dfd.FETCH_CA_FILE)
    except InputError as exc:
        raise exc.about("url") from None
    name = urlsplit(got.url).path.rsplit("/", 1)[-1][-200:] or urlsplit(got.url).hostname or "link"
    return name, got.body, _check(name, got.body)

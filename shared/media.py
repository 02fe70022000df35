"""What an upload is, decided by its content: a still (shared/images) or a video (PyAV), each
checked against its own limits before anything is stored. The file's name plays no part; the
formats taken are the rows of shared/formats."""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import formats
from shared.images import DEFAULT_MAX_PIXELS, ImageError, inspect_image

if TYPE_CHECKING:
    from shared.settings import Settings


@dataclass(frozen=True)
class VideoLimits:
    """The limits a video upload is checked against (DFD_VIDEO_* settings)."""

    max_bytes: int = 200_000_000
    max_seconds: float = 600.0
    max_frame_pixels: int = 3840 * 2160

    @classmethod
    def from_settings(cls, s: Settings) -> VideoLimits:
        """The limits from the loaded settings."""
        return cls(int(s.VIDEO_MAX_MB * 1_000_000), float(s.VIDEO_MAX_S),
                   int(s.VIDEO_MAX_PIXELS))


def looks_like_video(data: bytes) -> bool:
    """True when the first bytes claim one of the accepted video formats (shared/formats)."""
    claimed = formats.sniff(data)
    return claimed is not None and claimed.kind == "video"


def inspect_upload(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS,
                   video: VideoLimits | None = None) -> dict:
    """{"media": "image"|"video", "format", "width", "height", ...} or ImageError naming why."""
    if video is not None and looks_like_video(data):
        return inspect_video(data, video)
    return {"media": "image", **inspect_image(data, max_pixels)}


def _open(data: bytes):
    import av  # the web imports PyAV only when a video arrives

    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.FFmpegError, ValueError, OSError) as exc:
        raise ImageError("corrupt_video", f"the video cannot be read ({_why(exc)})") from None
    # The demuxer decides the family; the first bytes tell its members apart (MP4 or MOV).
    demuxer = container.format.name
    claimed = formats.sniff(data)
    family = [f for f in formats.accepted("video") if f.decoder == demuxer]
    if not family:
        container.close()
        raise ImageError("unsupported_type", f"a {container.format.long_name} file is not an "
                         f"accepted video ({formats.listed('video')})", 415)
    return container, (claimed if claimed in family else family[0]).name


def _why(exc: Exception) -> str:
    return str(getattr(exc, "strerror", None) or exc)[:120]


def duration_of(container, stream) -> float | None:
    """The declared duration in seconds (stream first, then container), or None."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def inspect_video(data: bytes, limits: VideoLimits) -> dict:
    """Check a video by content: a container we take, a video stream, its declared duration and
    frame size within limits, and a first frame that decodes."""
    import av

    if len(data) > limits.max_bytes:
        raise ImageError("too_large", f"the video is {len(data) / 1e6:.1f} MB; the limit is "
                         f"{limits.max_bytes / 1e6:g} MB", 413)
    container, kind = _open(data)
    try:
        if not container.streams.video:
            what = "audio only" if container.streams.audio else "no streams"
            raise ImageError("no_video_stream", f"the file has no video stream ({what})")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        if width * height > limits.max_frame_pixels:
            raise ImageError("frame_too_large", f"the video's frames are {width}x{height}; the "
                             f"limit is {limits.max_frame_pixels:,} pixels a frame")
        seconds = duration_of(container, stream)
        if seconds is not None and seconds > limits.max_seconds:
            raise ImageError("video_too_long", f"the video declares {seconds:,.0f} s; the limit "
                             f"is {limits.max_seconds:g} s")
        try:
            first = next(container.decode(stream), None)
        except (av.FFmpegError, ValueError) as exc:
            raise ImageError("corrupt_video", f"the video's first frame cannot be decoded "
                             f"({_why(exc)})") from None
        if first is None:
            raise ImageError("no_frames", "the video has no frames")
        return {"media": "video", "format": kind, "width": width or first.width,
                "height": height or first.height,
                "duration_s": round(seconds, 3) if seconds is not None else None}
    finally:
        container.close()

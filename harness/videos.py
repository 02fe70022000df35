"""Videos the tests and the bench make themselves with PyAV, from face images: each face
drifts slowly over a plain background, as a face does in a talking-head clip."""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def faces(kind: str, n: int, offset: int = 0, source: str = "stylegan-faces") -> list[Path]:
    """n face images of kind 'real' or 'fake' from ../shared/data (sorted, from offset)."""
    return sorted((DATA / source / kind).glob("*.jpg"))[offset:offset + n]


def frames(scenes: list[list[Path | None]], seconds: float, fps: float,
           size: tuple[int, int] = (1280, 720), face_px: int = 300, noise: float = 0.0):
    """RGB frames: scenes play one after another, each `seconds` long, each a list of faces
    side by side (None: an empty slot); noise: sensor-like grain (its standard deviation in
    levels), which makes an encoder spend a camera clip's bits rather than a cartoon's."""
    rng = np.random.default_rng(0)
    w, h = size
    per_scene = max(1, round(seconds * fps))
    for scene in scenes:
        imgs = [Image.open(p).convert("RGB").resize((face_px, face_px)) if p else None
                for p in scene]
        for i in range(per_scene):
            canvas = Image.new("RGB", size, (70, 90, 110))
            drift = 24 * np.sin(2 * np.pi * i / max(per_scene, 2))
            for k, img in enumerate(imgs):
                if img is None:
                    continue
                x = int((k + 0.5) * w / len(imgs) - face_px / 2 + drift)
                canvas.paste(img, (x, int(h / 2 - face_px / 2 + drift / 2)))
            arr = np.asarray(canvas)
            if noise:
                arr = np.clip(arr + rng.normal(0, noise, arr.shape), 0, 255).astype(np.uint8)
            yield arr


def encode(frame_iter, fps: float, fmt: str = "mp4", codec: str = "libx264",
           size: tuple[int, int] = (1280, 720), vfr: bool = False, bit_rate: int = 0,
           options: dict | None = None) -> bytes:
    """The frames as a video file's bytes (vfr: uneven timestamps, a variable frame rate;
    bit_rate and options: the encoder's, default x264's ultrafast preset, which tests want)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.time_base = stream.codec_context.time_base = Fraction(1, 1000)
        if bit_rate:
            stream.bit_rate = bit_rate
        if options is not None:
            stream.options = options
        elif codec == "libx264":
            stream.options = {"preset": "ultrafast"}
        t = 0.0
        for i, arr in enumerate(frame_iter):
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts, frame.time_base = int(t * 1000), Fraction(1, 1000)
            t += (1 / fps) * ((0.5 if i % 2 else 1.5) if vfr else 1.0)
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    return buf.getvalue()


def video(scenes: list[list[Path | None]], seconds: float = 4, fps: float = 5,
          size: tuple[int, int] = (640, 360), **kw) -> bytes:
    """A whole clip in one call (small and short by default, for tests)."""
    face_px = kw.pop("face_px", max(64, size[1] * 5 // 12))
    return encode(frames(scenes, seconds, fps, size, face_px), fps, size=size, **kw)

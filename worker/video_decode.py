"""Sampling a video's frames in a bounded child process, so that a hostile file can cost at
most the time and memory the parent grants it, never the worker.

The parent side is `sample_frames` (the worker's video job calls it); the child is `python -m
worker.video_decode`, which writes frames.npy (N, H, W, 3 uint8; no pickle) and meta.json to an
output folder. Samples: `fps` a second, at most `max_frames`, evenly spread over the declared
duration (a video without one: the first max_frames / fps seconds). Frames are taken by
timestamp, so a variable frame rate samples the same instants; far targets are reached by
seeking.
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from shared.images import ImageError

if TYPE_CHECKING:
    from shared.settings import Settings

# One BLAS thread in the decoding child: it does no maths, and each thread reserves memory.
_CHILD_ENV = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
SEEK_GAP_S = 4.0  # a target further ahead than this is reached by seeking, not decoding on


def targets(duration: float | None, fps: float, max_frames: int) -> list[float]:
    """Sample times in seconds: one per 1/fps, at most max_frames, evenly spread."""
    if duration is None or duration <= 0:
        return [(i + 0.5) / fps for i in range(max_frames)]
    n = max(1, min(max_frames, int(duration * fps)))
    return [(i + 0.5) * duration / n for i in range(n)]


def _size(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(2, round(width * scale) // 2 * 2), max(2, round(height * scale) // 2 * 2)


def sample(path: str, fps: float, max_frames: int, max_side: int) -> tuple[list, dict]:
    """(frames as RGB arrays, meta) for the video at path."""
    import av

    from shared.media import duration_of

    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        duration = duration_of(container, stream)
        size = None
        frames, times = [], []
        position = None  # the time of the last decoded frame
        time_base = stream.time_base  # None: no seeking, decoded on from the start
        for target in targets(duration, fps, max_frames):
            if time_base and (position is None or target - position > SEEK_GAP_S):
                container.seek(int(target / time_base), stream=stream, backward=True)
            for frame in container.decode(stream):
                if frame.pts is None:  # no timestamp: its time is None (PyAV's stub says float)
                    continue
                position = frame.time
                if frame.time + 1e-3 >= target:
                    size = size or _size(frame.width, frame.height, max_side)
                    frames.append(frame.to_ndarray(format="rgb24", width=size[0],
                                                   height=size[1]))
                    times.append(round(float(frame.time), 3))
                    break
            else:
                break  # the stream ended before this target
    meta = {"times": times, "duration_s": duration, "width": stream.codec_context.width,
            "height": stream.codec_context.height}
    return frames, meta


def sample_frames(path: Path, settings: Settings, max_side: int) -> tuple[np.ndarray, dict]:
    """(frames, meta) from this module run as a child process held to DFD_VIDEO_DECODE_S
    seconds and DFD_VIDEO_DECODE_MB of memory, frames at most max_side pixels on a side;
    ImageError naming why it failed."""
    limit_b = settings.VIDEO_DECODE_MB * 1024 * 1024
    # Never more than half the task's own limit: the faces and the model need the rest.
    limit_s = min(settings.VIDEO_DECODE_S, settings.TASK_TIME_LIMIT / 2)

    def bound():  # runs in the child before exec: its address space is capped
        resource.setrlimit(resource.RLIMIT_AS, (limit_b, limit_b))

    with tempfile.TemporaryDirectory(prefix="dfd-video-") as tmp:
        args = [sys.executable, "-m", "worker.video_decode", str(path), tmp,
                str(settings.VIDEO_FPS), str(settings.VIDEO_MAX_FRAMES), str(max_side)]
        try:
            done = subprocess.run(args, capture_output=True, text=True, preexec_fn=bound,  # noqa: S603, PLW1509
                                  timeout=limit_s, check=False, env=_CHILD_ENV)
        except subprocess.TimeoutExpired:
            raise ImageError("video_decode_timeout", "decoding the video took longer than "
                             f"{limit_s:g} s; refused") from None
        if done.returncode != 0:
            why = (done.stderr.strip().splitlines() or ["no message"])[-1][:200]
            if done.returncode < 0 or re.search(r"memory|alloc", why, re.I):
                why = f"it needs more than {settings.VIDEO_DECODE_MB} MB to decode ({why})"
            raise ImageError("corrupt_video", f"the video cannot be decoded: {why}")
        meta = json.loads((Path(tmp) / "meta.json").read_text())
        if not meta["times"]:
            raise ImageError("no_frames", "no frame of the video could be decoded")
        frames = np.load(Path(tmp) / "frames.npy", allow_pickle=False)
    return frames, meta


def main(argv: list[str]) -> int:
    """path out_dir fps max_frames max_side"""
    path, out, fps, max_frames, max_side = argv
    try:
        frames, meta = sample(path, float(fps), int(max_frames), int(max_side))
    except Exception as exc:  # noqa: BLE001 - the reason goes back to the parent as text
        print(f"{type(exc).__name__}: {str(exc)[:200]}", file=sys.stderr)
        return 3
    out_dir = Path(out)
    if frames:
        np.save(out_dir / "frames.npy", np.stack(frames), allow_pickle=False)
    (out_dir / "meta.json").write_text(json.dumps(meta))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

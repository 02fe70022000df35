"""Video: seconds per minute of 720p video by stage, and the track rule against the plain frame
mean, on clips made from held-out faces of ../shared/data with whatever model is configured.

`python -m bench.video_bench [--model DIR] [--quick]` (default: the served model); `make bench`
runs it after the rest.
The rule measurement: four kinds of clip, each from held-out test faces of the model's split
(stylegan-faces): one real face, one fake face, a real and a fake face side by side, and a real
face cut to a fake one halfway (the last two are fakes: something in them is). A clip's score is
its most suspicious track under the track rule, or the mean of every face's score in every
sampled frame (the frame mean); both are read at the model's threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _model(model_dir: str):
    from detector.faces import FaceDetector
    from detector.model import load_model

    return load_model(model_dir), FaceDetector()


# The bench clip is encoded as a camera's would be: H.264 High profile with B-frames at 6 Mbit/s
# (a phone's 720p rate) over frames with sensor-like grain. The tests' ultrafast clips of flat
# frames are a tenth of the size and much cheaper to decode, which would flatter the figure.
CLIP_ENCODING = {"bit_rate": 6_000_000, "options": {"preset": "veryfast", "profile": "high"}}
GRAIN = 3.0


def stages(model_dir: str, seconds: float = 30, fps: float = 30) -> dict:
    """One clip of `seconds` at 720p with one face, through the worker's stages, timed."""
    from detector import video as dv
    from detector.analyze import DECODE_SIZE, score_crops
    from harness import videos
    from shared import settings
    from worker.video_decode import sample_frames

    model, detector = _model(model_dir)
    model.predict(np.zeros((8, 224, 224, 3), np.uint8))  # warm: the first call builds the graph
    detector.detect(np.zeros((360, 640, 3), np.uint8))
    face = videos.faces("fake", 1)[0]
    data = videos.encode(videos.frames([[face]], seconds, fps, (1280, 720), 300, noise=GRAIN), fps,
                         **CLIP_ENCODING)
    s = settings.load()
    out = {"clip_s": seconds, "fps": fps, "size": "1280x720", "mb": round(len(data) / 1e6, 2),
           "encoding": "H.264 High, x264 veryfast, 6 Mbit/s, grain 3"}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        path.write_bytes(data)
        t0 = time.perf_counter()
        frames, meta = sample_frames(path, s, DECODE_SIZE)
        t1 = time.perf_counter()
        found = dv.find_faces(frames, detector)
        t2 = time.perf_counter()
        crops = np.concatenate([c for c, f in found if f] or [found[0][0]])
        score_crops(model, crops, dv.PER_CALL)
        t3 = time.perf_counter()
        dv.analyze_video(frames, meta, detector, model, model.threshold)
        t4 = time.perf_counter()
    total = (t1 - t0) + (t2 - t1) + (t3 - t2)
    out.update(frames=len(frames), crops=len(crops), decode_s=t1 - t0, faces_s=t2 - t1,
               score_s=t3 - t2, whole_analysis_s=t4 - t3, total_s=total,
               s_per_minute=total * 60 / seconds, model=f"{model.name} {model.version}")
    return out


def _clips(n: int, model_dir: str):
    """(kind, is_fake, scenes) for n clips of each kind, from the model split's test faces."""
    own = Path(model_dir) / "split.json"
    split = json.loads((own if own.is_file() else ROOT / "models" / "dfd-mnv2" / "split.json")
                       .read_text())
    src = split["sources"]["stylegan-faces"]
    root = (ROOT / src["root"]).resolve()
    real = [root / p for p in src["test"] if p.startswith("real/")]
    fake = [root / p for p in src["test"] if p.startswith("fake/")]
    for i in range(n):
        r, f, r2 = real[i % len(real)], fake[i % len(fake)], real[(i + n) % len(real)]
        yield "one real face", False, [[r]]
        yield "one fake face", True, [[f]]
        yield "real and fake side by side", True, [[r2, f]]
        yield "real, then cut to fake", True, [[r2], [f]]


def rules(model_dir: str, n: int = 40, seconds: float = 4) -> dict:
    """Accuracy at the threshold of the track rule and of the frame mean, per kind of clip."""
    from detector.video import analyze_video
    from harness import videos
    from worker.video_decode import sample

    model, detector = _model(model_dir)
    rows: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.mp4"
        for kind, is_fake, scenes in _clips(n, model_dir):
            path.write_bytes(videos.video(scenes, seconds=seconds, fps=5))
            frames, meta = sample(str(path), 1.0, 64, 1024)
            res = analyze_video(np.stack(frames), meta, detector, model, model.threshold)
            per_face = [p["p_fake"] for t in res["video"]["tracks"] for p in t["scores"]]
            frame_mean = float(np.mean(per_face)) if per_face else res["p_fake"]
            row = rows.setdefault(kind, {"clips": 0, "fake": is_fake, "track_right": 0,
                                         "mean_right": 0})
            row["clips"] += 1
            row["track_right"] += (res["p_fake"] > model.threshold) == is_fake
            row["mean_right"] += (frame_mean > model.threshold) == is_fake
    for row in rows.values():
        row["track_acc"] = row["track_right"] / row["clips"]
        row["mean_acc"] = row["mean_right"] / row["clips"]
    return {"model": f"{model.name} {model.version}", "threshold": model.threshold,
            "kinds": rows}


def render(st: dict | None, ru: dict | None) -> str:
    """The video part of the bench report."""
    lines = []
    if st:
        lines += [f"video: {st['clip_s']:g} s of {st['size']} at {st['fps']:g} fps, one face "
                  f"({st['mb']} MB), {st['frames']} frames sampled, model {st['model']}",
                  "| stage | s for the clip | s per minute of video |", "| --- | --- | --- |"]
        k = 60 / st["clip_s"]
        for name in ("decode", "faces", "score", "total"):
            v = st[f"{name}_s"]
            lines.append(f"| {name} | {v:.2f} | {v * k:.2f} |")
    if ru:
        lines += ["", f"track rule vs frame mean ({ru['model']}, threshold {ru['threshold']:.3f})",
                  "| clips | n | fake | track rule right | frame mean right |",
                  "| --- | --- | --- | --- | --- |"]
        for kind, r in ru["kinds"].items():
            lines.append(f"| {kind} | {r['clips']} | {'yes' if r['fake'] else 'no'} | "
                         f"{r['track_acc']:.0%} | {r['mean_acc']:.0%} |")
    return "\n".join(lines)


def measure(model_dir: str, quick: bool = False, n: int = 40,
            clip_s: float | None = None) -> dict:
    """Both video measurements, as `make bench` records them (n clips of each kind)."""
    return {"stages": stages(model_dir, seconds=clip_s or (10 if quick else 30)),
            "rules": rules(model_dir, n=n)}


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.video_bench", description=__doc__)
    p.add_argument("--model", help="model directory (default: the served one)")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--n", type=int, default=40, help="clips of each kind for the rule")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "video.json"))
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench import served_model

    got = measure(args.model or served_model(), args.quick, 5 if args.quick else args.n)
    Path(args.out).write_text(json.dumps(got, indent=1) + "\n")
    print(render(got["stages"], got["rules"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

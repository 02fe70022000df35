"""Video: validation by content with limits, face tracks, the result and its progress, and the
bad inputs of issue 20, through the real web, Redis and worker. Videos are made here (PyAV)."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest
import redis
import requests

from detector.tracks import aggregate, iou, link
from harness import services, videos
from harness.services import consumers_paused
from shared.images import ImageError
from shared.job_view import public_view
from shared.jobs import JobStore, new_job_id
from shared.media import VideoLimits, inspect_upload
from tests.conftest import DATA

pytestmark = pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")


def clip(**kw) -> bytes:
    return videos.video([[videos.faces("real", 1)[0]]], **kw)


def test_tracks_link_by_overlap_and_survive_a_gap():
    a, b = (10, 10, 60, 60), (200, 10, 250, 60)
    moved = (18, 12, 68, 62)
    tracks = link([[a, b], [moved, b], [b], [(20, 14, 70, 64), b]])
    assert sorted(len(t) for t in tracks) == [3, 4]
    assert iou(a, moved) > 0.5 and iou(a, b) == 0.0


def test_a_cut_to_another_face_at_the_same_place_starts_a_new_track():
    rng = np.random.default_rng(0)
    one, other = rng.normal(size=(24, 24)), rng.normal(size=(24, 24))
    one, other = (a / np.linalg.norm(a) for a in (one - one.mean(), other - other.mean()))
    box = (10, 10, 60, 60)
    assert len(link([[box]] * 4, looks=[[one]] * 4)) == 1
    assert len(link([[box]] * 4, looks=[[one], [one], [other], [other]])) == 2


def test_the_track_rule_is_the_mean_logit():
    assert aggregate(np.array([0.5, 0.5])) == pytest.approx(0.5)
    assert aggregate(np.array([0.9, 0.9, 0.9])) == pytest.approx(0.9)
    # Confident frames weigh more than in a mean of probabilities; one frame is not a max.
    p = np.array([0.99, 0.1, 0.1, 0.1])
    assert p.mean() < aggregate(p) < 0.5
    assert aggregate(1 - p) == pytest.approx(1 - aggregate(p))


@pytest.mark.parametrize("fmt,codec,kind", [("mp4", "libx264", "MP4"), ("mov", "libx264", "MOV"),
                                            ("webm", "libvpx-vp9", "WEBM"),
                                            ("matroska", "libx264", "MKV")])
def test_each_container_is_taken_by_content(fmt, codec, kind):
    info = inspect_upload(clip(seconds=1, fmt=fmt, codec=codec), video=VideoLimits())
    assert info["media"] == "video" and info["format"] == kind
    assert (info["width"], info["height"]) == (640, 360) and info["duration_s"] > 0.5


def _two_frames_apart(seconds: float, size=(64, 64)) -> bytes:
    """A valid video whose second frame is `seconds` after its first: that long, declared
    (Motion JPEG: an 8K frame encodes in a second, not half a minute as with H.264)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("mjpeg", rate=1)
        s.width, s.height, s.pix_fmt = size[0], size[1], "yuvj420p"
        for pts in (0, int(seconds)):
            f = av.VideoFrame.from_ndarray(np.zeros((size[1], size[0], 3), np.uint8), "rgb24")
            f.pts, f.time_base = pts, Fraction(1, 1)
            out.mux(s.encode(f))
        out.mux(s.encode())
    return buf.getvalue()


def _audio_only() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                           layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        out.mux(s.encode(frame))
        out.mux(s.encode())
    return buf.getvalue()


def _no_frames() -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as out:
        s = out.add_stream("libx264", rate=5)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        out.start_encoding()  # the header, with its video stream, and not one frame
        out.mux(s.encode())
    return buf.getvalue()


BAD = {
    "truncated_mp4": (lambda: clip(seconds=2)[:3000], 400, "corrupt_video"),
    # FFmpeg drops a track without samples: to it the file has no video stream at all.
    "no_frames": (_no_frames, 400, "no_video_stream"),
    "ten_hours": (lambda: _two_frames_apart(36_000), 400, "video_too_long"),
    "eight_k": (lambda: _two_frames_apart(1, (7680, 4320)), 400, "frame_too_large"),
    "audio_only": (_audio_only, 400, "no_video_stream"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_videos_are_refused_naming_why(case):
    make, status, code = BAD[case]
    with pytest.raises(ImageError) as info:
        inspect_upload(make(), video=VideoLimits())
    assert (info.value.status, info.value.code) == (status, code), str(info.value)


def test_progress_is_in_the_status_until_final(clean_redis):
    store = JobStore(clean_redis)
    job_id = new_job_id()
    store.create(job_id, filename="a.mp4", stored="", sha256="0" * 64, client="ip:x")
    store.set_progress(job_id, 5, 12)
    assert public_view(store.get(job_id))["progress"] == {"frames_done": 5, "frames_total": 12}


def post(live_server, data: bytes, name: str, wait: float = 10, url: str | None = None):
    return requests.post(f"{url or live_server.url}/api/v1/jobs", params={"wait": wait},
                         headers={"Authorization": f"Bearer {live_server.api_key}"},
                         files=[("image", (name, data, "video/mp4"))], timeout=90)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_videos_get_a_clean_4xx_from_the_service(live_server, case):
    make, status, code = BAD[case]
    r = post(live_server, make(), f"{case}.mp4")
    assert r.status_code == status and r.json()["error"]["code"] == code, r.text


@pytest.mark.slow
def test_a_video_through_the_worker_has_tracks_timeline_and_verdict(live_server):
    real, fake = videos.faces("real", 1)[0], videos.faces("fake", 1)[0]
    data = videos.video([[real, fake]], seconds=6, fps=5, vfr=True)  # variable frame rate too
    r = post(live_server, data, "clip.jpg", wait=0)  # named .jpg: the content decides
    assert r.status_code == 202, r.text
    job = live_server.wait_final(r.json()["jobs"][0]["id"], timeout=120)
    assert job["status"] == "done", job
    res = job["result"]
    assert res["media"] == "video" and res["label"] in ("Real", "Fake")
    v = res["video"]
    assert v["frames_sampled"] == 6 and v["frames_scored"] == 6
    assert v["duration_s"] == pytest.approx(6, abs=0.5)
    assert [t["frames"] for t in v["tracks"]] == [6, 6]
    # The label reads the most suspicious track the assessment judged (any, if none was).
    judged = [t for t in v["tracks"] if t["assessment"] != "not_judged"] or v["tracks"]
    assert res["p_fake"] == pytest.approx(max(t["p_fake"] for t in judged), abs=1e-6)
    assert len(v["timeline"]) == 6 and all(0 <= p["p_fake"] <= 1 for p in v["timeline"])
    assert {"t", "box", "p_fake"} <= set(v["tracks"][0]["best"])
    assert res["assessment"] in ("likely_real", "uncertain", "likely_fake")
    # Each track carries its own assessment: the page tags it with that, never Real/Fake (the
    # served prior in a video result: tests/test_clip_e2e.py, whose model's is not 50%).
    assert [t["assessment"] for t in v["tracks"]] == [f["assessment"] for f in res["faces"]]
    assert all(t["assessment"] in ("likely_real", "uncertain", "likely_fake", "not_judged")
               for t in v["tracks"])


@pytest.mark.slow
def test_no_face_in_any_frame_is_not_applicable(live_server):
    data = videos.video([[None]], seconds=3, fps=5)
    r = post(live_server, data, "empty.webm")
    job = r.json()["jobs"][0]
    job = job if job["status"] in ("done", "failed") else live_server.wait_final(job["id"])
    assert job["result"]["assessment"] == "not_applicable", job
    assert job["result"]["reasons"] == ["no_face"] and job["result"]["video"]["tracks"] == []


@pytest.mark.slow
def test_a_hostile_video_fails_its_job_and_the_worker_goes_on(live_server):
    """Valid at the door, then swapped for garbage on disk: the worker's bounded decode fails
    the job with a reason, and the next video is judged as usual."""
    store = JobStore(redis.Redis.from_url(live_server.redis_url))
    with consumers_paused(live_server.redis_url):
        r = post(live_server, clip(seconds=2), "swap.mp4", wait=0)
        job_id = r.json()["jobs"][0]["id"]
        (live_server.upload_dir / store.get(job_id)["stored"]).write_bytes(
            clip(seconds=2)[:2000] + b"\0" * 100_000)
    job = live_server.wait_final(job_id, timeout=120)
    assert job["status"] == "failed" and "corrupt_video" in job["error"], job
    r = post(live_server, clip(seconds=2, fps=4), "after.mp4", wait=0)
    assert live_server.wait_final(r.json()["jobs"][0]["id"], timeout=120)["status"] == "done"


@pytest.mark.slow
def test_videos_have_their_own_rate_limit(live_server, reset_limits, tmp_path):
    proc, url = services.start_web({**live_server.env, "DFD_VIDEO_LIMIT": "2/minute"},
                                   tmp_path / "web.log")
    try:
        data = clip(seconds=1)
        codes = [post(live_server, data, f"{i}.mp4", wait=0, url=url).status_code
                 for i in range(3)]
        assert codes == [202, 202, 429]
        r = post(live_server, data, "3.mp4", wait=0, url=url)
        assert "video limit" in r.json()["error"]["message"] and int(r.headers["Retry-After"]) > 0
        photo = (DATA / "stylegan-faces" / "real").glob("*.jpg").__next__().read_bytes()
        assert post(live_server, photo, "still.jpg", wait=0, url=url).status_code == 202
    finally:
        services.stop(proc)


def test_decoding_is_bounded_in_time_and_memory(tmp_path):
    """The child that decodes is killed past its time, or fails past its memory, with a reason."""
    from shared import settings as settings_mod
    from worker.video_decode import sample_frames

    path = tmp_path / "c.mp4"
    path.write_bytes(clip(seconds=3))
    s = settings_mod.load({})
    frames, meta = sample_frames(path, s, 1024)
    assert len(frames) == 3 and meta["times"][0] == pytest.approx(0.5, abs=0.25)
    assert max(frames.shape[1:3]) <= 1024
    with pytest.raises(ImageError) as info:
        sample_frames(path, s.replace(VIDEO_DECODE_S=0.05), 1024)
    assert info.value.code == "video_decode_timeout"
    with pytest.raises(ImageError) as info:
        sample_frames(path, s.replace(VIDEO_DECODE_MB=64), 1024)
    assert info.value.code == "corrupt_video" and "more than 64 MB" in str(info.value)


def test_video_scoring_is_a_plain_function_that_tells_its_progress(model_dir):
    from detector.faces import FaceDetector
    from detector.model import load_model
    from detector.video import analyze_video

    frames = np.stack(list(videos.frames([[videos.faces("real", 1)[0]]], 4, 1, (640, 360),
                                         150)))
    meta = {"times": [0.5, 1.5, 2.5, 3.5], "duration_s": 4.0, "width": 640, "height": 360}
    told = []
    res = analyze_video(frames, meta, FaceDetector(), load_model(model_dir),
                        progress=lambda done, total: told.append((done, total)))
    assert told == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert res["media"] == "video" and res["video"]["frames_sampled"] == 4
    assert [t["frames"] for t in res["video"]["tracks"]] == [4]


def test_videos_wait_in_their_own_pool_and_are_claimed_alone(clean_redis):
    from shared.jobs import LEASED_VIDEO, READY, READY_VIDEO

    store = JobStore(clean_redis)
    stills = [new_job_id() for _ in range(3)]
    videos_ = [new_job_id() for _ in range(3)]
    for i, (still, video) in enumerate(zip(stills, videos_, strict=True)):
        store.create(still, filename="a.jpg", stored="", sha256=str(i), client="ip:x")
        store.create(video, filename="a.mp4", stored="", sha256=str(i), client="ip:x",
                     media="video", priority=6)
    assert clean_redis.zcard(READY) == 3 and clean_redis.zcard(READY_VIDEO) == 3
    # A still's task fills its batch with stills only, never a video.
    assert sorted(store.claim_ready(stills[0], 7, owner="task-1").running) == sorted(stills)
    # A video's task takes its own video, alone, whatever the batch size.
    assert store.claim_ready(videos_[1], 7, owner="task-2").running == [videos_[1]]
    assert store.get(videos_[0])["status"] == "queued"
    # Nor does a still's task take a video through a lapsed lease.
    assert store.claim_ready(videos_[0], 0, owner="task-3", lease=-1).running == [videos_[0]]
    assert store.claim_ready(new_job_id(), 7, owner="task-4").running == []
    assert store.get(videos_[0])["status"] == "running"
    # The lapsed video goes back to its pool with its priority class, to be sent again.
    assert store.release_lapsed() == ([(videos_[0], 6)], [], [])
    assert store.get(videos_[0])["status"] == "queued" and clean_redis.zscore(READY_VIDEO,
                                                                            videos_[0])
    assert clean_redis.zscore(LEASED_VIDEO, videos_[0]) is None
    assert store.release_lapsed() == ([], [], [])
    assert store.claim_ready(videos_[0], 0, owner="task-5").running == [videos_[0]]
    assert store.finish(videos_[0], error="x") and clean_redis.zcard(LEASED_VIDEO) == 1


def test_progress_goes_through_the_store_and_never_revives_a_deleted_job(clean_redis):
    store = JobStore(clean_redis)
    job_id = new_job_id()
    store.create(job_id, filename="a.mp4", stored="", sha256="0" * 64, client="ip:x",
                 media="video")
    assert store.set_progress(job_id, 3, 12)
    assert public_view(store.get(job_id))["progress"] == {"frames_done": 3, "frames_total": 12}
    store.delete(job_id)
    assert not store.set_progress(job_id, 4, 12) and not clean_redis.exists(store.key(job_id))

"""The page with a video: progress while the worker runs, then the verdict, each face track with
its best frame (cut from the local file) and its score chart. Headless chromium; the real
server and worker judge the video, a route holds a running answer to show the progress bar."""

from __future__ import annotations

import re

import pytest

from harness import videos
from tests.conftest import DATA
from tests.test_browser import (  # noqa: F401 - fixtures, used by name
    JOB_URL,
    JOBS_URL,
    UI_TIMEOUT_MS,
    accepted,
    browser,
    cards,
    choose_and_detect,
    describe,
    fresh_limits,
    json_response,
    open_page,
    shot,
    tab,
    wait_settled,
)

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")]


def clip() -> dict:
    real, fake = videos.faces("real", 1, 3)[0], videos.faces("fake", 1, 3)[0]
    # WebM (VP9): Debian's chromium may lack H.264, and the page cuts best frames from the file.
    data = videos.video([[real, fake]], seconds=6, fps=5, fmt="webm", codec="libvpx-vp9")
    return {"name": "clip.webm", "mimeType": "video/webm", "buffer": data}


def test_a_video_card_shows_tracks_best_frames_and_charts(tab, live_server, fresh_limits):
    page = tab.page
    open_page(tab, live_server)
    choose_and_detect(tab, [clip()])
    card = cards(tab).first
    assert card.locator("video.preview__video").count() == 1  # the local file as preview
    assert wait_settled(card, live_server=live_server) == "done", describe(card)
    tracks = card.locator("[data-testid=track]")
    assert tracks.count() == 2, describe(card)
    assert re.search(r"2 faces followed through 6 sampled frames of 6 s", describe(card))
    first = tracks.first.inner_text()
    # A track is tagged with its own assessment, never with a second Real/Fake verdict.
    assert re.match(r"Face \d+: (Likely real|Likely fake|Can't tell|Not judged) · P\(fake\) "
                    r"(\d\.\d+|under 0\.001) over 6 frames", first), first
    for k in range(2):
        assert not re.search(r"\b(Real|Fake)\b", tracks.nth(k).inner_text())
        assert tracks.nth(k).get_attribute("data-assessment") in (
            "likely_real", "likely_fake", "uncertain", "not_judged")
    assert card.locator("[data-testid=track-chart]").count() == 2
    assert card.locator("[data-testid=track-chart] circle").count() == 12
    assert card.locator("[data-testid=assessment]").inner_text() != ""
    # The best frames are cut from the local file by a second <video> seeking to them.
    page.wait_for_selector("canvas.track__thumb[data-drawn=true] >> nth=1", timeout=30_000)
    card.scroll_into_view_if_needed()
    shot(page, "video-card.png")
    assert tab.unexpected_errors() == []


def test_progress_bar_follows_frames_done(tab, live_server):
    page = tab.page
    open_page(tab, live_server)
    running = json_response(200, {
        "id": "0123456789abcdef0123456789abcdef", "status": "running",
        "created_at": "2026-12-03T15:00:00.000Z", "started_at": "2026-12-03T15:00:00.100Z",
        "finished_at": None, "age_s": 1.0, "progress": {"frames_done": 3, "frames_total": 6}})
    page.route(JOBS_URL, lambda route: route.fulfill(**accepted(status="running",
                                                                 name="clip.mp4")))
    page.route(JOB_URL, lambda route: route.fulfill(**running))
    choose_and_detect(tab, [clip()])
    card = cards(tab).first
    status = card.locator("[data-testid=status]")
    page.wait_for_function("el => /frame 3 of 6/.test(el.textContent)",
                           arg=status.element_handle(), timeout=UI_TIMEOUT_MS)
    assert card.locator("[data-testid=progress]").get_attribute("value") == "50"
    assert status.inner_text() == "Analysing video — frame 3 of 6"
    shot(page, "video-progress.png", full_page=False)

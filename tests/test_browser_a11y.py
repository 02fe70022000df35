"""Accessibility of the upload page in headless chromium: axe-core finds no serious or critical
violation, the page works from the keyboard alone, screen readers hear the verdict, and the
rate-limit countdown and upload progress are announced sparingly; a card that hit the upload
limit goes on by itself."""

from __future__ import annotations

import pytest

from tests.test_browser import (  # noqa: F401 - fixtures used by name
    JOB_URL,
    JOBS_URL,
    UI_TIMEOUT_MS,
    accepted,
    browser,
    cards,
    choose_and_detect,
    describe,
    done_job,
    drawn_face,
    error_body,
    fresh_limits,
    image_file,
    json_response,
    open_page,
    tab,
    wait_settled,
)

pytestmark = pytest.mark.browser

# Every text change in a live region (role=status, role=alert, aria-live), as screen readers
# would hear it: changes inside aria-hidden parts are not counted.
WATCH_LIVE = """
window.__announced = [];
const live = "[role=status],[role=alert],[aria-live]";
new MutationObserver((records) => {
  for (const r of records) {
    const node = r.target.nodeType === 1 ? r.target : r.target.parentElement;
    if (!node || node.closest("[aria-hidden=true]")) continue;
    const region = node.closest(live);
    if (region) window.__announced.push(region.textContent);
  }
}).observe(document.body, {subtree: true, childList: true, characterData: true});
"""


def axe_serious(page) -> list[str]:
    from axe_playwright_python.sync_playwright import Axe

    result = Axe().run(page)
    return [f"{v['id']} ({v['impact']}): {v['help']}" for v in result.response["violations"]
            if v["impact"] in ("serious", "critical")]


def test_axe_finds_no_serious_or_critical_violations(tab, live_server, fresh_limits):
    page = tab.page
    open_page(tab, live_server)
    assert axe_serious(page) == []
    # A verdict card, a refused card and an upload-limit card on the page at once.
    answers = iter([accepted(), json_response(415, error_body("unsupported_type", "not a JPEG")),
                    json_response(429, error_body("rate_limited", "limit", retry_after=30))])
    page.route(JOBS_URL, lambda route: route.fulfill(**next(answers)))
    page.route(JOB_URL, lambda route: route.fulfill(**done_job()))
    choose_and_detect(tab, [image_file(f"p{i}.jpg", drawn_face((160, 120))) for i in range(3)])
    states = sorted(wait_settled(cards(tab).nth(i), UI_TIMEOUT_MS, waiting=True)
                    for i in range(3))
    assert states == ["done", "error", "waiting"], [describe(cards(tab).nth(i)) for i in range(3)]
    assert axe_serious(page) == []


def test_the_page_works_from_the_keyboard_alone(tab, live_server):
    page = tab.page
    open_page(tab, live_server)
    page.route(JOBS_URL, lambda route: route.fulfill(**accepted()))
    page.route(JOB_URL, lambda route: route.fulfill(**done_job(label="Real", p_fake=0.05,
                                                               assessment="likely_real")))
    # Tab from the top: the first stop is the file chooser (the dropzone's input).
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "file-input"
    # A keyboard user's file dialog is the browser's; the chosen file arrives as it would.
    page.set_input_files("#file-input", [image_file("k.jpg", drawn_face((160, 120)))])
    page.wait_for_selector("#detect:enabled")
    for _ in range(5):
        if page.evaluate("document.activeElement.id") == "detect":
            break
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "detect"
    page.keyboard.press("Enter")
    card = cards(tab).first
    assert wait_settled(card, UI_TIMEOUT_MS) == "done", describe(card)
    # The card's own button is reachable and works with the keyboard too.
    for _ in range(10):
        if page.evaluate("document.activeElement.className").find("card__remove") >= 0:
            break
        page.keyboard.press("Tab")
    assert "card__remove" in page.evaluate("document.activeElement.className")
    page.keyboard.press("Space")
    assert cards(tab).count() == 0


def test_screen_readers_hear_the_verdict(tab, live_server):
    page = tab.page
    open_page(tab, live_server)
    page.evaluate(WATCH_LIVE)
    page.route(JOBS_URL, lambda route: route.fulfill(**accepted()))
    page.route(JOB_URL, lambda route: route.fulfill(**done_job(assessment="likely_fake")))
    choose_and_detect(tab, [image_file("v.jpg", drawn_face((160, 120)))])
    assert wait_settled(cards(tab).first, UI_TIMEOUT_MS) == "done"
    heard = page.evaluate("window.__announced")
    assert any("Likely fake" in h and "Fake" in h for h in heard), heard


def test_countdown_is_announced_once_and_the_upload_goes_on_by_itself(tab, live_server):
    page = tab.page
    open_page(tab, live_server)
    answers = iter([json_response(429, error_body("rate_limited", "limit", retry_after=3),
                                  {"Retry-After": "3"}), accepted()])
    page.route(JOBS_URL, lambda route: route.fulfill(**next(answers)))
    page.route(JOB_URL, lambda route: route.fulfill(**done_job()))
    page.evaluate(WATCH_LIVE)
    choose_and_detect(tab, [image_file("w.jpg", drawn_face((160, 120)))])
    card = cards(tab).first
    assert wait_settled(card, UI_TIMEOUT_MS, waiting=True) == "waiting"
    # No click: after the server's 3 s the card uploads again and gets its verdict.
    card.and_(page.locator("[data-state=done]")).wait_for(timeout=UI_TIMEOUT_MS)
    heard = page.evaluate("window.__announced")
    # The alert says it once, in a sentence, not once a second as the countdown ticks.
    waits = [h for h in heard if h.startswith("Upload limit reached")]
    assert len(waits) == 1, heard
    assert "will be uploaded again by itself" in waits[0], waits


def test_upload_progress_is_announced_sparingly(tab, live_server, fresh_limits):
    page = tab.page
    open_page(tab, live_server)
    page.evaluate(WATCH_LIVE)
    # A real upload of a PNG of about 1 MB over a link throttled to 400 kB/s, so the browser
    # reports upload progress many times.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 5, "downloadThroughput": -1, "uploadThroughput": 400_000})
    big = noise_png(600, 500)
    choose_and_detect(tab, [image_file("big.png", big, "image/png")])
    card = cards(tab).first
    assert wait_settled(card, live_server=live_server) == "done", describe(card)
    progress = [h for h in page.evaluate("window.__announced") if "Uploading" in h]
    changes = [h for i, h in enumerate(progress) if i == 0 or h != progress[i - 1]]
    assert len(changes) <= 5, progress  # 0, 25, 50, 75, 100 at most (not one per event)


def noise_png(w: int, h: int) -> bytes:
    """Incompressible pixels: a PNG of about w * h * 3 bytes."""
    import io

    import numpy as np
    from PIL import Image

    buf = io.BytesIO()
    rgb = np.random.default_rng(3).integers(0, 255, (h, w, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()

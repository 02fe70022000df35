"""The upload page (templates/index.html, web/static/js/*.js) in headless Debian chromium.

Real-server tests upload through the real gunicorn + Celery worker + redis behind `live_server`,
as an anonymous visitor would (rate-limit counters are reset first). Tests of error words and of
face-box drawing answer the page's API calls with Playwright routes, so they are deterministic and
use no upload allowance; the page itself still comes from the real server, under its CSP.
Screenshots go to var/screenshots/ for a person to look at.
"""

from __future__ import annotations

import io
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT / "var" / "screenshots"
VERDICT_TIMEOUT_MS = 60_000
UI_TIMEOUT_MS = 10_000
FINAL_STATES = re.compile(r"^(done|failed|error|rejected)$")
P_FAKE = re.compile(r"^P\(fake\) (\d\.\d+|under 0\.000001)$")
JOB_ID = "0123456789abcdef0123456789abcdef"
JOBS_URL = re.compile(r"/api/v1/jobs(\?wait=\d+)?$")
JOB_URL = re.compile(r"/api/v1/jobs/[0-9a-f]{32}(\?.*)?$")


# ---------------------------------------------------------------------------- fixtures


def _unavailable(reason: str):
    """Skip locally; in CI (CI=true) a missing browser is a failure, not a silent skip."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        _unavailable(f"{CHROMIUM} is missing (Debian: apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is not installed (pip install -e .[dev])")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@dataclass
class Tab:
    """A page plus what it logged: console errors, uncaught exceptions, API requests."""

    page: object
    console_errors: list = field(default_factory=list)
    page_errors: list = field(default_factory=list)
    api_requests: list = field(default_factory=list)

    def unexpected_errors(self, allow: re.Pattern | None = None) -> list:
        errors = [f"console: {m}" for m in self.console_errors
                  if not (allow and allow.search(m))]
        return errors + [f"uncaught: {e}" for e in self.page_errors]


def _open_tab(browser, live_server, **context_args) -> Tab:
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 900},
                                     **context_args})
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()
    tab = Tab(page)
    page.on("console", lambda m: m.type == "error" and tab.console_errors.append(
        f"{m.text} ({m.location.get('url', '')})"))
    page.on("pageerror", lambda e: tab.page_errors.append(str(e)))
    page.on("request", lambda r: "/api/" in r.url and tab.api_requests.append(
        (time.monotonic(), r.method, r.url)))
    return tab


@pytest.fixture
def tab(browser, live_server):
    t = _open_tab(browser, live_server)
    yield t
    t.page.context.close()


@pytest.fixture
def phone_tab(browser, live_server):
    t = _open_tab(browser, live_server, viewport={"width": 390, "height": 844},
                  device_scale_factor=2, is_mobile=True, has_touch=True)
    yield t
    t.page.context.close()


@pytest.fixture
def face_jpeg(request) -> bytes:
    """The suite's sample face JPEG when conftest offers one, else a drawn face."""
    try:
        return request.getfixturevalue("sample_jpeg")
    except pytest.FixtureLookupError:
        return drawn_face()


def _forget_rate_limits(redis_url: str) -> None:
    # Flask-Limiter keys look like "LIMITS:LIMITER/dfd/..." (limits' storage prefix first).
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        for key in client.scan_iter("*LIMITER*"):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def fresh_limits(live_server):
    """A full anonymous upload allowance for this test, and none of its uploads left counted."""
    _forget_rate_limits(live_server.redis_url)
    yield
    _forget_rate_limits(live_server.redis_url)


def drawn_face(size=(640, 480), fmt="JPEG", tint=0) -> bytes:
    """A simple cartoon face, JPEG or PNG bytes."""
    w, h = size
    im = Image.new("RGB", size, (90 + tint, 130, 170))
    d = ImageDraw.Draw(im)
    cx, cy, r = w / 2, h * 0.45, min(w, h) * 0.22
    d.ellipse([cx - r, cy - r * 1.25, cx + r, cy + r * 1.25], fill=(226, 189, 160))
    for dx in (-0.4, 0.4):
        d.ellipse([cx + dx * r - r * 0.12, cy - r * 0.3, cx + dx * r + r * 0.12, cy - r * 0.05],
                  fill=(40, 40, 40))
    d.arc([cx - r * 0.5, cy + r * 0.2, cx + r * 0.5, cy + r * 0.75], 0, 180, fill=(130, 40, 40),
          width=max(2, int(r / 20)))
    buf = io.BytesIO()
    im.save(buf, fmt)
    return buf.getvalue()


# ---------------------------------------------------------------------------- helpers


def image_file(name: str, data: bytes, mime: str = "image/jpeg") -> dict:
    return {"name": name, "mimeType": mime, "buffer": data}


def open_page(tab: Tab, live_server):
    response = tab.page.goto(live_server.url + "/")
    assert response is not None and response.status == 200, "GET / did not answer 200"
    # static/js/main.js marks the page once it has wired everything up: proof that CSP let the
    # module graph load and run.
    tab.page.wait_for_selector("#app[data-ready=true]", state="attached")
    return response


def choose_and_detect(tab: Tab, files: list[dict]) -> None:
    page = tab.page
    page.set_input_files("#file-input", files)
    page.wait_for_selector("#detect:enabled")
    page.click("#detect")


def cards(tab: Tab):
    return tab.page.locator("[data-testid=card]")


def wait_settled(card, timeout_ms: int = VERDICT_TIMEOUT_MS, live_server=None,
                 waiting: bool = False) -> str:
    """Wait until a card reaches a final state (or, with waiting, waits for the upload limit);
    fail with what the card says if it never does."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    states = "[data-state=done],[data-state=failed],[data-state=error],[data-state=rejected]"
    try:
        card.and_(card.page.locator(states + (",[data-state=waiting]" if waiting else ""))
                  ).wait_for(timeout=timeout_ms)
    except PlaywrightTimeout:
        raise AssertionError(f"card not final after {timeout_ms / 1000:g} s: {describe(card)!r}"
                             f"{server_logs(live_server)}") from None
    return card.get_attribute("data-state")


def server_logs(live_server, lines: int = 25) -> str:
    """The end of the live server's web and worker logs, for a failure message."""
    folder = getattr(live_server, "logs", None)
    if folder is None:
        return ""
    out = []
    for name in ("web.log", "worker.log"):
        path = Path(folder) / name
        if path.is_file():
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"\n--- {name} (last {len(tail)} lines) ---\n" + "\n".join(tail))
    return "".join(out)


def describe(card) -> str:
    return re.sub(r"\s+", " ", card.inner_text()).strip()


def shot(page, name: str, full_page: bool = True) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / name
    page.screenshot(path=str(path), full_page=full_page)
    return path


def json_response(status: int, body: dict, headers: dict | None = None) -> dict:
    return {"status": status, "headers": {"Content-Type": "application/json", **(headers or {})},
            "body": json.dumps(body)}


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def accepted(job_id: str = JOB_ID, status: str = "queued", name: str = "face.jpg") -> dict:
    return json_response(202, {"jobs": [{
        "id": job_id, "status": status, "filename": name, "location": f"/api/v1/jobs/{job_id}",
        "created_at": "2026-11-25T15:00:00.000Z"}]}, {"Location": f"/api/v1/jobs/{job_id}"})


STABLE = {"variants": 5, "p_fake_min": 0.84, "p_fake_max": 0.9, "spread": 0.06,
          "unstable": False}


def done_job(job_id: str = JOB_ID, faces=None, label="Fake", p_fake=0.87,
             size=(640, 480), assessment="likely_fake", reasons=("high_score",),
             reason_text="The face scores where few real faces land.", stability=None) -> dict:
    faces = [] if faces is None else faces
    return json_response(200, {
        "id": job_id, "status": "done", "created_at": "2026-11-25T15:00:00.000Z",
        "started_at": "2026-11-25T15:00:00.100Z", "finished_at": "2026-11-25T15:00:00.400Z",
        "age_s": 0.4,
        "result": {"label": label, "confidence": p_fake if label == "Fake" else 1 - p_fake,
                   "p_fake": p_fake, "threshold": 0.3, "prior_fake": 0.02,
                   "face_found": bool(faces),
                   "assessment": assessment, "reasons": list(reasons),
                   "reason_text": reason_text, "stability": stability or STABLE,
                   "image": {"width": size[0], "height": size[1]}, "faces": faces,
                   "model": {"name": "dfd-mobilenetv2", "version": "a1b2c3d4e5f6"}}})


# ---------------------------------------------------------------------------- real server


def test_page_loads_under_csp_without_console_errors(tab, live_server):
    response = open_page(tab, live_server)
    page = tab.page
    # The page carries its own CSP too; whatever the server sends must not allow inline script.
    meta = page.locator("meta[http-equiv=Content-Security-Policy]").get_attribute("content")
    assert "script-src 'self'" in meta and "unsafe-inline" not in meta
    header = response.headers.get("content-security-policy", "")
    script_src = re.search(r"script-src([^;]*)", header)
    assert not script_src or "unsafe-inline" not in script_src.group(1), header
    assert page.locator("script:not([src])").count() == 0, "inline <script> on the page"
    assert page.locator("[style]").count() == 0, "inline style= attribute on the page"

    assert page.is_disabled("#detect"), "Detect should wait for a chosen image"
    page.set_input_files("#file-input", [image_file("a.jpg", drawn_face((200, 160)))])
    page.wait_for_selector("#detect:enabled")
    card = cards(tab).first
    assert card.locator("[data-testid=status]").inner_text().startswith("Ready")
    # The local preview (a blob: URL, which the CSP must allow) decodes and shows.
    page.wait_for_function(
        "() => document.querySelector('[data-testid=card] img').naturalWidth === 200")
    assert card.locator("img").get_attribute("src").startswith("blob:")
    assert tab.unexpected_errors() == []


def test_jpeg_gets_a_verdict(tab, live_server, face_jpeg, fresh_limits):
    open_page(tab, live_server)
    page = tab.page
    choose_and_detect(tab, [image_file("face.jpg", face_jpeg)])
    card = cards(tab).first
    state = wait_settled(card, live_server=live_server)
    assert state == "done", describe(card) + server_logs(live_server)

    label = card.locator("[data-testid=label]")
    words = card.locator("[data-testid=assessment]").inner_text()
    assert words in ("Likely real", "Can't tell", "Likely fake",
                     "Not a face photo we can judge"), describe(card)
    if words.startswith("Likely"):  # the label agrees and is shown with its P(fake)
        want = "Fake" if words == "Likely fake" else "Real"
        assert label.is_visible() and label.inner_text() == want, describe(card)
        assert P_FAKE.match(card.locator("[data-testid=p-fake]").inner_text())
    else:  # no second verdict: the model's reading instead
        assert label.is_hidden() and card.locator("[data-testid=reading]").is_visible()
    # Only a face read "Likely ..." near the edge of its band has its versions scored.
    stability = card.locator("[data-testid=stability]").inner_text()
    assert stability.startswith(("Stable", "Unstable", "Not re-checked")) or (
        stability == "" and not words.startswith("Likely")), stability
    assert card.locator("[data-testid=status]").inner_text().startswith("Done — ")
    assert card.locator("[data-testid=error]").is_hidden()
    assert card.locator("[data-testid=progress]").is_hidden()
    faces_text = card.locator(".verdict__faces").inner_text()
    boxes = card.locator(".face-box")
    if "No face found" in faces_text:
        assert faces_text == "No face found — only the centre of the image was scored"
        assert boxes.count() == 0
    else:
        assert boxes.count() >= 1, faces_text
    model_line = card.locator(".verdict__model").inner_text()
    assert model_line.startswith("Model "), model_line
    if not words.startswith("Likely"):  # one P(fake), written alike in the reading and below
        shown = re.search(r"P\(fake\) ([^,]+),", model_line).group(1)
        assert f"P(fake) {shown}." in card.locator("[data-testid=status]").inner_text(), (
            model_line, describe(card))

    # Uploaded with multipart field `image` and ?wait=, so the answer usually carries the
    # verdict; otherwise the job is read with a long-poll.
    methods = [(m, u) for _, m, u in tab.api_requests]
    assert ("POST", live_server.url + "/api/v1/jobs?wait=5") in methods, methods
    assert all("wait=" in u for m, u in methods if m == "GET"), methods

    page.wait_for_timeout(500)  # let the P(fake) bar finish its transition
    path = shot(page, "page.png")
    assert path.stat().st_size > 0
    assert tab.unexpected_errors() == []


def test_non_image_shows_the_server_error(tab, live_server, fresh_limits):
    open_page(tab, live_server)
    choose_and_detect(tab, [image_file("notes.png", b"just some text, not a picture\n",
                                       "image/png")])
    card = cards(tab).first
    state = wait_settled(card, UI_TIMEOUT_MS)
    assert state == "error", describe(card)
    error = card.locator("[data-testid=error]")
    assert error.is_visible()
    text = error.inner_text()
    assert "notes.png" in text, f"the server's message should name the file: {text!r}"
    assert card.locator("[data-testid=label]").is_hidden()
    assert card.locator("[data-testid=label]").inner_text() == ""
    assert card.locator("[data-testid=status]").inner_text() == "Refused by the server"
    # The 4xx itself is logged by the browser; nothing else may be.
    allow = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")
    assert tab.unexpected_errors(allow) == []


def test_phone_layout_has_no_horizontal_scroll(phone_tab, live_server, fresh_limits):
    tab = phone_tab
    open_page(tab, live_server)
    page = tab.page
    long_name = "a-photo-with-a-very-long-file-name-that-has-no-spaces-at-all-2026-11-25.png"
    choose_and_detect(tab, [
        image_file(long_name, drawn_face((480, 900), "PNG", tint=20), "image/png"),
        image_file("notes.txt", b"not an image", "text/plain"),  # refused before upload
    ])
    first, second = cards(tab).nth(0), cards(tab).nth(1)
    assert wait_settled(second, UI_TIMEOUT_MS) == "rejected", describe(second)
    assert "Wrong file type" in second.locator("[data-testid=error]").inner_text()
    assert wait_settled(first, live_server=live_server) == "done", (
        describe(first) + server_logs(live_server))
    page.wait_for_timeout(500)

    scroll_width = page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll_width <= 390, f"page scrolls sideways on a phone: scrollWidth={scroll_width}"
    one, two = first.bounding_box(), second.bounding_box()
    assert abs(one["x"] - two["x"]) < 1 and two["y"] > one["y"], "cards should be one column"
    assert one["x"] >= 0 and one["x"] + one["width"] <= 390
    detect = page.locator("#detect").bounding_box()
    assert detect["height"] >= 44, "tap targets should be at least 44 px tall"
    shot(page, "page-phone.png")
    assert tab.unexpected_errors() == []


def test_upload_limit_reached_on_the_real_server(tab, live_server, fresh_limits):
    """Six images at the default anonymous limit of 5 a minute: one card waits, counting down
    (not an error, no Retry), and the summary counts it."""
    rate = str(live_server.env.get("DFD_UPLOAD_LIMIT", "5/minute"))
    if not re.match(r"^5\s*(/|per)\s*minute$", rate):
        pytest.skip(f"live_server runs with DFD_UPLOAD_LIMIT={rate}, not the default 5/minute")
    open_page(tab, live_server)
    files = [image_file(f"small-{i}.png", drawn_face((96, 96), "PNG", tint=i * 9), "image/png")
             for i in range(6)]
    choose_and_detect(tab, files)
    states = [wait_settled(cards(tab).nth(i), live_server=live_server, waiting=True)
              for i in range(6)]
    limited = [cards(tab).nth(i) for i, s in enumerate(states) if s == "waiting"]
    assert len(limited) == 1, [describe(cards(tab).nth(i)) for i in range(6)]
    assert re.search(r"Waiting for the upload limit — uploading by itself in \d+ s",
                     describe(limited[0])), describe(limited[0])
    assert limited[0].locator("[data-testid=error]").is_hidden()
    assert limited[0].locator(".card__retry").is_hidden()
    assert "1 waiting for the upload limit" in tab.page.locator("#summary").inner_text()
    assert states.count("done") == 5, states


# ---------------------------------------------------------------- API answered by routes


def test_verdict_with_face_boxes_scaled_to_the_preview(tab, live_server):
    page = tab.page
    open_page(tab, live_server)
    answers = iter(["queued", "running"])
    gets: list[float] = []

    def job(route):
        gets.append(time.monotonic())
        status = next(answers, None)
        if status:
            route.fulfill(**json_response(200, {"id": JOB_ID, "status": status}))
        else:
            route.fulfill(**done_job(faces=[{"box": [160, 120, 480, 360], "score": 0.99,
                                             "p_fake": 0.87}]))

    page.route(JOBS_URL, lambda route: route.fulfill(**accepted()))
    page.route(JOB_URL, job)
    choose_and_detect(tab, [image_file("face.jpg", drawn_face((640, 480)))])
    card = cards(tab).first
    assert wait_settled(card, UI_TIMEOUT_MS) == "done", describe(card)

    assert card.locator("[data-testid=label]").inner_text() == "Fake"
    assert card.locator("[data-testid=p-fake]").inner_text() == "P(fake) 0.87"
    assert card.locator(".verdict__faces").inner_text() == "1 face found"
    assert "dfd-mobilenetv2 a1b2c3d4e5f6" in card.locator(".verdict__model").inner_text()
    box = card.locator(".face-box")
    assert box.count() == 1
    page.wait_for_timeout(300)
    img, face = card.locator("img").bounding_box(), box.bounding_box()
    expected = {"x": img["x"] + img["width"] * 0.25, "y": img["y"] + img["height"] * 0.25,
                "width": img["width"] * 0.5, "height": img["height"] * 0.5}
    for key, value in expected.items():
        assert abs(face[key] - value) <= 1.5, (key, face, img)

    # Long-polls with ?wait=, and pauses between answers that were not final.
    urls = [u for _, m, u in tab.api_requests if m == "GET"]
    assert len(urls) == 3 and all(re.search(r"\?wait=\d", u) for u in urls), urls
    assert gets[1] - gets[0] >= 0.2 and gets[2] - gets[1] >= 0.4, gets
    assert tab.unexpected_errors() == []


def test_no_face_found_says_so(tab, live_server):
    page = tab.page
    open_page(tab, live_server)
    page.route(JOBS_URL, lambda route: route.fulfill(**accepted(status="done")))
    page.route(JOB_URL, lambda route: route.fulfill(**done_job(
        label="Real", p_fake=0.1, assessment="not_applicable", reasons=("no_face",))))
    choose_and_detect(tab, [image_file("scenery.jpg", drawn_face((300, 200)))])
    card = cards(tab).first
    assert wait_settled(card, UI_TIMEOUT_MS) == "done", describe(card)
    assert card.locator("[data-testid=label]").is_hidden()
    assert "centre of the image" in card.locator("[data-testid=reading]").inner_text()
    assert card.locator(".verdict__faces").inner_text() == (
        "No face found — only the centre of the image was scored")
    assert card.locator(".face-box").count() == 0


@pytest.mark.parametrize(("assessment", "reasons", "words", "label"), [
    ("likely_real", ["low_score"], "Likely real", "Real"),
    ("uncertain", ["middle_score"], "Can't tell", "Fake"),
    ("uncertain", ["unstable"], "Can't tell", "Fake"),
    ("likely_fake", ["high_score"], "Likely fake", "Fake"),
    ("not_applicable", ["no_face"], "Not a face photo we can judge", "Real"),
])
def test_assessment_comes_first_in_plain_words(tab, live_server, assessment, reasons, words,
                                               label):
    page = tab.page
    open_page(tab, live_server)
    why = f"Because of {reasons[0]}."
    unstable = reasons == ["unstable"]
    st = {**STABLE, "p_fake_min": 0.12 if unstable else 0.84, "unstable": unstable}
    page.route(JOBS_URL, lambda route: route.fulfill(**accepted(status="done")))
    page.route(JOB_URL, lambda route: route.fulfill(**done_job(
        label=label, p_fake=0.87 if label == "Fake" else 0.1, assessment=assessment,
        reasons=reasons, reason_text=why, stability=st)))
    choose_and_detect(tab, [image_file("photo.jpg", drawn_face((300, 200)))])
    card = cards(tab).first
    assert wait_settled(card, UI_TIMEOUT_MS) == "done", describe(card)
    head = card.locator("[data-testid=assessment]")
    assert head.inner_text() == words and head.is_visible()
    assert card.locator("[data-testid=assessment-why]").inner_text() == why
    assert card.get_attribute("data-assessment") == assessment
    # The seed's label and its P(fake) stay underneath an assessment they agree with;
    # under "Can't tell" or "not applicable" the number is the model's reading instead.
    under = "label" if words.startswith("Likely") else "reading"
    if under == "label":
        assert card.locator("[data-testid=label]").inner_text() == label
    else:
        assert card.locator("[data-testid=label]").is_hidden()
    box = head.bounding_box()
    assert box["y"] < card.locator(f"[data-testid={under}]").bounding_box()["y"]
    stability = card.locator("[data-testid=stability]").inner_text()
    assert stability.startswith("Unstable" if unstable else "Stable"), stability
    assert ("0.12–0.90" if unstable else "0.84–0.90") in stability


@pytest.mark.parametrize(("answer", "seconds"), [
    (json_response(429, error_body("rate_limited", "upload limit reached", retry_after=42),
                   {"Retry-After": "42"}), (42, 41, 40)),
    (json_response(429, error_body("rate_limited", "upload limit reached"),
                   {"Retry-After": "17"}), (17, 16, 15)),
], ids=["429-body", "429-header"])
def test_upload_limit_is_a_countdown_not_an_error(tab, live_server, answer, seconds):
    page = tab.page
    open_page(tab, live_server)
    page.route(JOBS_URL, lambda route: route.fulfill(**answer))
    choose_and_detect(tab, [image_file("photo.jpg", drawn_face((120, 90)))])
    card = cards(tab).first
    assert wait_settled(card, UI_TIMEOUT_MS, waiting=True) == "waiting", describe(card)
    status = describe(card)
    left = re.search(r"Waiting for the upload limit — uploading by itself in (\d+) s", status)
    assert left and int(left.group(1)) in seconds, status
    assert "will be uploaded again by itself" in card.locator("[data-testid=status]").inner_text()
    assert card.locator("[data-testid=error]").is_hidden()
    assert card.locator(".card__retry").is_hidden()
    assert "1 waiting" in page.locator("#summary").inner_text()


@pytest.mark.parametrize(("answer", "expected", "can_retry"), [
    (json_response(413, error_body("too_large", "the upload is larger than the limit of 10 MB")),
     r"^Too large — the upload is larger than the limit of 10 MB$", False),
    (json_response(415, error_body("unsupported_type", "photo.jpg: not an accepted image")),
     r"^Wrong file type — photo.jpg: not an accepted image$", False),
    (json_response(400, error_body("bad_request", "photo.jpg: the image is truncated")),
     r"^Not accepted — photo.jpg: the image is truncated$", False),
    (json_response(503, error_body("unavailable", "the job store is unreachable"),
                   {"Retry-After": "5"}),
     r"^Server unavailable — the job store is unreachable$", True),
    ("abort", r"^Network error", True),
], ids=["413", "415", "400", "503", "network"])
def test_upload_errors_in_words(tab, live_server, answer, expected, can_retry):
    page = tab.page
    open_page(tab, live_server)
    page.route(JOBS_URL, lambda route: route.abort("failed") if answer == "abort"
               else route.fulfill(**answer))
    choose_and_detect(tab, [image_file("photo.jpg", drawn_face((120, 90)))])
    card = cards(tab).first
    assert wait_settled(card, UI_TIMEOUT_MS) == "error", describe(card)
    error = card.locator("[data-testid=error]")
    assert re.search(expected, error.inner_text()), error.inner_text()
    assert card.locator("[data-testid=label]").is_hidden()
    assert card.locator(".card__retry").is_visible() == can_retry

    if can_retry:  # the server is back: Retry on the card goes through to a verdict
        page.unroute(JOBS_URL)
        page.route(JOBS_URL, lambda route: route.fulfill(**accepted()))
        page.route(JOB_URL, lambda route: route.fulfill(**done_job(
            label="Real", p_fake=0.002, assessment="likely_real", reasons=("low_score",))))
        card.locator(".card__retry").click()
        assert wait_settled(card, UI_TIMEOUT_MS) == "done", describe(card)
        assert card.locator("[data-testid=label]").inner_text() == "Real"
        assert card.locator("[data-testid=error]").is_hidden()


def test_failed_job_shows_its_error(tab, live_server):
    page = tab.page
    open_page(tab, live_server)
    page.route(JOBS_URL, lambda route: route.fulfill(**accepted()))
    page.route(JOB_URL, lambda route: route.fulfill(**json_response(200, {
        "id": JOB_ID, "status": "failed", "error": "could not decode the stored image"})))
    choose_and_detect(tab, [image_file("photo.jpg", drawn_face((120, 90)))])
    card = cards(tab).first
    assert wait_settled(card, UI_TIMEOUT_MS) == "failed", describe(card)
    assert "could not decode the stored image" in card.locator("[data-testid=error]").inner_text()
    assert card.locator("[data-testid=label]").is_hidden()


def test_client_side_checks_refuse_before_uploading(tab, live_server):
    page = tab.page
    open_page(tab, live_server)
    max_mb = float(page.locator("#app").get_attribute("data-max-mb"))
    posts: list[str] = []
    page.route(JOBS_URL, lambda route: (posts.append(route.request.url),
                                        route.fulfill(**accepted()))[1])
    page.route(JOB_URL, lambda route: route.fulfill(**done_job()))
    files = [image_file("document.pdf", b"%PDF-1.4", "application/pdf")]
    if max_mb:
        files.append(image_file("huge.jpg", b"\xff\xd8" + b"\0" * int(max_mb * 1e6 + 1000)))
    page.set_input_files("#file-input", files)
    for i, words in enumerate(["Wrong file type", "Too large"][:len(files)]):
        card = cards(tab).nth(i)
        assert card.get_attribute("data-state") == "rejected"
        assert words in card.locator("[data-testid=error]").inner_text()
    assert page.is_disabled("#detect"), "nothing left to upload"
    assert posts == []


def test_provenance_why_and_feedback_on_the_real_server(tab, live_server, face_jpeg,
                                                         fresh_limits):
    open_page(tab, live_server)
    page = tab.page
    choose_and_detect(tab, [image_file("face.jpg", face_jpeg)])
    card = cards(tab).first
    assert wait_settled(card, live_server=live_server) == "done", describe(card)
    # Provenance: its own panel, which always says a missing credential proves nothing.
    panel = card.locator("[data-testid=provenance]")
    assert panel.is_visible()
    assert card.locator("[data-testid=provenance-summary]").inner_text()
    assert "proves nothing" in panel.inner_text()

    # The assessment's own reason text stays where it was (the button is a separate element).
    assert card.locator("[data-testid=assessment-why]").inner_text()
    assert card.locator("[data-testid=why]").inner_text() == "Why?"
    card.locator("[data-testid=why]").click()
    # Locators, not wait_for_function: the page's CSP forbids evaluating strings.
    page.locator("[data-testid=card][data-why]").wait_for(timeout=VERDICT_TIMEOUT_MS)
    assert card.get_attribute("data-why") == "shown", describe(card)
    assert "not where a fake is" in card.locator("[data-testid=why-panel]").inner_text()
    overlays = card.locator(".why-overlay")
    assert overlays.count() >= 1
    # The shipped card's 7x7 grid, unless nothing moved (then no grid, and the line says so).
    line = card.locator("[data-testid=why-faces] li").first.inner_text()
    assert card.locator(".why__grid tr").count() == 7 or "less than 0.01" in line, line
    assert "changed it most: it lowered" in line or "changed it most: it raised" in line or \
        "less than 0.01" in line, line
    # The overlay sits over the preview, inside it.
    pbox = card.locator(".preview").bounding_box()
    obox = overlays.first.bounding_box()
    assert obox["width"] > 10 and pbox["x"] - 1 <= obox["x"] <= pbox["x"] + pbox["width"]

    card.locator("[data-testid=wrong]").click()
    form = card.locator("[data-testid=wrong-form]")
    assert form.is_visible()
    # The answer opposite to a "Likely" assessment is picked already; after "Can't tell" none is.
    said = card.get_attribute("data-assessment")
    picked = form.locator("input[name=truth]:checked")
    assert picked.count() == (1 if said in ("likely_fake", "likely_real") else 0), said
    form.locator("input[value=Real]").check()
    form.locator("textarea").fill("I took this photo myself")
    form.locator("button[type=submit]").click()
    page.locator("[data-testid=card][data-feedback]").wait_for()
    assert card.get_attribute("data-feedback") == "sent", describe(card)
    assert "Thank you" in card.locator("[data-testid=wrong-status]").inner_text()
    shot(page, "evidence.png")
    assert tab.unexpected_errors() == []

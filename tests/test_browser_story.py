"""One story per card, in headless chromium: the assessment leads, the border and the face tags
follow it, and a "Can't tell" or "not applicable" card shows no second verdict (the seed's label
appears only as the model's reading: P(fake) and the prior it assumes). The API's answers are
routed (tests/test_browser.py), so each case is exactly the one the issue reported."""

from __future__ import annotations

import json
import re

import pytest

from tests import test_browser as tb
from tests.test_browser import (
    JOB_URL,
    JOBS_URL,
    UI_TIMEOUT_MS,
    accepted,
    cards,
    describe,
    done_job,
    drawn_face,
    image_file,
    open_page,
    shot,
    wait_settled,
)

browser, tab = tb.browser, tb.tab  # test_browser.py's fixtures, passed by name

pytestmark = pytest.mark.browser

# A second verdict is the label's word or a confidence: "Real · 98% confidence".
VERDICT_WORDS = re.compile(r"\b(Real|Fake)\b|confidence")
COLOURS = {"real": "rgb(23, 112, 58)", "fake": "rgb(179, 38, 30)",
           "unsure": "rgb(138, 90, 0)", "none": "rgb(84, 91, 100)"}
BANDS = {"likely_real_below": 0.006303, "likely_fake_from": 0.662016, "faces_judged": 1}


def job(faces=None, **result) -> dict:
    """done_job's answer with these result fields set (or removed, given None)."""
    answer = done_job(faces=faces)
    body = json.loads(answer["body"])
    body["result"].update(result)
    body["result"] = {k: v for k, v in body["result"].items() if v is not None}
    return {**answer, "body": json.dumps(body)}


FACE = {"box": [200, 100, 440, 380], "score": 0.99}
# The StyleGAN2 fake of the issue: between the bands, the seed's label "Real, 98%".
STYLEGAN = job([{**FACE, "p_fake": 0.02, "assessment": "uncertain"}], label="Real",
               confidence=0.98, p_fake=0.02, assessment="uncertain", reasons=["middle_score"],
               reason_text="The score is between the bands where real and fake faces usually "
                           "land: the model cannot tell.", bands=BANDS)
# The reverse: "Can't tell" over "Fake, 39%".
FAKE_39 = job([{**FACE, "p_fake": 0.39, "assessment": "uncertain"}], label="Fake",
              confidence=0.39, p_fake=0.39, assessment="uncertain", reasons=["middle_score"],
              reason_text="The score is between the bands.", bands=BANDS)
# A screenshot with no face: "Not a face photo we can judge" over "Real, 99%".
NO_FACE = job([], label="Real", confidence=0.99, p_fake=0.01, face_found=False,
              assessment="not_applicable", reasons=["no_face"],
              reason_text="No face was found.", bands={**BANDS, "faces_judged": 0})
GROUP = job([{"box": [20, 60, 140, 200], "score": 0.9, "p_fake": 0.004,
              "assessment": "likely_real"},
             {"box": [250, 60, 370, 200], "score": 0.9, "p_fake": 0.7,
              "assessment": "uncertain"},
             {"box": [480, 60, 600, 200], "score": 0.9, "p_fake": 0.002,
              "assessment": "likely_real"},
             {"box": [300, 300, 330, 330], "score": 0.8, "p_fake": 0.5,
              "assessment": "not_judged"}],
            label="Fake", confidence=0.7, p_fake=0.7, assessment="uncertain",
            reasons=["middle_score", "small_faces_skipped", "several_faces"],
            reason_text="Each of the 3 faces was judged on its own.",
            bands={**BANDS, "likely_fake_from": 0.85, "faces_judged": 3})


def show(t, live_server, answers: list[dict]):
    """Open the page and upload one drawn photo per routed answer; the settled cards."""
    page = t.page
    open_page(t, live_server)
    # Card i uploads photo-i.jpg and is answered with answers[i], in whatever order they go.
    page.route(JOBS_URL, lambda route: route.fulfill(**accepted(job_id=format(int(re.search(
        rb"photo-(\d+)\.jpg", route.request.post_data_buffer).group(1)), "032x"))))
    page.route(JOB_URL, lambda route: route.fulfill(**answers[int(re.search(
        r"/jobs/([0-9a-f]{32})", route.request.url).group(1), 16)]))
    page.set_input_files("#file-input", [image_file(f"photo-{i}.jpg", drawn_face((640, 480)))
                                         for i in range(len(answers))])
    page.wait_for_selector("#detect:enabled")
    page.click("#detect")
    out = [cards(t).nth(i) for i in range(len(answers))]
    for card in out:
        assert wait_settled(card, UI_TIMEOUT_MS) == "done", describe(card)
    return out


def border(card) -> str:
    return card.evaluate("el => getComputedStyle(el).borderTopColor")


def assert_no_second_verdict(card, reading_has: tuple[str, ...]) -> None:
    verdict = card.locator(".verdict").inner_text()
    assert not VERDICT_WORDS.search(verdict), verdict
    assert card.locator("[data-testid=label]").is_hidden()
    assert card.locator("[data-testid=p-fake]").is_hidden()
    assert card.locator(".meter").is_hidden()
    reading = card.locator("[data-testid=reading]")
    assert reading.is_visible()
    for words in reading_has:
        assert words in reading.inner_text(), reading.inner_text()
    # Screen readers hear the same story.
    assert not VERDICT_WORDS.search(card.locator("[data-testid=status]").inner_text())


def test_an_uncertain_card_shows_no_second_verdict(tab, live_server):
    one, two, three = show(tab, live_server, [STYLEGAN, FAKE_39, NO_FACE])
    for card, has in ((one, ("P(fake) 0.02", "2% of the faces")),
                      (two, ("P(fake) 0.39", "2% of the faces")),
                      (three, ("P(fake) 0.01", "centre of the image", "2% of the faces"))):
        assert_no_second_verdict(card, has)
    assert one.locator("[data-testid=assessment]").inner_text() == "Can't tell"
    assert three.locator("[data-testid=assessment]").inner_text() == (
        "Not a face photo we can judge")
    # The border and the face tag follow the assessment, not the label.
    assert border(one) == border(two) == COLOURS["unsure"]
    assert border(three) == COLOURS["none"]
    for card in (one, two):
        assert card.locator(".face-box__tag").inner_text() == "Can't tell"
        assert card.locator(".face-box").get_attribute("data-assessment") == "uncertain"
    tab.page.wait_for_timeout(300)
    shot(tab.page, "one-story.png")
    assert tab.unexpected_errors() == []


def test_a_sure_card_keeps_the_label_in_the_assessments_colour(tab, live_server):
    fake = job([{**FACE, "p_fake": 0.87, "assessment": "likely_fake"}], bands=BANDS,
               stability={"checked": True, "variants": 3, "p_fake_min": 0.81,
                          "p_fake_max": 0.93, "spread": 0.12, "unstable": False})
    real = job([{**FACE, "p_fake": 0.003, "assessment": "likely_real"}], label="Real",
               confidence=0.997, p_fake=0.003, assessment="likely_real",
               reasons=["low_score"], bands=BANDS, threshold=0.42,
               stability={"checked": False, "variants": 1, "p_fake_min": 0.003,
                          "p_fake_max": 0.003, "spread": 0.0, "unstable": False})
    f, r = show(tab, live_server, [fake, real])
    assert f.locator("[data-testid=label]").inner_text() == "Fake"
    # The label's rule is the threshold the result states, not a number written in the page.
    rule = f.locator("[data-testid=label-rule]").inner_text()
    threshold = json.loads(fake["body"])["result"]["threshold"]
    assert rule == f"Model's label (Fake when P(fake) is over {threshold:.2f}):", rule
    assert r.locator("[data-testid=label-rule]").inner_text() == \
        "Model's label (Fake when P(fake) is over 0.42):"
    # Its number is P(fake) and the prior it assumes: never a "confidence".
    assert f.locator("[data-testid=p-fake]").inner_text() == "P(fake) 0.87"
    assert r.locator("[data-testid=p-fake]").inner_text() == "P(fake) 0.003"
    assert "confidence" not in f.locator(".verdict").inner_text()
    assert f.locator("[data-testid=p-note]").inner_text() == (
        ", on the assumption that 2% of the faces it is shown are fake")
    assert f.locator("[data-testid=reading]").is_hidden()
    assert border(f) == COLOURS["fake"] and border(r) == COLOURS["real"]
    assert f.locator(".face-box__tag").inner_text() == "Likely fake"
    assert r.locator(".face-box__tag").inner_text() == "Likely real"
    assert "Likely real" in r.locator("[data-testid=status]").inner_text()
    # The versions served are the mirror and the half-size copy (detector.stability.CHECKED).
    assert f.locator("[data-testid=stability]").inner_text() == (
        "Stable under resizing and mirroring: P(fake) 0.81–0.93 over 3 versions")
    # Far inside its band the face's versions are not scored, and the card says so.
    assert r.locator("[data-testid=stability]").inner_text() == (
        "Not re-checked under resizing and mirroring: the score is far inside its band")


def test_a_small_served_prior_is_shown_as_it_is(tab, live_server):
    """The served model's prior is 0.5%: the card says so, not a rounded 1% (seen on the page)."""
    fake = job([{**FACE, "p_fake": 0.99, "assessment": "likely_fake"}], bands=BANDS,
               prior_fake=0.005, p_fake=0.99)
    (f,) = show(tab, live_server, [fake])
    assert f.locator("[data-testid=p-note]").inner_text() == (
        ", on the assumption that 0.5% of the faces it is shown are fake")
    assert f.locator(".verdict__model").inner_text().endswith(" · prior 0.5% fakes")


def test_a_group_photo_tags_each_face_with_its_own_assessment(tab, live_server):
    (card,) = show(tab, live_server, [GROUP])
    tags = card.locator(".face-box__tag").all_inner_texts()
    assert tags == ["1: Likely real", "2: Can't tell", "3: Likely real", "4: Not judged"]
    assert card.locator(".verdict__faces").inner_text() == "4 faces found — 3 judged, 1 too small"
    assert "most suspicious face decides" not in describe(card)
    assert_no_second_verdict(card, ("most suspicious face (face 2)",))
    assert card.locator(".face-box--unsure").count() == 1
    assert card.locator(".face-box--real").count() == 2
    shot(tab.page, "group.png")


def explanation(delta: list[list[float]]) -> dict:
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(buf, "PNG")
    return tb.json_response(200, {"id": "0" * 32, "status": "done", "faces": [{
        "face": 0, "box": FACE["box"], "crop_box": [180, 100, 460, 380], "p_fake": 0.02,
        "delta": delta, "overlay_png": "data:image/png;base64," + base64.b64encode(
            buf.getvalue()).decode()}]})


@pytest.mark.parametrize("moved", [True, False], ids=["one-cell-raises", "nothing-moves"])
def test_why_names_the_largest_change_with_the_grids_sign(tab, live_server, moved):
    delta = [[0.0] * 7 for _ in range(7)]
    if moved:  # covering (0, 0) lowered P(fake) by 0.1, covering (6, 3) raised it by 0.2
        delta[0][0], delta[6][3] = 0.1, -0.2
    else:  # a clearly real face: nothing moves
        delta = [[0.004] * 7 for _ in range(7)]
    tab.page.route(re.compile(r"/api/v1/jobs/[0-9a-f]{32}/explanation$"),
                   lambda route: route.fulfill(**explanation(delta)))
    (card,) = show(tab, live_server, [STYLEGAN])
    card.locator("[data-testid=why]").click()
    card.and_(tab.page.locator("[data-why=shown]")).wait_for()
    line = card.locator("[data-testid=why-faces] li").first.inner_text()
    if moved:
        assert ("covering row 7, column 4 changed it most: it raised P(fake) by 0.200 "
                "(−0.200 in the grid)") in line, line
        assert card.locator(".why__grid tr").count() == 7
        assert card.locator(".why__top").inner_text() == "−0.20"
    else:
        assert "moved P(fake) by less than 0.01" in line, line
        assert card.locator(".why__grid").count() == 0
    assert tab.unexpected_errors() == []


def test_the_verdict_shows_at_once_and_the_map_when_it_arrives(tab, live_server):
    """The worker makes the map after recording the verdict: the explanation answers 202 until
    it is there. The card shows its verdict meanwhile, says the map is on its way (once, in
    its live region, the panel busy), and draws the map when it comes."""
    asked = []
    delta = [[0.0] * 7 for _ in range(7)]
    delta[2][5] = 0.3

    def answer(route):
        asked.append(route.request.url)
        if len(asked) < 3:
            route.fulfill(**tb.json_response(202, {"id": "0" * 32, "status": "pending",
                                                  "retry_after": 1},
                                             {"Retry-After": "1"}))
        else:
            route.fulfill(**explanation(delta))

    tab.page.route(re.compile(r"/api/v1/jobs/[0-9a-f]{32}/explanation$"), answer)
    (card,) = show(tab, live_server, [STYLEGAN])
    assert card.get_attribute("data-state") == "done"  # the verdict, before any map
    card.locator("[data-testid=why]").click()
    panel = card.locator("[data-testid=why-panel]")
    assert panel.get_attribute("aria-busy") == "true"
    assert "Making the map" in card.locator("[data-testid=why-status]").inner_text()
    assert card.locator("[data-testid=why]").is_disabled()
    assert card.locator("[data-testid=assessment]").inner_text() == "Can't tell"
    card.and_(tab.page.locator("[data-why=shown]")).wait_for(timeout=UI_TIMEOUT_MS)
    assert len(asked) == 3 and panel.get_attribute("aria-busy") == "false"
    assert card.locator(".why__top").inner_text() == "+0.30"
    assert card.locator("[data-testid=why-status]").inner_text() == ""
    assert not card.locator("[data-testid=why]").is_disabled()
    assert tab.unexpected_errors() == []

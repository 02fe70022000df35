"""The assessment rules, the benign variants and the band fitting, on known inputs."""

from __future__ import annotations

import numpy as np
import pytest

from detector.assess import MAX_FACES, Bands, assess, face_side, group_bar
from detector.stability import VARIANTS, all_variants, summary, variants
from training.common.assessment import fit_bands, min_face_side, shrink

BANDS = Bands(likely_real_below=0.2, likely_fake_from=0.8, min_face_px=50, max_faces=4,
              real_share=0.03)


def rows(*ps):
    """(faces, variants) with every variant equal to the face's score."""
    return np.array([[p] * len(VARIANTS) for p in ps])


@pytest.mark.parametrize("p, want, reason", [
    (0.1, "likely_real", "low_score"), (0.5, "uncertain", "middle_score"),
    (0.9, "likely_fake", "high_score"), (0.8, "likely_fake", "high_score"),
    (0.2, "uncertain", "middle_score")])
def test_bands_decide_a_stable_face(p, want, reason):
    got = assess(rows(p), [100.0], 0.3, BANDS)
    assert (got["assessment"], got["reasons"]) == (want, [reason]) and got["reason_text"]


def test_not_applicable_cases_and_their_reasons():
    assert assess(rows(0.9), [], 0.3, BANDS)["reasons"] == ["no_face"]
    assert assess(rows(0.9), [40.0], 0.3, BANDS)["reasons"] == ["face_too_small"]
    many = assess(rows(*[0.1] * 5), [100.0] * 5, 0.3, BANDS)
    assert many["assessment"] == "not_applicable" and many["reasons"] == ["too_many_faces"]
    assert "4 faces" in many["reason_text"] and "50 px" in assess(
        rows(0.9), [40.0], 0.3, BANDS)["reason_text"]


def test_group_bar_keeps_the_image_prior():
    assert group_bar(0.8, 0.02, 1) == 0.8 and group_bar(0.8, 0.02, 0) == 0.8
    bars = [group_bar(0.8, 0.02, n) for n in range(1, MAX_FACES + 1)]
    assert all(a < b < 1 for a, b in zip(bars, bars[1:], strict=False))
    # Read under the per-face prior of n faces, a face at the bar scores what one face at the
    # card's band scores under the card's prior; and n faces at that per-face prior make up the
    # card's prior for the image (Sidak).
    n, prior = 6, 0.02
    per_face = 1 - (1 - prior) ** (1 / n)
    assert 1 - (1 - per_face) ** n == pytest.approx(prior)
    lo = np.log(bars[n - 1] / (1 - bars[n - 1])) + np.log(per_face / (1 - per_face)) - np.log(
        prior / (1 - prior))
    assert 1 / (1 + np.exp(-lo)) == pytest.approx(0.8)
    # The shipped card's band (0.66 at a 2% prior) reaches 0.96 at the most faces judged.
    assert 0.95 < group_bar(0.662016, 0.02, MAX_FACES) < 0.97


def test_each_face_of_a_group_is_judged_against_the_raised_bar():
    bar = group_bar(0.8, 0.02, 3)
    # One face over the single-face band but under the group's bar: no accusation.
    got = assess(rows(0.85, 0.1, 0.1), [100.0] * 3, 0.3, BANDS, prior_fake=0.02)
    assert got["assessment"] == "uncertain" and got["reasons"] == ["middle_score",
                                                                   "several_faces"]
    assert got["faces"] == ["uncertain", "likely_real", "likely_real"]
    assert got["bands"] == {"likely_real_below": 0.2, "likely_fake_from": round(bar, 6),
                            "faces_judged": 3}
    assert f"{bar:.2f}" in got["reason_text"] and "0.80" in got["reason_text"]
    got = assess(rows(0.1, 0.99, 0.1), [100.0] * 3, 0.3, BANDS, prior_fake=0.02)
    assert got["assessment"] == "likely_fake" and got["faces"][1] == "likely_fake"
    # A crowd: beyond MAX_FACES nothing is judged, every face says so.
    crowd = Bands.from_card({"assessment": {"likely_real_below": 0.2, "likely_fake_from": 0.8,
                                            "min_face_px": 50, "max_faces": 4,
                                            "max_real_share": 0.03}})
    assert crowd.max_faces == MAX_FACES
    got = assess(rows(*[0.1] * (MAX_FACES + 1)), [100.0] * (MAX_FACES + 1), 0.3, crowd)
    assert got["assessment"] == "not_applicable" and set(got["faces"]) == {"not_judged"}
    assert assess(rows(*[0.1] * MAX_FACES), [100.0] * MAX_FACES, 0.3, crowd)["assessment"] == \
        "likely_real"


def test_small_faces_are_skipped_but_said():
    got = assess(rows(0.95, 0.1), [30.0, 120.0], 0.3, BANDS)
    assert got["assessment"] == "likely_real" and got["reasons"] == ["low_score",
                                                                     "small_faces_skipped"]


def test_versions_that_leave_the_band_shown_are_unstable():
    p = np.array([[0.9, 0.1, 0.9, 0.9]])
    got = assess(p, [100.0], 0.3, BANDS)
    assert got["assessment"] == "uncertain" and got["reasons"] == ["unstable"]
    assert "0.90" in got["reason_text"] and "0.10 and 0.90" in got["reason_text"]
    # The image's decision under each version is its most suspicious face's: a second face that
    # stays fake under every version keeps the image's decision put.
    assert assess(np.vstack([p, rows(0.95)]), [100.0, 100.0], 0.3, BANDS)["assessment"] == \
        "likely_fake"
    # The decision shown is the band, not the label: a version that stays above the bar
    # changes nothing, one that leaves it (still over the threshold, still "Fake") does.
    assert assess(np.array([[0.9, 0.85, 0.99, 0.81]]), [100.0], 0.3, BANDS)["assessment"] == \
        "likely_fake"
    assert assess(np.array([[0.9, 0.7, 0.9, 0.9]]), [100.0], 0.3, BANDS)["reasons"] == \
        ["unstable"]
    # Between the bands the face reads "Can't tell" whatever its versions say.
    assert assess(np.array([[0.5, 0.1, 0.95, 0.5]]), [100.0], 0.3, BANDS)["reasons"] == \
        ["middle_score"]
    st = summary(p[0], 0.3, edges=(0.2, 0.8))
    assert st["unstable"] and st["spread"] == pytest.approx(0.8) and st["variants"] == 4
    assert not summary(np.array([0.81, 0.9]), 0.3, edges=(0.2, 0.8))["unstable"]
    assert summary(np.array([0.79, 0.81]), 0.3, edges=(0.2, 0.8))["unstable"]
    # Without bands (a video's track) the label at the threshold decides; 0.3 itself is Real.
    assert summary(np.array([0.3, 0.31]), 0.3)["unstable"]


def test_the_bands_read_the_served_score():
    # A card serving the variants' mean is judged on that mean, not on the crop as found.
    p = rows(0.9)
    assert assess(p, [100.0], 0.3, BANDS)["assessment"] == "likely_fake"
    assert assess(p, [100.0], 0.3, BANDS, served=[0.5])["reasons"] == ["middle_score"]


def test_every_reason_has_its_sentence():
    from detector.assess import TEXT
    from detector.tracks import TEXT as VIDEO_TEXT
    from shared.schema import REASONS

    assert set(TEXT) | set(VIDEO_TEXT) == set(REASONS)


def test_face_side_is_the_shorter_side():
    assert face_side((10, 20, 110, 70)) == 50


def test_variants_are_benign_changes_of_the_crop():
    rng = np.random.default_rng(0)
    crop = rng.integers(0, 255, (224, 224, 3), np.uint8)
    v = variants(crop)
    assert v.shape == (len(VARIANTS), 224, 224, 3) and v.dtype == np.uint8
    assert np.array_equal(v[0], crop) and np.array_equal(v[1], crop[:, ::-1])
    for k in range(2, len(VARIANTS)):  # changed, but not into another image
        assert not np.array_equal(v[k], crop)
        assert abs(float(v[k].mean()) - float(crop.mean())) < 3
    both = all_variants(np.stack([crop, crop[::-1]]))
    assert both.shape[0] == 2 * len(VARIANTS) and np.array_equal(both[len(VARIANTS)], crop[::-1])


def test_bands_hold_their_shares_on_each_source():
    rng = np.random.default_rng(1)
    by_source = {}
    for name, shift in (("a", 0.0), ("b", 0.2)):
        y = np.r_[np.zeros(1000), np.ones(1000)].astype(int)
        p = np.clip(np.r_[rng.normal(0.3 + shift, 0.15, 1000), rng.normal(0.7, 0.15, 1000)], 0, 1)
        by_source[name] = (y, p)
    by_source["reals-only"] = (np.zeros(500, int), rng.uniform(0, 0.5, 500))
    b = fit_bands(by_source, threshold=0.5)
    for y, p in by_source.values():
        assert np.mean(p[y == 0] >= b["likely_fake_from"]) <= 0.03
        if (y == 1).any():
            assert np.mean(p[y == 1] < b["likely_real_below"]) <= 0.10
    assert b["likely_real_below"] <= b["likely_fake_from"]


def test_crossing_bands_meet_instead_of_overlapping():
    # Separated so well that 10% of fakes lie above 97% of reals: the fitted bands meet, and
    # the label's threshold (on the reals' side of where they met) ends "Likely real".
    y = np.r_[np.zeros(100), np.ones(100)].astype(int)
    p = np.r_[np.linspace(0, 0.4, 100), np.linspace(0.6, 1, 100)]
    b = fit_bands({"x": (y, p)}, threshold=0.38)
    assert b["likely_real_below"] == 0.38 and 0.38 < b["likely_fake_from"] <= 0.4
    # Met bands leave the label's threshold between them: faces on its wrong side of where they
    # met are labelled the other way, so they read "Can't tell" (detector.assess.agree).
    b = fit_bands({"x": (y, p)}, threshold=0.5)
    assert 0.38 < b["likely_real_below"] <= 0.4 and 0.5 < b["likely_fake_from"] < 0.5 + 1e-9


def test_min_face_side_finds_where_accuracy_drops():
    # A "model" that reads fine detail (pixel-to-pixel contrast) fails once faces get small.
    rng = np.random.default_rng(2)
    crops = rng.integers(100, 156, (40, 224, 224, 3)).astype(np.uint8)
    crops[20:, ::2] = np.clip(crops[20:, ::2].astype(int) + 60, 0, 255).astype(np.uint8)
    y = np.r_[np.zeros(20), np.ones(20)].astype(int)

    def detail(x):
        return np.abs(np.diff(x.astype(float), axis=1)).mean(axis=(1, 2, 3)) / 100

    side, curve = min_face_side(detail, crops, y)
    assert curve["full"] == 1.0 and side > 16
    assert shrink(crops[:2], 32).shape == (2, 224, 224, 3)


def test_only_faces_whose_assessment_could_change_are_checked():
    from detector.stability import to_check

    # One face a photo; 1 logit from the edge of its band or closer is checked.
    got = [bool(to_check(np.array([p]), [100.0], 0.3, BANDS, 0.5, 1.0)[0])
           for p in (0.01, 0.15, 0.19, 0.2, 0.5, 0.79, 0.8, 0.85, 0.99)]
    assert got == [False, True, True, False, False, False, True, True, False]
    # An unlimited margin checks every face in a band, and still none between them.
    assert to_check(np.array([0.001, 0.5, 0.999]), [100.0] * 3, 0.3, BANDS, 0.02,
                    float("inf")).tolist() == [True, False, True]
    # A group photo is judged against its own bar; a face too small to judge, or one of a
    # crowd, is never checked.
    bar = group_bar(0.8, 0.02, 2)
    assert to_check(np.array([0.81, bar]), [100.0, 100.0], 0.3, BANDS, 0.02, 1.0).tolist() == \
        [False, True]
    assert not to_check(np.array([0.85, 0.1]), [30.0, 100.0], 0.3, BANDS, 0.5, 1.0)[0]
    assert not to_check(np.full(5, 0.85), [100.0] * 5, 0.3, BANDS, 0.5, 9.0).any()


def test_the_margin_reaches_all_but_two_percent_of_the_faces_that_left_their_band():
    from training.common.assessment import stability_margin

    # 50 faces read "Likely fake" at growing distances from the bar, each with a version under
    # it; 50 never move: the margin reaches all but 2% of the 50.
    z = np.log(0.8 / 0.2) + np.linspace(0.02, 2, 50)
    moved = np.stack([1 / (1 + np.exp(-z)), np.full(50, 0.5)], 1)
    calm = np.full((50, 2), 0.001)
    margin, n = stability_margin(np.vstack([moved, calm]), 0.2, 0.8)
    assert n == 50 and 1.9 < margin <= 2.0
    assert stability_margin(calm, 0.2, 0.8) == (0.0, 0)
    # A face between the bands whose versions move is no flip: its assessment stays.
    assert stability_margin(np.array([[0.5, 0.99, 0.01]]), 0.2, 0.8) == (0.0, 0)
    far = summary(np.array([0.99] * len(VARIANTS)), 0.3, checked=False)
    assert far == {"checked": False, "variants": 1, "p_fake_min": 0.99, "p_fake_max": 0.99,
                   "spread": 0.0, "unstable": False}


def test_prior_is_chosen_for_the_targets_on_calibration_data():
    from training.policy import choose_prior_issue11 as choose_prior

    rng = np.random.default_rng(3)
    # Reals that the model scores a little high (as the shipped one does): a 50/50 prior calls
    # many of them Fake; a lower prior brings them under the threshold and keeps the fakes.
    labels = np.r_[np.zeros(400), np.ones(400)].astype(int)
    p = np.r_[rng.uniform(0.2, 0.45, 400), rng.uniform(0.7, 0.99, 400)]
    sources = np.array(["ff-crops"] * 800)
    prior, rows = choose_prior(labels, p, sources, 0.3)
    assert prior < 0.5
    best = next(r for r in rows if r["prior_fake"] == prior)
    assert best["reals_called_fake"]["ff-crops"] <= 0.10 and best["real_ok"] == 1
    assert best["fakes_caught"]["ff-crops"] > 0.95
    # The largest such prior: one step closer to 50/50 calls too many reals Fake.
    nxt = next(r for r in rows if r["prior_fake"] == round(prior + 0.05, 2))
    assert nxt["reals_called_fake"]["ff-crops"] > 0.10
    assert next(r for r in rows if r["prior_fake"] == 0.5)["reals_called_fake"]["ff-crops"] > 0.5

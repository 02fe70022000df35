"""Rate limits that hold: exact counts across processes, a correct Retry-After, per-key limits,
and X-Forwarded-For believed only behind a configured trusted proxy.

Each test starts its own gunicorn processes over the session Redis and worker, with a short
window (10 s) so that Retry-After can be checked by actually waiting it out.
"""

from __future__ import annotations

import math
import time

import pytest
import requests

from harness import services
from tests.conftest import make_jpeg

WINDOW = 10
KEY_A = "limit-key-a-0123456789"
KEY_B = "limit-key-b-0123456789"


@pytest.fixture
def webs(live_server, reset_limits, tmp_path):
    """start(n, **env) -> n web URLs sharing the session Redis, with a 5 per 10 s upload limit."""
    procs = []

    def start(n: int = 1, **extra) -> list[str]:
        env = {**live_server.env, "DFD_UPLOAD_LIMIT": f"5 per {WINDOW} seconds",
               "DFD_API_KEYS": f"a:{KEY_A}:3 per {WINDOW} seconds,b:{KEY_B}:3 per {WINDOW} "
                               "seconds", **extra}
        urls = []
        for i in range(n):
            proc, url = services.start_web(env, tmp_path / f"web{len(procs)}-{i}.log")
            procs.append(proc)
            urls.append(url)
        return urls

    yield start
    for proc in procs:
        services.stop(proc)


def upload(url: str, seed: int = 0, headers: dict | None = None) -> requests.Response:
    return requests.post(f"{url}/api/v1/jobs", headers=headers or {}, timeout=30,
                         files=[("image", (f"{seed}.jpg", make_jpeg((32, 24), seed=seed),
                                           "image/jpeg"))])


def assert_429(r: requests.Response, retry_max: float) -> int:
    assert r.status_code == 429, r.text
    err = r.json()["error"]
    assert err["code"] == "rate_limited"
    retry = int(r.headers["Retry-After"])
    assert err["retry_after"] == retry and f"try again in {retry} s" in err["message"]
    assert 1 <= retry <= math.ceil(retry_max), (retry, retry_max)
    return retry


def test_exactly_five_per_window_across_two_processes_and_retry_after_is_right(webs):
    urls = webs(2)
    t_first = time.time()
    codes = [upload(urls[i % 2], seed=i).status_code for i in range(5)]
    assert codes == [202] * 5
    # The 6th and later, on either process, are refused; Retry-After counts down to the moment
    # the first of the five leaves the window.
    for i in range(5, 8):
        r = upload(urls[i % 2], seed=i)
        expected = t_first + WINDOW - time.time()
        retry = assert_429(r, retry_max=expected + 1)
        assert retry >= expected - 1, (retry, expected)
        assert r.headers["X-RateLimit-Limit"] == "5"
        assert r.headers["X-RateLimit-Remaining"] == "0"
    # One second before Retry-After ends it is still refused; once it has passed, accepted.
    retry = int(upload(urls[0], seed=20).headers["Retry-After"])
    if retry > 2:
        time.sleep(retry - 2)
        assert upload(urls[1], seed=21).status_code == 429
        retry = int(upload(urls[0], seed=22).headers["Retry-After"])
    time.sleep(retry + 0.2)
    assert upload(urls[1], seed=23).status_code == 202


def test_each_api_key_has_its_own_limit(webs):
    (url,) = webs(1)
    a, b = ({"Authorization": f"Bearer {k}"} for k in (KEY_A, KEY_B))
    assert [upload(url, i, a).status_code for i in range(4)] == [202, 202, 202, 429]
    assert_429(upload(url, 9, a), retry_max=WINDOW)
    # Key B and anonymous uploads from the same address are counted apart from key A.
    assert [upload(url, 10 + i, b).status_code for i in range(4)] == [202, 202, 202, 429]
    assert [upload(url, 20 + i).status_code for i in range(6)] == [202] * 5 + [429]
    # A wrong key is refused outright, never served as anonymous.
    assert upload(url, 30, {"Authorization": "Bearer not-a-key-not-a-key"}).status_code == 401


def test_spoofed_forwarded_for_changes_nothing_without_a_trusted_proxy(webs):
    (url,) = webs(1)
    codes = [upload(url, i, {"X-Forwarded-For": f"203.0.113.{i}"}).status_code
             for i in range(7)]
    assert codes == [202] * 5 + [429, 429]


def test_forwarded_for_is_believed_only_for_the_configured_proxy_hops(webs):
    (url,) = webs(1, DFD_TRUSTED_PROXIES="1")
    # Behind one trusted proxy, each client address has its own allowance ...
    for client in ("198.51.100.7", "198.51.100.8"):
        codes = [upload(url, i, {"X-Forwarded-For": client}).status_code for i in range(6)]
        assert codes == [202] * 5 + [429], client
    # ... and a client cannot escape it by prepending addresses of its own: only the hop the
    # trusted proxy appended (the last) is believed.
    codes = [upload(url, 40 + i, {"X-Forwarded-For": f"10.0.0.{i}, 198.51.100.9"}).status_code
             for i in range(6)]
    assert codes == [202] * 5 + [429]



def bad_upload(url: str, headers: dict | None = None) -> requests.Response:
    """A text file named like a photo: refused by its content (415)."""
    return requests.post(f"{url}/api/v1/jobs", headers=headers or {}, timeout=30,
                         files=[("image", ("holiday.jpg", b"not a photo at all\n" * 40,
                                           "image/jpeg"))])


def test_refused_files_do_not_use_up_the_upload_allowance(webs):
    (url,) = webs(1)
    refused = [bad_upload(url) for _ in range(4)]
    assert [r.status_code for r in refused] == [415] * 4
    assert refused[0].json()["error"]["code"] == "unsupported_type"
    # The four wrong picks cost nothing of the five images a client may have judged.
    codes = [upload(url, seed=i).status_code for i in range(6)]
    assert codes == [202] * 5 + [429]


def test_refusals_have_their_own_bounded_allowance(webs):
    (url,) = webs(1, DFD_REFUSAL_LIMIT=f"3 per {WINDOW} seconds")
    assert [bad_upload(url).status_code for _ in range(3)] == [415] * 3
    # The fourth refusal in the window is over its allowance, and so is a good file after it:
    # abuse stays bounded. The message names which allowance it is.
    for r in (bad_upload(url), upload(url, seed=1)):
        retry = assert_429(r, retry_max=WINDOW)
        assert "refused uploads" in r.json()["error"]["message"]
    time.sleep(retry + 0.2)
    assert upload(url, seed=2).status_code == 202


def test_held_open_requests_cannot_pass_the_limit_together(webs):
    # ?wait= keeps each request open for seconds; were uploads only counted at answer time,
    # requests sent meanwhile would all pass. They are counted when their files are accepted.
    from concurrent.futures import ThreadPoolExecutor

    urls = webs(2)

    def send(i: int) -> int:
        return requests.post(f"{urls[i % 2]}/api/v1/jobs?wait=3", timeout=30,
                             files=[("image", (f"{i}.jpg", make_jpeg((32, 24), seed=i),
                                               "image/jpeg"))]).status_code

    with ThreadPoolExecutor(8) as pool:
        codes = list(pool.map(send, range(8)))
    assert sorted(codes).count(429) == 3, codes
    assert all(c in (200, 202) for c in codes if c != 429), codes


def test_a_request_refused_by_one_limit_spends_no_other(webs):
    # A video over the upload limit is refused before its video allowance (1 a minute) is
    # touched: once the upload window frees, the same video is taken.
    from harness import videos

    (url,) = webs(1, DFD_VIDEO_LIMIT="1 per 60 seconds")
    clip = videos.video([[None]], seconds=2, fps=5)

    def send_video() -> requests.Response:
        return requests.post(f"{url}/api/v1/jobs", timeout=30,
                             files=[("image", ("clip.mp4", clip, "video/mp4"))])

    assert [upload(url, seed=i).status_code for i in range(5)] == [202] * 5
    r = send_video()
    retry = assert_429(r, retry_max=WINDOW)
    assert "upload limit" in r.json()["error"]["message"]
    time.sleep(retry + 0.2)
    assert send_video().status_code == 202

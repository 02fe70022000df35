"""The served model (shared/settings.py's default, no DFD_MODEL_PATH) end to end: real
redis-server, a real Celery worker holding it, the real web server; each result equals the
inference core's own, and the model's card says it passed standing rule 7's gate against the
model before it."""

from __future__ import annotations

import json

import pytest

from harness import services
from shared import settings
from tests.conftest import API_KEY, LiveServer
from tests.golden import DATA, FILES, assert_worker_scores_as_the_core

pytestmark = [pytest.mark.data, pytest.mark.slow]
SERVED = settings.MODEL


def test_the_served_card_passed_rule_7s_gate():
    """A model whose gate failed (more real faces called Fake or read "Likely fake", more fakes
    read "Likely real", or no prior met the harm rule) is not the default."""
    gate = json.loads((SERVED / "card.json").read_text())["rule7"]
    assert gate["ships"] and gate["prior_met"], gate
    assert not [r for r in gate["rows"] if r["more"]]
    assert gate["files"] > 1000  # every held-out test file, not a sample


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("served")
    redis_proc, url = services.start_redis(tmp)
    env = {"DFD_REDIS_URL": url, "DFD_UPLOAD_DIR": str(tmp / "uploads"),
           "DFD_API_KEYS": f"tests:{API_KEY}:1000/minute", "PROMETHEUS_MULTIPROC_DIR": str(tmp)}
    worker = services.start_worker(env, tmp / "worker.log", concurrency=1)
    web, base = services.start_web(env, tmp / "web.log")
    yield LiveServer(base, API_KEY, url, tmp / "uploads", env, tmp)
    for proc in (web, worker, redis_proc):
        services.stop(proc, timeout=20)


@pytest.mark.skipif(not DATA.is_dir(), reason="needs ../shared/data")
def test_the_worker_serves_the_default_model_as_the_core_scores_it(served):
    card = json.loads((SERVED / "card.json").read_text())
    for res in assert_worker_scores_as_the_core(served, SERVED, FILES):
        assert res["prior_fake"] == pytest.approx(card["prior_fake"])

"""The sweep runs in every worker process on a timer, busy or idle (the guide's rule 4): with no
upload arriving, a job whose task never came back (killed at the hard time limit, so
acknowledged and never redelivered) is sent again, or failed once it has used up its attempts,
within a bounded time. On a real redis-server, worker and gunicorn."""

from __future__ import annotations

import time

import pytest

from harness.services import consumers_paused
from shared.attempts import GAVE_UP
from shared.jobs import JobStore
from shared.settings import SettingsError, load
from shared.tasks import queue_lists
from tests.test_faults import Stack, batch_jpegs


def test_the_period_is_one_setting_checked_at_start():
    assert load({}).SWEEP_EVERY == 60 and load({"DFD_SWEEP_EVERY": "2"}).SWEEP_EVERY == 2
    for bad, words in (("0", "must be between 1"), ("1.5", "expected a whole number")):
        with pytest.raises(SettingsError, match=f"DFD_SWEEP_EVERY.*{words}"):
            load({"DFD_SWEEP_EVERY": bad})


@pytest.mark.slow
def test_an_idle_worker_still_sends_lapsed_jobs_again_or_fails_them(tmp_path, model_dir):
    """Two stills whose tasks were lost while their leases ran: one with an attempt left is run
    again, one at its cap is failed, with nothing else sent to the worker."""
    stack = Stack(tmp_path, model_dir, concurrency=1)
    stack.env.update({"DFD_SWEEP_EVERY": "1", "DFD_MAX_ATTEMPTS": "2"})
    try:
        stack.start_redis()
        stack.start_worker()
        stack.start_web()
        with consumers_paused(stack.redis_url):
            again, spent = stack.submit(batch_jpegs(2, seed=3))
            # Their messages are gone (as a task's killed at the hard time limit is) ...
            stack.redis.delete(*queue_lists())
            store = JobStore(stack.redis, max_attempts=2)
            # ... and each was claimed by a task that never came back: again once, spent twice.
            assert store.claim_ready(again, 0, owner="killed-1", lease=-1).running == [again]
            for owner in ("killed-2", "killed-3"):
                assert store.claim_ready(spent, 0, owner=owner, lease=-1).running == [spent]
        t0 = time.monotonic()
        stack.wait_all_final([again, spent], timeout=30)
        waited = time.monotonic() - t0
        done, failed = stack.records([again, spent])
        assert (done["status"], done["attempts"], done["finishes"]) == ("done", 2, 1)
        assert (failed["status"], failed["error"], failed["finishes"]) == ("failed",
                                                                          GAVE_UP % 2, 1)
        assert not (tmp_path / "uploads" / failed["stored"]).exists()
        log = stack.worker_log_tail(10_000_000)
        assert "its task never came back (or was never sent); sent again" in log
        assert waited < 30, waited
    finally:
        stack.stop()

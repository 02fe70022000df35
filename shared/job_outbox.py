"""The job store's outbox of webhooks owed (JobStore.webhooks). A job recorded final with a
callback is owed its webhook from that same atomic step on (the store's finish and give-up
scripts, create_reused), and stays owed until its delivery has an outcome. So a worker that dies
between recording a verdict and sending the webhook task loses no webhook: the sweep finds it
still owed a lease later and sends its task again, at most `most` times (DFD_MAX_ATTEMPTS):
then it is settled as ABANDONED, so a task that keeps dying short of an outcome is not sent every
lease until the record expires. Delivery is therefore at least once: a receiver may get one
twice, and de-duplicates on the job id (docs/API.md)."""

from __future__ import annotations

import time
from typing import NamedTuple

import redis

from shared import job_scripts

# The outcome of a webhook the sweep gave up on: sent again `most` times, never an outcome.
ABANDONED = "abandoned"


class LapsedWebhooks(NamedTuple):
    """What one look at the outbox did: the ids whose webhook task the caller sends again, and
    those given up on (settled as ABANDONED, out of the outbox) for having been sent again
    `most` times already."""

    again: list[str]
    gave_up: list[str]


class WebhookOutbox:
    """The webhooks owed: a sorted set of job ids by when each one's lease began (the job was
    recorded final, its task sent again, or its next retry falls due)."""

    def __init__(self, client: redis.Redis, key: str, record_prefix: str, most: int):
        self._redis = client
        self.most = most  # times a webhook is sent again before it is given up on
        self._key = key
        self._record_prefix = record_prefix  # a record's key is this plus the job id
        self._settle = client.register_script(job_scripts.SETTLE_WEBHOOK)
        self._lapsed = client.register_script(job_scripts.LAPSED_WEBHOOKS)

    def set_outcome(self, job_id: str, outcome: str) -> None:
        """Note how the delivery ended (delivered, refused, failed) in the job's record, if it
        still exists, and take the job out of the webhooks owed, in one step."""
        self._settle(keys=[self._record_prefix + job_id, self._key], args=[job_id, outcome])

    def retry_in(self, job_id: str, delay: float) -> None:
        """A delivery retried in `delay` seconds: its lease counts from then, so that no sweep
        sends it again while the retry waits (only a webhook still owed is touched)."""
        self._redis.zadd(self._key, {job_id: time.time() + delay}, xx=True)

    def lapsed(self, lease: float) -> LapsedWebhooks:
        """The webhooks still owed `lease` seconds after they fell due: due again from now, for
        the caller to send again, or given up on (ABANDONED) once sent again `most` times; those
        of jobs gone meanwhile are dropped (job_scripts.LAPSED_WEBHOOKS)."""
        again, gave_up = self._lapsed(keys=[self._key], args=[
            self._record_prefix, time.time(), lease, self.most, ABANDONED])
        return LapsedWebhooks([_text(i) for i in again], [_text(i) for i in gave_up])


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value

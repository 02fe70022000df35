"""The job store's outbox of webhooks owed (JobStore.webhooks). A job recorded final with a
callback is owed its webhook from that same atomic step on (the store's finish and give-up
scripts, create_reused), and stays owed until its delivery has an outcome. So a worker that dies
between recording a verdict and sending the webhook task loses no webhook: the sweep finds it
still owed a lease later and sends its task again. Delivery is therefore at least once: a
receiver may get one twice, and de-duplicates on the job id (docs/API.md)."""

from __future__ import annotations

import time

import redis

from shared import job_scripts


class WebhookOutbox:
    """The webhooks owed: a sorted set of job ids by when each one's lease began (the job was
    recorded final, its task sent again, or its next retry falls due)."""

    def __init__(self, client: redis.Redis, key: str, record_prefix: str):
        self._redis = client
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

    def lapsed(self, lease: float) -> list[str]:
        """The webhooks still owed `lease` seconds after they fell due, due again from now, for
        the caller to send again; those of jobs gone meanwhile are dropped
        (job_scripts.LAPSED_WEBHOOKS)."""
        ids = self._lapsed(keys=[self._key], args=[self._record_prefix, time.time(), lease])
        return [i.decode() if isinstance(i, bytes) else i for i in ids]

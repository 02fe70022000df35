"""What a claim and a sweep of lapsed leases report (shared.jobs.JobStore), and the reasons a
job, or its "Why?" map, is given up after DFD_MAX_ATTEMPTS."""

from __future__ import annotations

from typing import NamedTuple

# The error of a job failed for using up its attempts (its %d: how many were made). A job is
# claimed again only when the worker that had it never came back: killed at the hard time
# limit, or dead (an upload that crashes the decoder, memory); retrying it for ever would
# hold a worker for ever and the job would never be final.
GAVE_UP = ("tried %d times (DFD_MAX_ATTEMPTS); each time the worker running it ran out of time "
           "(DFD_TASK_TIME_LIMIT) or died before it finished")
MAP_GAVE_UP = ("the map was tried %d times (DFD_MAX_ATTEMPTS); each time the worker making it "
               "ran out of time (DFD_TASK_TIME_LIMIT) or died before it finished")


class Claim(NamedTuple):
    """What one claim did: the ids it made running for its owner, the ids it found with their
    attempts used up and failed instead (their webhooks and counts are the caller's), and
    (id, priority) of each batch-mate a redelivered task gave back, whose task the caller
    sends again at that priority."""

    running: list[str]
    gave_up: list[str]
    again: list[tuple[str, int]]


class Lapsed(NamedTuple):
    """What one release of lapsed leases did: (id, priority) of each job queued again, whose
    task the caller sends again at that priority, the ids failed for using up their attempts,
    and (id, priority) of each "Why?" map to be sent again (the step after its job's)."""

    again: list[tuple[str, int]]
    gave_up: list[str]
    maps: list[tuple[str, int]]

"""Celery task names and queue, shared so the web can send tasks by name without worker code."""

DETECT = "dfd.detect"
# The "Why?" map of a done job, made after its verdict is recorded (worker/explain.py).
EXPLAIN = "dfd.explain"
QUEUE = "dfd"

# Work classes, most urgent first: a person waiting at the page, then API clients, then batches.
# The number is the Celery message priority, the one place order lives (on Redis 0 is served
# first; one list per step, "dfd", "dfd:3", "dfd:6", "dfd:9"). The ready pools a task fills its
# micro-batch from (shared/jobs.py) are by age only. A job's record keeps its class, so that a
# message sent again for it (a lapsed video) or after it (its "Why?" map) goes by that class.
PRIORITIES = {"page": 0, "api": 3, "batch": 6}
PRIORITY_STEPS = [0, 3, 6, 9]
DEFAULT_PRIORITY = 3  # tasks sent without one (webhook deliveries and their retries)


def queue_lists(queue: str = QUEUE) -> list[str]:
    """The Redis lists that hold one queue's messages, one per priority step."""
    return [queue if step == 0 else f"{queue}:{step}" for step in PRIORITY_STEPS]


def follow_up_priority(priority: int) -> int:
    """The priority of work that follows a job's verdict (its "Why?" map): the next step after
    the job's own, so it never overtakes a verdict of its own class or above."""
    later = [step for step in PRIORITY_STEPS if step > priority]
    return later[0] if later else PRIORITY_STEPS[-1]

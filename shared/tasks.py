"""Celery task names and queue, shared so the web can send tasks by name without worker code."""

DETECT = "dfd.detect"
QUEUE = "dfd"

# Work classes, most urgent first: a person waiting at the page, then API clients, then batches.
# The number is the Celery message priority, the one place priority lives (on Redis 0 is served
# first; one list per step, "dfd", "dfd:3", "dfd:6", "dfd:9"). The ready set a task fills its
# micro-batch from (shared/jobs.py) is by age only.
PRIORITIES = {"page": 0, "api": 3, "batch": 6}
PRIORITY_STEPS = [0, 3, 6, 9]
DEFAULT_PRIORITY = 3  # tasks sent without one (webhook deliveries and their retries)


def queue_lists(queue: str = QUEUE) -> list[str]:
    """The Redis lists that hold one queue's messages, one per priority step."""
    return [queue if step == 0 else f"{queue}:{step}" for step in PRIORITY_STEPS]

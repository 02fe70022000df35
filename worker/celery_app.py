"""The worker app for the `celery` command (`celery -A worker.celery_app inspect ping`): built
from DFD_* settings on import, since that command can only name a module. `python -m worker`
does not use it."""

from worker.app import create_worker

app = create_worker()

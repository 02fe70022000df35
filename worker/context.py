"""What a worker process works with: its settings, model, face finder, job store and storage.

Built once per process after the fork (worker.app's worker_process_init; TensorFlow and LiteRT
must not be loaded before it) and handed to the plain functions that do the work, which tests
call directly with a context of their own.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import metrics
from shared.jobs import JobStore
from shared.queue import redis_client
from shared.settings import Settings
from shared.storage import Storage

if TYPE_CHECKING:
    from detector.faces import FaceDetector
    from detector.model import LoadedModel

log = logging.getLogger(__name__)


@dataclass
class WorkerContext:
    """One worker process's resources (or a test's), kept for the life of the process."""

    settings: Settings
    model: LoadedModel
    face_finder: FaceDetector
    jobs: JobStore
    storage: Storage
    swept: float = 0.0  # when this process last took its turn at the sweep (time.time())

    @property
    def lease(self) -> float:
        """Seconds a claim holds: past the task's hard time limit, its process is surely gone."""
        return self.settings.TASK_TIME_LIMIT + 30


def ride_out(settings: Settings) -> float:
    """Seconds a job in flight keeps retrying Redis during an outage (well inside the limit)."""
    return min(30.0, settings.TASK_TIME_LIMIT / 4)


def build(settings: Settings) -> WorkerContext:
    """Load the model (with the operator's threshold override, resolved once here), the face
    finder, and clients for the job store and storage; announce the model to the web side."""
    from detector.faces import FaceDetector
    from detector.model import load_model

    model = load_model(settings.MODEL_PATH, device=settings.DEVICE)
    if settings.THRESHOLD is not None:
        model.threshold = settings.THRESHOLD
    # A Redis restart mid-job is ridden out, so the job still records its result.
    jobs = JobStore(redis_client(settings.REDIS_URL, ride_out=ride_out(settings)),
                    settings.JOB_TTL, settings.MAX_ATTEMPTS)
    jobs.set_model(model.info())  # the model this worker serves, for the web's result reuse
    metrics.record_runtime(model.runtime.describe())
    log.info("process %d loaded model %s %s (%s)", os.getpid(), model.name, model.version,
             model.runtime.name)
    return WorkerContext(settings, model, FaceDetector(), jobs, Storage(settings.UPLOAD_DIR))


_current: tuple[int, WorkerContext] | None = None


def context(settings: Settings) -> WorkerContext:
    """This process's context, built on first use after the fork (a child process inherits
    its parent's module state, so the process id tells whose it is)."""
    global _current
    if _current is None or _current[0] != os.getpid():
        _current = (os.getpid(), build(settings))
    return _current[1]

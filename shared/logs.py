"""Logging, configured once per process: timestamps, process id and the job id on every line;
DFD_LOG_FORMAT=json writes one JSON object per line for log collectors."""

from __future__ import annotations

import contextvars
import json
import logging
import sys

# The job a line is about: set by the worker for its batch and by the web for a job's routes.
JOB_ID: contextvars.ContextVar[str] = contextvars.ContextVar("dfd_job_id", default="-")
_configured = False
TEXT = "%(asctime)s %(levelname)s %(name)s [%(process)d] job=%(job_id)s %(message)s"


class _JobFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "job_id"):
            record.job_id = JOB_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (ISO 8601, UTC), level, logger, process, job_id, message."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": self.formatTime(record), "level": record.levelname,
               "logger": record.name, "process": record.process,
               "job_id": getattr(record, "job_id", "-"), "message": record.getMessage()}
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)

    def formatTime(self, record, datefmt=None):  # noqa: N802 - logging's name
        import datetime as dt

        ts = dt.datetime.fromtimestamp(record.created, dt.UTC)
        return ts.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def configure(fmt: str = "text", level: int = logging.INFO) -> None:
    """Install one stderr handler on the root logger; later calls do nothing."""
    global _configured
    if _configured:
        return
    _configured = True
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_JobFilter())
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        formatter = logging.Formatter(TEXT)
        formatter.default_msec_format = "%s.%03d"
        handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)

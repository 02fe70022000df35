"""Prometheus metrics of the web and the workers (prometheus-client).

With PROMETHEUS_MULTIPROC_DIR set (scripts/run.sh and the tests set it; it must exist and be
emptied before the processes start), every gunicorn worker and Celery pool child writes its
samples there, and `collect()` sums them: one scrape of the web's /metrics covers every process
on the host that shares the folder. Without it, each process reports only its own samples.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

UPLOADS = Counter("dfd_uploads_total", "Images uploaded, by outcome: queued, reused, or the "
                  "error code of a refused request (counted once per request)", ["outcome"])
JOBS_FINISHED = Counter("dfd_jobs_finished_total", "Jobs that reached a final state",
                        ["status"])
ASSESSMENTS = Counter("dfd_assessments_total", "Done jobs by assessment and model version",
                      ["assessment", "model_version"])
WEBHOOKS = Counter("dfd_webhooks_total", "Webhook deliveries by final outcome: delivered, "
                   "refused (URL or receiver said no), failed (every retry failed), abandoned "
                   "(sent again DFD_MAX_ATTEMPTS times by the sweep, never an outcome)",
                   ["outcome"])
UPLOAD_TO_RESULT = Histogram(
    "dfd_upload_to_result_seconds", "Seconds from the upload to the job's final state",
    ["status"], buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800))
MODEL_SECONDS = Histogram(
    "dfd_model_seconds_per_image", "Detector time per image in a batch (faces, crops, model)",
    ["model_version"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5))

# Set once per worker process at load (detector.model.load_model's choice): which runtime, and
# for a trunk model the weight layout, the CPU kind and the self-check's cosine to the float tower.
RUNTIME = Gauge("dfd_model_runtime", "The runtime the worker processes chose at load (value 1), "
                "by runtime, trunk weight layout and CPU kind", ["runtime", "layout", "cpu"],
                multiprocess_mode="max")
RUNTIME_CHECK = Gauge("dfd_model_runtime_check_cosine", "Lowest cosine of the served trunk's "
                      "features to the float tower on the fixed crops of the load-time "
                      "self-check", ["runtime", "layout"], multiprocess_mode="min")


def record_runtime(described: dict) -> None:
    """Export a loaded runtime's description (detector's Runtime.describe())."""
    check = described.get("check") or {}
    RUNTIME.labels(described["runtime"], check.get("layout", ""), check.get("cpu", "")).set(1)
    if check:
        RUNTIME_CHECK.labels(described["runtime"], check["layout"]).set(check["cosine"])


def multiprocess_dir() -> str | None:
    """The folder shared by this host's processes, or None in single-process mode."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def exposition(*extra) -> tuple[bytes, str]:
    """(body, content type) of the Prometheus text format: every process's samples
    (multiprocess mode; else this process's own) followed by the `extra` collectors."""
    if multiprocess_dir() is None:
        body = generate_latest(REGISTRY)
    else:
        reg = CollectorRegistry()
        multiprocess.MultiProcessCollector(reg)
        body = generate_latest(reg)
    if extra:
        own = CollectorRegistry(auto_describe=True)
        for collector in extra:
            own.register(collector)
        body += generate_latest(own)
    return body, CONTENT_TYPE_LATEST


def serve(port: int) -> None:
    """Serve /metrics of this host's processes on port, from a thread (the Celery parent)."""
    from prometheus_client import start_http_server

    reg = CollectorRegistry()
    if multiprocess_dir() is None:
        reg = REGISTRY
    else:
        multiprocess.MultiProcessCollector(reg)
    start_http_server(port, registry=reg)

"""GET /metrics in the Prometheus text format, and the upload counter (once per image)."""

from __future__ import annotations

from flask import Blueprint, Response, request
from prometheus_client.core import GaugeMetricFamily

from shared import metrics
from shared.tasks import QUEUE, queue_lists
from web.common import Parts, ext
from web.extensions import limiter

bp = Blueprint("metrics", __name__)


class QueueCollector:
    """Read at scrape time from Redis: queue depth, jobs running, the model the workers serve."""

    def __init__(self, parts: Parts):
        self.parts = parts

    def collect(self):
        up = GaugeMetricFamily("dfd_redis_up", "1 when the job store answered this scrape")
        try:
            waiting, running = self.parts["jobs"].counts()
            pipe = self.parts["redis"].pipeline()  # the broker's lists, not the job store's keys
            for name in queue_lists(QUEUE):
                pipe.llen(name)
            messages = sum(pipe.execute())
            model = self.parts["jobs"].current_model()
        except Exception:  # noqa: BLE001 - a scrape reports an outage, it does not fail
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield GaugeMetricFamily("dfd_queue_depth", "Jobs queued, not yet claimed by a worker",
                                value=waiting)
        yield GaugeMetricFamily("dfd_jobs_running", "Jobs claimed by a worker, not yet final",
                                value=running)
        yield GaugeMetricFamily("dfd_queue_messages",
                                "Task messages waiting in the broker queue", value=messages)
        info = GaugeMetricFamily("dfd_model_info", "The model the workers serve (value 1)",
                                 labels=["name", "version"])
        if model:
            info.add_metric([str(model["name"]), str(model["version"])], 1)
        yield info


@bp.get("/metrics")
@limiter.exempt
def scrape():
    """Every process's counters and histograms on this host, plus the queue read from Redis."""
    body, content_type = metrics.exposition(QueueCollector(ext()))
    return Response(body, content_type=content_type)


@bp.after_app_request
def _count_uploads(response):
    if request.endpoint != "api.submit":
        return response
    body = response.get_json(silent=True) or {}
    if response.status_code < 400:
        replayed = response.headers.get("Idempotent-Replayed") == "true"
        for job in body.get("jobs", []):
            outcome = "replayed" if replayed else "reused" if job.get("reused") else "queued"
            metrics.UPLOADS.labels(outcome).inc()
    else:
        code = (body.get("error") or {}).get("code") or f"http_{response.status_code}"
        metrics.UPLOADS.labels(code).inc()
    return response

"""Celery task names and queue, shared so the web can send tasks by name without worker code."""

DETECT = "dfd.detect"
# On request: the occlusion map of a done job's faces (GET /api/v1/jobs/<id>/explanation).
EXPLAIN = "dfd.explain"
QUEUE = "dfd"

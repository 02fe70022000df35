"""Celery task names and queue, shared so the web can send tasks by name without worker code."""

DETECT = "dfd.detect"
QUEUE = "dfd"

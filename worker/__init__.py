"""The worker role: the Celery app and tasks (`app.py`), claiming and micro-batching jobs
(`pipeline.py`), explanations and webhook delivery. The detector does the scoring."""

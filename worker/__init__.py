"""The worker role: the Celery app and its tasks (`app.py`), the per-process context
(`context.py`), claimed jobs (`pipeline.py`: stills in micro-batches, `video.py`: a video, with
its bounded decode in `video_decode.py`; what they share in `common.py`), the "Why?" map after a
verdict (`explain.py`) and webhook delivery. The detector does the scoring."""

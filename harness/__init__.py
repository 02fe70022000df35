"""What tests and benchmarks share: the real processes they run (redis-server, the Celery worker,
gunicorn; services.py), started and stopped for them, and the videos they make (videos.py).
Development only: not in the wheel, imported by tests/ and bench/."""

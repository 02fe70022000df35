"""The real processes that tests and benchmarks run (redis-server, the Celery worker, gunicorn),
started and stopped for them. Development only: not in the wheel, imported by tests/ and bench/."""

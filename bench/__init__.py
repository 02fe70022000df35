"""Benchmarks of the service as it is served (`make bench`, docs/PERFORMANCE.md)."""


def served_model() -> str:
    """The model directory the service serves here: DFD_MODEL_PATH, else the default in
    shared/settings.py (never named in the bench, so a change of default moves the bench too)."""
    from shared import settings

    return settings.load().MODEL_PATH

"""`python -m worker [celery worker options]`: check the model, then run the Celery worker."""

import sys

from worker.model import ModelError, check_model


def main(argv: list[str]) -> int:
    """Start a worker, or exit 2 with a message when the model is missing or broken."""
    from shared.settings import SettingsError, load

    try:
        settings = load()
        check_model(settings["MODEL_PATH"])
    except (ModelError, SettingsError) as exc:
        print(f"dfd worker: cannot start: {exc}", file=sys.stderr)
        return 2
    from worker.app import celery

    celery.worker_main(["worker", "--loglevel=INFO", "-Q", "dfd", *argv])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""`python -m worker [celery worker options]`: check the model, then run the Celery worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from detector.model import ModelError, check_model

if TYPE_CHECKING:
    from shared.settings import Settings

_TRIAL = """
import json, sys
from detector.model import ModelError, load_model
try:
    load_model(sys.argv[1], device=sys.argv[2])
except ModelError as exc:
    print("\\n" + json.dumps({"error": str(exc)}))
    sys.exit(3)
"""


def trial_load(settings: Settings) -> None:
    """Load the model once in a throwaway process, so a file that looks right but does not load
    (corrupt inside, wrong schema) stops the worker here rather than failing every job later.
    A separate process, because the worker forks its pool and TensorFlow must not be loaded
    before the fork."""
    proc = subprocess.run([sys.executable, "-c", _TRIAL, settings.MODEL_PATH,
                           settings.DEVICE], cwd=Path(__file__).resolve().parents[1],
                          capture_output=True, text=True, timeout=600)
    if proc.returncode == 0:
        return
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith('{"error"'):
            raise ModelError(json.loads(line)["error"])
    tail = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    raise ModelError(f"loading the model in {settings.MODEL_PATH} crashed "
                     f"(exit {proc.returncode}): {tail}")


def main(argv: list[str]) -> int:
    """Start a worker, or exit 2 with a message when the model is missing or broken (or a
    setting only the worker reads cannot be used)."""
    from shared.settings import SettingsError, load

    try:
        settings = load()
        check_model(settings.MODEL_PATH)
        from worker.app import apply_trust_anchors

        apply_trust_anchors(settings)
        trial_load(settings)
    except (ModelError, SettingsError) as exc:
        print(f"dfd worker: cannot start: {exc}", file=sys.stderr)
        return 2
    from worker.app import create_worker

    create_worker(settings).worker_main(["worker", "--loglevel=INFO", "-Q", "dfd", *argv])
    # celery-types declares worker_main NoReturn, but it returns when the worker stops
    # (Celery.start catches click's Exit).
    return 0  # type: ignore[unreachable]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

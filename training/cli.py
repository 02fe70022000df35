"""`dfd-train COMMAND` (or `python -m training`): the model developer's commands."""

from __future__ import annotations

import importlib
import sys

# Each command's module, by generation: training.e2e (networks trained end to end), training.clip
# (frozen CLIP features) and training.common (any model).
COMMANDS = {"train": "training.e2e.train", "bands": "training.e2e.bands",
            "verdicts": "training.e2e.verdicts",
            "serve-policy": "training.e2e.serve_policy", "quantize": "training.e2e.quantize",
            "features": "training.clip.features",
            "clip": "training.clip.fit", "clip-serving": "training.clip.serving",
            "clip-ablation": "training.clip.ablation", "evaluate": "training.common.evaluate",
            "aligned": "training.common.aligned", "study-tables": "training.common.fold_tables",
            "study-compare": "training.common.fold_compare"}


def _exit_code(exc: SystemExit) -> int:
    # sys.exit("text") means: print it, exit 1; argparse exits with 0 on --help, 2 on misuse.
    if exc.code is None or isinstance(exc.code, int):
        return exc.code or 0
    print(exc.code, file=sys.stderr)
    return 1


def dispatch(prog: str, commands: dict[str, str], argv: list[str] | None) -> int:
    """Run `prog COMMAND ARGS...`: import the command's module only then and call its main."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in commands:
        names = ", ".join(commands)
        print(f"usage: {prog} COMMAND [ARGS...]   (COMMAND: {names}; "
              f"{prog} COMMAND --help for its options)", file=sys.stderr)
        return 0 if argv[:1] in (["-h"], ["--help"]) else 2
    try:
        module = importlib.import_module(commands[argv[0]])
    except ModuleNotFoundError as exc:
        print(f"{prog} {argv[0]}: {exc} (install the training extras: pip install 'dfd[train]')",
              file=sys.stderr)
        return 2
    try:
        return int(module.main(argv[1:]) or 0)
    except SystemExit as exc:
        return _exit_code(exc)


def main(argv: list[str] | None = None) -> int:
    """Entry point of `dfd-train`."""
    return dispatch("dfd-train", COMMANDS, argv)

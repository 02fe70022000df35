"""The type checker passes over the service's packages, as `make lint` runs it (mypy with
pyproject.toml's [tool.mypy]), and nothing silences it wholesale: no package of ours has its
errors ignored, a missing-types exemption names a third-party module, and every `# type: ignore`
names its error code on its own line."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHECKED = ("web", "worker", "detector", "shared", "batch")
# A bare `# type: ignore` (any error) or one on a line of its own before any code (the file).
BARE_IGNORE = re.compile(r"#\s*type:\s*ignore(?!\[)")


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]


def _ours(module: str) -> bool:
    return module.split(".")[0] in CHECKED + ("training", "research", "bench", "harness", "tests")


def test_mypy_passes():
    proc = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]


def test_the_checker_covers_the_service():
    config = _config()
    assert set(config["files"]) == set(CHECKED)
    assert config["check_untyped_defs"] and config["warn_unused_ignores"]
    assert not config.get("ignore_errors") and not config.get("ignore_missing_imports")


def test_exemptions_name_third_party_modules_only():
    for override in _config().get("overrides", []):
        modules = override["module"]
        modules = [modules] if isinstance(modules, str) else modules
        assert set(override) <= {"module", "ignore_missing_imports"}, override
        assert not any(_ours(m) or m == "*" for m in modules), modules


def test_no_blanket_type_ignore():
    found = []
    for package in CHECKED:
        for path in sorted((ROOT / package).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0].strip()
                if BARE_IGNORE.search(line) or ("type: ignore" in line and not code):
                    found.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert not found, "\n".join(found)

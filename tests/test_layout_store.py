"""The job store owns every job key in Redis: nothing outside shared/ uses its Redis client, runs
its scripts, or names its keys (tests may read Redis with a client of their own)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.test_layout import ROOT, _our_python_files

STORE = ROOT / "shared" / "jobs.py"
# The store's key names: code outside shared/ asks the store, never Redis, about them.
KEY_NAMES = {"PREFIX", "READY", "READY_VIDEO", "LEASED", "LEASED_VIDEO", "POOLS"}


def client_attributes() -> set[str]:
    """The attributes JobStore keeps its Redis client under (`self.X = client` in __init__)."""
    tree = ast.parse(STORE.read_text())
    store = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "JobStore")
    init = next(n for n in store.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
    client = init.args.args[1].arg
    return {t.attr for n in ast.walk(init) if isinstance(n, ast.Assign)
            and isinstance(n.value, ast.Name) and n.value.id == client
            for t in n.targets if isinstance(t, ast.Attribute)}


def misuses(source: str, names: set[str], code: bool) -> list[str]:
    """What in `source` reaches past the store: its client attribute on anything but self, its
    scripts module, and (in code, not tests) its key names."""
    bad = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in names and not (
                isinstance(node.value, ast.Name) and node.value.id == "self"):
            bad.append(f"{node.lineno}: .{node.attr}, the job store's Redis client")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "shared.job_scripts" or (
                    node.module == "shared" and any(a.name == "job_scripts" for a in node.names)):
                bad.append(f"{node.lineno}: imports the job store's scripts")
            elif code and node.module == "shared.jobs":
                bad += [f"{node.lineno}: imports the key name {a.name}" for a in node.names
                        if a.name in KEY_NAMES]
        elif isinstance(node, ast.Import) and any(a.name == "shared.job_scripts"
                                                  for a in node.names):
            bad.append(f"{node.lineno}: imports the job store's scripts")
    return bad


def _outside_shared() -> list[Path]:
    tests = sorted((ROOT / "tests").rglob("*.py"))
    return [p for p in [*_our_python_files(), *tests] if p.parts[len(ROOT.parts)] != "shared"]


def test_the_store_keeps_its_redis_client():
    names = client_attributes()
    assert names, "JobStore.__init__ keeps its client under no attribute the test can find"
    bad = [f"{p.relative_to(ROOT)}:{m}" for p in _outside_shared()
           for m in misuses(p.read_text(), names, code=p.parts[len(ROOT.parts)] != "tests")]
    assert not bad, bad


def test_the_check_finds_a_reach_past_the_store():
    names = client_attributes()
    attr = sorted(names)[0]
    reach = f"from shared.jobs import READY\njobs.{attr}.zadd(READY, {{'x': 1}})\n"
    assert len(misuses(reach, names, code=True)) == 2
    assert len(misuses(reach, names, code=False)) == 1  # tests may name the keys
    assert misuses("from shared import job_scripts\n", names, code=False)
    assert not misuses(f"self.{attr}.get('k')\nstore.get('x')\n", names, code=True)

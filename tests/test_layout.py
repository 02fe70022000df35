"""The package layout holds: no import cycles, and no import in a forbidden direction."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("web", "worker", "shared", "detector", "training", "research", "batch", "bench",
            "harness")
# package -> packages of ours it must never import (directly or by a module inside it)
FORBIDDEN = {
    "web": {"worker", "detector", "training", "research"},
    "detector": {"worker", "web", "training", "research"},
    "training": {"worker", "web", "research"},
    "worker": {"training", "research", "web"},
    "shared": set(PACKAGES) - {"shared"},
    "batch": {"worker", "detector", "training", "research", "web"},
    # Starts the real processes by command line; never imports what it starts.
    "harness": set(PACKAGES) - {"harness", "shared"},
}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            mods[name] = path
    return mods


def _resolve(name: str, mods: dict) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def import_graph() -> dict[str, set[str]]:
    """module -> modules of ours it imports, at any depth of the file (lazy imports count)."""
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        edges = set()
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(up + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            for t in targets:
                r = _resolve(t, mods)
                if r and r != mod:
                    edges.add(r)
        graph[mod] = edges
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    # worker.app imports worker.pipeline inside its task body: a lazy import must count.
    assert "worker.pipeline" in graph["worker.app"]
    assert "detector.analyze" in graph["worker.pipeline"]


def test_no_import_cycles():
    assert _cycle(import_graph()) is None, " -> ".join(_cycle(import_graph()) or [])


def test_cycle_finder_finds_one():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_forbidden_direction():
    bad = [f"{m} imports {t}" for m, targets in import_graph().items() for t in targets
           if t.split(".")[0] in FORBIDDEN.get(m.split(".")[0], ())]
    assert not bad, bad


def _our_python_files() -> list[Path]:
    """Every module of the packages, and the scripts."""
    return [*_modules().values(), *sorted((ROOT / "scripts").rglob("*.py"))]


def test_modules_stay_under_300_lines():
    long = [f"{p.relative_to(ROOT)}: {n}" for p in _our_python_files()
            if (n := len(p.read_text().splitlines())) > 300]
    assert not long, long


def _only_returns_data(node: ast.FunctionDef) -> bool:
    """A function whose body is a docstring and `return <literal>`: data, such as the OpenAPI
    document (web/openapi.py spec)."""
    body = [n for n in node.body if not (isinstance(n, ast.Expr)
                                         and isinstance(n.value, ast.Constant))]
    return len(body) == 1 and isinstance(body[0], ast.Return) and isinstance(
        body[0].value, ast.Dict | ast.List)


def test_functions_stay_under_60_lines():
    """No function over 60 lines (decorators and docstring included) outside data; tests are
    left out."""
    long = []
    for path in _our_python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and \
                    not _only_returns_data(node):
                first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if (n := node.end_lineno - first + 1) > 60:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}: {n}")
    assert not long, long

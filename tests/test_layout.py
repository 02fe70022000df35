"""The package layout holds: no import cycles, no import in a forbidden direction (bench and
harness never import tests; inside training, neither generation imports the other), modules and
functions within their size, each setting declared once."""

from __future__ import annotations

import ast
import warnings
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("web", "worker", "shared", "detector", "training", "research", "batch", "bench",
            "harness")
# Seen in the import graph (so a package that must not import it is caught), not size-checked.
TESTS = "tests"
# package -> packages of ours it must never import (directly or by a module inside it)
FORBIDDEN = {
    "web": {"worker", "detector", "training", "research"},
    "detector": {"worker", "web", "training", "research"},
    "training": {"worker", "web", "research"},
    "worker": {"training", "research", "web"},
    "shared": set(PACKAGES) - {"shared"},
    "batch": {"worker", "detector", "training", "research", "web"},
    # Starts the real processes by command line; never imports what it starts.
    "harness": set(PACKAGES) - {"harness", "shared"} | {TESTS},
    # What tests and benchmarks share lives in harness/.
    "bench": {TESTS},
}
# Inside training (module prefix -> prefixes it must never import): the shared parts and the
# policy serve both generations, and a generation is read without the other.
GENERATIONS = {
    "training.common": {"training.e2e", "training.clip"},
    "training.policy": {"training.e2e", "training.clip"},
    "training.e2e": {"training.clip"},
    "training.clip": {"training.e2e"},
}
# Modules that are data (tables, prose), not logic: they may pass MAX_LINES; a module listed here
# must stay data (test_data_modules_are_data), so logic is never moved into one to fit.
DATA_MODULES = ("scripts/reliability_text.py", "training/e2e/recipe.py")
AIM_LINES, MAX_LINES = 200, 300


def _modules(packages: tuple[str, ...] = PACKAGES) -> dict[str, Path]:
    mods = {}
    for pkg in packages:
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
    mods = _modules((*PACKAGES, TESTS))
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


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_training_generations_stand_apart():
    graph = import_graph()
    assert "training.common.data" in graph["training.clip.features"]  # the graph sees them
    bad = [f"{m} imports {t}" for m, targets in graph.items() for t in targets
           for inside, never in GENERATIONS.items() if _within(m, inside)
           and any(_within(t, n) for n in never)]
    assert not bad, bad


def _our_python_files() -> list[Path]:
    """Every module of the packages, and the scripts (not the tests)."""
    return [*_modules().values(), *sorted((ROOT / "scripts").rglob("*.py"))]


def _lines(path: Path) -> int:
    return len(path.read_text().splitlines())


def test_modules_stay_under_the_cap():
    """No module over MAX_LINES but the data modules; those over the AIM_LINES are named in a
    warning, not failed: splitting logic only to fit a number would make it harder to read."""
    sizes = {p.relative_to(ROOT).as_posix(): _lines(p) for p in _our_python_files()}
    long = [f"{p}: {n}" for p, n in sizes.items() if n > MAX_LINES and p not in DATA_MODULES]
    assert not long, long
    over_aim = sorted(f"{p} ({n})" for p, n in sizes.items()
                      if AIM_LINES < n and p not in DATA_MODULES)
    if over_aim:
        warnings.warn(f"{len(over_aim)} modules over the {AIM_LINES}-line aim: "
                      + ", ".join(over_aim), stacklevel=1)


def _is_data(tree: ast.Module) -> bool:
    """Top level only imports, assignments, a docstring and functions that only return data."""
    allowed = ast.Import | ast.ImportFrom | ast.Assign | ast.AnnAssign
    return all(isinstance(n, allowed) or (isinstance(n, ast.Expr) and isinstance(
        n.value, ast.Constant)) or (isinstance(n, ast.FunctionDef) and _only_returns_data(n))
        for n in tree.body)


def test_data_modules_are_data():
    assert not _is_data(ast.parse("X = 1\n\ndef f(x):\n    return x + 1\n"))
    for name in DATA_MODULES:
        assert _is_data(ast.parse((ROOT / name).read_text())), f"{name} holds logic"


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


def _environ_reads(tree: ast.AST) -> list[str]:
    """The names in os.environ.get(NAME), os.getenv(NAME) and os.environ[NAME] (read)."""
    out = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                node.func.attr == "getenv" or (node.func.attr == "get" and isinstance(
                    node.func.value, ast.Attribute) and node.func.value.attr == "environ")):
            key = node.args[0] if node.args else None
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and isinstance(
                node.value, ast.Attribute) and node.value.attr == "environ":
            key = node.slice
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            out.append(key.value)
    return out


def setting_problems(source: str) -> list[str]:
    """What makes a setting declared more than once in a settings module's source: a field of
    Settings twice, a field without its parser (setting(...)), or its name in a second place
    (a table keyed by it)."""
    tree = ast.parse(source)
    cls = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Settings")
    fields = [n for n in cls.body if isinstance(n, ast.AnnAssign)]
    names = [f.target.id for f in fields]
    problems = [f"{n} declared {k} times" for n, k in Counter(names).items() if k > 1]
    problems += [f"{f.target.id} has no setting(default, parser)" for f in fields
                 if not (isinstance(f.value, ast.Call) and getattr(f.value.func, "id", "") ==
                         "setting")]
    problems += [f"{n.value} named again (line {n.lineno})" for n in ast.walk(tree)
                 if isinstance(n, ast.Constant) and n.value in set(names)]
    return problems


def test_each_setting_is_declared_once():
    """One field of shared.settings.Settings per setting, with its default and parser; nothing
    else of ours reads a setting's DFD_ variable from the environment."""
    path = ROOT / "shared" / "settings.py"
    assert setting_problems(path.read_text()) == []
    twice = "class Settings:\n    A: int = setting('1', p)\n    A: int = setting('2', p)\n"
    assert setting_problems(twice) == ["A declared 2 times"]
    table = "SPEC = {'A': ('1', p)}\nclass Settings:\n    A: int = setting('1', p)\n"
    assert setting_problems(table) == ["A named again (line 1)"]
    assert setting_problems("class Settings:\n    A: int\n") == ["A has no setting(default, "
                                                              "parser)"]
    names = {f"DFD_{f.target.id}" for f in ast.walk(ast.parse(path.read_text()))
             if isinstance(f, ast.AnnAssign) and isinstance(f.target, ast.Name)}
    readers = [f"{p.relative_to(ROOT)} reads {k}" for p in _our_python_files() if p != path
               for k in _environ_reads(ast.parse(p.read_text())) if k in names]
    assert not readers, readers
    assert _environ_reads(ast.parse("os.environ.get('DFD_PORT'); os.environ['X']")) == [
        "DFD_PORT", "X"]

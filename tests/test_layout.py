"""The package's shape: no import circle, no lower module reaching up, and a library that does not print."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "nesy_gedi"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports anywhere (top level or inside a function). Importing a
    submodule counts as depending on that submodule, not on its package's `__init__`."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nesy_gedi"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    found.add(target if target in modules else node.module)
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("nesy_gedi")}
        graph[name] = found - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_checker_sees_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_imports_form_no_circle():
    assert circles(import_graph()) == []


def test_every_module_sits_in_a_part():
    """The root holds only the package's doors (`api`, `cli`, `__main__`) and its components; the rest is in a floor."""
    parts = {"nesy_gedi", "nesy_gedi.__main__", "nesy_gedi.api", "nesy_gedi.cli"} | {
        f"nesy_gedi.{n}" for n in COMPONENTS + FLOORS
    }
    loose = [m for m in import_graph() if not any(m == p or m.startswith(p + ".") for p in parts)]
    assert loose == []


def _reaches(graph: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for w in graph.get(todo.pop(), ()):
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


COMPONENTS = ["logic", "data", "ssl", "methods", "networks", "args", "errors", "files", "progress"]
"""the parts a task is built from: each knows nothing of how a run is assembled, trained, analysed or commanded"""
FLOORS = ["training", "analysis", "assembly", "commands"]
"""the folders above the components, lowest first: a floor imports the floors below it, never one above"""


def _above(floor: int) -> list[str]:
    return [f"nesy_gedi.{name}" for name in FLOORS[floor:]] + ["nesy_gedi.api", "nesy_gedi.cli"]


@pytest.mark.parametrize(
    "lower, higher",
    [
        *[(f"nesy_gedi.{c}", h) for c in COMPONENTS for h in _above(0)],
        *[(f"nesy_gedi.{f}", h) for i, f in enumerate(FLOORS) for h in _above(i + 1)],
        ("nesy_gedi.assembly.config", "nesy_gedi.methods"),  # config knows no registry
        ("nesy_gedi.assembly.config", "nesy_gedi.ssl.objectives"),
        ("nesy_gedi.assembly.config", "nesy_gedi.networks"),
        ("nesy_gedi.logic", "nesy_gedi.assembly.config"),  # programs and engines take plain values
        ("nesy_gedi.training.loop", "nesy_gedi.assembly"),  # the loop knows no task, data or config
        ("nesy_gedi.training.loop", "nesy_gedi.data"),
        ("nesy_gedi.training.loop", "nesy_gedi.logic"),
        ("nesy_gedi.training.loop", "nesy_gedi.methods"),
        ("nesy_gedi.commands.run", "nesy_gedi.commands.pretrain"),
    ],
)
def test_no_lower_module_imports_a_higher_one(lower, higher):
    graph = import_graph()
    starts = [m for m in graph if m == lower or m.startswith(lower + ".")]
    assert starts
    for start in starts:
        reached = {m for m in _reaches(graph, start) | {start} if m == higher or m.startswith(higher + ".")}
        assert not reached, f"{start} reaches {sorted(reached)}"


def test_only_the_command_line_prints():
    printing = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                printing.append(f"{path.name}:{node.lineno}")
    assert printing == []

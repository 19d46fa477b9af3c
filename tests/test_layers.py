"""The flow is one way: no module imports one of a higher layer, and the import graph has no cycle.

Each layer is a subpackage of simulator/ (docs/architecture.md), lowest first: core < hardware <
formats < kernels < methods < model < capacity < truth (with capture/) < report (with course/) <
cli. A module may import its own layer and those below. Imports inside functions count: a lazy
import is still a dependency. There is no list of exceptions. No module outside its subpackage:
the top level holds only the facade (simulator/__init__.py).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "simulator"


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _graph() -> dict[str, set[str]]:
    modules = {_module(p): p for p in ROOT.rglob("*.py")}
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif (isinstance(node, ast.Call) and getattr(node.func, "id", None) == "__import__" and node.args
                  and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                targets = [node.args[0].value]
            graph[name] |= {t for t in targets if t in modules and t != name and t != "simulator"}
    return graph


def _cycles(graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_graph_is_read():
    graph = _graph()
    assert "simulator.model.llm" in graph and "simulator.kernels.gemm" in graph["simulator.model.llm"]


def test_no_import_cycle():
    assert _cycles(_graph()) == []


LAYERS = [  # lowest first: each layer is a subpackage of simulator/ (capture and course are their own)
    ("core", ["core"]),
    ("hardware", ["hardware"]),
    ("formats", ["formats"]),
    ("kernels", ["kernels"]),
    ("methods", ["methods"]),
    ("model", ["model"]),
    ("capacity", ["capacity"]),
    ("truth", ["truth", "capture"]),
    ("report", ["report", "course"]),
    ("cli", ["cli"]),
]
LAYER_OF = {name: rank for rank, (_, names) in enumerate(LAYERS) for name in names}


def _layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    assert top in LAYER_OF or top == "__init__", f"{module}: not in a layer; add it to LAYERS in tests/test_layers.py"
    return LAYER_OF.get(top, len(LAYERS))  # simulator/__init__ is the facade: above everything


def test_no_module_imports_a_higher_layer():
    upward = []
    for module, targets in _graph().items():
        for target in targets:
            if _layer(target) > _layer(module):
                upward.append(f"{module} ({LAYERS[_layer(module)][0]}) -> {target} ({LAYERS[_layer(target)][0]})")
    assert not upward, "imports against the flow: " + "; ".join(sorted(upward))


def test_every_module_lives_in_a_layer_and_long_files_say_why():
    loose = [p.name for p in ROOT.glob("*.py") if p.name != "__init__.py"]
    assert not loose, f"modules outside a layer's subpackage: {loose}"
    long = []
    for path in ROOT.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if text.count("\n") > 600 and "Over 600 lines" not in (ast.get_docstring(ast.parse(text)) or ""):
            long.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not long, "over 600 lines with no reason in the docstring ('Over 600 lines: ...'): " + ", ".join(long)

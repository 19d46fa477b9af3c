"""The flow is one way: no module imports one of a higher layer, and the import graph has no cycle.

Layers, lowest first (docs/architecture.md will name them once the package move of issue 13 lands):
core (errors, checks, paths, dtypes, datafiles, roofline, registry) < hardware (spec, calibration file) < formats (sparsity) < kernels (gemm,
attention, collectives, ops, eie) < methods (kvcache, dynamic, deep_compression, models) <
whole model (llm) < serving and capacity (serving, plan, kv_analysis) < truth (validation,
calibration, importers, capture, export) < course, report, figures, plots, tour, workloads < cli.
Imports inside functions count: a lazy import is still a dependency. There is no list of
exceptions.
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
    assert "simulator.llm" in graph and "simulator.gemm" in graph["simulator.llm"]


def test_no_import_cycle():
    assert _cycles(_graph()) == []


LAYERS = [  # lowest first; a module may import its own layer and those below
    ("core", ["errors", "checks", "paths", "dtypes", "datafiles", "roofline", "registry"]),
    ("hardware", ["hardware", "calibration_file"]),
    ("formats", ["sparsity", "models", "runtimes"]),
    ("kernels", ["gemm", "attention", "collectives", "ops", "eie", "deep_compression"]),
    ("methods", ["kvcache", "dynamic"]),
    ("model", ["llm"]),
    ("capacity", ["serving", "plan", "kv_analysis"]),
    ("truth", ["validation", "calibration", "importers", "capture", "export_vidur", "workloads"]),
    ("report", ["course", "report", "plots", "figures", "tour"]),
    ("cli", ["cliutil", "cli", "cli_export", "cli_figures", "cli_traces", "eie_cli"]),
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

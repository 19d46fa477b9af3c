"""sparsim: a roofline and hardware simulator for sparse inference.

The flow is one way:

    hwspecs/*.yaml --load_hw--> HardwareSpec ─┐
    shapes + dtype + sparsity format ─────────┼─> estimate_gemm (vectorized numpy) ─> DataFrame
                                              └─> plots / CLI text / JSON

Nothing is imported eagerly: ``python -m simulator.capture`` must run on a GPU box that has
torch and numpy but not pydantic or pandas, so the public names below load on first use.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "SimulatorError": "simulator.errors",
    "HardwareSpec": "simulator.hardware",
    "load_hw": "simulator.hardware",
    "list_hw": "simulator.hardware",
    "parse_sparsity": "simulator.sparsity",
    "Dense": "simulator.sparsity",
    "NM": "simulator.sparsity",
    "Unstructured": "simulator.sparsity",
    "Block": "simulator.sparsity",
    "Structured": "simulator.sparsity",
    "estimate_gemm": "simulator.gemm",
    "crossover_sparsity": "simulator.gemm",
    "serve": "simulator.serving",
    "request_mix": "simulator.serving",
    "plan_serving": "simulator.plan",
    "estimate_attention": "simulator.attention",
    "estimate_allreduce": "simulator.collectives",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")


def __dir__():
    return __all__

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

# name -> "module" (the attribute of that name) or "module:attribute". What notebooks, docs and
# users need; everything else stays in its module. No name may be a submodule's (importing
# simulator.plan sets the package's `plan` to the module, whatever the facade says).
_LAZY = {
    # core, hardware, formats
    "SimulatorError": "simulator.errors",
    "HardwareSpec": "simulator.hardware",
    "load_hw": "simulator.hardware",
    "list_hw": "simulator.hardware",
    "load_model": "simulator.models",
    "parse_sparsity": "simulator.sparsity",
    "Dense": "simulator.sparsity",
    "NM": "simulator.sparsity",
    "Unstructured": "simulator.sparsity",
    "Block": "simulator.sparsity",
    "Structured": "simulator.sparsity",
    # kernels
    "estimate_gemm": "simulator.gemm",
    "crossover_sparsity": "simulator.gemm",
    "estimate_attention": "simulator.attention",
    "estimate_allreduce": "simulator.collectives",
    "parse_kv_method": "simulator.kvcache",
    # whole models, serving, capacity
    "estimate_model": "simulator.llm",
    "estimate_request": "simulator.llm",
    "sweep": "simulator.llm",
    "serve": "simulator.serving",
    "request_mix": "simulator.serving",
    "plan_deployments": "simulator.plan:plan",  # not `plan`: that name is the module simulator.plan
    "plan_serving": "simulator.plan",
    "longest_context": "simulator.plan",
    "max_batch": "simulator.kv_analysis",
    "method_comparison": "simulator.kv_analysis",
    "kv_anchor_table": "simulator.kv_analysis",
    # EIE and Deep Compression
    "eie_layer": "simulator.eie:simulate_layer",
    "eie_scaling": "simulator.eie:scaling_study",
    "eie_comparison": "simulator.eie:comparison_table",
    "eie_headline_gains": "simulator.eie:headline_gains",
    "deep_compression_summary": "simulator.deep_compression:network_summary",
    # measured truth: traces, validation, calibration, anchors
    "load_traces": "simulator.validation",
    "predict_traces": "simulator.validation:predict",
    "holdout_mask": "simulator.validation",
    "error_table": "simulator.validation",
    "validate": "simulator.validation",
    "calibrate": "simulator.calibration:fit",
    "transfer_calibration": "simulator.calibration:transfer",
    "anchor_table": "simulator.workloads",
    # the course
    "ledger": "simulator.course",
    "load_claims": "simulator.course",
    "evaluate_claim": "simulator.course:evaluate",
    "format_value": "simulator.course",
    "summary_line": "simulator.course",
    # figures
    "draw": "simulator.figures",
    "roofline_figure": "simulator.plots",
    "serving_figure": "simulator.plots",
    "course_figure": "simulator.plots",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        module, _, attribute = _LAZY[name].partition(":")
        return getattr(importlib.import_module(module), attribute or name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")


def __dir__():
    return __all__

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
# simulator.capacity.plan sets the package's `plan` to the module, whatever the facade says).
_LAZY = {
    # core, hardware, formats
    "SimulatorError": "simulator.core.errors",
    "HardwareSpec": "simulator.hardware.spec",
    "load_hw": "simulator.hardware.spec",
    "list_hw": "simulator.hardware.spec",
    "load_model": "simulator.formats.models",
    "parse_sparsity": "simulator.formats.sparsity",
    "Dense": "simulator.formats.sparsity",
    "NM": "simulator.formats.sparsity",
    "Unstructured": "simulator.formats.sparsity",
    "Block": "simulator.formats.sparsity",
    "Structured": "simulator.formats.sparsity",
    # kernels
    "estimate_gemm": "simulator.kernels.gemm",
    "crossover_sparsity": "simulator.kernels.gemm",
    "estimate_attention": "simulator.kernels.attention",
    "estimate_allreduce": "simulator.kernels.collectives",
    "parse_kv_method": "simulator.methods.kvcache",
    # whole models, serving, capacity
    "estimate_model": "simulator.model.llm",
    "estimate_request": "simulator.model.llm",
    "sweep": "simulator.model.llm",
    "serve": "simulator.capacity.serving",
    "request_mix": "simulator.capacity.serving",
    "plan_deployments": "simulator.capacity.plan:plan",  # not `plan`: that name is the module simulator.capacity.plan
    "plan_serving": "simulator.capacity.plan",
    "longest_context": "simulator.capacity.plan",
    "max_batch": "simulator.capacity.kv_analysis",
    "method_comparison": "simulator.capacity.kv_analysis",
    "kv_anchor_table": "simulator.capacity.kv_analysis",
    # EIE and Deep Compression
    "eie_layer": "simulator.kernels.eie:simulate_layer",
    "eie_scaling": "simulator.kernels.eie:scaling_study",
    "eie_comparison": "simulator.kernels.eie:comparison_table",
    "eie_headline_gains": "simulator.kernels.eie:headline_gains",
    "deep_compression_summary": "simulator.kernels.deep_compression:network_summary",
    # measured truth: traces, validation, calibration, anchors
    "load_traces": "simulator.truth.validation",
    "predict_traces": "simulator.truth.validation:predict",
    "holdout_mask": "simulator.truth.validation",
    "error_table": "simulator.truth.validation",
    "validate": "simulator.truth.validation",
    "calibrate": "simulator.truth.calibration:fit",
    "transfer_calibration": "simulator.truth.calibration:transfer",
    "anchor_table": "simulator.truth.workloads",
    # the course
    "ledger": "simulator.course",
    "load_claims": "simulator.course",
    "evaluate_claim": "simulator.course:evaluate",
    "format_value": "simulator.course",
    "summary_line": "simulator.course",
    # figures
    "draw": "simulator.report.figures",
    "roofline_figure": "simulator.report.plots",
    "serving_figure": "simulator.report.plots",
    "course_figure": "simulator.report.plots",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str):
    if name in _LAZY:
        module, _, attribute = _LAZY[name].partition(":")
        return getattr(importlib.import_module(module), attribute or name)
    raise AttributeError(f"module 'simulator' has no attribute {name!r}")


def __dir__():
    return __all__

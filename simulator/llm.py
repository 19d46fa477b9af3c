"""Whole-model estimates: a transformer's op table for one phase, its time, tokens/s and memory.

One formula over a query length covers both phases: prefill is q_len = context (the prompt),
decode is q_len = 1 at a given context. Per layer the ops are

    norm -> QKV GEMM -> attention -> O GEMM -> [all-reduce] -> norm -> MLP GEMMs (+ act) -> [all-reduce]

plus the embedding gather, the final norm and the LM head (logits for the last token of each
sequence). Every GEMM goes through gemm.gemm_columns with the recipe's sparsity format and the
weight storage dtype; attention, element-wise ops and all-reduces through ops.py. Identical
layers are one row with ``count`` = number of layers. Tensor parallelism (Megatron-style)
splits heads and FFN columns over ``tp`` GPUs, with two all-reduces per layer.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from simulator.dtypes import BYTES_PER_ELEMENT, check_dtype
from simulator.errors import SimulatorError
from simulator.gemm import gemm_columns
from simulator.hardware import HardwareSpec, load_hw
from simulator.ops import allreduce_columns, attention_columns, memory_op_columns
from simulator.sparsity import parse_sparsity

PHASES = ("prefill", "decode")
STRUCTURED_AXES = {"width": "FFN channels (LLM-Pruner)", "heads": "attention heads, whole KV groups",
                   "hidden": "embedding/hidden dimension (SliceGPT)", "depth": "whole layers (ShortGPT, LaCo)"}
RECIPE_HELP = ("dense | 2:4 | N:M | unstructured:S[:csr|bitmap|masked] | block:B:S | width:F | heads:F | "
               "hidden:F | depth:F, joined with '+' (e.g. '2:4+depth:0.25')")
TIME_CATEGORIES = ("weights", "kv", "compute", "memory-ops", "overhead", "communication")


@dataclass(frozen=True)
class Recipe:
    """A pruning recipe: a sparsity format for the linear layers plus structured cuts."""

    sparsity: str = "dense"
    keep: dict = field(default_factory=lambda: {axis: 1.0 for axis in STRUCTURED_AXES})
    text: str = "dense"


def parse_recipe(text: str = "dense") -> Recipe:
    sparsity, keep = "dense", {axis: 1.0 for axis in STRUCTURED_AXES}
    for part in [p.strip().lower() for p in str(text).split("+") if p.strip()] or ["dense"]:
        axis, _, value = part.partition(":")
        if axis in STRUCTURED_AXES:
            try:
                fraction = float(value)
            except ValueError:
                raise SimulatorError(f"--recipe {text!r}: {axis} needs a pruned fraction, e.g. {axis}:0.25") from None
            if not 0.0 <= fraction < 1.0:
                raise SimulatorError(f"--recipe {text!r}: {axis} fraction must lie in [0, 1), got {fraction}")
            keep[axis] = 1.0 - fraction
            continue
        if sparsity != "dense":
            raise SimulatorError(f"--recipe {text!r}: one sparsity format at a time ({sparsity!r} and {part!r})")
        try:
            fmt = parse_sparsity(part)
        except SimulatorError as err:
            raise SimulatorError(f"--recipe {text!r}: {err} (recipes: {RECIPE_HELP})") from None
        if fmt.family == "structured":
            raise SimulatorError(f"--recipe {text!r}: use width:/heads:/hidden:/depth: for structured pruning")
        sparsity = part
    return Recipe(sparsity=sparsity, keep=keep, text=str(text))


def parse_weights(text: "str | None", dtype: str):
    """'int4', 'int4:g128', 'int8', 'fp8', 'fp4' -> (weight dtype, group size)."""
    if text is None:
        return dtype, None
    name, _, group = str(text).lower().partition(":")
    check_dtype(name, "--weights")
    if group:
        if not re.fullmatch(r"g\d+", group) or int(group[1:]) < 1:
            raise SimulatorError(f"--weights {text!r}: group size is written g<N>, e.g. int4:g128")
        return name, int(group[1:])
    return name, None


@dataclass
class ModelEstimate:
    """The op table and the summary of one (model, hardware, phase, batch, context) point."""

    ops: pd.DataFrame
    summary: dict

    def __repr__(self):
        s = self.summary
        return (f"ModelEstimate({s['model']} on {s['hw']} x{s['tp']}, {s['phase']}: {s['time_s'] * 1e3:.3g} ms, "
                f"{s['tokens_per_s']:.4g} tok/s, fits={s['fits']})")


def _kept(value: int, keep: float) -> int:
    return max(1, int(round(value * keep)))


def _divide(what: str, value: int, tp: int) -> float:
    if value % tp:
        raise SimulatorError(f"--tp {tp}: {what} ({value}) is not divisible by the tensor-parallel degree")
    return value / tp


def estimate_model(model, hw, phase: str = "decode", batch: int = 1, context: int = 4096, tp: int = 1,
                   dtype: str = "bf16", weights: "str | None" = None, recipe="dense",
                   kv_dtype: "str | None" = None) -> ModelEstimate:
    """Estimate one phase of ``model`` on ``tp`` GPUs of ``hw``.

    ``phase`` "prefill" processes a prompt of ``context`` tokens per sequence; "decode" produces
    one token per sequence with ``context`` tokens in the KV cache. ``dtype`` is the activation
    and math dtype, ``weights`` the weight storage ('int4:g128', ...), ``kv_dtype`` the cache's.
    Time is per phase (prefill: the whole prompt; decode: one step).
    """
    from simulator.models import load_model

    cfg = load_model(model) if isinstance(model, str) else model
    hw = load_hw(hw)
    check_dtype(dtype)
    kv_dtype = check_dtype(kv_dtype, "--kv-dtype") if kv_dtype else dtype
    weight_dtype, group = parse_weights(weights, dtype)
    rec = recipe if isinstance(recipe, Recipe) else parse_recipe(recipe)
    if phase not in PHASES:
        raise SimulatorError(f"--phase: {phase!r} unknown; allowed: {', '.join(PHASES)}")
    for name, value in (("--batch", batch), ("--context", context), ("--tp", tp)):
        if int(value) != value or value < 1:
            raise SimulatorError(f"{name}: must be a whole number >= 1, got {value}")
    if cfg.kind == "encoder" and phase == "decode":
        raise SimulatorError(f"--phase decode: {cfg.id} is an encoder; it has no decode phase (use prefill)")
    if phase == "decode" and context > cfg.max_position_embeddings and cfg.position == "learned":
        raise SimulatorError(f"--context {context}: {cfg.id} has learned positions up to "
                             f"{cfg.max_position_embeddings} tokens")

    # Structured cuts, in whole channels / heads / layers.
    layers = _kept(cfg.layers, rec.keep["depth"])
    hidden = _kept(cfg.hidden, rec.keep["hidden"])
    ffn = _kept(cfg.ffn, rec.keep["width"])
    kv_heads = _kept(cfg.kv_heads, rec.keep["heads"])
    heads = kv_heads * (cfg.heads // cfg.kv_heads)
    head_dim = cfg.head_dim
    heads_gpu = _divide("attention heads", heads, tp)
    if kv_heads % tp and tp % kv_heads:
        raise SimulatorError(f"--tp {tp}: {kv_heads} KV heads can be neither split nor replicated evenly")
    kv_heads_gpu = max(1.0, kv_heads / tp)  # fewer KV heads than GPUs: each GPU keeps a copy
    ffn_gpu = _divide("FFN width", ffn, tp)

    act = BYTES_PER_ELEMENT[dtype]
    kv_el = BYTES_PER_ELEMENT[kv_dtype]
    q_len = context if phase == "prefill" else 1
    tokens = batch * q_len
    rows = []

    def add(op, kind, count, columns, m=np.nan, n=np.nan, k=np.nan, resident_weight=0.0, scope="layers"):
        row = {key: float(np.asarray(v).ravel()[0]) for key, v in columns.items()
               if key in ("flops", "bytes", "compute_time_s", "memory_time_s", "overhead_s", "time_s",
                          "comm_time_s", "bytes_weight", "bytes_metadata", "bytes_kv")}
        code = int(np.asarray(columns.get("bound_code", [-1])).ravel()[0])
        bound = columns["bound"][0] if "bound" in columns else ("compute", "memory", "overhead", "communication")[code]
        row.update(scope=scope, op=op, kind=kind, count=float(count), m=m, n=n, k=k, bound=bound,
                   resident_weight_bytes=float(resident_weight))
        rows.append(row)

    def gemm(op, m, n, k, count, sparsity, scope="layers", resident_factor=1.0):
        cols = gemm_columns(hw, m, n, k, dtype, sparsity, weight_dtype, group)
        resident = (cols["bytes_weight"][0] + cols["bytes_metadata"][0]) * resident_factor
        add(op, "gemm", count, cols, m, n, k, resident, scope)

    linear = rec.sparsity
    # --- embedding -------------------------------------------------------------------------
    embed_bytes = cfg.vocab * hidden * act / tp  # vocab-parallel embedding table
    add("embedding", "memory", 1, memory_op_columns(hw, 2 * tokens * hidden * act), scope="embedding",
        resident_weight=embed_bytes + cfg.parameters_by_part().get("position", 0) * act)
    # --- one decoder layer ---------------------------------------------------------------
    norm_bytes = 2 * tokens * hidden * act + hidden * act
    norm_params = hidden * (2 if cfg.norm == "layernorm" else 1)
    add("norms", "memory", layers * cfg.norms_per_layer, memory_op_columns(hw, norm_bytes),
        resident_weight=norm_params * act)
    gemm("qkv", tokens, (heads_gpu + 2 * kv_heads_gpu) * head_dim, hidden, layers, linear)
    attention = attention_columns(hw, batch, heads_gpu, kv_heads_gpu, head_dim, q_len, context, dtype,
                                  kv_el, act)
    add("attention", "attention", layers, attention)
    gemm("o_proj", tokens, hidden, heads_gpu * head_dim, layers, linear)
    if tp > 1:
        add("allreduce", "comm", 2 * layers, allreduce_columns(hw, tokens * hidden * act, tp))
    if cfg.moe is None:
        if cfg.mlp == "gated":
            gemm("gate_up", tokens, 2 * ffn_gpu, hidden, layers, linear)
            act_bytes = 3 * tokens * ffn_gpu * act
        else:
            gemm("up", tokens, ffn_gpu, hidden, layers, linear)
            act_bytes = 2 * tokens * ffn_gpu * act
        add("activation", "memory", layers, memory_op_columns(hw, act_bytes))
        gemm("down", tokens, hidden, ffn_gpu, layers, linear)
    else:
        experts, top_k = cfg.moe.experts, cfg.moe.experts_per_token
        # Expected distinct experts a batch of tokens touches (uniform routing): E (1 - (1 - k/E)^T).
        touched = experts * (1.0 - (1.0 - top_k / experts) ** tokens)
        per_expert_tokens = max(1.0, round(tokens * top_k / touched))
        gemm("router", tokens, experts, hidden, layers, "dense")
        up_n = (2 if cfg.mlp == "gated" else 1) * ffn_gpu
        gemm("experts_up", per_expert_tokens, up_n, hidden, layers * touched, linear,
             resident_factor=experts / touched)
        add("activation", "memory", layers, memory_op_columns(hw, (up_n + ffn_gpu) * tokens * top_k * act))
        gemm("experts_down", per_expert_tokens, hidden, ffn_gpu, layers * touched, linear,
             resident_factor=experts / touched)
    # --- head --------------------------------------------------------------------------------
    add("final_norm", "memory", 1 if cfg.final_norm else 0, memory_op_columns(hw, 2 * batch * hidden * act),
        scope="head", resident_weight=norm_params * act)
    gemm("lm_head", batch, cfg.vocab / tp, hidden, 1, "dense", scope="head",
         resident_factor=0.0 if cfg.tied_embeddings else 1.0)

    ops = pd.DataFrame(rows)
    ops["total_time_s"] = ops["time_s"] * ops["count"]
    ops["comm_time_s"] = ops.get("comm_time_s", 0.0)
    ops = ops.fillna({"comm_time_s": 0.0, "bytes_kv": 0.0, "bytes_weight": 0.0, "bytes_metadata": 0.0})
    ops["category"] = _categories(ops)
    summary = _summary(cfg, hw, ops, phase, batch, context, tp, dtype, weight_dtype, group, kv_dtype, rec,
                       layers, kv_heads_gpu, head_dim, hidden, ffn_gpu, heads_gpu, tokens)
    return ModelEstimate(ops=ops, summary=summary)


def _categories(ops: pd.DataFrame) -> np.ndarray:
    """Which resource each op's time is spent on: what the summary's breakdown adds up."""
    cat = np.where(ops["kind"] == "comm", "communication",
          np.where(ops["bound"] == "overhead", "overhead",
          np.where(ops["bound"] == "compute", "compute",
          np.where(ops["kind"] == "attention", "kv",
          np.where(ops["kind"] == "gemm", "weights", "memory-ops")))))  # noqa: E128
    return cat


def _summary(cfg, hw, ops, phase, batch, context, tp, dtype, weight_dtype, group, kv_dtype, rec,
             layers, kv_heads_gpu, head_dim, hidden, ffn_gpu, heads_gpu, tokens) -> dict:
    time = float(ops["total_time_s"].sum())
    weights = float((ops["resident_weight_bytes"] * ops["count"]).sum())
    kv_per_gpu = layers * 2 * kv_heads_gpu * head_dim * BYTES_PER_ELEMENT[kv_dtype] * context * batch
    # Live activations at the widest point of a layer (two buffers) plus fp32 logits.
    widest = max(hidden, 2 * ffn_gpu, (heads_gpu + 2 * kv_heads_gpu) * head_dim)
    activations = 2 * tokens * widest * BYTES_PER_ELEMENT[dtype] + batch * cfg.vocab / tp * 4
    per_gpu = weights + kv_per_gpu + activations
    capacity = hw.memory_capacity_bytes
    produced = batch * (context if phase == "prefill" else 1)
    by_category = ops.groupby("category")["total_time_s"].sum()
    kv_read = float((ops["bytes_kv"] * ops["count"]).sum())
    return {
        "model": cfg.id, "hw": hw.id, "tp": tp, "phase": phase, "batch": batch, "context": context,
        "dtype": dtype, "weights": weight_dtype + (f":g{group}" if group else ""), "kv_dtype": kv_dtype,
        "recipe": rec.text, "sparsity": rec.sparsity, "layers": layers,
        "time_s": time,
        "tokens_per_s": produced / time,
        "time_by_category_s": {c: float(by_category.get(c, 0.0)) for c in TIME_CATEGORIES},
        "flops": float((ops["flops"] * ops["count"]).sum()),
        "bytes": float((ops["bytes"] * ops["count"]).sum()),
        "weight_bytes_per_gpu": weights,
        "kv_cache_bytes": kv_per_gpu * tp,  # summed over GPUs (replicated KV heads count per copy)
        "kv_cache_bytes_per_gpu": kv_per_gpu,
        "kv_read_bytes_per_step": kv_read * tp if phase == "decode" else 0.0,
        "activation_bytes_per_gpu": activations,
        "memory_bytes_per_gpu": per_gpu,
        "memory_capacity_bytes": capacity,
        "fits": bool(per_gpu <= capacity),
        "shortfall_bytes": float(max(0.0, per_gpu - capacity)),
    }

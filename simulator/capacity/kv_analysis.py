"""Whole-model analyses of the KV methods: the published anchors (workloads/anchors/kv.yaml) held
against the model, the largest batch and longest context a method allows, and the method
comparison table of docs/kv.md.

These sit above the whole-model estimate (simulator.model.llm) and the planner (simulator.capacity.plan), so
they live here rather than in simulator.methods.kvcache, which the op graph imports: the flow stays one
way (kvcache -> llm -> plan -> kv_analysis)."""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from simulator.core.datafiles import parse_yaml
from simulator.core.errors import SimulatorError
from simulator.methods.kvcache import parse_kv_method
from simulator.core.paths import workloads_path

# ---- published anchors (workloads/anchors/kv.yaml) and the method comparison ----------------------

KV_METRICS = ("attention_time_s", "decode_speedup", "attention_speedup", "ttft_speedup", "recompute_speedup",
              "kv_compression", "kv_reduction", "kv_fraction", "throughput_speedup", "peak_memory_reduction",
              "max_context_tokens")


class KVAnchor(BaseModel):
    """One published number about the KV cache and the point of ours it is compared with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9.]+)*$")
    anchor_row: Optional[int] = None
    metric: str
    value: float = Field(gt=0)
    value_high: Optional[float] = Field(default=None, gt=0)
    method: str = "none"
    model: str
    hw: str
    tp: int = Field(default=1, ge=1)
    batch: int = Field(default=1, ge=1)
    context: int = Field(ge=1)
    dtype: str = "fp16"
    weights: Optional[str] = None
    source: str = Field(min_length=3)
    setup: str = ""

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value):
        if value not in KV_METRICS:
            raise ValueError(f"metric {value!r} unknown; known: {', '.join(KV_METRICS)}")
        return value

    @field_validator("method")
    @classmethod
    def _method_parses(cls, value):
        try:
            parse_kv_method(value)
        except SimulatorError as err:
            raise ValueError(str(err)) from None
        return value


class KVAnchors(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    anchors: list[KVAnchor]


def anchors_path() -> Path:
    return workloads_path("anchors", "kv.yaml")


@functools.lru_cache(maxsize=4)
def _load_anchors(path: Path, mtime: float) -> tuple:
    import yaml

    try:
        return tuple(KVAnchors.model_validate(parse_yaml(path.read_text())).anchors)
    except ValidationError as err:
        first = err.errors()[0]
        message = first["msg"].removeprefix("Value error, ")
        raise SimulatorError(f"{path}: {'.'.join(str(p) for p in first['loc'])}: {message}") from None
    except (yaml.YAMLError, KeyError, TypeError) as err:
        raise SimulatorError(f"{path}: not a KV anchor file ({err})") from None


def load_kv_anchors(path=None) -> tuple:
    path = Path(path) if path else anchors_path()
    if not path.is_file():
        raise SimulatorError(f"{path}: no such anchor file")
    return _load_anchors(path.resolve(), path.stat().st_mtime)


def max_batch(model, hw, context: int, kv_method=None, tp: int = 1, dtype: str = "fp16", weights=None,
              phase: str = "decode") -> int:
    """The largest batch whose ``phase`` at ``context`` fits ``tp`` GPUs of ``hw`` (0 if none).
    Memory per GPU is affine in the batch (weights + batch x per-sequence state)."""
    from simulator.model.llm import estimate_model

    one, two = (estimate_model(model, hw, phase, b, context, tp, dtype, weights, kv_method=kv_method,
                               with_ops=False).summary for b in (1, 2))
    per_sequence = two["memory_bytes_per_gpu"] - one["memory_bytes_per_gpu"]
    fixed = one["memory_bytes_per_gpu"] - per_sequence
    room = one["memory_capacity_bytes"] - fixed
    return int(max(0, math.floor(room / per_sequence))) if per_sequence > 0 else 0


def _attention_time(est) -> float:
    """Attention time of one layer where the method applies (the last layer group): its attention
    kernel plus the method's kernels of that group, as the papers' kernel-level speed-ups count."""
    ops = est.ops
    attention = ops[ops["kind"] == "attention"]
    label = attention["op"].iloc[-1][len("attention"):]
    if not label:
        rows = ops["kind"].isin(["attention", "kv-method"])
        return float(ops.loc[rows, "total_time_s"].sum() / attention["count"].sum())
    rows = ops["kind"].isin(["attention", "kv-method"]) & ops["op"].str.endswith(label)
    return float(ops.loc[rows, "time_s"].sum())


def anchor_value(anchor: KVAnchor) -> float:
    """The model's number for one anchor's metric at its point."""
    from simulator.model.llm import estimate_model

    kw = dict(tp=anchor.tp, dtype=anchor.dtype, weights=anchor.weights)
    method = anchor.method

    def est(phase, kv, batch=anchor.batch, context=anchor.context, ops=False):
        return estimate_model(anchor.model, anchor.hw, phase, batch, context, kv_method=kv, with_ops=ops, **kw)

    m = anchor.metric
    if m == "attention_time_s":
        ops = est("decode", method, ops=True).ops
        return float(ops.loc[ops.op.str.startswith("attention"), "time_s"].iloc[0])
    if m == "decode_speedup":
        return est("decode", None).summary["time_s"] / est("decode", method).summary["time_s"]
    if m == "attention_speedup":
        return _attention_time(est("decode", None, ops=True)) / _attention_time(est("decode", method, ops=True))
    if m == "ttft_speedup":
        return est("prefill", None).summary["time_s"] / est("prefill", method).summary["time_s"]
    if m == "recompute_speedup":
        select = parse_kv_method(method).role("select")
        window = select.sinks + select.window
        return est("prefill", None, context=window).summary["time_s"] / est("decode", method).summary["time_s"]
    if m in ("kv_compression", "kv_reduction", "kv_fraction"):
        ratio = est("decode", method).summary["kv_cache_bytes"] / est("decode", None).summary["kv_cache_bytes"]
        return {"kv_compression": 1.0 / ratio, "kv_reduction": 1.0 - ratio, "kv_fraction": ratio}[m]
    if m == "throughput_speedup":
        rates = []
        for kv in (None, method):
            b = max_batch(anchor.model, anchor.hw, anchor.context, kv, **kw)
            rates.append(est("decode", kv, batch=max(b, 1)).summary["tokens_per_s"] if b else 0.0)
        return rates[1] / rates[0] if rates[0] else float("inf")
    if m == "peak_memory_reduction":
        b = max(1, max_batch(anchor.model, anchor.hw, anchor.context, None, **kw))
        return (est("decode", None, batch=b).summary["memory_bytes_per_gpu"]
                / est("decode", method, batch=b).summary["memory_bytes_per_gpu"])
    if m == "max_context_tokens":
        return float(max_context(anchor.model, anchor.hw, method, **kw))
    raise SimulatorError(f"anchor {anchor.id}: metric {m!r} unknown")


def max_context(model, hw, kv_method=None, tp: int = 1, dtype: str = "fp16", weights=None) -> int:
    """The longest prompt whose prefill (batch 1) fits: simulator.capacity.plan.longest_context's search."""
    from simulator.capacity.plan import longest_context

    return longest_context(model, hw, "prefill", 1, tp, dtype, weights, kv_method=kv_method)["context"]


def kv_anchor_table():
    """Model vs published for every KV anchor: DataFrame with anchor, row, metric, method,
    model, hw, context, published (and published_high), estimate and ratio (estimate / published)."""
    import pandas as pd

    rows = []
    for a in load_kv_anchors():
        value = anchor_value(a)
        rows.append({"anchor": a.id, "row": a.anchor_row, "metric": a.metric, "method": a.method, "model": a.model,
                     "hw": a.hw, "tp": a.tp, "batch": a.batch, "context": a.context, "published": a.value,
                     "published_high": a.value_high, "estimate": value, "ratio": value / a.value})
    return pd.DataFrame(rows)


COMPARISON_METHODS = ("h2o", "h2o:scores=eager", "streamingllm", "snapkv", "pyramidkv", "adakv", "quest",
                      "razorattention", "kivi", "minicache", "lazyllm", "snapkv+kivi", "pyramidkv+kivi",
                      "quest+kivi", "minicache+kivi:bits=4")


def method_comparison(model="llama-3.1-8b", hw="h100", contexts=(32768, 131072), methods=COMPARISON_METHODS,
                      dtype: str = "bf16", tp: int = 1):
    """Each method against no method on one setup: decode speed-up at batch 1 for each context,
    KV held and read per step (fractions of dense) and TTFT speed-up at the first context, the
    largest batch that fits at the first context (capacity) and the decode throughput there
    relative to dense at its own largest batch. Returns a DataFrame."""
    import pandas as pd

    from simulator.model.llm import estimate_model

    def summary(phase, context, kv, batch=1):
        return estimate_model(model, hw, phase, batch, context, tp, dtype, kv_method=kv, with_ops=False).summary

    base = {c: summary("decode", c, None) for c in contexts}
    base_ttft = summary("prefill", contexts[0], None)["time_s"]
    base_batch = max_batch(model, hw, contexts[0], None, tp, dtype)
    base_rate = summary("decode", contexts[0], None, base_batch)["tokens_per_s"]
    rows = []
    for text in methods:
        row = {"method": text}
        for c in contexts:
            s = summary("decode", c, text)
            row[f"decode_speedup_{c}"] = base[c]["time_s"] / s["time_s"]
            row[f"kv_held_{c}"] = s["kv_cache_bytes"] / base[c]["kv_cache_bytes"]
            row[f"kv_read_{c}"] = s["kv_read_bytes_per_step"] / base[c]["kv_read_bytes_per_step"]
        row["ttft_speedup"] = base_ttft / summary("prefill", contexts[0], text)["time_s"]
        row["max_batch"] = max_batch(model, hw, contexts[0], text, tp, dtype)
        row["max_batch_dense"] = base_batch
        row["throughput_speedup"] = (summary("decode", contexts[0], text, row["max_batch"])["tokens_per_s"]
                                     / base_rate if row["max_batch"] else 0.0)
        rows.append(row)
    return pd.DataFrame(rows)

"""Measured traces -> model predictions -> errors on a held-out split.

Traces are the CSVs that ``python -m simulator.capture`` writes into
``hwspecs/<device>/traces/`` (docs/traces.md). Each row is one measured kernel; this module
predicts it with the cost models, splits the rows deterministically by shape into a training
part (what calibration may fit) and a held-out part (what accuracy is reported on), and
summarizes the absolute percentage error per kernel class.

Over 600 lines: reading traces, the held-out split, per-class prediction and the report are one pipeline.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from typing import Literal, Optional

from pydantic import Field

from simulator.core.datafiles import Strict, load_yaml
from simulator.core.errors import SimulatorError
from simulator.kernels.gemm import gemm_columns
from simulator.hardware.spec import HardwareSpec, hwspecs_dir, load_hw
from simulator.formats.sparsity import Block, Unstructured
from simulator.core.paths import workloads_path

# Kernel classes the cost models cover today, and those they do not yet (attention: issue 5;
# the decoder layer: issue 4). Uncovered rows are counted, never silently dropped. Copies are
# not a validation class: they measure the memory ceiling itself (see ``ceilings``).
MODELLED_CLASSES = ("dense", "weight-only", "2:4", "csr", "bsr", "attention-prefill", "attention-decode", "allreduce",
                    "layer",
                    "layer-eager")
# Zero-point bytes per group of each weight-only op's layout (see gemm._quantization_scale_bytes):
# torch's int4 kernels (tinygemm on CUDA, the CPU kernel) keep a bf16 scale and a bf16 zero per group;
# the int8 ops are per-channel (one scale per output row, no zero point).
WEIGHT_ONLY_ZERO_POINT_BYTES = {"_weight_int4pack_mm": 2.0, "_weight_int8pack_mm": 0.0, "dequant_linear": 0.0}
# A decoder layer timed from the host with a synchronize per rep (capture's `wall-sync`) includes
# eager launch and Python overhead: its own class, modelled once the spec has a host cost per torch
# call (overhead.host_call_us, fitted on these rows) and the rows count their calls (torch_calls).
HOST_TIMED_LAYER = "layer-eager"
from simulator.core.dtypes import TRACE_DTYPES  # noqa: E402  (kernel models read it too)
HOLDOUT_BUCKETS = 4  # one shape in four is held out
# Imported GPU traces (Vidur) are split by model: whole models held out, so a fit can never see a
# held-out model's shapes. Training: a 7B and a 34B model; held out: the 70B (largest shards) and
# phi-2 (smallest, ungated MLP, biases), which bracket the training shapes on both sides.
HELDOUT_MODELS = ("Llama-2-70b-hf", "phi-2")
SPLIT_BY_MODEL = (f"by model: rows with a `model` are held out when it is one of {', '.join(HELDOUT_MODELS)} "
                  "(training: the other models); published rows are never fitted (held out)")
SPLIT_RULE = (f"{SPLIT_BY_MODEL}; other rows held out when int(sha1('class|m|n|k|density|block_size|batch|heads|kv_heads|head_dim|q_len|"
              f"kv_len'), 16) % {HOLDOUT_BUCKETS} == 0 (deterministic, by shape; dtype and backend variants "
              "of a shape share its side)"
              + "; rows with a `split_key` (imported attention: the cached context length, so whole contexts are "
              f"held out; imported all-reduce: the message size) hash that key instead, % {HOLDOUT_BUCKETS} == 0")


def traces_dir(hw: HardwareSpec) -> Path:
    return hwspecs_dir() / hw.id / "traces"


REQUIRED_COLUMNS = ("kernel_class", "dtype", "status", "time_s_median")
GEMM_CLASSES = ("dense", "weight-only", "2:4", "csr", "bsr")


def read_trace_file(path: Path, hw_id: "str | None" = None) -> pd.DataFrame:
    """One trace CSV, checked: readable text, the required columns, positive finite times and
    whole-number shapes on its ``ok`` rows, and (where it has an ``hw`` column) rows of this
    device only. Each problem is one SimulatorError line naming the file, the column and the value."""
    path = Path(path)
    try:
        head = path.read_bytes()[:4096]
    except OSError as exc:
        raise SimulatorError(f"{path}: cannot read the trace file ({exc.strerror})") from None
    if b"\x00" in head:
        raise SimulatorError(f"{path}: a trace file is CSV text; this one is binary")
    try:
        frame = pd.read_csv(path, low_memory=False)
    except pd.errors.EmptyDataError:
        raise SimulatorError(f"{path}: empty trace file (needs a header and rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SimulatorError(f"{path}: not a CSV trace file ({type(exc).__name__})") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise SimulatorError(f"{path}: missing column(s) {', '.join(missing)} (docs/traces.md lists the columns)")
    if frame.empty:
        raise SimulatorError(f"{path}: no rows")
    if hw_id is not None and "hw" in frame:
        other = frame["hw"].astype(str) != hw_id
        if other.any():
            raise SimulatorError(f"{path}: column hw: rows of {frame.loc[other, 'hw'].iloc[0]!r} in the traces of "
                                 f"{hw_id}; a trace file holds one device's rows")
    ok = (frame["status"] == "ok").to_numpy()
    times = pd.to_numeric(frame["time_s_median"], errors="coerce").to_numpy(float)
    bad = ok & ~(np.isfinite(times) & (times > 0))
    if bad.any():
        i = int(np.argmax(bad))
        raise SimulatorError(f"{path}: row {i + 2}: time_s_median {frame['time_s_median'].iloc[i]!r}; "
                             "allowed: a finite time > 0 s on a row with status ok")
    frame["time_s_median"] = times
    gemm = ok & frame["kernel_class"].isin(GEMM_CLASSES).to_numpy()
    for col in ("m", "n", "k"):
        if not gemm.any():
            break
        if col not in frame:
            raise SimulatorError(f"{path}: missing column {col} (GEMM rows need m, n, k)")
        values = pd.to_numeric(frame[col], errors="coerce").to_numpy(float)
        wrong = gemm & ~(np.isfinite(values) & (values >= 1) & (values == np.floor(values)))
        if wrong.any():
            i = int(np.argmax(wrong))
            raise SimulatorError(f"{path}: row {i + 2}: {col} {frame[col].iloc[i]!r}; allowed: a whole number >= 1")
        frame[col] = values
    unknown_dtype = ok & ~frame["dtype"].isin(list(TRACE_DTYPES)).to_numpy()
    if unknown_dtype.any():
        i = int(np.argmax(unknown_dtype))
        raise SimulatorError(f"{path}: row {i + 2}: dtype {frame['dtype'].iloc[i]!r}; allowed: "
                             f"{', '.join(TRACE_DTYPES)}")
    frame["trace_file"] = path.name
    return frame


def excluded_rows(hw) -> list[dict]:
    """Trace rows kept with status ``excluded`` (the source says they do not time the kernel; e.g.
    workloads/validation/published-exclusions.yaml): {case_id, kernel_class, reason}, never scored."""
    hw = load_hw(hw)
    folder = traces_dir(hw)
    out = []
    for path in sorted(folder.glob("*.csv")) if folder.is_dir() else []:
        frame = read_trace_file(path, hw.id)
        rows = frame[frame["status"] == "excluded"]
        reasons = rows["excluded_reason"] if "excluded_reason" in rows else pd.Series([""] * len(rows))
        out += [{"case_id": c, "kernel_class": k, "reason": str(r)}
                for c, k, r in zip(rows.get("case_id", rows.index), rows["kernel_class"], reasons)]
    return out


def load_traces(hw, include_smoke: bool = False) -> pd.DataFrame:
    """Every ``status == ok`` row of the device's trace CSVs, with a ``trace_file`` column."""
    hw = load_hw(hw)
    folder = traces_dir(hw)
    files = sorted(folder.glob("*.csv")) if folder.is_dir() else []
    if not files:
        raise SimulatorError(
            f"--hw {hw.id}: no traces in {folder}; capture some with "
            f"`python -m simulator.capture --suite ... --out {folder}` (docs/traces.md)"
        )
    frames = [read_trace_file(path, hw.id) for path in files]
    traces = pd.concat(frames, ignore_index=True)
    traces = traces[traces["status"] == "ok"].copy()
    if "timing_method" in traces:
        host_timed = (traces["kernel_class"] == "layer") & (traces["timing_method"] == "wall-sync")
        traces.loc[host_timed, "kernel_class"] = HOST_TIMED_LAYER
    if not include_smoke:
        traces = traces[traces["suite"] != "smoke"]
    return traces.reset_index(drop=True)


SHAPE_COLUMNS = ("m", "n", "k", "density", "block_size", "batch", "heads", "kv_heads", "head_dim", "q_len",
                 "kv_len")


def _shape_key(row) -> str:
    def part(value):
        return "" if pd.isna(value) else f"{float(value):g}"

    return "|".join([str(row.kernel_class)] + [part(getattr(row, c, None)) for c in SHAPE_COLUMNS])


def holdout_mask(traces: pd.DataFrame) -> np.ndarray:
    """True for held-out rows (see SPLIT_RULE): by model where a row names one, every published
    row, else a stable hash of the shape, so reruns split identically."""
    traces = traces.reset_index(drop=True)
    held = np.zeros(len(traces), dtype=bool)
    by_model = traces["model"].notna().to_numpy() if "model" in traces else np.zeros(len(traces), dtype=bool)
    if by_model.any():
        held[by_model] = traces.loc[by_model, "model"].astype(str).isin(HELDOUT_MODELS).to_numpy()
    published = (traces["suite"] == "published").to_numpy() if "suite" in traces else np.zeros(len(traces), bool)
    held[published] = True
    keyed = traces["split_key"].notna().to_numpy() & ~by_model & ~published if "split_key" in traces \
        else np.zeros(len(traces), dtype=bool)
    if keyed.any():
        held[keyed] = [int(hashlib.sha1(str(k).encode()).hexdigest(), 16) % HOLDOUT_BUCKETS == 0
                       for k in traces.loc[keyed, "split_key"]]
    rest = ~by_model & ~published & ~keyed
    if rest.any():
        keys = [_shape_key(row) for row in traces[rest].itertuples()]
        held[rest] = [int(hashlib.sha1(k.encode()).hexdigest(), 16) % HOLDOUT_BUCKETS == 0 for k in keys]
    return held


def split_labels(traces: pd.DataFrame) -> np.ndarray:
    """How each row's side of the split was decided: 'by-model', 'published' or 'by-shape'."""
    traces = traces.reset_index(drop=True)
    label = np.full(len(traces), "by-shape", dtype=object)
    if "model" in traces:
        label[traces["model"].notna().to_numpy()] = "by-model"
    if "suite" in traces:
        label[(traces["suite"] == "published").to_numpy()] = "published"
    if "split_key" in traces:
        label[(traces["split_key"].notna() & (label == "by-shape")).to_numpy()] = "by-key"
    return label


def predict(hw: HardwareSpec, traces: pd.DataFrame, external: "dict | None" = None) -> np.ndarray:
    """Model time (s) for every row; NaN where the class has no model yet. ``external`` maps a
    kernel model module (simulator.kernels.attention, simulator.kernels.collectives) to parameter overrides."""
    hw = load_hw(hw)
    traces = traces.reset_index(drop=True)  # positions, whatever subset the caller passes
    predicted = np.full(len(traces), np.nan)
    dtype = traces["dtype"].map(TRACE_DTYPES)
    for (kernel_class, dt), rows in traces.groupby([traces["kernel_class"], dtype], sort=False):
        index = rows.index.to_numpy()
        if kernel_class not in MODELLED_CLASSES:
            continue
        if kernel_class.startswith("attention") or kernel_class == "allreduce":
            predicted[index] = _external_times(hw, rows, dt, kernel_class, external)
            continue
        if kernel_class == "layer":
            predicted[index] = [_layer_time(hw, row, dt) for row in rows.itertuples()]
            continue
        if kernel_class == HOST_TIMED_LAYER:
            predicted[index] = _eager_layer_times(hw, rows, dt)
            continue
        if kernel_class == "weight-only":
            predicted[index] = _weight_only_times(hw, rows, dt)
            continue
        m, n, k = (rows[c].to_numpy(float) for c in ("m", "n", "k"))
        if kernel_class == "dense":
            fmt = "dense"
        elif kernel_class == "2:4":
            fmt = "2:4"
        elif kernel_class == "csr":
            fmt = Unstructured(sparsity=1.0 - rows["density"].to_numpy(float), storage="csr")
        else:  # bsr: one format per block size
            for block, sub in rows.groupby("block_size"):
                sub_index = sub.index.to_numpy()
                fmt = Block(block=int(block), sparsity=1.0 - sub["density"].to_numpy(float))
                predicted[sub_index] = gemm_columns(hw, sub["m"].to_numpy(float), sub["n"].to_numpy(float),
                                                    sub["k"].to_numpy(float), dt, fmt)["time_s"]
            continue
        cols = gemm_columns(hw, m, n, k, dt, fmt)
        kernel_only = _kernel_timed(rows)
        predicted[index] = np.where(kernel_only, cols["kernel_time_s"], cols["time_s"]) + _ffn_rest(hw, rows, dt, fmt)
    return predicted


def _ffn_rest(hw, rows, dtype, fmt) -> np.ndarray:
    """What a published FFN row (``structure`` ffn: Linear + activation + Linear, torchao PR #2012)
    times beyond its first GEMM: the second GEMM (``n2`` x ``k2``, same format) and two fused
    element-wise kernels (torch.compile): the input's quantization before the first GEMM and the
    activation with the hidden state's quantization before the second (each reads 16-bit values and
    writes the GEMM dtype, plus one fp32 scale per row). 0 for every other row."""
    from simulator.core.dtypes import BYTES_PER_ELEMENT
    from simulator.kernels.ops import memory_op_columns

    out = np.zeros(len(rows))
    if "structure" not in rows:
        return out
    ffn = (rows["structure"] == "ffn").to_numpy()
    if not ffn.any():
        return out
    m, n, k, n2, k2 = (rows[c].to_numpy(float)[ffn] for c in ("m", "n", "k", "n2", "k2"))
    second = gemm_columns(hw, m, n2, k2, dtype, fmt)["time_s"]
    read = BYTES_PER_ELEMENT["bf16"]  # the FFN's input and hidden state arrive in bf16 (torchao's rows)
    written = BYTES_PER_ELEMENT[dtype]
    scale = BYTES_PER_ELEMENT["fp32"]  # one rowwise scale per token
    quantize_input = memory_op_columns(hw, m * k * (read + written) + scale * m)["time_s"]
    activation = memory_op_columns(hw, m * n * (read + written) + scale * m)["time_s"]
    out[ffn] = second + quantize_input + activation
    return out


def implied_from_dense(hw, traces: pd.DataFrame, predicted: np.ndarray, external=None) -> np.ndarray:
    """For published 2:4 rows that quote their own dense baseline (``dense_time_s``, the same shape
    timed by the same harness on the same GPU): the 2:4 time sparsim's predicted speed-up implies
    from that measured dense time, ``dense_time_s * model_2:4 / model_dense``. Its error against
    the measured 2:4 time is the speed-up's error (|measured speed-up / model speed-up - 1|), free
    of what the row does not say (clocks, the exact board, the harness's fixed costs). NaN elsewhere."""
    traces = traces.reset_index(drop=True)
    out = np.full(len(traces), np.nan)
    if "dense_time_s" not in traces:
        return out
    baseline = pd.to_numeric(traces["dense_time_s"], errors="coerce").to_numpy(float)
    rows = ((traces["kernel_class"] == "2:4").to_numpy() & np.isfinite(baseline) & (baseline > 0)
            & np.isfinite(predicted))
    if rows.any():
        dense = predict(hw, traces[rows].assign(kernel_class="dense"), external)
        out[rows] = baseline[rows] * predicted[rows] / dense
    return out


SPEEDUP_CLASS = "2:4 speed-up"  # the reporting class of implied_from_dense's rows


def _kernel_timed(rows) -> np.ndarray:
    """Rows whose time is the kernels' own durations (a profiler's sum, Vidur's `kernel-sum`):
    compared with kernel_time_s, not with the caller's wait."""
    if "timing_method" not in rows:
        return np.zeros(len(rows), dtype=bool)
    return (rows["timing_method"] == "kernel-sum").to_numpy()


def _weight_only_times(hw, rows, dtype) -> np.ndarray:
    """Weight-only quantized GEMMs: the dense model with int8/int4 weights, their scales and the
    spec's dequantization factor; one call per (weight dtype, group size, op layout)."""
    times = np.full(len(rows), np.nan)
    group_sizes = rows["group_size"].fillna(0).astype(int)
    for (weight_dtype, group_size, op), sub in rows.groupby([rows["weight_dtype"], group_sizes, rows["op"]]):
        where = rows.index.get_indexer(sub.index)
        times[where] = gemm_columns(
            hw, sub["m"].to_numpy(float), sub["n"].to_numpy(float), sub["k"].to_numpy(float), dtype, "dense",
            weight_dtype=str(weight_dtype), weight_group_size=int(group_size) or None,
            weight_zero_point_bytes=WEIGHT_ONLY_ZERO_POINT_BYTES.get(op))["time_s"]
    return times


# Kernel classes priced by another module's ``predict_trace_rows(hw, rows) -> kernel seconds``.
EXTERNAL_MODELS = {"attention-prefill": "simulator.kernels.attention", "attention-decode": "simulator.kernels.attention",
                   "allreduce": "simulator.kernels.collectives"}


def _external_times(hw, rows, dtype, kernel_class, external=None) -> np.ndarray:
    """Attention and all-reduce rows through their kernel models' ``predict_trace_rows``; where that
    module is not in this build, captured sdpa rows fall back to the op graph's attention model and
    imported rows stay unmodelled (NaN: counted, not dropped)."""
    import importlib

    try:
        module = importlib.import_module(EXTERNAL_MODELS[kernel_class])
        model = getattr(module, "predict_trace_rows")
    except (ModuleNotFoundError, AttributeError):
        model = None
    if model is not None:
        params = (external or {}).get(EXTERNAL_MODELS[kernel_class])
        times = np.asarray(model(hw, rows.reset_index(drop=True), params), dtype=float)
        imported = rows["source"].notna().to_numpy() if "source" in rows else np.zeros(len(rows), bool)
        if kernel_class.startswith("attention") and not imported.all():
            # captured sdpa rows: not this kernel model's; the op graph's attention model prices them
            times = np.where(imported, times, _attention_times(hw, rows, dtype))
        return np.where(np.isfinite(times) & (times > 0), times, np.nan)
    if kernel_class == "allreduce":
        return np.full(len(rows), np.nan)
    times = _attention_times(hw, rows, dtype)
    if "source" in rows:
        times = np.where(rows["source"].isna().to_numpy(), times, np.nan)
    return times


def _attention_times(hw, rows, dtype) -> np.ndarray:
    """sdpa rows through the same attention kernel model the LLM op graph uses (no KV method)."""
    from simulator.core.dtypes import BYTES_PER_ELEMENT
    from simulator.methods.kvcache import KVEnv, attention_columns, parse_kv_method
    from simulator.model.llm import _flash_attention_applies, _flash_columns

    get = {c: rows[c].to_numpy(float) for c in ("batch", "heads", "kv_heads", "head_dim", "q_len", "kv_len")}
    el = BYTES_PER_ELEMENT[dtype]
    times = np.full(len(rows), np.nan)
    for head_key in set(zip(get["heads"], get["kv_heads"], get["head_dim"])):
        sel = (get["heads"] == head_key[0]) & (get["kv_heads"] == head_key[1]) & (get["head_dim"] == head_key[2])
        heads, kv_heads, head_dim = head_key
        env = KVEnv(layers=1, heads=heads, kv_heads=kv_heads, head_dim=int(head_dim), hidden=int(heads * head_dim),
                    kv_el=el, act_el=el, max_positions=int(get["kv_len"][sel].max()), model="trace",
                    batch=get["batch"][sel], context=get["kv_len"][sel], q_len=get["q_len"][sel],
                    generated=np.zeros(int(sel.sum())))
        (group,) = parse_kv_method(None).profile(env).groups
        if _flash_attention_applies(hw, dtype, dtype):  # as the op graph: estimate_attention's kernel
            cols = _flash_columns(hw, group, env.batch, heads, kv_heads, head_dim, dtype, int(sel.sum()))
        else:
            cols = attention_columns(hw, batch=env.batch, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                                     new_tokens=group.new, pairs=group.pairs,
                                     read_tokens=group.read_tokens + group.new, read_bytes=group.read_bytes,
                                     dtype=dtype, act_bytes=el, dequant_flops=group.dequant_flops)
        times[sel] = np.broadcast_to(cols["time_s"], (int(sel.sum()),))
    causal = rows["causal"].astype(str).str.lower().isin(("true", "1", "1.0")).to_numpy()
    return np.where(causal | (get["q_len"] == 1), times, np.nan)  # non-causal prefill: no model yet


def _eager_layer_times(hw, rows, dtype) -> np.ndarray:
    """A host-timed eager layer: the host issues ``torch_calls`` calls at ``host_call_us`` each
    while the GPU runs the layer's kernels; the rep ends when the slower of the two is done, plus
    one launch-and-synchronize latency. NaN (unmodelled) without a host cost or a call count."""
    host_call = hw.overhead.host_call_us
    if host_call is None or "torch_calls" not in rows:
        return np.full(len(rows), np.nan)
    device = np.array([_layer_time(hw, row, dtype) for row in rows.itertuples()])
    host = rows["torch_calls"].to_numpy(float) * host_call.value * 1e-6
    return np.maximum(device, host) + hw.launch_overhead_s


def _layer_time(hw, row, dtype) -> float:
    """One decoder layer (norms, QKV, attention, O, gated MLP) through the LLM op graph."""
    from simulator.model.llm import estimate_model
    from simulator.formats.models import load_model

    base = load_model("llama-3.1-8b")  # a gated-MLP, RMSNorm, GQA decoder; dims come from the row
    cfg = base.model_copy(update={
        "layers": 1, "hidden": int(row.model_hidden), "ffn": int(row.model_ffn), "heads": int(row.heads),
        "kv_heads": int(row.kv_heads), "head_dim": int(row.head_dim)})
    est = estimate_model(cfg, hw, str(row.phase), int(row.batch), int(row.kv_len), dtype=dtype)
    return float(est.ops.loc[est.ops["scope"] == "layers", "total_time_s"].sum())


def ceilings(hw, traces: pd.DataFrame) -> list[dict]:
    """What the machine measurably reached against the spec's datasheet ceilings: the best copy
    bandwidth (read + write bytes) and the best dense GEMM rate per dtype."""
    hw = load_hw(hw)
    out = []
    copies = traces[traces["kernel_class"] == "copy"]
    if len(copies):
        best = float((2.0 * copies["bytes_copied"] / copies["time_s_median"]).max())
        out.append({"ceiling": "memory bandwidth (copy)", "measured": best,
                    "spec": hw.memory_bandwidth_bytes_per_s, "unit": "B/s"})
    dense = traces[traces["kernel_class"] == "dense"]
    for trace_dtype, rows in dense.groupby("dtype"):
        dtype = TRACE_DTYPES.get(trace_dtype, trace_dtype)
        peak = hw.matrix_peak_flop_per_s(dtype) or hw.vector_peak_flop_per_s(dtype)
        if peak:
            out.append({"ceiling": f"dense {dtype} GEMM", "measured": float((rows["flops"] / rows["time_s_median"]).max()),
                        "spec": peak, "unit": "FLOP/s"})
    for row in out:
        row["fraction"] = row["measured"] / row["spec"]
    return out


def error_table(traces: pd.DataFrame, predicted: np.ndarray, mask: np.ndarray) -> pd.DataFrame:
    """n, median and p90 absolute percentage error (fractions) per kernel class over ``mask``."""
    measured = traces["time_s_median"].to_numpy(float)
    ape = np.abs(predicted / measured - 1.0)
    rows = []
    for kernel_class in sorted(set(traces["kernel_class"])):
        sel = mask & (traces["kernel_class"] == kernel_class).to_numpy()
        modelled = sel & np.isfinite(predicted)
        if not sel.any():
            continue
        if not modelled.any():
            rows.append({"class": kernel_class, "n": int(sel.sum()), "median_ape": None, "p90_ape": None,
                         "bias": None, "modelled": False})
            continue
        ratio = predicted[modelled] / measured[modelled]
        rows.append({
            "class": kernel_class,
            "n": int(modelled.sum()),
            "median_ape": float(np.median(ape[modelled])),
            "p90_ape": float(np.percentile(ape[modelled], 90)),
            "bias": float(np.exp(np.median(np.log(ratio))) - 1.0),  # + means the model is slow
            "modelled": True,
        })
    return pd.DataFrame(rows)


def worst_cases(traces, predicted, mask, count: int = 5) -> pd.DataFrame:
    measured = traces["time_s_median"].to_numpy(float)
    ape = np.abs(predicted / measured - 1.0)
    sel = mask & np.isfinite(predicted)
    order = np.argsort(-np.where(sel, ape, -1.0))[: min(count, int(sel.sum()))]
    shown = [c for c in ("kernel_class", "dtype", "m", "n", "k", "density", "batch", "q_len", "kv_len",
                         "message_bytes", "gpus", "topology", "time_s_median") if c in traces]
    out = traces.iloc[order][shown].copy()
    out["model_time_s"] = predicted[order]
    out["ape"] = ape[order]
    return out.reset_index(drop=True)


def subclass_labels(traces: pd.DataFrame) -> pd.Series:
    """class/dtype (and /weight dtype for weight-only rows): where within a class an error sits."""
    label = traces["kernel_class"].astype(str) + "/" + traces["dtype"].astype(str)
    if "weight_dtype" in traces:
        has = traces["weight_dtype"].notna()
        label = label.where(~has, label + "/w" + traces["weight_dtype"].astype(str))
    return label


# Dense GEMM rows are also reported by M (tokens) regime: GEMV-like, skinny, mid, large.
M_REGIMES = ((1, 16, "m<=16"), (17, 128, "16<m<=128"), (129, 512, "128<m<=512"), (513, np.inf, "m>512"))


# All-reduce rows are also reported by topology and message-size band (MiB = 2**20 bytes).
ALLREDUCE_BANDS = ((0, 2**20, "<1MiB"), (2**20, 8 * 2**20, "1-8MiB"), (8 * 2**20, np.inf, ">=8MiB"))


def class_labels(traces: pd.DataFrame) -> pd.Series:
    """Each row's reporting class: its kernel class, dense rows with their M regime appended,
    all-reduce rows with their topology and size band ('allreduce nvswitch >=8MiB')."""
    label = traces["kernel_class"].astype(str).copy()
    reduce_rows = (label == "allreduce").to_numpy()
    if reduce_rows.any() and "message_bytes" in traces and "topology" in traces:
        size = pd.to_numeric(traces["message_bytes"], errors="coerce").to_numpy(float)
        topo = traces["topology"].astype(str).to_numpy()
        for low, high, name in ALLREDUCE_BANDS:
            sel = reduce_rows & (size >= low) & (size < high)
            label[sel] = [f"allreduce {t} {name}" for t in topo[sel]]
    dense = (label == "dense").to_numpy()
    m = traces["m"].to_numpy(float) if "m" in traces else np.full(len(traces), np.nan)
    for low, high, name in M_REGIMES:
        sel = dense & (m >= low) & (m <= high)
        label[sel] = f"dense {name}"
    return label


def class_rows(traces: pd.DataFrame, predicted: np.ndarray, holdout: np.ndarray,
               implied: "np.ndarray | None" = None) -> list[dict]:
    """The per-class held-out table: {class, n, median_ape, p90_ape, split, ...} for every kernel
    class and, for dense, every M regime; ``split`` says how the held-out rows were chosen.
    ``implied`` (implied_from_dense) adds the ``2:4 speed-up`` class: the 2:4 rows with their own
    dense baseline, scored on the speed-up."""
    traces = traces.reset_index(drop=True)
    splits = split_labels(traces)
    labels = class_labels(traces)
    frames = [error_table(traces, predicted, holdout), error_table(traces.assign(kernel_class=labels), predicted, holdout)]
    if implied is not None and np.isfinite(implied).any():
        speedup = np.isfinite(implied)
        labels = labels.where(~speedup, SPEEDUP_CLASS)
        frames.append(error_table(traces.assign(kernel_class=labels), np.where(speedup, implied, np.nan),
                                  holdout & speedup))
    out = []
    for frame in frames:
        for row in json.loads(frame.to_json(orient="records")):
            if any(r["class"] == row["class"] for r in out):
                continue
            cls = (traces["kernel_class"] == row["class"]).to_numpy() | (labels == row["class"]).to_numpy() | (
                class_labels(traces) == row["class"]).to_numpy()
            kinds = sorted(set(splits[cls & holdout]))
            row["split"] = "+".join(kinds) if kinds else "none"
            out.append(row)
    return sorted(out, key=lambda r: r["class"])


def validate(hw, include_smoke: bool = False) -> dict:
    """Held-out errors per class for the device's traces, as the JSON that `sparsim validate` prints."""
    hw = load_hw(hw)
    traces = load_traces(hw, include_smoke)
    predicted = predict(hw, traces)
    holdout = holdout_mask(traces)
    table = error_table(traces, predicted, holdout)
    by_subclass = error_table(traces.assign(kernel_class=subclass_labels(traces)), predicted, holdout)
    return {
        "hw": hw.id,
        "calibrated": hw.calibration_state == "calibrated",
        "calibration_state": hw.calibration_state,
        "traces": sorted(set(traces["trace_file"])),
        "split": SPLIT_RULE,
        "holdout_rows": int(holdout.sum()),
        "classes": class_rows(traces, predicted, holdout, implied_from_dense(hw, traces, predicted)),
        "excluded": excluded_rows(hw),
        "subclasses": json.loads(by_subclass.to_json(orient="records")),
        "worst": json.loads(worst_cases(traces, predicted, holdout).to_json(orient="records")),
        "ceilings": ceilings(hw, traces),
        "_frame": (traces, predicted, holdout),
    }


class ClassTarget(Strict):
    median_ape: float = Field(gt=0, lt=1)
    p90_ape: Optional[float] = Field(default=None, gt=0, lt=10)


class Targets(Strict):
    source: str = Field(min_length=3)
    device_kinds: list[Literal["gpu", "cpu"]]
    classes: dict[str, ClassTarget]


TARGETS_FILE = workloads_path("validation", "targets.yaml")


def check_targets(result: dict, kind: str, path=None) -> list[dict]:
    """Held-out errors of ``validate``'s result against the target file; [] where the targets do
    not apply to this kind of device. A class with no held-out rows misses (nothing shows it met)."""
    targets = load_yaml(Path(path) if path else TARGETS_FILE, Targets)
    if kind not in targets.device_kinds:
        return []
    measured = {c["class"]: c for c in result["classes"] if c.get("modelled")}
    rows = []
    for kernel_class, target in targets.classes.items():
        got = measured.get(kernel_class)
        median = got["median_ape"] if got else None
        p90 = got["p90_ape"] if got else None
        ok = median is not None and median <= target.median_ape and (
            target.p90_ape is None or (p90 is not None and p90 <= target.p90_ape))
        rows.append({"class": kernel_class, "n": got["n"] if got else 0, "median_ape": median, "p90_ape": p90,
                     "target_median_ape": target.median_ape, "target_p90_ape": target.p90_ape, "met": ok})
    return rows


def validation_figure(result: dict):
    """Predicted vs measured, log-log, one colour per kernel class (held-out rows)."""
    import matplotlib.pyplot as plt

    traces, predicted, holdout = result["_frame"]
    fig, ax = plt.subplots(figsize=(6, 6))
    sel = holdout & np.isfinite(predicted)
    measured = traces["time_s_median"].to_numpy(float)
    for kernel_class in sorted(set(traces["kernel_class"][sel])):
        cls = sel & (traces["kernel_class"] == kernel_class).to_numpy()
        ax.scatter(measured[cls], predicted[cls], s=14, label=f"{kernel_class} ({cls.sum()})")
    if sel.any():
        lo, hi = measured[sel].min() / 2, measured[sel].max() * 2
        ax.plot([lo, hi], [lo, hi], color="black", lw=1)
        for factor, style in ((1.1, ":"), (1 / 1.1, ":")):
            ax.plot([lo, hi], [lo * factor, hi * factor], color="gray", lw=0.8, ls=style)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured time (s)")
    ax.set_ylabel("model time (s)")
    state = "calibrated" if result["calibrated"] else "spec defaults"
    ax.set_title(f"{result['hw']}: held-out rows, {state} (dotted: ±10%)")
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.25)
    return fig

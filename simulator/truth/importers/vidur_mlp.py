"""Vidur's ``mlp.csv``: per-GPU linear layers of one model at TP 1..8, kernel time in ms.

Vidur times each op of a transformer block with torch.profiler ``record_function`` ranges and
sums the CUDA kernel durations inside the range (no launch latency, no CPU gaps), so the rows
are kernel times: compare them with ``estimate_gemm``'s ``kernel_time_s``. The shapes follow
Vidur's model (vidur/profiling/mlp/mlp_impl.py): with tp GPUs and head_dim = n_embd / n_head,

    attn_pre_proj   n = (n_head + 2 n_kv_head) head_dim / tp, k = n_embd   (fused QKV, column-parallel)
    attn_post_proj  n = n_embd, k = n_head head_dim / tp                   (O, row-parallel)
    mlp_up_proj     n = (2 if gated else 1) n_expanded_embd / tp, k = n_embd
    mlp_down_proj   n = n_embd, k = n_expanded_embd / tp

and m = num_tokens. dtype fp16. The model name is the folder that holds the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.core.errors import SimulatorError
from simulator.truth.importers import VIDUR_COMMITS, VIDUR_SOURCE, vidur_relative

SHAPE_COLUMNS = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "use_gated_mlp", "num_tokens",
                 "num_tensor_parallel_workers")
OPS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SimulatorError(f"{path}: not a Vidur mlp.csv ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def read(path: Path) -> pd.DataFrame:
    """Trace rows (kernel_class dense) for the four GEMMs of every row of ``path``."""
    path = Path(path)
    raw = _read_csv(path)
    needed = list(SHAPE_COLUMNS) + [f"time_stats.{op}.{s}" for op in OPS for s in ("median", "min")]
    missing = [c for c in needed if c not in raw.columns]
    if missing:
        raise SimulatorError(f"{path}: not a Vidur mlp.csv: missing column(s) {', '.join(missing[:4])}")
    if raw.empty:
        raise SimulatorError(f"{path}: no rows")
    shape = {c: pd.to_numeric(raw[c], errors="coerce").to_numpy(float) for c in SHAPE_COLUMNS if c != "use_gated_mlp"}
    for name, values in shape.items():
        if not np.all(np.isfinite(values) & (values >= 1)):
            raise SimulatorError(f"{path}: column {name}: needs whole numbers >= 1")
    gated = raw["use_gated_mlp"].astype(str).str.lower().map({"true": 2.0, "false": 1.0, "1": 2.0, "0": 1.0})
    if gated.isna().any():
        raise SimulatorError(f"{path}: column use_gated_mlp: needs True or False")
    tp = shape["num_tensor_parallel_workers"]
    head_dim = shape["n_embd"] / shape["n_head"]
    dims = {
        "attn_pre_proj": ((shape["n_head"] + 2 * shape["n_kv_head"]) * head_dim / tp, shape["n_embd"]),
        "attn_post_proj": (shape["n_embd"], shape["n_head"] * head_dim / tp),
        "mlp_up_proj": (gated.to_numpy(float) * shape["n_expanded_embd"] / tp, shape["n_embd"]),
        "mlp_down_proj": (shape["n_embd"], shape["n_expanded_embd"] / tp),
    }
    model = path.parent.name
    frames = []
    for op, (n, k) in dims.items():
        median = pd.to_numeric(raw[f"time_stats.{op}.median"], errors="coerce").to_numpy(float) * 1e-3  # ms -> s
        fastest = pd.to_numeric(raw[f"time_stats.{op}.min"], errors="coerce").to_numpy(float) * 1e-3
        m = shape["num_tokens"]
        frames.append(pd.DataFrame({
            "case_id": [f"vidur/{model}/{op}/tp{int(t)}/m{int(mm)}" for t, mm in zip(tp, m)],
            "suite": "vidur", "group": f"vidur-{op}", "kernel_class": "dense", "op": "linear",
            "backend": "cublas", "dtype": "fp16", "model": model, "tp": tp.astype(int),
            "m": m, "n": n, "k": k, "density": 1.0, "shape_source": f"{model}:{op}",
            "flops": 2.0 * m * n * k, "time_s_median": median, "time_s_min": fastest,
            "timing_method": "kernel-sum", "status": "ok",
            "source": VIDUR_SOURCE, "source_file": vidur_relative(path),
            "source_commit": VIDUR_COMMITS["mlp.csv"],
        }))
    rows = pd.concat(frames, ignore_index=True)
    bad = ~np.isfinite(rows["time_s_median"].to_numpy(float)) | (rows["time_s_median"].to_numpy(float) <= 0)
    rows.loc[bad, "status"] = "error:no-time"  # a row Vidur did not time (0.0 or empty): kept, not used
    fractional = (rows["n"] % 1 != 0) | (rows["k"] % 1 != 0)
    if fractional.any():
        raise SimulatorError(f"{path}: a shard is not whole (n or k not divisible by tp) in row "
                             f"{rows.loc[fractional, 'case_id'].iloc[0]}")
    return rows

"""Vidur's ``attention.csv``: paged FlashAttention prefill and decode on one GPU, kernel time in ms.

Vidur's attention profiler (vidur/profiling/attention/, FLASH_ATTENTION backend) times
``flash_attn_with_kvcache`` (vllm_flash_attn) with kineto: the kernel durations of one call,
median of 5 calls, new K/V appended to a paged cache (``block_size`` tokens per page) inside the
kernel, causal. A prefill row is one sequence with ``prefill_chunk_size`` new tokens on top of
``kv_cache_size`` cached ones; a decode row is ``batch_size`` sequences, one new token each, over
``kv_cache_size`` cached tokens. Per GPU under tensor parallelism (tp = num_tensor_parallel_workers):

    heads = n_q_head / tp, kv_heads = n_kv_head / tp, head_dim = n_embd / n_q_head

Trace columns follow docs/traces.md: ``q_len`` new tokens per sequence, ``kv_len`` the keys each
sequence attends (cached + new), ``kv_cached`` the cached ones, ``kv_block_tokens`` the page size.
There is one attention shape in the file, so the rows carry no ``model``; ``split_key`` holds out
whole cached-context lengths (validation.holdout_mask).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.core.errors import SimulatorError
from simulator.truth.importers import VIDUR_COMMITS, VIDUR_SOURCE, vidur_relative

SHAPE_COLUMNS = ("n_embd", "n_q_head", "n_kv_head", "block_size", "num_tensor_parallel_workers", "batch_size",
                 "prefill_chunk_size", "kv_cache_size")
TIME_COLUMNS = tuple(f"time_stats.attn_{phase}.{stat}" for phase in ("prefill", "decode") for stat in ("median", "min"))


def _number(raw, name, path, low) -> np.ndarray:
    values = pd.to_numeric(raw[name], errors="coerce").to_numpy(float)
    if not np.all(np.isfinite(values) & (values >= low) & (values == np.floor(values))):
        raise SimulatorError(f"{path}: column {name}: needs whole numbers >= {low}")
    return values


def read(path: Path) -> pd.DataFrame:
    """Trace rows (kernel_class attention-prefill / attention-decode), one per row of ``path``."""
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SimulatorError(f"{path}: not a Vidur attention.csv ({type(exc).__name__})") from None
    missing = [c for c in SHAPE_COLUMNS + TIME_COLUMNS + ("is_prefill",) if c not in raw.columns]
    if missing:
        raise SimulatorError(f"{path}: not a Vidur attention.csv: missing column(s) {', '.join(missing[:4])}")
    if raw.empty:
        raise SimulatorError(f"{path}: no rows")
    prefill = raw["is_prefill"].astype(str).str.lower().map({"true": True, "false": False, "1": True, "0": False})
    if prefill.isna().any():
        raise SimulatorError(f"{path}: column is_prefill: needs True or False")
    prefill = prefill.to_numpy(bool)
    s = {c: _number(raw, c, path, 0 if c in ("prefill_chunk_size", "kv_cache_size") else 1) for c in SHAPE_COLUMNS}
    tp = s["num_tensor_parallel_workers"]
    heads, kv_heads = s["n_q_head"] / tp, s["n_kv_head"] / tp
    head_dim = s["n_embd"] / s["n_q_head"]
    for name, values in (("n_q_head / tp", heads), ("n_kv_head / tp", kv_heads), ("n_embd / n_q_head", head_dim)):
        if np.any(values % 1 != 0):
            raise SimulatorError(f"{path}: {name} is not whole")
    batch = np.where(prefill, 1.0, s["batch_size"])
    q_len = np.where(prefill, s["prefill_chunk_size"], 1.0)
    if np.any(q_len < 1):
        raise SimulatorError(f"{path}: column prefill_chunk_size: a prefill row needs >= 1 new token")
    cached = s["kv_cache_size"]
    kv_len = cached + q_len
    pairs = q_len * cached + q_len * (q_len + 1) / 2  # causal: new token i sees the cache and i + 1 new ones
    phase = np.where(prefill, "prefill", "decode")
    ms = lambda stat: np.where(prefill, pd.to_numeric(raw[f"time_stats.attn_prefill.{stat}"], errors="coerce"),
                               pd.to_numeric(raw[f"time_stats.attn_decode.{stat}"], errors="coerce")) * 1e-3
    median, fastest = ms("median"), ms("min")
    rows = pd.DataFrame({
        "case_id": [f"vidur/attention/{p}/b{int(b)}-q{int(q)}-kv{int(c)}" for p, b, q, c in zip(phase, batch, q_len, cached)],
        "suite": "vidur", "group": [f"vidur-attention-{p}" for p in phase],
        "kernel_class": [f"attention-{p}" for p in phase], "op": "flash_attn_with_kvcache", "backend": "flash",
        "dtype": "fp16", "phase": phase, "tp": tp.astype(int), "batch": batch, "heads": heads, "kv_heads": kv_heads,
        "head_dim": head_dim, "q_len": q_len, "kv_len": kv_len, "kv_cached": cached,
        "kv_block_tokens": s["block_size"], "causal": True,
        "shape_source": [f"vidur:n_embd{int(e)}-{int(h)}q{int(k)}kv-tp{int(t)}" for e, h, k, t in
                         zip(s["n_embd"], s["n_q_head"], s["n_kv_head"], tp)],
        "flops": 4.0 * batch * heads * head_dim * pairs, "time_s_median": median, "time_s_min": fastest,
        "timing_method": "kernel-sum", "status": "ok", "split_key": [f"attention|kv_cached={int(c)}" for c in cached],
        "source": VIDUR_SOURCE, "source_file": vidur_relative(path), "source_commit": VIDUR_COMMITS["attention.csv"],
    })
    bad = ~np.isfinite(median) | (median <= 0)
    rows.loc[bad, "status"] = "error:no-time"  # a row Vidur did not time: kept, not used
    return rows

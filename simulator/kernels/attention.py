"""Attention kernels on a GPU: the FlashAttention kernel model behind ``simulator.estimate_attention``,
and the split-KV decode kernel the LLM op graph prices (``attention_columns``, moved here from
kvcache.py, numbers unchanged).

``estimate_attention`` models FlashAttention-2's paged KV-cache kernel (``flash_attn_with_kvcache``,
the split-KV forward kernel: docs/cost-models.md, "Attention kernels") with its own tiles:

- Work items are thread blocks of ``block_m`` query rows (64) of one query head; with one new token
  per sequence (decode) the GQA group's query heads are packed into the rows instead (FA2's
  ``seqlenq_ngroups_swapped``), so a block is one (sequence, KV head). Each block walks the key
  tiles (``block_n`` keys: 128 at head_dim 128) it can see: under a causal mask the tiles up to its
  last row's position, else all.
- A tile costs the larger of its tensor-core work (4 block_m block_n head_dim FLOP, padded rows
  included) at ``mma_efficiency`` of the SM's share of the peak and its K/V bytes at
  ``sm_stream_efficiency`` of the SM's operand feed; a block also copies the new K/V it sees into
  the cache (read + write, every query head's block does it: FA2 lets them race) at
  ``append_efficiency`` of the feed.
- Blocks run ``ctas_per_sm`` to an SM, each at that share of it, in waves; the kernel is at least
  its HBM bytes (K/V read once through L2, Q, O, the appended K/V, split partials) at
  ``hbm_efficiency`` of peak; the KV may be split ``s`` ways (1..128, never more than the tiles),
  taking the fastest ``s``; a split adds the combine kernel (``combine_us``). Every call pays
  ``fixed_us`` (prologue, page-table setup, tail).

Parameters default from their sources (``ATTENTION_PARAMETERS``) and are replaced by the
``attention:`` section of the device's calibration.yaml (``sparsim calibrate``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from simulator.core.datafiles import parse_yaml
from simulator.core.errors import SimulatorError
from simulator.core.roofline import KERNEL_BOUNDS, bound_categorical, bound_codes, bound_labels, roofline

FA2_SPLITKV = ("FlashAttention-2 csrc/flash_attn/flash_api.cpp (at most 128 splits, never more than the KV "
               "tiles) and flash_fwd_launch_template.h run_mha_fwd_splitkv_dispatch (kBlockM = 64; "
               "kBlockN = 256 / 128 / 64 for head_dim <= 64 / <= 128 / larger); the split count is the "
               "fastest candidate (JUDGEMENT; FA2's num_splits_heuristic aims at it through wave efficiency)")


class AttentionKernelSpec(BaseModel):
    """How a FlashDecoding-style (split-KV) attention kernel maps onto the SMs.

    The KV of (batch x KV head x m-block) work items is split along the sequence so that the
    blocks fill the SMs; each busy SM streams K/V at most at ``sm_stream_GBps`` (default: the
    spec's per-SM operand feed, L2 -> SM bytes per clock x clock), so the effective bandwidth
    rises with the number of busy SMs until the HBM roof. A split kernel adds a combine kernel
    (one more launch; its partial outputs are a few MB at most and stay in L2).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    block_m: int = Field(default=64, ge=1, description="query rows per block (GQA groups packed into M)")
    block_n_by_head_dim: tuple[tuple[int, int], ...] = ((64, 256), (128, 128), (100000, 64))
    max_splits: int = Field(default=128, ge=1)
    sm_stream_GBps: Optional[float] = Field(default=None, gt=0, description="None: the spec's operand feed")
    combine_launches: int = Field(default=1, ge=0)
    source: str = FA2_SPLITKV


DEFAULT_ATTENTION_KERNEL = AttentionKernelSpec()


def attention_kernel(hw) -> AttentionKernelSpec:
    """The spec's attention-kernel parameters when it carries them, else the FA2 defaults."""
    return getattr(hw, "attention_kernel", None) or DEFAULT_ATTENTION_KERNEL


def kv_block_tokens(head_dim: int, kernel: AttentionKernelSpec = DEFAULT_ATTENTION_KERNEL) -> int:
    for limit, tokens in kernel.block_n_by_head_dim:
        if head_dim <= limit:
            return tokens
    return kernel.block_n_by_head_dim[-1][1]


def _split_kv_memory_time(hw, kernel, sequences_x_heads, query_rows, read_tokens, read_bytes, kv_bytes, qo_bytes,
                          head_dim, hbm):
    """Memory time of a split-KV attention kernel and the split count it runs with, vectorized.

    Work items are (sequence x KV head x m-block); ``s`` splits cut each item's KV tiles into ``s``
    blocks of ceil(tiles / s) whole tiles. A block streams its tiles (and reads its queries, writes
    its partial output) at most at the per-SM feed, blocks run in ceil(blocks / SMs) waves, and the
    whole kernel at most at HBM bandwidth; a split kernel adds a combine launch. The kernel runs
    with the split count that makes it fastest (JUDGEMENT: FlashAttention-2's
    ``num_splits_heuristic`` aims at the same thing through wave efficiency; taking the fastest
    candidate instead keeps the time from falling when the batch or the context grows, since the
    candidates do not depend on the batch and each candidate's time never falls as either grows).
    """
    query_rows = np.asarray(query_rows, float)
    work = sequences_x_heads * np.ceil(query_rows / kernel.block_m)
    block_n = kv_block_tokens(head_dim, kernel)
    tiles = np.ceil(np.maximum(read_tokens, 1.0) / block_n)
    per_sm = kernel.sm_stream_GBps * 1e9 if kernel.sm_stream_GBps else hw.operand_feed_bytes_per_s_per_unit
    bytes_per_tile = read_bytes / np.maximum(read_tokens, 1.0) * block_n  # a whole tile, padding included
    s = np.arange(1, min(kernel.max_splits, hw.units) + 1, dtype=float)[None, :]
    col = lambda v: np.asarray(v, float).reshape(-1, 1)
    w, t, tile_b, kv, qo = (col(v) for v in (work, tiles, bytes_per_tile, kv_bytes, qo_bytes))
    allowed = s <= t
    blocks = w * s
    # a block's share of its KV tiles (the m-blocks of one sequence and head share them through
    # L2, so HBM and the SMs see them once), its queries and its partial output
    m_blocks = col(np.ceil(query_rows / kernel.block_m))
    per_block = np.ceil(t / s) * tile_b / m_blocks + qo / w
    sm_limited = np.ceil(blocks / hw.units) * per_block / per_sm
    hbm_limited = (kv + qo * s) / hbm
    cost = np.maximum(sm_limited, hbm_limited) + hw.launch_overhead_s * kernel.combine_launches * (s > 1)
    cost = np.where(allowed, cost, np.inf)
    best = np.argmin(cost, axis=1)
    rows = np.arange(cost.shape[0])
    memory = np.maximum(sm_limited, hbm_limited)[rows, best].reshape(np.shape(kv_bytes))
    return memory, (best + 1.0).reshape(np.shape(kv_bytes))


def attention_columns(hw, *, batch, heads, kv_heads, head_dim, new_tokens, pairs, read_tokens, read_bytes,
                      dtype: str, act_bytes: float, dequant_flops=0.0):
    """One fused attention kernel (FlashAttention for prefill, Flash-Decoding for decode) on one
    GPU, vectorized over points. Per sequence: ``new_tokens`` queries per KV-head group,
    ``pairs`` (query, key) pairs per query head, ``read_tokens`` and ``read_bytes`` the K/V
    tokens and bytes per KV head read from HBM, ``dequant_flops`` CUDA-core work per KV head
    (KIVI dequantization, MiniCache rescaling).

    FLOP = 4 x batch x heads x head_dim x pairs (QK^T and PV) on the tensor cores; the
    dequantization on the vector units. Memory time uses the occupancy-limited bandwidth
    min(HBM x efficiency, busy SMs x per-SM stream rate); a split kernel adds one launch.
    Returns the columns of ``ops.memory_op_columns`` plus ``bytes_kv`` and ``splits``.
    """
    kernel = attention_kernel(hw)
    batch, new_tokens, pairs, read_tokens, read_bytes, dequant_flops = np.broadcast_arrays(
        *(np.asarray(v, float) for v in (batch, new_tokens, pairs, read_tokens, read_bytes, dequant_flops)))
    group = heads / kv_heads
    flops = 4.0 * batch * heads * head_dim * pairs
    kv_bytes = batch * kv_heads * read_bytes
    qo_bytes = 2.0 * batch * heads * head_dim * new_tokens * act_bytes
    peak = hw.matrix_peak_flop_per_s(dtype) or hw.vector_peak_flop_per_s(dtype)
    eff = hw.efficiency.matrix(dtype) if hw.matrix_peak_flop_per_s(dtype) else hw.efficiency.vector.value
    vector_peak = (hw.vector_peak_flop_per_s("fp32") or peak) * hw.efficiency.vector.value
    compute = flops / (peak * eff) + batch * kv_heads * dequant_flops / vector_peak
    hbm = hw.memory_bandwidth_bytes_per_s * hw.efficiency.hbm.value
    if hw.kind == "gpu":
        memory, splits = _split_kv_memory_time(hw, kernel, batch * kv_heads, np.maximum(new_tokens, 1.0) * group,
                                               read_tokens, read_bytes, kv_bytes, qo_bytes, head_dim, hbm)
    else:
        splits = np.ones_like(flops)
        memory = (kv_bytes + qo_bytes) / hbm
    overhead = hw.launch_overhead_s * (1.0 + kernel.combine_launches * (splits > 1))
    roof = roofline(compute, memory, overhead)
    return {"flops": flops, "bytes": kv_bytes + qo_bytes * splits, "compute_time_s": compute, "memory_time_s": memory,
            "overhead_s": overhead, "time_s": roof["time_s"], "bound_code": roof["bound_code"], "bytes_kv": kv_bytes,
            "splits": splits}



# ---- the FlashAttention kernel model (estimate_attention) ---------------------------------------

# name -> (default, lower, upper, source). Efficiencies are fractions in (0, 1]; times are microseconds.
# A default of None means "the spec's own value" (named in the source).
ATTENTION_PARAMETERS = {
    "mma_efficiency": (0.5, 0.02, 1.0, "Dao, 'FlashAttention-2', arXiv 2307.08691, abstract: the FA2 forward pass "
                       "reaches 50-73% of the A100's peak; the lower end for the split-KV paged kernel (64-row tiles)"),
    "sm_stream_efficiency": (1.0, 0.02, 1.0, "JUDGEMENT: a block streams K/V at the spec's per-SM operand feed "
                             "(tiling.operand_feed_bytes_per_clk_per_unit), as the op graph's split-KV model assumes"),
    "append_efficiency": (1.0, 0.02, 1.0, "JUDGEMENT: the appended K/V is copied at the per-SM operand feed"),
    "hbm_efficiency": (None, 0.02, 1.0, "the spec's efficiency.hbm (a streaming kernel's fraction of HBM peak)"),
    "fixed_us": (2.0, 0.05, 100.0, "JUDGEMENT: a kernel's own fixed time (prologue, page-table reads, tail wave), "
                 "a DRAM round trip or two plus the first tiles' loads"),
    "combine_us": (2.0, 0.05, 100.0, "JUDGEMENT: FA2's split-KV combine kernel (flash_fwd_splitkv_combine_kernel) "
                   "reads the partial outputs from L2: a few microseconds"),
}
# The split-KV search (flash_attention_columns): above this many (point, split count) pairs the
# first FIRST_SPLITS counts are tried everywhere and the rest only where they can win.
SPLIT_SEARCH_ONE_PASS = 4096
FIRST_SPLITS = 16


@functools.lru_cache(maxsize=8)
def _split_counts(max_splits: int) -> np.ndarray:
    """The split counts 1..max_splits as a row (read only)."""
    s = np.arange(1, max_splits + 1, dtype=float)[None, :]
    s.flags.writeable = False
    return s


# FA2's split-KV kernel: 4 warps, Q (64 x 128) and one K and V tile (128 x 128) of fp16 in shared
# memory = 80 KiB at head_dim 128, so two CTAs fit in an A100's 164 KiB (an H100's 228 KiB) per SM.
CTAS_PER_SM = 2
CTAS_SOURCE = ("DERIVED: FA2 Flash_fwd_kernel_traits<128, 64, 128, 4> shared memory Q + K + V = "
               "(64 + 2 x 128) x 128 x 2 B = 80 KiB; A100 164 KiB / H100 228 KiB of shared memory per SM -> 2 CTAs")


def attention_parameters(hw, overrides: "dict | None" = None) -> dict[str, float]:
    """The kernel model's parameters for ``hw``: defaults, then the device's own calibration file's
    ``attention:`` section (when ``hw`` was loaded calibrated), then ``overrides``."""
    values = {name: (default if default is not None else hw.efficiency.hbm.value)
              for name, (default, *_rest) in ATTENTION_PARAMETERS.items()}
    values.update(_calibrated_section(hw, "attention"))
    values.update(overrides or {})
    return values


# (id of a spec object, section) -> (the spec, its section): read once per spec object (a spec
# loaded again after its calibration file changed is a new object); the spec is held so that its
# id is not reused while the entry lives
_SECTIONS: dict = {}


def _calibrated_section(hw, section: str) -> dict[str, float]:
    """The named section of ``hw``'s own calibration.yaml (empty when ``hw`` is uncalibrated), as
    it was when first read for this spec object."""
    if getattr(hw, "calibration", None) is None or str(hw.calibration).startswith("INHERITED"):
        return {}
    entry = _SECTIONS.get((id(hw), section))
    if entry is not None and entry[0] is hw:
        return dict(entry[1])
    if len(_SECTIONS) > 256:
        _SECTIONS.clear()
    values = _read_calibrated_section(hw, section)
    _SECTIONS[(id(hw), section)] = (hw, values)
    return dict(values)


def _read_calibrated_section(hw, section: str) -> dict[str, float]:
    from simulator.hardware.spec import hwspecs_dir

    path = hwspecs_dir() / hw.id / "calibration.yaml"
    if not path.is_file():
        return {}
    return dict(_read_section(path, path.stat().st_mtime, section))


@functools.lru_cache(maxsize=32)
def _read_section(path: Path, mtime: float, section: str) -> tuple:
    data = parse_yaml(path.read_text()) or {}
    return tuple(sorted((data.get(section) or {}).items()))


def _whole(name: str, value, low: int) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.size == 0:
        raise SimulatorError(f"{name}: needs at least one value")
    bad = ~np.isfinite(arr) | (arr < low) | (arr != np.floor(arr))
    if np.any(bad):
        first = arr[bad].flat[0]
        shown = int(first) if np.isfinite(first) and first == int(first) else first
        raise SimulatorError(f"{name}: must be a whole number >= {low}, got {shown}")
    return arr


def _block_n(head_dim: np.ndarray) -> np.ndarray:
    """The kernel's K/V tile rows for each head dimension (the first table entry whose limit it
    does not exceed; beyond every limit, the last entry's)."""
    table = DEFAULT_ATTENTION_KERNEL.block_n_by_head_dim
    limits = np.array([limit for limit, _ in table], dtype=float)
    tokens = np.array([tokens for _, tokens in table] + [table[-1][1]], dtype=float)
    return tokens[np.searchsorted(limits, head_dim, side="left")]


def flash_attention_columns(hw, params, batch, q_tokens, kv_tokens, q_heads, kv_heads, head_dim, dtype: str,
                            causal, kv_block_tokens=None, window=None) -> dict:
    """The FlashAttention kernel model (module docstring) over broadcast 1-D arrays; seconds.

    ``window`` (None, or per point; inf = none): a causal sliding window, each query attending at
    most that many keys, itself included (FlashAttention-2's ``window_size=(window - 1, 0)``):
    a query block reads only the tiles its queries' windows reach, and does the window's pairs."""
    from simulator.core.dtypes import BYTES_PER_ELEMENT

    el = float(BYTES_PER_ELEMENT[dtype])
    bm = float(DEFAULT_ATTENTION_KERNEL.block_m)
    bn = _block_n(head_dim)
    group = q_heads / kv_heads
    keys = kv_tokens + q_tokens
    swapped = q_tokens == 1  # decode: the GQA group's heads become the block's rows
    rows = np.where(swapped, group, q_tokens)
    m_blocks = np.ceil(rows / bm)
    items = batch * np.where(swapped, kv_heads, q_heads)
    # tiles each m-block sees; the blocks of one item differ only under a causal mask (j = m-block)
    j_max = int(m_blocks.max())
    j = np.arange(j_max, dtype=float)[None, :]
    real = j < m_blocks[:, None]
    last_key = np.where((causal & ~swapped)[:, None], np.minimum(kv_tokens[:, None] + bm * (j + 1), keys[:, None]),
                        keys[:, None])
    if window is None:
        tiles = np.where(real, np.ceil(last_key / bn[:, None]), 0.0)
        new_seen = np.where(real, np.minimum(tiles * bn[:, None], last_key) - kv_tokens[:, None], 0.0)
    else:  # the block's first query (position kv + bm j; decode: kv) reaches back window - 1 keys
        window = np.broadcast_to(np.asarray(window, float), keys.shape)
        first_key = np.where(causal[:, None], np.maximum(
            0.0, kv_tokens[:, None] + np.where(swapped[:, None], 0.0, bm * j) - window[:, None] + 1.0), 0.0)
        first_tile = np.floor(first_key / bn[:, None])
        tiles = np.where(real, np.ceil(last_key / bn[:, None]) - first_tile, 0.0)
        new_seen = np.where(real, np.minimum((first_tile + tiles) * bn[:, None], last_key)
                            - np.maximum(kv_tokens[:, None], first_tile * bn[:, None]), 0.0)
    new_seen = np.maximum(new_seen, 0.0)
    # the keys read: all, or from the first query's window on (a page holds them where paged)
    read = keys if window is None else keys - np.where(causal, np.maximum(0.0, kv_tokens - np.where(
        np.isfinite(window), window, np.inf) + 1.0), 0.0)
    stored = read if kv_block_tokens is None else np.ceil(read / kv_block_tokens) * kv_block_tokens
    kv_tile_bytes = 2.0 * bn * head_dim * el  # K and V of one tile
    units = float(hw.units)
    sm_peak = (hw.matrix_peak_flop_per_s(dtype) or hw.vector_peak_flop_per_s("fp32")) / units
    feed = hw.operand_feed_bytes_per_s_per_unit
    t_mma = 4.0 * bm * bn * head_dim / (sm_peak * params["mma_efficiency"])
    t_stream = kv_tile_bytes / (feed * params["sm_stream_efficiency"])
    t_tile = np.maximum(t_mma, t_stream)
    append_per_token = 4.0 * head_dim * el / (feed * params["append_efficiency"])  # read new K,V; write them
    # per m-block: whole K/V tiles, and the appended tokens' copy (seconds of one SM)
    mean_tiles = tiles.sum(axis=1) / m_blocks
    mean_append = (new_seen.sum(axis=1) / m_blocks) * append_per_token
    max_tiles = tiles.max(axis=1)
    max_append = new_seen.max(axis=1) * append_per_token
    blocks = items * m_blocks
    total = blocks * (mean_tiles * t_tile + mean_append)
    pairs = np.where(causal, q_tokens * kv_tokens + q_tokens * (q_tokens + 1) / 2, q_tokens * keys)
    if window is not None:  # query i sees min(kv + i + 1, window) keys: n1 of them fewer than window
        limited = np.isfinite(window)
        w = np.where(limited, window, 0.0)
        first = kv_tokens + 1.0
        n1 = np.clip(w - first, 0.0, q_tokens)
        windowed = n1 * first + n1 * (n1 - 1.0) / 2.0 + (q_tokens - n1) * w
        pairs = np.where(causal & limited, windowed, pairs)
    flops = 4.0 * batch * q_heads * head_dim * pairs
    partial_bytes = batch * q_heads * q_tokens * head_dim * 4.0  # one fp32 partial output per split
    base_bytes = (batch * kv_heads * stored * 2.0 * head_dim * el            # K, V read once (L2 shares them)
                  + 2.0 * batch * q_heads * q_tokens * head_dim * el          # Q in, O out
                  + batch * kv_heads * q_tokens * 2.0 * head_dim * el)        # the new K, V written
    hbm = hw.memory_bandwidth_bytes_per_s * params["hbm_efficiency"]
    slots = units * CTAS_PER_SM
    combine_s = params["combine_us"] * 1e-6
    shape = np.shape(total)
    per_point = tuple(v if np.shape(v) == shape else np.broadcast_to(v, shape)
                      for v in (mean_tiles, t_tile, mean_append, max_tiles, max_append, total, blocks, base_bytes,
                                partial_bytes))

    def search(s, rows=None):
        """The fastest of the split counts ``s`` (a row) at each point (of ``rows``): the chosen
        candidate's SM time, HBM time, index in ``s`` and cost."""
        mt, tt, ma, xt, xa, tot, bl, bb, pb = (v[:, None] if rows is None else v[rows][:, None] for v in per_point)
        # a split cuts each block's tiles into s runs of whole tiles: more splits than tiles only add
        # blocks, so every candidate's time is non-decreasing in the cached tokens and the batch, and
        # so is their minimum
        wave_block = np.ceil(mt / s) * tt + ma / s
        longest = np.ceil(xt / s) * tt + xa / s
        sm_time = np.maximum(np.maximum(tot / units, np.ceil(bl * s / slots) * wave_block * CTAS_PER_SM),
                             longest * CTAS_PER_SM)
        hbm_time = (bb + pb * (s > 1) * 2.0 * s) / hbm
        cost = np.maximum(sm_time, hbm_time) + combine_s * (s > 1)
        best = np.argmin(cost, axis=1)
        at = (np.arange(cost.shape[0]), best)
        return sm_time[at], hbm_time[at], best, cost[at]

    s = _split_counts(DEFAULT_ATTENTION_KERNEL.max_splits)
    if total.size * s.size > SPLIT_SEARCH_ONE_PASS and s.size > FIRST_SPLITS:
        # Many points: the first FIRST_SPLITS counts everywhere, the rest only where one of them can
        # still win. For any s > FIRST_SPLITS a candidate costs at least its HBM time, the blocks'
        # even share of the SMs and ceil(blocks s / slots) waves of one tile each, plus the
        # combine, all non-decreasing in s: where that bound at FIRST_SPLITS + 1 already exceeds
        # the best so far, no larger count ties or wins, and the answer is the same.
        compute, memory, best, best_cost = search(s[:, :FIRST_SPLITS])
        s1 = float(FIRST_SPLITS + 1)
        bound = np.maximum(np.maximum(total / units, np.ceil(blocks * s1 / slots) * t_tile * CTAS_PER_SM),
                           (base_bytes + partial_bytes * 2.0 * s1) / hbm) + combine_s
        rows = np.flatnonzero(bound <= best_cost)
        if rows.size:
            compute[rows], memory[rows], best[rows], _ = search(s, rows)
    else:
        compute, memory, best, _ = search(s)
    splits = best + 1.0
    fixed = params["fixed_us"] * 1e-6
    combined = params["combine_us"] * 1e-6 * (splits > 1)  # the chosen candidate's combine
    kernel = fixed + np.maximum(compute, memory) + combined
    # One launch per call: with splits, the combine kernel is enqueued from C++ right behind the split
    # kernel while that one runs (its microseconds of work cover the enqueue), so the caller does not
    # wait for a second launch. (Counting one made a step faster when one more sequence dropped the
    # split: the caller's time must not fall as the batch grows.)
    launches = np.ones_like(splits)
    bound = bound_codes(compute, memory, fixed + combined)
    return {"flops": flops, "bytes": base_bytes + partial_bytes * (splits > 1) * 2.0 * splits,
            "compute_time_s": compute, "memory_time_s": memory, "kernel_time_s": kernel,
            "time_s": kernel + hw.launch_overhead_s * launches, "splits": splits, "bound_code": bound}


BOUNDS = tuple(bound_labels(KERNEL_BOUNDS))


def estimate_attention(hw, *, batch, q_tokens, kv_tokens, q_heads, kv_heads, head_dim, dtype="bf16",
                       causal=True, kv_block_tokens=None, window=None) -> pd.DataFrame:
    """One FlashAttention call (paged KV cache, new K/V appended in the kernel) on one GPU.

    ``batch`` sequences, each with ``q_tokens`` new tokens (a prefill chunk, or 1 in decode) attending
    to its ``kv_tokens`` already-cached tokens and to the new ones (causally when ``causal``);
    ``q_heads`` query heads over ``kv_heads`` KV heads (GQA) of ``head_dim``; ``kv_block_tokens``
    the KV cache's page size (None: contiguous); ``window`` a causal sliding window, the keys each
    query attends at most, itself included (FlashAttention-2's ``window_size=(window - 1, 0)``;
    None: all). All but ``dtype`` and ``kv_block_tokens`` take arrays that broadcast. Returns one row per point: ``time_s`` (the caller's wait: launches
    included), ``kernel_time_s`` (what a profiler measures), ``compute_time_s``/``memory_time_s``
    (the SM and HBM floors), ``flops`` (4 x batch x heads x head_dim x visible pairs), ``bytes``,
    ``splits`` and ``bound``. Seconds, bytes, FLOP.
    """
    from simulator.core.dtypes import check_dtype
    from simulator.hardware.spec import load_hw

    hw = load_hw(hw)
    if hw.kind != "gpu":
        raise SimulatorError(f"hw: {hw.id} is a {hw.kind}; the FlashAttention kernel model is for GPUs")
    dtype = check_dtype(dtype)
    if dtype not in ("fp16", "bf16", "fp8"):
        raise SimulatorError(f"dtype: {dtype!r}; allowed: fp16, bf16, fp8 (FlashAttention's dtypes)")
    if hw.matrix_peak_flop_per_s(dtype) is None:
        raise SimulatorError(f"dtype: {hw.id} has no {dtype} tensor-core peak")
    arrays = {"batch": _whole("batch", batch, 1), "q_tokens": _whole("q_tokens", q_tokens, 1),
              "kv_tokens": _whole("kv_tokens", kv_tokens, 0), "q_heads": _whole("q_heads", q_heads, 1),
              "kv_heads": _whole("kv_heads", kv_heads, 1), "head_dim": _whole("head_dim", head_dim, 1)}
    causal_arr = np.asarray(causal)
    if causal_arr.dtype != bool:
        raise SimulatorError(f"causal: {causal!r}; allowed: True or False (or an array of them)")
    if kv_block_tokens is not None:
        kv_block_tokens = float(_whole("kv_block_tokens", kv_block_tokens, 1).reshape(-1)[0])
    window_arr = None if window is None else _whole("window", window, 1)
    if window_arr is not None and not np.all(causal_arr):
        raise SimulatorError("window: a sliding window is modelled for causal attention only (causal=True)")
    try:
        shape = np.broadcast_shapes(*(a.shape for a in arrays.values()), causal_arr.shape,
                                    () if window_arr is None else window_arr.shape)
    except ValueError:
        raise SimulatorError("batch, q_tokens, kv_tokens, q_heads, kv_heads, head_dim, causal, window: shapes "
                             f"{[np.shape(a) for a in arrays.values()]} do not broadcast") from None
    flat = {k: np.broadcast_to(v, shape).reshape(-1) for k, v in arrays.items()}
    if np.any(flat["q_heads"] % flat["kv_heads"] != 0):
        bad = int(np.argmax(flat["q_heads"] % flat["kv_heads"] != 0))
        raise SimulatorError(f"kv_heads: {int(flat['kv_heads'][bad])} does not divide q_heads "
                             f"{int(flat['q_heads'][bad])} (GQA groups are whole)")
    cols = flash_attention_columns(hw, attention_parameters(hw), flat["batch"], flat["q_tokens"], flat["kv_tokens"],
                                   flat["q_heads"], flat["kv_heads"], flat["head_dim"], dtype,
                                   np.broadcast_to(causal_arr, shape).reshape(-1), kv_block_tokens,
                                   None if window_arr is None else np.broadcast_to(window_arr, shape).reshape(-1))
    out = pd.DataFrame({k: flat[k] for k in arrays})
    out["causal"] = np.broadcast_to(causal_arr, shape).reshape(-1)
    if window_arr is not None:
        out["window"] = np.broadcast_to(window_arr, shape).reshape(-1)
    for key in ("flops", "bytes", "compute_time_s", "memory_time_s", "kernel_time_s", "time_s", "splits"):
        out[key] = cols[key]
    out["bound"] = bound_categorical(cols["bound_code"])
    return out


def trace_inputs(rows: pd.DataFrame) -> dict:
    """The kernel model's inputs for attention trace rows: new tokens q_len, cached tokens
    ``kv_cached`` where the row has it, else kv_len - q_len (docs/traces.md)."""
    get = lambda c: pd.to_numeric(rows[c], errors="coerce").to_numpy(float)
    q = get("q_len")
    cached = get("kv_cached") if "kv_cached" in rows else np.full(len(rows), np.nan)
    cached = np.where(np.isfinite(cached), cached, get("kv_len") - q)
    causal = rows["causal"].astype(str).str.lower().isin(("true", "1", "1.0")).to_numpy() if "causal" in rows \
        else np.ones(len(rows), bool)
    pages = get("kv_block_tokens") if "kv_block_tokens" in rows else np.full(len(rows), np.nan)
    return {"batch": get("batch"), "q_tokens": q, "kv_tokens": np.maximum(cached, 0.0), "q_heads": get("heads"),
            "kv_heads": get("kv_heads"), "head_dim": get("head_dim"), "causal": causal, "pages": pages}


def predict_trace_rows(hw, rows: pd.DataFrame, params: "dict | None" = None) -> np.ndarray:
    """Kernel seconds for imported attention rows (validation's external model); NaN for rows this
    model does not describe (captured sdpa rows: another kernel, priced by the op graph's model)."""
    from simulator.hardware.spec import load_hw
    from simulator.core.dtypes import TRACE_DTYPES

    hw = load_hw(hw)
    rows = rows.reset_index(drop=True)
    out = np.full(len(rows), np.nan)
    if hw.kind != "gpu" or "op" not in rows:
        return out
    mine = (rows["op"] == "flash_attn_with_kvcache").to_numpy()
    if not mine.any():
        return out
    sub = rows[mine]
    x = trace_inputs(sub)
    dtypes = sub["dtype"].map(TRACE_DTYPES).to_numpy()
    p = attention_parameters(hw, params)
    kernel = np.full(len(sub), np.nan)
    pages = x["pages"]
    page_keys = np.where(np.isfinite(pages), pages, -1.0)
    for page, dtype in set(zip(page_keys.tolist(), dtypes.tolist())):
        sel = (page_keys == page) & (dtypes == dtype)
        cols = flash_attention_columns(hw, p, x["batch"][sel], x["q_tokens"][sel], x["kv_tokens"][sel],
                                       x["q_heads"][sel], x["kv_heads"][sel], x["head_dim"][sel], dtype,
                                       x["causal"][sel], None if page < 0 else page)
        kernel[sel] = cols["kernel_time_s"]
    out[mine] = kernel
    return out

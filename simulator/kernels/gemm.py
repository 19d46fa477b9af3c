"""GEMM cost model: y = x . W^T with x of M x K (tokens) and W of N x K (weights).

One entry point, ``estimate_gemm``, vectorized over numpy arrays of M, N, K (and of the
format's sparsity). Every kernel family is a roofline with three terms:

    time = max(compute_time, memory_time) + overhead

- compute_time: work / (peak x efficiency), where tensor-core kernels are cut into CTA tiles
  (tokens x weights) that run in waves over the SMs; a tile's rate is capped by how fast L2
  feeds its operands (operand bytes per FLOP fall as tiles grow, so skinny tiles cannot reach
  the tensor-core peak), and split-K fills the machine when there are fewer tiles than SMs.
  The tile with the lowest time is taken, as cuBLAS' heuristics try to do.
- memory_time: unique DRAM/HBM bytes (weights in their stored format, metadata, activations in
  and out) / (bandwidth x efficiency). L2 reuse across tiles is assumed, and split-K partial
  sums (small: only chosen when M x N is small) are assumed to stay in L2.
- overhead: kernel launch, plus the extra kernels torch's 2:4 path adds.

Floors (``compute_floor_s``, ``memory_floor_s``) are the same work at 100% of the datasheet
peaks with no quantization; ``time_s`` is never below either.
"""

from __future__ import annotations

import numpy as np

from simulator.core.dtypes import (
    BYTES_PER_ELEMENT,
    OUTPUT_BYTES_PER_ELEMENT,
    SCALE_BYTES_PER_ELEMENT,
    check_dtype,
)
from simulator.core.checks import along, as_numbers, as_whole, broadcast
from simulator.core.errors import SimulatorError
from simulator.hardware.spec import HardwareSpec, load_hw
from simulator.core.roofline import KERNEL_BOUNDS, bound_categorical, bound_labels, roofline
from simulator.formats.sparsity import SparsityFormat, Unstructured, parse_sparsity
from simulator.kernels.families import KERNEL_FAMILIES

KERNELS = tuple(KERNEL_FAMILIES)  # simulator/kernels/families.py: one entry per family
BOUNDS = tuple(bound_labels(KERNEL_BOUNDS))  # ("compute", "memory", "overhead")

# Rows of a warp/CTA group whose slowest row sets the pace in a CSR SpMM (one warp = 32 rows).
CSR_ROWS_PER_GROUP = 32

# Split-K factors a tiled GEMM may choose among (capped by the spec's tiling.split_k_max): each
# candidate pays its waves, its K slice and its reduction; the fastest is taken.
SPLIT_K_CHOICES = (1, 2, 4, 8, 16)

def _as_dims(name: str, value) -> np.ndarray:
    return as_whole(name, value)


def _resolve_kernel(hw: HardwareSpec, dtype: str, fmt: SparsityFormat, k: np.ndarray):
    """Pick the kernel family and (peak FLOP/s, compute efficiency, memory efficiency): the
    family's own ``resolve`` (simulator/kernels/families.py)."""
    return KERNEL_FAMILIES[fmt.kernel].resolve(hw, dtype, fmt, k)


ONE_PASS_SHAPES = 64  # up to this many shapes, _tiled_compute(compute_only=True) prices every candidate at once
CHUNK_SHAPES = 4096  # shapes per pass of the tile model: its (candidates x shapes) arrays stay in cache


def _tiled_compute(hw, m, n, k, peak, compute_eff, act_bytes_per_el, weight_bytes_per_el,
                   other_bytes, memory_rate, groups=1.0, compute_only=False):
    """Tile + wave + split-K model; returns the candidate with the lowest total time.

    Two exact shortcuts, neither of which changes a result:
    - split-K is priced only where it can win. Every candidate with split s > 1 takes at least
      the ideal no-tail time of its tiles, ``tiles x 2 tm tn K / (units x rate)``, plus its
      reduction (2 s fp32 partials of the output); where that bound, at the smallest split, is
      above the best split-1 candidate's total time, no split can tie or win, and the split-1
      choice is the answer. Elsewhere (skinny and latency-bound shapes) every candidate is priced.
    - shapes are priced in chunks of CHUNK_SHAPES (the candidates multiply every array by up to
      25; in chunks they stay in cache), each chunk independently.
    ``compute_only``: return only ``compute`` (the chosen candidate's time); up to ONE_PASS_SHAPES
    shapes are then priced in one pass over every candidate (the same choice: see the shortcut)."""
    arrays = list(np.broadcast_arrays(m, n, k, weight_bytes_per_el, other_bytes, groups))
    splits = tuple(s for s in SPLIT_K_CHOICES if s <= hw.tiling.split_k_max)
    if compute_only and arrays[0].size <= ONE_PASS_SHAPES:
        # a few shapes (one model's GEMMs): every candidate in one pass costs less than the
        # shortcut's two, and only the chosen compute time is wanted
        return {"compute": _tiled_chunk(hw, *arrays[:3], peak, compute_eff, act_bytes_per_el, arrays[3], arrays[4],
                                        memory_rate, arrays[5], splits, compute_only=True)}

    def run(subset, choices):
        mm, nn, kk, wb, ob, gg = subset
        parts = [_tiled_chunk(hw, mm[i:i + CHUNK_SHAPES], nn[i:i + CHUNK_SHAPES], kk[i:i + CHUNK_SHAPES], peak,
                              compute_eff, act_bytes_per_el, wb[i:i + CHUNK_SHAPES], ob[i:i + CHUNK_SHAPES],
                              memory_rate, gg[i:i + CHUNK_SHAPES], choices, shortcut_only=compute_only)
                 for i in range(0, mm.size, CHUNK_SHAPES)]
        return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}

    if len(splits) == 1:
        out = run(arrays, splits)
    else:
        out = run(arrays, splits[:1])
        m_, n_, g_ = arrays[0], arrays[1], arrays[5]
        reduction = 2.0 * splits[1] * g_ * m_ * n_ * 4.0 / memory_rate
        # 1e-9: far above rounding in either side, far below any difference the model resolves
        maybe = out["_lower"] + reduction <= out["_score"] * (1.0 + 1e-9)
        if maybe.any():
            full = run([a[maybe] for a in arrays], splits)
            for key in out:
                out[key][maybe] = full[key]
    out.pop("_score"), out.pop("_lower")
    return out


def _tiled_chunk(hw, m, n, k, peak, compute_eff, act_bytes_per_el, weight_bytes_per_el,
                 other_bytes, memory_rate, groups, split_choices, compute_only=False, shortcut_only=False):
    """The tile model for 1-D arrays of shapes: every candidate (tile shape T x split-K S) priced,
    laid out (T, S, shapes) so that what depends only on the tile or only on the split is computed
    once per tile or per split. ``compute_only``: only the chosen compute time (an array);
    ``shortcut_only``: that and what _tiled_compute's split-K shortcut reads."""
    units = hw.units
    feed = hw.operand_feed_bytes_per_s_per_unit
    tiles_mn = np.asarray(hw.tiling.tile_candidates, dtype=float)  # (T, 2)
    # candidates: every tile shape with every split-K in SPLIT_K_CHOICES up to the spec's cap (powers
    # of two: each choice costs a pass over the shapes); each candidate's time is monotone in M, N and
    # K (its split is fixed), and so is their minimum
    splits = np.array(split_choices, dtype=float)
    n_tiles, n_splits = len(tiles_mn), splits.size
    tm = tiles_mn[:, 0].reshape(-1, 1, 1)            # (T, 1, 1)
    tn = tiles_mn[:, 1].reshape(-1, 1, 1)
    split = splits.reshape(1, -1, 1)                 # (1, S, 1)
    tiles = groups * np.ceil(m / tm) * np.ceil(n / tn)  # (T, 1, N): a grouped GEMM's tiles share the waves
    ctas = tiles * split                             # (T, S, N)
    full_waves = ctas / units
    tail = 1.0 if hw.efficiency.wave_tail is None else hw.efficiency.wave_tail.value
    # the last, partly filled wave costs ``tail`` of a whole one beyond its share of the work
    whole_waves = np.ceil(full_waves)
    waves = full_waves + tail * (whole_waves - full_waves)
    k_per_cta = np.ceil(k / split)                   # (1, S, N)
    intensity = 2.0 * tm * tn / (tm * act_bytes_per_el + tn * weight_bytes_per_el)  # (T, 1, N)
    rate_per_unit = np.minimum(peak / units * compute_eff, feed * intensity)
    # each wave's tile also pays its fixed prologue (pipeline fill) and epilogue (output store)
    compute = waves * (2.0 * tm * tn * k_per_cta / rate_per_unit + hw.tile_fixed_s)
    # split-K: every split writes an fp32 partial of the output and a reduction reads them back,
    # after the main loop (cuBLAS's workspace reduction)
    compute = compute + (split > 1) * 2.0 * split * groups * m * n * 4.0 / memory_rate
    shape = (n_tiles * n_splits, m.size)
    compute = compute.reshape(shape)                 # candidate c = tile * S + split
    memory = other_bytes / memory_rate
    # Lowest total time; among exact ties (all memory-bound) the tile with the least compute.
    score = np.maximum(compute, memory)
    tied = score <= score.min(axis=0) * (1.0 + 1e-12)
    best = np.argmin(np.where(tied, compute, np.inf), axis=0)
    columns = np.arange(m.size)
    if compute_only:
        return compute[best, columns]
    if shortcut_only:  # what _tiled_compute's split-K shortcut needs, and the chosen compute time
        return {"compute": compute[best, columns], "_score": score[best, columns],
                "_lower": (tiles * (2.0 * tm * tn) * k / (units * rate_per_unit)).min(axis=0)[0]}
    tile, split_index = best // n_splits, best % n_splits

    zero = np.zeros(m.size, dtype=np.intp)

    def per_candidate(a):
        """The chosen candidate's value of ``a`` (shape (T or 1, S or 1, shapes or 1)), per shape:
        indexed where a dimension is full, index 0 where it is 1 (no broadcast copy)."""
        a = np.asarray(a, dtype=float).reshape((-1, 1, 1) if np.ndim(a) == 0 else np.shape(a))
        return a[tile if a.shape[0] > 1 else zero, split_index if a.shape[1] > 1 else zero,
                 columns if a.shape[2] > 1 else zero]

    per_tile = per_candidate  # a per-tile array has a split dimension of 1

    return {
        "compute": compute[best, columns],
        "tile_m": tiles_mn[tile, 0],
        "tile_n": tiles_mn[tile, 1],
        "split_k": splits[split_index],
        "tiles": per_tile(tiles),
        "waves": per_candidate(waves),
        "wave_efficiency": per_candidate(ctas) / (per_candidate(whole_waves) * units),
        # the chosen tile's rate is set by the L2 -> SM operand feed, not by the math
        "feed_limited": per_tile(feed * intensity < peak / units * compute_eff).astype(bool),
        # for _tiled_compute's split-K shortcut: the chosen total time, and the least time any
        # candidate's tiles can take (no tail, no fixed part, no reduction) on any tile shape
        "_score": score[best, columns],
        "_lower": (tiles * (2.0 * tm * tn) * k / (units * rate_per_unit)).min(axis=0)[0],
    }


def _weight_only_efficiencies(hw, dtype: str, weight_dtype: str, memory_eff: float, compute_eff: float):
    """The (memory, compute) efficiencies of a kernel that dequantizes ``weight_dtype`` weights.

    The spec's weight-only fractions are those of a dense weight-only kernel with 16-bit math
    (what the traces measure: gpt-fast's kernels, tinygemm, torch's CPU kernels); a sparse
    format's own efficiencies are scaled by the same ratio to the plain dense kernel (capped at
    1). Other math (W4A8 on int8 tensor cores, ...) is another kernel, priced as a plain one.
    """
    eff = hw.efficiency
    if dtype not in ("bf16", "fp16"):
        return memory_eff, compute_eff
    memory = eff.weight_only(weight_dtype, "memory")
    if memory is not None:
        memory_eff = min(1.0, memory_eff * memory / eff.hbm.value)
    compute = eff.weight_only(weight_dtype, "compute")
    if compute is not None:
        plain = eff.matrix(dtype) if hw.matrix_peak_flop_per_s(dtype) is not None else eff.vector.value
        compute_eff = min(1.0, compute_eff * compute / plain)
    return memory_eff, compute_eff


def _quantization_scale_bytes(n, k, weight_dtype: str, group_size, zero_point_bytes=None):
    """Scale (+ zero-point) bytes of integer weight-only quantization.

    Group-wise: one fp16 scale and one zero point per ``group_size`` input elements of each output
    row. The zero point is ``zero_point_bytes`` wide: by default the weight's own width (GPTQ/AWQ
    pack zeros like weights); torch's tinygemm int4 kernel keeps a bf16 zero (2 bytes); a symmetric
    format (Marlin) has none (0). Without a group size, one fp16 scale per output row
    (per-channel). Float formats carry their own block scales (dtypes.py).
    """
    if weight_dtype not in ("int8", "int4"):
        return 0.0
    zero_bytes = BYTES_PER_ELEMENT[weight_dtype] if zero_point_bytes is None else zero_point_bytes
    if group_size is None:
        return n * 2.0
    return n * np.ceil(k / group_size) * (2.0 + zero_bytes)


def gemm_columns(hw, m, n, k, dtype: str = "bf16", sparsity="dense", weight_dtype: "str | None" = None,
                 weight_group_size: "int | None" = None, numeric_only: bool = False,
                 weight_zero_point_bytes: "float | None" = None, groups=None,
                 plain_labels: bool = False) -> dict[str, np.ndarray]:
    """The cost model as a dict of equally long 1-D numpy arrays (the DataFrame's columns).

    ``dtype`` is the operand dtype the math runs in; ``weight_dtype`` (default: the same) is how
    the weights are stored, for weight-only quantization (e.g. int4 weights, bf16 math: the
    weights are dequantized in the kernel, as Marlin/gpt-fast kernels do, at the spec's
    ``efficiency.weight_only_<weight dtype>_memory`` / ``_compute`` where set, else as fast as
    the plain kernel). ``weight_zero_point_bytes`` sets the zero-point width of group-wise integer
    formats (see ``_quantization_scale_bytes``).
    ``groups`` (default 1; an array that broadcasts with m, n, k) prices a grouped GEMM: that many
    independent m x n x k GEMMs in one launch (a fused MoE kernel over its experts), whose tiles
    share the waves, with their work and bytes summed and one memory ramp.
    Use this inside other cost models (whole-model estimates) to skip DataFrame overhead;
    ``numeric_only`` also skips the label columns and returns ``bound_code`` (0 compute,
    1 memory, 2 overhead) and the ``kernel`` name instead. ``plain_labels`` gives the label
    columns (device, dtype, format, kernel, bound) as arrays of Python strings, not pandas
    categoricals, so the caller need not load pandas (the CLI's one-GEMM answer).
    """
    hw = load_hw(hw)
    check_dtype(dtype)
    weight_dtype = check_dtype(weight_dtype, "weight_dtype") if weight_dtype is not None else dtype
    if BYTES_PER_ELEMENT[weight_dtype] > BYTES_PER_ELEMENT[dtype]:
        raise SimulatorError(f"weight_dtype: {weight_dtype} weights are wider than the {dtype} math; "
                             "weight-only quantization stores weights narrower than the compute dtype")
    if weight_group_size is not None:
        weight_group_size = int(as_whole("weight_group_size", weight_group_size, 1, 2**20))
    if weight_zero_point_bytes is not None and not 0 <= weight_zero_point_bytes <= 4:
        raise SimulatorError(f"weight_zero_point_bytes: must be between 0 and 4 bytes, got {weight_zero_point_bytes}")
    fmt = parse_sparsity(sparsity)
    m, n, k = (_as_dims(name, v) for name, v in (("m", m), ("n", n), ("k", k)))
    density = np.asarray(fmt.density, dtype=float)
    m, n, k, density = broadcast(m=m, n=n, k=k, sparsity=density)
    m, n, k, density = (np.array(a, dtype=float).ravel() for a in (m, n, k, density))
    if groups is None:
        g = np.ones_like(m)
    else:  # an expected count (experts a batch touches) may be fractional
        g = as_numbers("groups", groups).ravel()
        if g.size not in (1, m.size):
            raise SimulatorError(f"groups: needs one value or one per shape ({m.size}), got {g.size}")
        bad = ~(np.isfinite(g) & (g >= 1.0))
        if bad.any():
            raise SimulatorError(f"groups: must be a finite number >= 1, got {g[bad][0]}")
        g = np.broadcast_to(g, m.shape).astype(float)
    return gemm_priced(hw, m, n, k, density, g, dtype, fmt, weight_dtype, weight_group_size, weight_zero_point_bytes,
                       numeric_only, plain_labels)


def gemm_priced(hw: HardwareSpec, m, n, k, density, g, dtype: str, fmt: SparsityFormat, weight_dtype: str,
                weight_group_size: "int | None" = None, weight_zero_point_bytes: "float | None" = None,
                numeric_only: bool = True, plain_labels: bool = False) -> dict:
    """``gemm_columns`` after its checks, for cost models that have made them (llm's op graph):
    ``m``, ``n``, ``k``, ``density`` and ``g`` (groups) equally long 1-D float arrays of valid
    values, ``fmt`` a format, ``dtype`` and ``weight_dtype`` checked dtype names."""
    kernel, peak, compute_eff, memory_eff = _resolve_kernel(hw, dtype, fmt, k)
    family = KERNEL_FAMILIES[kernel]
    if kernel == "bsr-tc" and (np.any(n < fmt.block) or np.any(k < fmt.block)):
        small = int(min(n.min(), k.min()))
        raise SimulatorError(f"sparsity {fmt.label}: {fmt.block}x{fmt.block} blocks do not fit a weight (or its "
                             f"tensor-parallel shard) whose smaller side is {small}; use a block size <= {small}")
    if kernel == "tiled-csl-tc" and BYTES_PER_ELEMENT[weight_dtype] != 2:
        raise SimulatorError(f"sparsity {fmt.label}: Tiled-CSL packs a 16-bit value with its 16-bit position "
                             f"in one 32-bit word (Flash-LLM); {weight_dtype} weights do not fit it "
                             "(use unstructured:S:bitmap or :csr)")
    n_eff, k_eff = fmt.effective_shape(n, k, density)
    n_eff, k_eff = along(n_eff, m), along(k_eff, m)

    act_el = BYTES_PER_ELEMENT[dtype] + SCALE_BYTES_PER_ELEMENT.get(dtype, 0.0)
    w_values, w_meta = (along(a, m) for a in fmt.weight_bytes(n, k, weight_dtype, density))
    if weight_dtype != dtype:  # weight-only quantization carries its scales and costs dequantization
        w_meta = w_meta + _quantization_scale_bytes(n_eff, k_eff, weight_dtype, weight_group_size,
                                                    weight_zero_point_bytes)
        memory_eff, compute_eff = _weight_only_efficiencies(hw, dtype, weight_dtype, memory_eff, compute_eff)
    stored_each = w_values + w_meta  # one GEMM's stored weight bytes (of a grouped one: one group's)
    w_values, w_meta = w_values * g, w_meta * g
    bytes_act_in = g * m * k_eff * act_el
    bytes_act_out = g * m * n_eff * OUTPUT_BYTES_PER_ELEMENT[dtype]
    base_bytes = w_values + w_meta + bytes_act_in + bytes_act_out
    memory_rate = hw.memory_bandwidth_bytes_per_s * memory_eff

    flops = 2.0 * g * m * n * k  # the work the layer represents (dense-equivalent)
    zeros = np.zeros_like(m)
    if family.tiled:
        flops_executed = 2.0 * g * m * n_eff * k_eff
        if family.skips_zeros:
            flops_executed = flops_executed * density
        # dense-equivalent work over a dense-equivalent peak
        work_shape_n = n_eff
        weight_el = (w_values + w_meta) / (g * n_eff * k_eff)  # stored bytes per weight element
        tiled = _tiled_compute(hw, m, work_shape_n, k_eff, peak, compute_eff, act_el, weight_el,
                               base_bytes, memory_rate, g, compute_only=numeric_only)
        compute_time = tiled["compute"]
        compute_floor = 2.0 * g * m * n_eff * k_eff / peak
    else:
        nnz_per_row = k * density
        if kernel == "csr-spmm":
            spread = np.sqrt((1.0 - density) / np.maximum(nnz_per_row, 1e-12))
            imbalance = 1.0 + np.sqrt(2.0 * np.log(CSR_ROWS_PER_GROUP)) * spread
        else:
            imbalance = np.ones_like(m)
        flops_executed = 2.0 * g * m * n * nnz_per_row
        compute_time = flops_executed * imbalance / (peak * compute_eff)
        compute_floor = flops_executed / peak
        tiled = {key: zeros for key in ("tile_m", "tile_n", "tiles", "waves", "wave_efficiency")}
        tiled["split_k"] = np.ones_like(m)
        tiled["feed_limited"] = np.zeros(m.shape, dtype=bool)

    total_bytes = base_bytes
    memory_time = total_bytes / memory_rate + hw.memory_ramp_s  # bytes at bandwidth after the ramp
    overhead = along(hw.launch_overhead_s, m)
    # What a profiler sums for the call: the kernels' own durations (torch's 2:4 path runs extra
    # kernels, which count), no launch latency; time_s is what the caller waits.
    if family.sparse_extra:
        overhead = overhead + hw.sparse_kernel_extra_s
    rl = roofline(compute_time, memory_time, overhead)
    roof, time, bound_code = rl["roof_s"], rl["time_s"], rl["bound_code"]
    kernel_time = roof + hw.sparse_kernel_extra_s if family.sparse_extra else roof

    if numeric_only:
        return {
            "kernel": kernel, "flops": flops, "flops_executed": flops_executed, "bytes_weight": w_values,
            "bytes_metadata": w_meta, "bytes": total_bytes, "compute_time_s": compute_time,
            "memory_time_s": memory_time, "overhead_s": overhead, "time_s": time, "kernel_time_s": kernel_time,
            "bound_code": bound_code, "stored_bytes_each": stored_each,
        }

    if plain_labels:
        def const(value):
            return np.full(m.size, value, dtype=object)

        bound = np.array(BOUNDS, dtype=object)[bound_code]
    else:
        import pandas as pd  # here, not at the top: see plain_labels

        def const(value):
            return pd.Categorical.from_codes(np.zeros(m.size, dtype=np.int8), categories=[value])

        bound = bound_categorical(bound_code)

    return {
        "device": const(hw.id),
        "dtype": const(dtype),
        "weight_dtype": const(weight_dtype),
        "format": const(fmt.label),
        "kernel": const(kernel),
        "m": m,
        "n": n,
        "k": k,
        "n_eff": n_eff,
        "k_eff": k_eff,
        "density": density,
        "flops": flops,
        "flops_executed": flops_executed,
        "bytes_weight": w_values,
        "bytes_metadata": w_meta,
        "bytes_act_in": bytes_act_in,
        "bytes_act_out": bytes_act_out,
        "bytes": total_bytes,
        "arithmetic_intensity_flop_per_byte": flops / total_bytes,
        "compute_floor_s": compute_floor,
        "memory_floor_s": total_bytes / hw.memory_bandwidth_bytes_per_s,
        "compute_time_s": compute_time,
        "memory_time_s": memory_time,
        "overhead_s": overhead,
        "time_s": time,
        "kernel_time_s": kernel_time,
        "bound": bound,
        "flop_per_s": flops / time,
        "ridge_point_flop_per_byte": np.full_like(m, peak * compute_eff / memory_rate),
        "datasheet_ridge_point_flop_per_byte": np.full_like(m, peak / hw.memory_bandwidth_bytes_per_s),
        "tile_m": tiled["tile_m"],
        "tile_n": tiled["tile_n"],
        "split_k": tiled["split_k"],
        "tiles": tiled["tiles"],
        "waves": tiled["waves"],
        "wave_efficiency": tiled["wave_efficiency"],
        "feed_limited": tiled["feed_limited"],
    }


def estimate_gemm(hw, m, n, k, dtype: str = "bf16", sparsity="dense", weight_dtype: "str | None" = None,
                  weight_group_size: "int | None" = None,
                  weight_zero_point_bytes: "float | None" = None) -> "pd.DataFrame":
    """Estimate y = x . W^T (x: M x K tokens, W: N x K weights) on ``hw``.

    ``hw`` is a device id, alias, spec path or HardwareSpec; ``m``, ``n``, ``k`` are integers
    or arrays that broadcast together (and with array-valued sparsity parameters);
    ``sparsity`` is a string such as ``"2:4"`` or ``"unstructured:0.9:bitmap"`` or a format
    object; ``weight_dtype``/``weight_group_size`` describe weight-only quantization (see
    ``gemm_columns``). Returns one row per shape; times in seconds, bytes in bytes, work in FLOP.
    """
    import pandas as pd

    return pd.DataFrame(gemm_columns(hw, m, n, k, dtype, sparsity, weight_dtype, weight_group_size,
                                     weight_zero_point_bytes=weight_zero_point_bytes))


def crossover_sparsity(hw, m, n, k, dtype: str = "fp16", storage: str = "csr",
                       resolution: int = 1000) -> "pd.DataFrame":
    """Smallest unstructured sparsity at which ``storage``'s kernel beats dense, per shape.

    Searched on a grid of ``resolution`` sparsities in [0, 1). Where no sparsity on the grid
    beats dense, ``beats_dense`` is False and ``crossover_sparsity`` is NaN (stated, not silent).
    """
    import pandas as pd

    m, n, k = (_as_dims(name, v) for name, v in (("m", m), ("n", n), ("k", k)))
    m, n, k = (a.ravel() for a in broadcast(m=m, n=n, k=k))
    grid = np.linspace(0.0, 1.0, resolution, endpoint=False)[:, None]
    dense = gemm_columns(hw, m, n, k, dtype, "dense")["time_s"]
    sparse = gemm_columns(hw, m[None], n[None], k[None], dtype,
                          Unstructured(sparsity=grid, storage=storage))["time_s"]
    wins = sparse.reshape(resolution, m.size) < dense[None]
    beats = wins.any(axis=0)
    first = np.argmax(wins, axis=0)
    return pd.DataFrame({
        "m": m, "n": n, "k": k,
        "kernel": Unstructured(storage=storage).kernel,
        "beats_dense": beats,
        "crossover_sparsity": np.where(beats, grid[first, 0], np.nan),
        "dense_time_s": dense,
    })

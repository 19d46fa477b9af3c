"""Course claims about hardware facts and single GEMMs (areas ``hw-fact`` and ``gemm``).

Hardware facts are read from the specs (``load_hw``); GEMM claims run ``estimate_gemm`` /
``crossover_sparsity``. Where a slide gives no shape, one representative shape is fixed here, once,
for every claim of that slide (never chosen per claim), and the basis says which:

- Part C (unstructured sparsity on A100): W 4096x4096, M = 1 token, fp16, as ``sparsim tour`` §3;
- Part D.5 (NVIDIA's sparse vs dense INT8 figure, K sweep): M = N = 4096 on A100, int8;
- LLaMA-2-70B layers: the shapes of ``workloads/layersets/llama-2-70b.yaml``;
- a claim that names no device runs on the A100 80GB, the device of the measurements it cites.
"""

from __future__ import annotations

from simulator.course import Check, Claim, evaluates
from simulator.kernels.gemm import crossover_sparsity, estimate_gemm
from simulator.hardware.spec import load_hw
from simulator.truth.workloads import load_layerset

# Claims of Parts A-D that name no device: the A100 80GB, the device of the measurements they cite.
DEFAULT_HW = "a100"
# Part C's unstructured-sparsity shape (sparsim tour §3): batch-1 GEMV of a 4096x4096 fp16 weight.
UNSTRUCTURED_M, UNSTRUCTURED_N, UNSTRUCTURED_K, UNSTRUCTURED_DTYPE = 1, 4096, 4096, "fp16"
# Part D.5's K sweep: the slide gives K only; M (tokens) = N (weights) = 4096 is assumed for all K.
SWEEP_M = SWEEP_N = 4096
# Part C.1's intensity claims name no device; the slide's other numbers are the H100 SXM5's.
C1_HW = "h100"
# Prefill: a 2048-token prompt (the course gives no length).
PREFILL_TOKENS = 2048
# SparseGPT 2:4 linear-layer claim: the paper timed its 2:4 layers on A100; a 2048-token batch.
SPARSEGPT_HW, SPARSEGPT_TOKENS = "a100", 2048


def _as_list(value) -> list:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _peak_ratio(hw, dtype: str) -> "float | None":
    """Sparse / dense tensor-core peak of ``dtype`` on ``hw`` from its spec, None without a sparse mode."""
    dense, sparse = hw.matrix_peak_flop_per_s(dtype), hw.matrix_peak_flop_per_s(dtype, sparse=True)
    return None if dense is None or sparse is None else sparse / dense


def sparse_24_ratio(hw, dtype: str) -> "float | None":
    """2:4 sparse / dense peak of ``dtype`` on ``hw``; None where the device has no 2:4 mode for it
    (no sparse mode, or another pattern such as B200 FP4's 4:8 pair-wise). Every claim about
    "2:4 supports dtype X" uses this one judgement."""
    return _peak_ratio(hw, dtype) if hw.sparse_pattern(dtype) == "2:4" else None


def _speedup(hw, m, n, k, dtype: str, sparsity: str) -> tuple[float, object, object]:
    """dense time / sparse time of one GEMM, with both rows."""
    dense = estimate_gemm(hw, m, n, k, dtype, "dense").iloc[0]
    sparse = estimate_gemm(hw, m, n, k, dtype, sparsity).iloc[0]
    return float(dense.time_s / sparse.time_s), dense, sparse


def _us(seconds: float) -> str:
    return f"{seconds * 1e3:.3g} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.3g} us"


@evaluates("l1-c1-h100-hbm-bandwidth")
def hbm_bandwidth(claim: Claim) -> Check:
    hw = load_hw(claim.setup["hw"])
    return Check(hw.memory_bandwidth_bytes_per_s,
                 f"{hw.id} spec: memory.bandwidth_GBps = {hw.memory.bandwidth_GBps:g} (datasheet, sourced in the spec)")


@evaluates("l1-c1-h100-capacity")
def memory_capacity(claim: Claim) -> Check:
    hw = load_hw(claim.setup["hw"])
    return Check(hw.memory_capacity_bytes,
                 f"{hw.id} spec: {hw.memory.capacity_GiB:g} GiB, what nvidia-smi reports CUDA can allocate "
                 f"(the marketed '80 GB' is the HBM stack size)")


# ---- hardware facts ----------------------------------------------------------------------------

@evaluates("l1-d4-mma-tile-16x16", "l1-d4-mma-sp-shape")
def mma_instruction_shape(claim: Claim) -> Check:
    # The K of the warp-level instruction: dense mma.sync (l1-d4-mma-tile-16x16) or mma.sp
    # (l1-d4-mma-sp-shape), from the spec's PTX shapes.
    hw, dtype = load_hw(claim.setup["hw"]), claim.setup["dtype"]
    shapes = hw.matrix.mma_sync.shapes if hw.matrix is not None and hw.matrix.mma_sync is not None else {}
    if dtype not in shapes:
        return Check(None, f"not modelled: the {hw.id} spec lists no PTX mma.sync shape for {dtype}")
    shape = shapes[dtype]
    if claim.quantity == "mma_k_dense":
        # The slide's "16x16 MMA per cycle (16 multiply-adds)" is a rate, and no rate reads 16:
        # the instruction is m16n8k16 (K = 16, 2,048 multiply-adds per warp, several cycles), and
        # one tensor core does dense-peak / (SMs x 4 tensor cores x clock) / 2 multiply-adds per clock.
        # four tensor cores per SM: [A100-WP] Table 1 lists 432 on 108 SMs, [H100-WP] Table 3 528 on 132
        tensor_cores = hw.compute.units * 4
        per_clock = hw.matrix_peak_flop_per_s(dtype) / (tensor_cores * hw.compute.clock_MHz * 1e6) / 2
        return Check(None, f"not modelled as stated: the slide gives a per-cycle rate, and the {hw.id} spec has none that "
                           f"reads 16 — {dtype} mma.sync.aligned.{shape.dense} has K = 16 but is 2,048 "
                           f"multiply-adds per warp instruction, and one tensor core does {per_clock:,.0f} "
                           f"multiply-adds per clock (dense peak / {tensor_cores} tensor cores / clock)")
    sparse = claim.quantity == "mma_k_sparse"
    text = shape.sparse if sparse else shape.dense
    m, n, k = shape.mnk(text)
    macs = m * n * k // (2 if sparse else 1)
    return Check(float(k), f"{hw.id} spec [PTX]: {dtype} mma.sync.aligned.{shape.dense} dense, "
                           f"mma.sp.sync.aligned.{shape.sparse} sparse (K doubled, half of A stored); "
                           f"K = {k} of {text}: one warp instruction, {macs:,} multiply-adds")


@evaluates("l1-d4-sparse-dtypes")
def sparse_dtypes(claim: Claim) -> Check:
    # The slide's list is a union over generations (claim note): each dtype needs a sparse peak on
    # at least one listed device; the value is the lowest of those per-dtype best ratios.
    hws = [load_hw(h) for h in _as_list(claim.setup["hw"])]
    best, lacking, other_pattern = {}, [], []
    for dtype in _as_list(claim.setup["dtype"]):
        ratios = []
        for hw in hws:
            r = sparse_24_ratio(hw, dtype)
            if r is None:
                lacking.append(f"{hw.id.split('-')[0]} {dtype}")
                if hw.sparse_pattern(dtype) is not None:
                    other_pattern.append(f"{hw.id.split('-')[0]} {dtype} {hw.sparse_pattern(dtype)}")
            else:
                ratios.append(r)
        best[dtype] = max(ratios, default=1.0)
    value = min(best.values())
    return Check(value, f"spec 2:4 sparse/dense peak, best listed device per dtype: min {value:.2f}; no 2:4 mode: "
                        f"{', '.join(lacking) or 'none'}; not 2:4: {', '.join(other_pattern) or 'none'}")


@evaluates("l1-d4-fp32-unsupported")
def fp32_sparse(claim: Claim) -> Check:
    dtype = claim.setup["dtype"]
    parts, ratios = [], []
    for hw in (load_hw(h) for h in _as_list(claim.setup["hw"])):
        r = _peak_ratio(hw, dtype)
        ratios.append(1.0 if r is None else r)  # no sparse mode: sparsity buys no peak
        tf32 = _peak_ratio(hw, "tf32")
        parts.append(f"{hw.id.split('-')[0]} {dtype} sparse peak: {'none' if r is None else f'{r:.2f}x'}, "
                     f"tf32 {hw.sparse_pattern('tf32')} {tf32:.2f}x")
    value = max(ratios)
    return Check(value, f"spec matrix peaks: {'; '.join(parts)} (FP32 data can run as sparse TF32)")


@evaluates("l1-d5-kernel-launch-10us")
def kernel_launch(claim: Claim) -> Check:
    # The slide's heading is the fixed kernel-launch overhead: the spec's per-launch cost. What
    # sparsim adds around a torch 2:4 call (a judged extra kernel) is in the basis, not the value.
    hw = load_hw(claim.setup["hw"])
    row = estimate_gemm(hw, SWEEP_M, SWEEP_N, 1280, "int8", "2:4").iloc[0]
    return Check(hw.launch_overhead_s,
                 f"{hw.id} spec: overhead.kernel_launch_us = {hw.overhead.kernel_launch_us.value:g} (eager launch, "
                 f"sourced); a torch 2:4 GEMM call costs {_us(row.overhead_s)} fixed in sparsim (+ sparse_kernel_extra_us "
                 f"{hw.overhead.sparse_kernel_extra_us.value:g}, a judgement)")


@evaluates("l1-d7-blackwell-fp4-sparsity")
def blackwell_fp4(claim: Claim) -> Check:
    # The slide pairs FP4 with 2:4: the speed-up FP4 gets from a 2:4 pattern (1.0 where the
    # device's FP4 sparse mode uses another pattern, which the basis names).
    hw, dtype = load_hw(claim.setup["hw"]), claim.setup["dtype"]
    dense = hw.matrix_peak_flop_per_s(dtype)
    if dense is None:
        return Check(None, f"not modelled: the {hw.id} spec has no {dtype} tensor-core mode")
    ratio, pattern = _peak_ratio(hw, dtype), hw.sparse_pattern(dtype)
    value = sparse_24_ratio(hw, dtype) or 1.0  # the same judgement as l1-d4-sparse-dtypes
    sparse = "no sparse mode" if ratio is None else f"sparse {dense * ratio / 1e15:g} PF with pattern {pattern}"
    return Check(value, f"{hw.id} spec {dtype}: dense {dense / 1e15:g} PF, {sparse}; a 2:4 {dtype} speed-up "
                        f"{value:.2f}x" + ("" if pattern == "2:4" else f" ({pattern} is not 2:4)"))


# ---- 2:4 and N:M peaks -------------------------------------------------------------------------

@evaluates("l1-a3-24-2x-throughput")
def sparse_peak_ratio(claim: Claim) -> Check:
    ratios, missing = [], []
    for hw in (load_hw(h) for h in _as_list(claim.setup["hw"])):
        for dtype in _as_list(claim.setup["dtype"]):
            r = _peak_ratio(hw, dtype)
            if r is None or hw.sparse_pattern(dtype) != "2:4":
                missing.append(f"{hw.id.split('-')[0]} {dtype}")
            else:
                ratios.append(r)
    value = min(ratios)
    return Check(value, f"spec sparse/dense peaks, min over {len(ratios)} (hw, dtype) pairs with a 2:4 mode: "
                        f"{value:.2f} (max {max(ratios):.2f}); no such mode: {', '.join(missing) or 'none'}")


@evaluates("l1-d7-14-theoretical-4x")
def nm_14_theoretical(claim: Claim) -> Check:
    # No device has 1:4; gemm.py prices it as a what-if tensor core running M/N = 4x the dense rate.
    pattern = claim.setup["pattern"]
    hw = load_hw(DEFAULT_HW)
    ratio, dense, sparse = _speedup(hw, SWEEP_M, SWEEP_N, 8192, "fp16", pattern)
    value = float(dense.compute_floor_s / sparse.compute_floor_s)
    return Check(value, f"{hw.id} fp16 {SWEEP_M}x{SWEEP_N}x8192, {pattern} ({sparse.kernel}): compute floor "
                        f"dense/{pattern} = {value:.2f}x; modelled time {ratio:.2f}x (sparse-kernel efficiency)")


# ---- LLaMA-2-70B decode and intensity (Part C.1) -----------------------------------------------

def _decode_floor(claim: Claim) -> tuple[float, str]:
    from simulator.model.llm import estimate_model

    s = claim.setup
    hw = load_hw(s["hw"])
    summary = estimate_model(s["model"], hw, "decode", s["batch"], 1, dtype=s["dtype"], with_ops=False).summary
    weights = summary["weight_bytes_per_gpu"]
    floor = weights / hw.memory_bandwidth_bytes_per_s
    fits = "fits" if summary["fits"] else "does not fit"
    return floor, (f"{s['model']} {s['dtype']} weights {weights / 1e9:.2f} GB / {hw.id} "
                   f"{hw.memory.bandwidth_GBps:g} GB/s = {floor * 1e3:.1f} ms (100% HBM peak, no KV; {fits} in "
                   f"{hw.memory.capacity_GiB:g} GiB)")


@evaluates("l1-c1-llama70b-decode-floor")
def decode_floor(claim: Claim) -> Check:
    floor, basis = _decode_floor(claim)
    return Check(floor, basis)


@evaluates("l1-c1-llama70b-decode-tokps")
def decode_tokps(claim: Claim) -> Check:
    floor, basis = _decode_floor(claim)
    return Check(1.0 / floor, f"1 / floor; floor = {basis}")


def _layerset_intensity(hw, m: int, dtype: str):
    table = load_layerset("llama-2-70b").table()
    df = estimate_gemm(hw, m, table["n"].to_numpy(), table["k"].to_numpy(), dtype, "dense")
    count = table["count"].to_numpy()
    return float((df["flops"] * count).sum() / (df["bytes"] * count).sum()), df


@evaluates("l1-c1-decode-arithmetic-intensity")
def decode_intensity(claim: Claim) -> Check:
    dtype, m = claim.setup["dtype"], claim.setup["batch"]
    ai, df = _layerset_intensity(C1_HW, m, dtype)
    return Check(ai, f"llama-2-70b linear layers, M={m} token, {dtype}: total FLOP / total bytes (weights + "
                     f"activations) = {ai:.3f} FLOP/B; on {C1_HW} all {', '.join(sorted(set(df['bound'])))}-bound")


@evaluates("l1-c1-prefill-arithmetic-intensity")
def prefill_intensity(claim: Claim) -> Check:
    dtype = claim.setup["dtype"]
    ai, df = _layerset_intensity(C1_HW, PREFILL_TOKENS, dtype)
    ridge = float(df["ridge_point_flop_per_byte"].iloc[0])
    return Check(ai, f"llama-2-70b linear layers, M={PREFILL_TOKENS}-token prompt, {dtype}: FLOP/B = {ai:.0f}; "
                     f"{C1_HW} ridge (achievable) {ridge:.0f} FLOP/B; bound: {', '.join(sorted(set(df['bound'])))}")


# ---- unstructured sparsity (Parts A.3, C.3, C.4) ----------------------------------------------

def _unstructured(hw, sparsity: float, storage: str):
    return _speedup(hw, UNSTRUCTURED_M, UNSTRUCTURED_N, UNSTRUCTURED_K, UNSTRUCTURED_DTYPE,
                    f"unstructured:{sparsity:g}:{storage}")


def _shape() -> str:
    return f"W {UNSTRUCTURED_N}x{UNSTRUCTURED_K} {UNSTRUCTURED_DTYPE}, M={UNSTRUCTURED_M} (tour §3)"


@evaluates("l1-a3-unstructured-50pct-no-speedup", "l1-c3-a100-unstructured-50pct", "l1-c3-a100-unstructured-80pct")
def unstructured_50_any_gpu(claim: Claim) -> Check:
    # One fact, one judgement: "what unstructured sparsity buys on a GPU" is the best of the kernels a
    # GPU has (a dense GEMM over the zeros, cuSPARSE CSR) in every entry that states it.
    sparsity, hw = claim.setup["sparsity"], load_hw(claim.setup.get("hw", DEFAULT_HW))
    masked, dense, _ = _unstructured(hw, sparsity, "masked")
    csr, _, csr_row = _unstructured(hw, sparsity, "csr")
    return Check(max(masked, csr),
                 f"{hw.id} {_shape()}, {sparsity:.0%} unstructured: best of dense-over-zeros {masked:.2f}x "
                 f"and CSR {csr:.2f}x ({_us(csr_row.time_s)} vs dense {_us(dense.time_s)})")


def _breakeven(hw) -> Check:
    m = [UNSTRUCTURED_M, 4096]
    cross = crossover_sparsity(hw, m, UNSTRUCTURED_N, UNSTRUCTURED_K, UNSTRUCTURED_DTYPE, "csr")
    first, big = cross.iloc[0], cross.iloc[1]
    if not first.beats_dense:  # a result, not a gap: the break-even is at 100% sparsity
        return Check(1.0, f"{load_hw(hw).id} {_shape()}: CSR beats dense at no sparsity below 100% (0.001 grid)")
    big_text = f"{big.crossover_sparsity:.1%}" if big.beats_dense else "never"
    bound = {m_: estimate_gemm(hw, m_, UNSTRUCTURED_N, UNSTRUCTURED_K, UNSTRUCTURED_DTYPE, "dense").bound.iloc[0]
             for m_ in m}
    return Check(float(first.crossover_sparsity),
                 f"{load_hw(hw).id} {_shape()}: smallest sparsity where CSR beats dense {first.crossover_sparsity:.1%} "
                 f"(dense {bound[UNSTRUCTURED_M]}-bound); at M=4096 (dense {bound[4096]}-bound) {big_text}")


@evaluates("l1-c3-a100-unstructured-breakeven-99pct")
def breakeven_a100(claim: Claim) -> Check:
    return _breakeven(claim.setup["hw"])


@evaluates("l1-c4-breakeven-90pct")
def breakeven_general(claim: Claim) -> Check:
    return _breakeven(DEFAULT_HW)  # no device on the slide; C.4 explains C.3's A100 measurements


# ---- 2:4 GEMM speed-ups vs K (Part D.5) --------------------------------------------------------

def _sweep(claim: Claim, k: int, note: str = "") -> Check:
    s = claim.setup
    ratio, dense, sparse = _speedup(s["hw"], SWEEP_M, SWEEP_N, k, s["dtype"], s["pattern"])
    return Check(ratio, f"{load_hw(s['hw']).id} {s['dtype']} M=N={SWEEP_M} (assumed), K={k}{note}: dense "
                        f"{_us(dense.time_s)} ({dense.bound}) vs {s['pattern']} {_us(sparse.time_s)} ({sparse.bound})"
                        f" = {ratio:.2f}x")


@evaluates("l1-d5-24-speedup-k20480", "l1-d5-24-speedup-k10240", "l1-d5-24-speedup-k1280")
def speedup_at_k(claim: Claim) -> Check:
    return _sweep(claim, int(claim.setup["k"]))


@evaluates("l1-d5-24-speedup-k128")
def speedup_small_k(claim: Claim) -> Check:
    k = int(claim.setup["k_max"]) // 2  # a K below the slide's bound, and a multiple of 4 as 2:4 needs
    return _sweep(claim, k, f" (< {claim.setup['k_max']})")


@evaluates("l1-d5-nvidia-fig3-caption")
def fig3_large(claim: Claim) -> Check:
    # "Larger GEMMs": the largest GEMM of the figure's K sweep the slide reads (K = 20480).
    return _sweep(claim, 20480, " (largest K the slide reads off the figure)")


@evaluates("l1-d5-small-gemm-hundreds-us")
def small_gemm_time(claim: Claim) -> Check:
    hw, k = load_hw(claim.setup["hw"]), int(claim.setup["k"])
    row = estimate_gemm(hw, SWEEP_M, SWEEP_N, k, "int8", "dense").iloc[0]
    return Check(float(row.time_s), f"{hw.id} int8 dense GEMM M=N={SWEEP_M} (assumed, as the K sweep), K={k}: "
                                    f"{_us(row.time_s)} ({row.bound}-bound, incl. {_us(row.overhead_s)} launch)")


@evaluates("l1-d5-qkv-decode-below-1.3x")
def qkv_decode(claim: Claim) -> Check:
    # qkv_proj is the fused q, k, v projection (vLLM's name): N = q + k + v of the layer set, K = d_model.
    dtype, pattern = claim.setup["dtype"], claim.setup["pattern"]
    by_name = {g.name: g for g in load_layerset("llama-2-70b").gemms}
    n = sum(by_name[p].n for p in ("q_proj", "k_proj", "v_proj"))
    k = by_name["q_proj"].k
    hw = load_hw(DEFAULT_HW)
    ratio, dense, sparse = _speedup(hw, 1, n, k, dtype, pattern)
    return Check(ratio, f"{hw.id} llama-2-70b fused qkv_proj N={n} K={k}, decode M=1, {dtype}: "
                        f"dense {_us(dense.time_s)} vs {pattern} {_us(sparse.time_s)} ({sparse.bound}-bound) "
                        f"= {ratio:.2f}x")


@evaluates("l2-a3-sparsegpt24-linear-speedup")
def sparsegpt_linear(claim: Claim) -> Check:
    s = claim.setup
    table = load_layerset(s["model"]).table()
    n, k, count = (table[c].to_numpy() for c in ("n", "k", "count"))
    dense = estimate_gemm(SPARSEGPT_HW, SPARSEGPT_TOKENS, n, k, s["dtype"], "dense")
    sparse = estimate_gemm(SPARSEGPT_HW, SPARSEGPT_TOKENS, n, k, s["dtype"], s["pattern"])
    per_layer = dense["time_s"] / sparse["time_s"]
    ratio = float((dense["time_s"] * count).sum() / (sparse["time_s"] * count).sum())
    return Check(ratio, f"{load_hw(SPARSEGPT_HW).id} {s['model']} all linear layers, M={SPARSEGPT_TOKENS} tokens, "
                        f"{s['dtype']} {s['pattern']}: total dense/sparse time {ratio:.2f}x (per layer "
                        f"{per_layer.min():.2f}-{per_layer.max():.2f}x)")


# ---- block sparsity (Part E) -------------------------------------------------------------------

@evaluates("l1-e-block-sparse-near-dense-utilisation")
def block_sparse_utilisation(claim: Claim) -> Check:
    # utilisation vs dense = (dense kernel time x density) / block-sparse kernel time: 1.0 when the
    # kept blocks run as fast as the dense GEMM does
    s = claim.setup
    m, n, k, dtype = s["m"], s["n"], s["k"], s["dtype"]
    dense = float(estimate_gemm(s["hw"], m, n, k, dtype, "dense").kernel_time_s.iloc[0])
    points = {}
    for block in s["blocks"]:
        for sparsity in s["sparsity"]:
            row = estimate_gemm(s["hw"], m, n, k, dtype, f"block:{block}:{sparsity:g}").iloc[0]
            points[block, sparsity] = dense * (1.0 - sparsity) / float(row.kernel_time_s)
    shown = [points[s["block"], x] for x in s["sparsity"]]
    value = sum(shown) / len(shown)
    listed = "; ".join(f"{b}x{b}: " + "/".join(f"{points[b, x]:.2f}" for x in s["sparsity"]) for b in s["blocks"])
    return Check(value, f"{load_hw(s['hw']).id} M=N=K={m} {dtype}, kernel time dense x density / block-sparse, "
                        f"at {'/'.join(f'{x:.0%}' for x in s['sparsity'])} sparsity: {listed} (mean at "
                        f"{s['block']}x{s['block']} shown)",
                 arithmetic=f"dense {dense * 1e6:.1f} us; {s['block']}x{s['block']} blocks: mean of "
                            + ", ".join(f"{v:.3f}" for v in shown) + f" = {value:.3f}")

"""The measured cases: what each suite runs, as plain data (no torch here).

A ``Case`` names one timed kernel call. Building a suite only builds these records, so
``--dry-run --suite gpu-core`` works on a machine without CUDA or even without torch.

GEMM convention (same as the simulator): y = x·Wᵀ, x is M×K (tokens), W is N×K (weights);
decode is small M. FLOP means 2 × multiply-accumulate of the dense-equivalent work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

KERNEL_CLASSES = (
    "copy", "dense", "weight-only", "2:4", "csr", "bsr", "attention-prefill", "attention-decode", "layer",
)
# Weight storage of weight-only quantized GEMMs (the activations and the math keep ``dtype``).
WEIGHT_DTYPES = ("int8", "int4")

# Bytes per element of the dtype names used in the CSV.
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2, "fp8e4m3": 1, "int8": 1}


@dataclass(frozen=True)
class Case:
    """One measured kernel call; the fields become CSV columns (None -> empty cell)."""

    group: str  # unit of budget and progress, e.g. "dense-bf16"
    kernel_class: str
    op: str
    backend: str  # what was requested; the kernel that ran is in kernel_names
    dtype: str
    m: int | None = None
    n: int | None = None
    k: int | None = None
    density: float | None = None
    block_size: int | None = None
    weight_dtype: str | None = None  # weight-only rows: how W is stored (int8, int4); x and y keep dtype
    group_size: int | None = None  # weight-only rows: input elements per scale (None: one per output row)
    phase: str | None = None  # "prefill" or "decode" for attention and layer
    batch: int | None = None
    heads: int | None = None
    kv_heads: int | None = None
    head_dim: int | None = None
    q_len: int | None = None
    kv_len: int | None = None
    causal: bool | None = None
    model_hidden: int | None = None
    model_ffn: int | None = None
    bytes_copied: int | None = None
    shape_source: str = ""
    timing: str = "events"  # "events" (device time, queue pre-filled) or "wall" (host, sync each rep)
    weight_key: str = field(default="", compare=False)  # cases with one key share prepared weights

    def __post_init__(self):
        if self.kernel_class not in KERNEL_CLASSES:
            raise ValueError(f"unknown kernel_class {self.kernel_class!r}; known: {KERNEL_CLASSES}")
        if self.dtype not in DTYPE_BYTES:
            raise ValueError(f"unknown dtype {self.dtype!r}; known: {sorted(DTYPE_BYTES)}")
        if (self.kernel_class == "weight-only") != (self.weight_dtype is not None):
            raise ValueError("weight_dtype is set exactly on weight-only cases")
        if self.weight_dtype is not None and self.weight_dtype not in WEIGHT_DTYPES:
            raise ValueError(f"unknown weight_dtype {self.weight_dtype!r}; known: {WEIGHT_DTYPES}")

    @property
    def case_id(self) -> str:
        parts = []
        for name, short in (("m", "m"), ("n", "n"), ("k", "k"), ("density", "d"), ("block_size", "b"),
                            ("weight_dtype", "w"), ("group_size", "g"),
                            ("batch", "B"), ("heads", "h"), ("kv_heads", "kvh"), ("head_dim", "hd"),
                            ("q_len", "q"), ("kv_len", "kv"), ("bytes_copied", "bytes")):
            value = getattr(self, name)
            if value is not None:
                parts.append(f"{short}{value:g}" if isinstance(value, float) else f"{short}{value}")
        if self.causal:
            parts.append("causal")
        tail = "" if self.timing == "events" else f"/{self.timing}"
        return f"{self.group}/{self.op}/{self.backend}/{self.dtype}/{'-'.join(parts)}{tail}"


def case_flops(case: Case) -> float:
    """Dense-equivalent FLOP (2 × MAC) of one call; 0 for copies.

    Sparse GEMMs count the dense work 2·M·N·K (useful work is that × density). Causal
    attention counts only the visible (query, key) pairs, queries aligned to the end of the keys.
    """
    if case.kernel_class == "copy":
        return 0.0
    if case.kernel_class in ("dense", "weight-only", "2:4", "csr", "bsr"):
        return 2.0 * case.m * case.n * case.k
    attention = _attention_flops(case)
    if case.kernel_class == "layer":
        tokens = case.batch * case.q_len
        hidden, ffn, head_dim = case.model_hidden, case.model_ffn, case.head_dim
        qkv_out = (case.heads + 2 * case.kv_heads) * head_dim
        macs_per_token = hidden * qkv_out + case.heads * head_dim * hidden + hidden * 2 * ffn + ffn * hidden
        return 2.0 * tokens * macs_per_token + attention
    return attention


def _attention_flops(case: Case) -> float:
    q_len, kv_len = case.q_len, case.kv_len
    if case.causal:
        visible_pairs = q_len * (kv_len - q_len) + q_len * (q_len + 1) / 2
    else:
        visible_pairs = q_len * kv_len
    # QKᵀ and P·V: two GEMMs of head_dim MACs per visible pair, per query head.
    return 4.0 * case.batch * case.heads * case.head_dim * visible_pairs


def rough_seconds(case: Case, device: str) -> float:
    """A coarse guess of one call's time, used only to size suites and estimate progress."""
    cuda = device == "cuda"
    bandwidth_Bps = 4.0e12 if cuda else 40e9
    flops_per_s = {"fp32": 50e12 if cuda else 150e9, "bf16": 700e12 if cuda else 300e9,
                   "fp16": 700e12 if cuda else 300e9, "fp8e4m3": 1300e12, "int8": 1300e12}[case.dtype]
    elem = DTYPE_BYTES[case.dtype]
    flops = case_flops(case)
    if case.kernel_class == "copy":
        return 2 * case.bytes_copied / bandwidth_Bps + 5e-6
    if case.kernel_class in ("csr", "bsr"):
        # Sparse libraries run far below the dense peak; useful work only.
        flops *= case.density * (20 if case.kernel_class == "csr" else 4)
        weight_bytes = case.n * case.k * case.density * (elem + 4)
    elif case.kernel_class == "2:4":
        flops /= 1.6
        weight_bytes = case.n * case.k * elem * 0.56
    elif case.kernel_class in ("dense",):
        weight_bytes = case.n * case.k * elem
    elif case.kernel_class == "weight-only":
        flops *= 3  # dequantizing kernels run well below the dense peak at large M
        weight_bytes = case.n * case.k * (1.0 if case.weight_dtype == "int8" else 0.5)
    else:
        weight_bytes = 2 * case.batch * case.kv_heads * case.kv_len * case.head_dim * elem
        if case.kernel_class == "layer":
            weight_bytes += case.model_hidden * (3 * case.model_ffn + 3 * case.model_hidden) * elem
    act_bytes = (case.m or 0) * ((case.k or 0) + (case.n or 0)) * elem
    return max(flops / flops_per_s, (weight_bytes + act_bytes) / bandwidth_Bps) + (8e-6 if cuda else 20e-6)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    device: str  # "cpu", "cuda" or "any" (then --device decides)
    budget_s: float
    target_s: float  # measured time per case the rep count aims at
    min_reps: int
    max_reps: int
    build: Callable[[str], list[Case]]  # device -> cases, in run order
    group_weights: dict[str, float] = field(default_factory=dict)  # share of the budget, default 1


# ---------------------------------------------------------------------------------------------
# Shapes. (N, K) of y = x·Wᵀ for the projections of common LLaMA models; fused QKV and gate/up
# are listed because serving stacks (vLLM, TensorRT-LLM) fuse them. Source: the models' config.json.
LLM_SHAPES: dict[tuple[int, int], str] = {
    (4096, 4096): "llama-2-7b:q/k/v/o;llama-3-8b:q/o",
    (12288, 4096): "llama-2-7b:qkv-fused",
    (11008, 4096): "llama-2-7b:gate/up",
    (4096, 11008): "llama-2-7b:down",
    (6144, 4096): "llama-3-8b:qkv-fused",
    (1024, 4096): "llama-3-8b:k/v",
    (14336, 4096): "llama-3-8b:gate/up",
    (28672, 4096): "llama-3-8b:gate-up-fused",
    (4096, 14336): "llama-3-8b:down",
    (5120, 5120): "llama-2-13b:q/k/v/o",
    (13824, 5120): "llama-2-13b:gate/up",
    (5120, 13824): "llama-2-13b:down",
    (8192, 8192): "llama-2-70b/llama-3-70b:q/o",
    (10240, 8192): "llama-2-70b/llama-3-70b:qkv-fused",
    (1024, 8192): "llama-2-70b/llama-3-70b:k/v",
    (28672, 8192): "llama-2-70b/llama-3-70b:gate/up",
    (8192, 28672): "llama-2-70b/llama-3-70b:down",
}
POW2_SHAPES: dict[tuple[int, int], str] = {
    (1024, 1024): "pow2", (2048, 2048): "pow2", (16384, 16384): "pow2",
}
GPU_M = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
GPU_DENSITIES = (0.5, 0.3, 0.1, 0.05, 0.01)
# sdpa backends that take enable_gqa (query heads != KV heads) in torch 2.11: the memory-efficient
# kernel refuses unequal head counts (sdp_utils.cpp), so it only appears in the smoke suite, with MHA.
GQA_BACKENDS = ("flash", "cudnn")
# LLaMA-3-8B, from its config.json: hidden 4096, 32 heads, 8 KV heads, head_dim 128, FFN 14336.
LLAMA3_8B = dict(model_hidden=4096, model_ffn=14336, heads=32, kv_heads=8, head_dim=128)


def _gemm(group, kernel_class, op, backend, dtype, m, n, k, source="", density=None, block_size=None,
          weight_dtype=None, group_size=None):
    density = 1.0 if density is None else density
    weight_key = f"{group}|{op}|{backend}|{dtype}|{n}x{k}|{density}|{block_size}|{weight_dtype}|{group_size}"
    return Case(group=group, kernel_class=kernel_class, op=op, backend=backend, dtype=dtype,
                m=m, n=n, k=k, density=density, block_size=block_size, weight_dtype=weight_dtype,
                group_size=group_size, shape_source=source, weight_key=weight_key)


def _weight_only(group, op, backend, m, n, k, weight_dtype, group_size=None, source="", dtype="bf16"):
    """A weight-only quantized GEMM: W stored as int8/int4 (+ scales), x and y in ``dtype``.

    ops: ``_weight_int8pack_mm`` (int8, one scale per output row; aten's CPU kernel),
    ``_weight_int4pack_mm`` (int4 with a bf16 scale and zero per ``group_size`` inputs: tinygemm on
    CUDA, the _for_cpu kernel on CPU), ``dequant_linear`` (gpt-fast's int8 path: F.linear(x,
    W.to(x.dtype)) * scales under torch.compile, which fuses the dequantization into the GEMV).
    """
    return _gemm(group, "weight-only", op, backend, dtype, m, n, k, source or _shape_source(n, k),
                 weight_dtype=weight_dtype, group_size=group_size)


def _copy(group, backend, nbytes, dtype="bf16"):
    return Case(group=group, kernel_class="copy", op="copy_", backend=backend, dtype=dtype,
                bytes_copied=nbytes, shape_source="ceiling")


def _attention(group, backend, dtype, batch, heads, kv_heads, head_dim, q_len, kv_len):
    decode = q_len == 1
    return Case(group=group, kernel_class="attention-decode" if decode else "attention-prefill",
                op="sdpa", backend=backend, dtype=dtype, phase="decode" if decode else "prefill",
                batch=batch, heads=heads, kv_heads=kv_heads, head_dim=head_dim,
                q_len=q_len, kv_len=kv_len, causal=not decode)


def _layer(group, dtype, batch, q_len, kv_len, timing, dims, source):
    phase = "decode" if q_len == 1 else "prefill"
    return Case(group=group, kernel_class="layer", op="decoder_layer", backend="eager", dtype=dtype,
                m=batch * q_len, phase=phase, batch=batch, q_len=q_len, kv_len=kv_len,
                causal=phase == "prefill", shape_source=source, timing=timing, **dims)


def _shape_source(n, k):
    return LLM_SHAPES.get((n, k)) or POW2_SHAPES.get((n, k), "")


# ---------------------------------------------------------------------------------------------
def build_smoke(device: str) -> list[Case]:
    """Tiny cases of every code path that works on CPU; on CUDA also the GPU-only paths."""
    g = "smoke"
    cases = [
        _copy(g, "torch", 4 * 2**20, "fp32"),
        _gemm(g, "dense", "linear", "default", "fp32", 1, 256, 256),
        _gemm(g, "dense", "linear", "default", "fp32", 16, 256, 256),
        _gemm(g, "dense", "linear", "default", "fp32", 64, 512, 256),
        _gemm(g, "csr", "sparse.mm", "default", "fp32", 16, 256, 256, density=0.1),
        _gemm(g, "bsr", "sparse.mm", "default", "fp32", 16, 256, 256, density=0.25, block_size=16),
        _attention(g, "default", "fp32", 1, 4, 2, 32, 64, 64),
        _attention(g, "default", "fp32", 2, 4, 2, 32, 1, 128),
        _layer(g, "fp32", 1, 1, 64, "events",
               dict(model_hidden=256, model_ffn=512, heads=4, kv_heads=2, head_dim=64), "tiny"),
        _weight_only(g, "_weight_int4pack_mm", "default", 4, 256, 256, "int4", 32),
    ]
    if device == "cpu":
        cases.append(_weight_only(g, "_weight_int8pack_mm", "default", 4, 256, 256, "int8"))
    if device == "cuda":
        # One tiny case per GPU-only path, so a pre-flight run shows what works in seconds.
        cases += [
            _gemm(g, "dense", "linear", "cublas", "bf16", 16, 256, 256),
            _gemm(g, "dense", "_scaled_mm", "cublas", "fp8e4m3", 16, 256, 256),
            _gemm(g, "dense", "_int_mm", "cublas", "int8", 32, 256, 256),
            _gemm(g, "2:4", "linear", "cusparselt", "bf16", 64, 256, 256, density=0.5),
            _gemm(g, "2:4", "linear", "cutlass", "bf16", 64, 256, 256, density=0.5),
            _gemm(g, "2:4", "_cslt_sparse_mm", "cusparselt", "fp8e4m3", 64, 256, 256, density=0.5),
            _gemm(g, "csr", "sparse.mm", "cusparse", "bf16", 16, 256, 256, density=0.1),
            _gemm(g, "bsr", "sparse.mm", "default", "bf16", 16, 256, 256, density=0.25, block_size=32),
            _gemm(g, "bsr", "bsr_dense_mm", "triton", "bf16", 16, 256, 256, density=0.25, block_size=32),
        ]
        cases += [_attention(g, b, "bf16", 1, 8, 2, 128, 1, 1024) for b in GQA_BACKENDS]
        cases += [_attention(g, b, "bf16", 1, 8, 2, 128, 256, 256) for b in GQA_BACKENDS]
        cases += [_attention(g, "efficient", "bf16", 1, 8, 8, 128, q, kv) for q, kv in ((1, 1024), (256, 256))]
        cases.append(_layer(g, "bf16", 1, 1, 256, "wall",
                            dict(model_hidden=256, model_ffn=512, heads=4, kv_heads=2, head_dim=64), "tiny"))
        # Last: its first torch.compile may take most of a minute; a watchdog exit here loses nothing.
        cases.append(_weight_only(g, "dequant_linear", "inductor", 1, 256, 256, "int8"))
    return cases


CPU_SHAPES = ((512, 512), (1024, 1024), (2048, 2048), (4096, 4096),
              (1376, 512), (512, 1376), (2752, 1024), (1024, 2752))
CPU_CSR_SHAPES = ((1024, 1024), (2048, 2048), (4096, 4096), (2752, 1024), (1024, 2752))
CPU_M = (1, 8, 64, 512)
CPU_DENSITIES = (0.5, 0.3, 0.1, 0.05, 0.01)


def build_cpu(device: str) -> list[Case]:
    """Dense GEMM/GEMV, CSR SpMM and the two ceilings on this machine's CPU (~4 minutes on 2 cores)."""
    cases = [_copy("ceiling", "torch", nbytes, "fp32") for nbytes in (64 * 2**20, 256 * 2**20)]
    cases += [_gemm("ceiling", "dense", "linear", "cpu", dtype, s, s, s, "ceiling")
              for dtype, s in (("fp32", 2048), ("fp32", 3072), ("bf16", 2048), ("bf16", 4096))]
    cases += [_gemm("dense-fp32", "dense", "linear", "cpu", "fp32", m, n, k)
              for n, k in CPU_SHAPES for m in CPU_M]
    cases += [_gemm("dense-bf16", "dense", "linear", "cpu", "bf16", m, n, k)
              for n, k in ((1024, 1024), (4096, 4096), (2752, 1024)) for m in CPU_M]
    cases += [_gemm("csr-fp32", "csr", "sparse.mm", "cpu", "fp32", m, n, k, density=d)
              for n, k in CPU_CSR_SHAPES for d in CPU_DENSITIES for m in CPU_M]
    cases += [_gemm("csr-bf16", "csr", "sparse.mm", "cpu", "bf16", m, 1024, 1024, density=d)
              for d in CPU_DENSITIES for m in CPU_M]
    weight_only_shapes = ((1024, 1024), (4096, 4096), (2752, 1024), (1024, 2752))
    cases += [_weight_only("weight-only-cpu", op, "cpu", m, n, k, wdt, g)
              for op, wdt, g in (("_weight_int8pack_mm", "int8", None), ("_weight_int4pack_mm", "int4", 32),
                                 ("_weight_int4pack_mm", "int4", 128))
              for n, k in weight_only_shapes for m in CPU_M[:3] if g is None or k % g == 0]
    return cases


def build_gpu_core(device: str) -> list[Case]:
    """Ceilings, dense/2:4/CSR/BSR GEMMs over LLM shapes, attention and one decoder layer (~6 min on H200).

    Groups run in this order, safest first, so a crash late in the run loses the least.
    """
    cases = [_copy("ceiling", "torch", nbytes) for nbytes in (256 * 2**20, 2**30, 4 * 2**30)]
    for dtype, op, s in (("bf16", "linear", 8192), ("bf16", "linear", 16384), ("fp16", "linear", 16384),
                         ("fp8e4m3", "_scaled_mm", 8192), ("fp8e4m3", "_scaled_mm", 16384),
                         ("int8", "_int_mm", 16384)):
        cases.append(_gemm("ceiling", "dense", op, "cublas", dtype, s, s, s, "ceiling"))

    shapes = {**LLM_SHAPES, **POW2_SHAPES}
    cases += [_gemm("dense-bf16", "dense", "linear", "cublas", "bf16", m, n, k, src)
              for (n, k), src in shapes.items() for m in GPU_M]

    for b in (1, 8, 16):
        for heads in (32, 64):
            for kv_len in (1024, 4096, 16384, 32768, 65536, 131072):
                for backend in ("default",) + GQA_BACKENDS:
                    cases.append(_attention("attention-decode", backend, "bf16", b, heads, 8, 128, 1, kv_len))
    for heads in (32, 64):
        for length in (512, 768, 1024, 1536, 2048, 3072, 4096, 6144, 8192, 16384):
            for backend in ("default",) + GQA_BACKENDS:
                cases.append(_attention("attention-prefill", backend, "bf16", 1, heads, 8, 128, length, length))

    # Enough layer shapes that the held-out quarter is more than one row: decode over batch and
    # context, prefill over length; each timed on the device (events) and from the host (wall).
    layer_shapes = [(1, 1, 1024), (1, 1, 4096), (1, 1, 16384), (4, 1, 4096), (16, 1, 4096), (16, 1, 16384),
                    (64, 1, 2048), (1, 128, 128), (1, 512, 512), (1, 2048, 2048), (1, 4096, 4096), (4, 512, 512)]
    for timing in ("events", "wall"):
        cases += [_layer("layer", "bf16", b, q, kv, timing, LLAMA3_8B, "llama-3-8b") for b, q, kv in layer_shapes]

    cases += [_gemm("dense-fp8", "dense", "_scaled_mm", "cublas", "fp8e4m3", m, n, k, src)
              for (n, k), src in shapes.items() for m in GPU_M]
    # torch._int_mm needs M > 16 and K, N multiples of 8.
    cases += [_gemm("dense-int8", "dense", "_int_mm", "cublas", "int8", m, n, k, src)
              for (n, k), src in shapes.items() for m in GPU_M if m > 16]
    fp16_shapes = [(4096, 4096), (11008, 4096), (4096, 11008), (8192, 8192), (28672, 8192), (8192, 28672)]
    cases += [_gemm("dense-fp16", "dense", "linear", "cublas", "fp16", m, n, k, LLM_SHAPES[(n, k)])
              for n, k in fp16_shapes for m in GPU_M]

    # Weight-only int4 (tinygemm, what gpt-fast's int4 path calls): N % 8 == 0, K % 128 == 0.
    wo_shapes = [(4096, 4096), (11008, 4096), (4096, 11008), (14336, 4096), (4096, 14336), (8192, 8192),
                 (28672, 8192), (8192, 28672)]
    cases += [_weight_only("weight-only-int4", "_weight_int4pack_mm", "tinygemm", m, n, k, "int4", g)
              for g in (32, 128) for n, k in wo_shapes for m in (1, 2, 4, 8, 16, 32, 64, 128, 512)]

    cases.append(_gemm("2:4-cusparselt", "2:4", "linear", "cusparselt", "bf16", 16384, 16384, 16384, "ceiling", density=0.5))
    cases += [_gemm("2:4-cusparselt", "2:4", "linear", "cusparselt", "bf16", m, n, k, src, density=0.5)
              for (n, k), src in LLM_SHAPES.items() for m in GPU_M]
    # torch's CUTLASS 2:4 kernels are built for sm80 and refuse other architectures; a few cases
    # record whether that holds on this GPU.
    cases += [_gemm("2:4-cutlass", "2:4", "linear", "cutlass", "bf16", m, n, k, LLM_SHAPES[(n, k)], density=0.5)
              for n, k in ((4096, 4096), (28672, 8192)) for m in GPU_M]
    fp8_24_shapes = [(4096, 4096), (14336, 4096), (8192, 8192), (28672, 8192)]
    # fp8 2:4 through _cslt_sparse_mm, which does not pad: cuSPARSELt wants at least 16 dense rows.
    cases += [_gemm("2:4-fp8", "2:4", "_cslt_sparse_mm", "cusparselt", "fp8e4m3", m, n, k, LLM_SHAPES[(n, k)],
                    density=0.5)
              for n, k in fp8_24_shapes for m in GPU_M if m >= 16]

    csr_shapes = [(4096, 4096), (11008, 4096), (4096, 11008), (8192, 8192), (28672, 8192)]
    csr_m = (1, 8, 32, 128, 512, 2048)
    cases += [_gemm("csr-bf16", "csr", "sparse.mm", "cusparse", "bf16", m, n, k, LLM_SHAPES[(n, k)], density=d)
              for n, k in csr_shapes for d in GPU_DENSITIES for m in csr_m]
    cases += [_gemm("csr-fp32", "csr", "sparse.mm", "cusparse", "fp32", m, 4096, 4096, LLM_SHAPES[(4096, 4096)], density=d)
              for d in GPU_DENSITIES for m in csr_m]

    bsr_shapes = [(4096, 4096), (11008, 4096), (8192, 8192)]
    bsr_densities = (0.5, 0.1, 0.05)
    cases += [_gemm("bsr-bf16", "bsr", "sparse.mm", "default", "bf16", m, n, k, LLM_SHAPES[(n, k)], density=d, block_size=b)
              for b in (16, 32, 64) for n, k in bsr_shapes for d in bsr_densities for m in (1, 16, 128, 512, 2048)]
    # torch.sparse._triton_ops.bsr_dense_mm needs M (the dense operand's columns) divisible by 16.
    cases += [_gemm("bsr-triton", "bsr", "bsr_dense_mm", "triton", "bf16", m, n, k, LLM_SHAPES[(n, k)], density=d, block_size=b)
              for b in (16, 32, 64) for n, k in bsr_shapes[:2] for d in bsr_densities for m in (16, 128, 512, 2048)]
    cases += [_gemm("bsr-fp32", "bsr", "sparse.mm", "default", "fp32", m, 4096, 4096, LLM_SHAPES[(4096, 4096)], density=d, block_size=b)
              for b in (16, 32, 64) for d in bsr_densities for m in (1, 16, 128, 512)]
    # Last, because it compiles (Triton through torch.compile): gpt-fast's int8 weight-only GEMV.
    # Static shapes compile once each (with coordinate-descent tuning, seconds per shape), so few
    # shapes, and only M=1, the batch-1 decode GEMV gpt-fast measures: there inductor fuses the
    # dequantization into one Triton reduction. From M=2 it writes a bf16 copy of W and calls
    # cuBLAS, a different kernel (5 bytes moved per weight) that one weight-only model cannot share.
    cases += [_weight_only("weight-only-int8", "dequant_linear", "inductor", 1, n, k, "int8")
              for n, k in wo_shapes[:6]]
    return cases


SUITES: dict[str, Suite] = {
    "smoke": Suite("smoke", "tiny cases of every code path, a few seconds (tests, GPU pre-flight)",
                   device="any", budget_s=120, target_s=0.005, min_reps=5, max_reps=50, build=build_smoke),
    "cpu": Suite("cpu", "dense GEMM/GEMV, CSR SpMM, copy and matmul ceilings on the CPU (~4 min on 2 cores)",
                 device="cpu", budget_s=240, target_s=0.25, min_reps=7, max_reps=500, build=build_cpu,
                 group_weights={"ceiling": 1.0, "dense-fp32": 1.0, "dense-bf16": 0.5,
                                "csr-fp32": 2.5, "csr-bf16": 0.7, "weight-only-cpu": 1.0}),
    "gpu-core": Suite("gpu-core", "ceilings, dense/fp8/int8/2:4/CSR/BSR GEMMs, attention, one layer (~6 min on H200)",
                      device="cuda", budget_s=420, target_s=0.01, min_reps=10, max_reps=200,
                      build=build_gpu_core,
                      group_weights={"ceiling": 0.4, "dense-bf16": 1.0, "attention-decode": 0.5,
                                     "attention-prefill": 0.4, "layer": 0.4, "dense-fp8": 0.9,
                                     "dense-int8": 0.6, "dense-fp16": 0.4, "2:4-cusparselt": 0.9,
                                     "2:4-cutlass": 0.2, "2:4-fp8": 0.3, "csr-bf16": 1.0,
                                     "csr-fp32": 0.3, "bsr-bf16": 0.7, "bsr-triton": 0.5,
                                     "bsr-fp32": 0.3, "weight-only-int4": 0.4,
                                     "weight-only-int8": 1.0}),
}


def build_suite(name: str, device: str) -> list[Case]:
    """The cases of suite ``name`` in run order; checks case ids are unique."""
    cases = SUITES[name].build(device)
    seen = set()
    for case in cases:
        if case.case_id in seen:
            raise AssertionError(f"duplicate case id {case.case_id}")
        seen.add(case.case_id)
    return cases


def groups_in_order(cases: list[Case]) -> list[str]:
    return list(dict.fromkeys(c.group for c in cases))


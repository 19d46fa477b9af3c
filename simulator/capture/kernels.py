"""Build the operands of a case and a callable that runs one rep of it (torch only).

Data are random and never zero (magnitudes in [0.5, 1.5), random sign), so no kernel can
take a shortcut on zeros. Sparse weights get a mask at the requested density: unstructured
random for CSR, 2 kept of every 4 along K for 2:4, random whole blocks for BSR.

Operands are rotated: ``n_sets`` copies are made so that one pass over them exceeds twice the
last-level cache (GPU L2, CPU L3), and rep i uses copy i % n_sets. Then no rep finds its
operands in the cache left by the previous one, as in a real model where each layer has its
own weights.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from .suites import Case

TORCH_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16,
                "fp8e4m3": getattr(torch, "float8_e4m3fn", None), "int8": torch.int8}

MAX_SETS = 64  # 1024x1024 bf16 weights (2 MiB) need 50 sets to pass 2x a 50 MB L2


@dataclass
class Prepared:
    """What the timer needs: ``run(i)`` does one rep on rotation set ``i % n_sets``."""

    run: Callable[[int], object]
    n_sets: int
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext
    nnz: int | None = None
    keep: list = field(default_factory=list)  # tensors that must stay alive while timing


class WeightCache:
    """Keeps the weight sets of the last ``weight_key`` so cases that differ only in M reuse them."""

    def __init__(self):
        self.key = None
        self.sets: list = []

    def get(self, key: str, make_first: Callable[[], object]) -> list:
        if key != self.key:
            self.clear()  # free the old weights before building new ones
            self.sets = [make_first()]
            self.key = key
        return self.sets

    def clear(self):
        self.key, self.sets = None, []


def rotation_sets(set_bytes: int, cache_bytes: int, cap_bytes: int) -> int:
    """How many operand copies to rotate through: enough to exceed 2× the cache, within the cap."""
    wanted = math.ceil(2 * cache_bytes / max(set_bytes, 1))
    affordable = max(1, cap_bytes // max(set_bytes, 1))
    return int(max(1, min(wanted, affordable, MAX_SETS)))


def nonzero_random(shape, dtype: str, device) -> torch.Tensor:
    """Uniform magnitudes in [0.5, 1.5) with a random sign; never zero."""
    if dtype == "int8":
        values = torch.randint(1, 8, shape, device=device, dtype=torch.int8)
        return torch.where(torch.rand(shape, device=device) < 0.5, -values, values)
    work = torch.float32 if dtype in ("fp32", "fp8e4m3") else TORCH_DTYPES[dtype]
    u = torch.empty(shape, device=device, dtype=work).uniform_(-1.0, 1.0)
    u = torch.where(u >= 0, u + 0.5, u - 0.5)
    return u.to(TORCH_DTYPES[dtype])


def unstructured_mask(n: int, k: int, density: float, device) -> torch.Tensor:
    return torch.rand(n, k, device=device) < density


def two_four_mask(n: int, k: int, device) -> torch.Tensor:
    """Keep 2 random positions of every 4 consecutive along K."""
    keep = torch.rand(n, k // 4, 4, device=device).argsort(dim=-1)[..., :2]
    mask = torch.zeros(n, k // 4, 4, dtype=torch.bool, device=device)
    return mask.scatter_(-1, keep, True).view(n, k)


def block_mask(n: int, k: int, block: int, density: float, device) -> torch.Tensor:
    """Whole block×block tiles kept at random with probability ``density`` (at least one)."""
    blocks = torch.rand(n // block, k // block, device=device) < density
    blocks.view(-1)[0] = True
    return blocks.repeat_interleave(block, 0).repeat_interleave(block, 1)


def tensor_bytes(t) -> int:
    """Bytes held by a dense, CSR, BSR or 2:4 tensor, or a tuple of them (quantized weight + scales)."""
    if isinstance(t, tuple):
        return sum(tensor_bytes(x) for x in t)
    if t.layout in (torch.sparse_csr, torch.sparse_bsr):
        return sum(x.numel() * x.element_size() for x in (t.values(), t.col_indices(), t.crow_indices()))
    packed = getattr(t, "packed", None)
    if packed is not None:  # SparseSemiStructuredTensor: values and metadata (meta is None for cuSPARSELt)
        meta = getattr(t, "meta", None)
        return packed.numel() * packed.element_size() + (0 if meta is None else meta.numel() * meta.element_size())
    return t.numel() * t.element_size()


def prepare(case: Case, device: str, cache: WeightCache, cache_bytes: int, cap_bytes: int) -> Prepared:
    """Operands and a one-rep callable for ``case`` on ``device``."""
    if case.kernel_class == "copy":
        return _prepare_copy(case, device, cache_bytes, cap_bytes)
    if case.kernel_class in ("dense", "weight-only", "2:4", "csr", "bsr"):
        return _prepare_gemm(case, device, cache, cache_bytes, cap_bytes)
    if case.kernel_class.startswith("attention"):
        return _prepare_attention(case, device, cache_bytes, cap_bytes)
    if case.kernel_class == "layer":
        return _prepare_layer(case, device)
    raise ValueError(f"no preparation for kernel_class {case.kernel_class!r}")


def _prepare_copy(case, device, cache_bytes, cap_bytes):
    numel = case.bytes_copied // TORCH_DTYPES[case.dtype].itemsize
    n_sets = rotation_sets(2 * case.bytes_copied, cache_bytes, cap_bytes)
    srcs = [nonzero_random((numel,), case.dtype, device) for _ in range(n_sets)]
    dsts = [torch.empty_like(s) for s in srcs]
    return Prepared(run=lambda i: dsts[i % n_sets].copy_(srcs[i % n_sets]), n_sets=n_sets, keep=srcs + dsts)


# ---- GEMMs -------------------------------------------------------------------------------------
def _make_weight(case: Case, device: str):
    """One weight set for a GEMM case: dense N×K, or its sparse form."""
    n, k, dt = case.n, case.k, case.dtype
    if case.kernel_class == "dense":
        return nonzero_random((n, k), dt, device)
    if case.kernel_class == "2:4":
        work = "bf16" if dt == "fp8e4m3" else dt
        w = nonzero_random((n, k), work, device) * two_four_mask(n, k, device)
        w = w.to(TORCH_DTYPES[dt])
        return _to_semi_structured(w, force_cutlass=case.backend == "cutlass")
    if case.kernel_class == "csr":
        return (nonzero_random((n, k), dt, device) * unstructured_mask(n, k, case.density, device)).to_sparse_csr()
    if case.kernel_class == "bsr":
        b = case.block_size
        w = nonzero_random((n, k), dt, device) * block_mask(n, k, b, case.density, device)
        return w.to_sparse_bsr((b, b))
    if case.kernel_class == "weight-only":
        return _make_quantized_weight(case, device)
    raise ValueError(case.kernel_class)


INT4_INNER_K_TILES = {"cuda": 8, "cpu": 2}  # gpt-fast packs with 8 on CUDA; the CPU kernel takes 2


def _make_quantized_weight(case: Case, device: str) -> tuple:
    """(packed W, scales) of a weight-only case; scales in x's dtype, magnitudes near 1/K."""
    n, k, act = case.n, case.k, TORCH_DTYPES[case.dtype]
    if case.weight_dtype == "int8":
        w = nonzero_random((n, k), "int8", device)
        scales = (torch.rand(n, device=device) + 0.5).div_(k).to(act)
        return w, scales
    # int4: values 0..15 around a zero point of 8, one (scale, zero) pair per group_size inputs.
    if device == "cuda":
        nibbles = torch.randint(0, 256, (n, k // 2), device=device, dtype=torch.uint8)
        packed = torch._convert_weight_to_int4pack(nibbles, INT4_INNER_K_TILES["cuda"])
    else:
        values = torch.randint(0, 16, (n, k), device=device, dtype=torch.int32)
        packed = torch._convert_weight_to_int4pack_for_cpu(values, INT4_INNER_K_TILES["cpu"])
    groups = k // case.group_size
    scales_and_zeros = torch.empty(groups, n, 2, device=device, dtype=act)
    scales_and_zeros[..., 0].uniform_(0.5 / k, 1.5 / k)
    scales_and_zeros[..., 1].uniform_(-8.0 / k, 8.0 / k)
    return packed, scales_and_zeros


def _clone_weight(w):
    return tuple(x.clone() for x in w) if isinstance(w, tuple) else w.clone()


_COMPILED = {}


def _dequant_linear():
    """gpt-fast's WeightOnlyInt8Linear.forward, compiled once per process (inductor fuses the
    int8 -> x.dtype conversion and the scale into the GEMV/GEMM it generates)."""
    if "dequant_linear" not in _COMPILED:
        import torch._dynamo

        for name in ("cache_size_limit", "recompile_limit", "accumulated_cache_size_limit",
                     "accumulated_recompile_limit"):
            if hasattr(torch._dynamo.config, name):  # one compiled variant per shape must not hit the limit
                setattr(torch._dynamo.config, name, max(getattr(torch._dynamo.config, name), 256))

        import torch._inductor.config

        # gpt-fast's settings: coordinate-descent tuning of the generated kernels' block sizes.
        torch._inductor.config.coordinate_descent_tuning = True

        def dequant_linear(x, w, scales):
            return F.linear(x, w.to(dtype=x.dtype)) * scales

        _COMPILED["dequant_linear"] = torch.compile(dequant_linear, dynamic=False)
    return _COMPILED["dequant_linear"]


def _to_semi_structured(w: torch.Tensor, force_cutlass: bool):
    from torch.sparse import SparseSemiStructuredTensor, to_sparse_semi_structured

    # The backend is chosen at conversion time from this class flag; restore it afterwards.
    previous = SparseSemiStructuredTensor._FORCE_CUTLASS
    SparseSemiStructuredTensor._FORCE_CUTLASS = force_cutlass
    try:
        return to_sparse_semi_structured(w)
    finally:
        SparseSemiStructuredTensor._FORCE_CUTLASS = previous


def _weight_nnz(w) -> int | None:
    if getattr(w, "layout", None) in (torch.sparse_csr, torch.sparse_bsr):
        return int(w.values().numel())  # stored elements (whole blocks for BSR)
    return None


def _prepare_gemm(case: Case, device, cache: WeightCache, cache_bytes, cap_bytes) -> Prepared:
    m, n, k, dt = case.m, case.n, case.k, case.dtype
    weights = cache.get(case.weight_key, lambda: _make_weight(case, device))
    out_elem = 4 if dt == "int8" else (2 if dt == "fp8e4m3" else TORCH_DTYPES[dt].itemsize)
    act_bytes = m * k * TORCH_DTYPES[dt].itemsize + m * n * out_elem
    n_sets = rotation_sets(tensor_bytes(weights[0]) + act_bytes, cache_bytes, cap_bytes)
    while len(weights) < n_sets:
        # 2:4 tensors are converted afresh rather than cloned: clone support on the tensor
        # subclass varies across torch versions, conversion does not.
        weights.append(_make_weight(case, device) if case.kernel_class == "2:4" else _clone_weight(weights[0]))

    sparse_mm = case.kernel_class in ("csr", "bsr")
    # Sparse kernels compute Wᵀ-free: y_t (N×M) = W (N×K) @ x_t (K×M); x_t is stored K×M contiguous
    # so the timed call does no transpose copy.
    xs = [nonzero_random((k, m) if sparse_mm else (m, k), dt, device) for _ in range(n_sets)]
    run = _gemm_callable(case, weights, xs, n_sets, device)
    return Prepared(run=run, n_sets=n_sets, nnz=_weight_nnz(weights[0]), keep=xs)


def _gemm_callable(case: Case, ws: list, xs: list, n_sets: int, device):
    op = case.op
    if op == "linear":  # dense and 2:4 (the sparse weight subclass dispatches F.linear)
        return lambda i: F.linear(xs[i % n_sets], ws[i % n_sets])
    if op == "_cslt_sparse_mm":
        # fp8 2:4: cuSPARSELt directly (the sparse operand first, result N×M). torch._scaled_mm on
        # the 2:4 subclass would multiply the scales into an alpha that _cslt_sparse_mm reads with
        # .item(): a host sync per call that breaks the queue pre-fill. The scales are 1.
        packed = [w.packed for w in ws]
        return lambda i: torch._cslt_sparse_mm(packed[i % n_sets], xs[i % n_sets].t(), out_dtype=torch.bfloat16)
    if op == "_scaled_mm":
        # Per-tensor scales; mat2 must be column-major, which W.t() of a row-major N×K W is.
        one = torch.ones((), device=device, dtype=torch.float32)
        # Fast accumulation: the Hopper fp8 path inference stacks use (TensorRT-LLM, vLLM).
        return lambda i: torch._scaled_mm(xs[i % n_sets], ws[i % n_sets].t(), one, one,
                                          out_dtype=torch.bfloat16, use_fast_accum=True)
    if op == "_int_mm":
        return lambda i: torch._int_mm(xs[i % n_sets], ws[i % n_sets].t())
    if op == "_weight_int8pack_mm":
        return lambda i: torch._weight_int8pack_mm(xs[i % n_sets], *ws[i % n_sets])
    if op == "_weight_int4pack_mm":
        mm = torch._weight_int4pack_mm if device == "cuda" else torch._weight_int4pack_mm_for_cpu
        g = case.group_size
        return lambda i: mm(xs[i % n_sets], ws[i % n_sets][0], g, ws[i % n_sets][1])
    if op == "dequant_linear":
        fn = _dequant_linear()
        return lambda i: fn(xs[i % n_sets], *ws[i % n_sets])
    if op == "sparse.mm":
        return lambda i: torch.sparse.mm(ws[i % n_sets], xs[i % n_sets])
    if op == "bsr_dense_mm":
        from torch.sparse._triton_ops import bsr_dense_mm

        if bsr_dense_mm is None:  # defined only when triton imports
            raise RuntimeError("triton is not available, so torch.sparse._triton_ops.bsr_dense_mm is None")
        return lambda i: bsr_dense_mm(ws[i % n_sets], xs[i % n_sets])
    raise ValueError(f"unknown GEMM op {op!r}")


# ---- attention -----------------------------------------------------------------------------------
SDPA_BACKENDS = {"flash": "FLASH_ATTENTION", "efficient": "EFFICIENT_ATTENTION",
                 "cudnn": "CUDNN_ATTENTION", "math": "MATH"}


def sdpa_context(backend: str):
    """A context restricting scaled_dot_product_attention to one backend ("default": torch picks)."""
    if backend == "default":
        return contextlib.nullcontext
    from torch.nn.attention import SDPBackend, sdpa_kernel

    chosen = getattr(SDPBackend, SDPA_BACKENDS[backend])
    return lambda: sdpa_kernel([chosen])


def _prepare_attention(case: Case, device, cache_bytes, cap_bytes) -> Prepared:
    b, hq, hkv, d = case.batch, case.heads, case.kv_heads, case.head_dim
    elem = TORCH_DTYPES[case.dtype].itemsize
    set_bytes = elem * b * d * (2 * hq * case.q_len + 2 * hkv * case.kv_len)
    n_sets = rotation_sets(set_bytes, cache_bytes, cap_bytes)
    qs = [nonzero_random((b, hq, case.q_len, d), case.dtype, device) for _ in range(n_sets)]
    ks = [nonzero_random((b, hkv, case.kv_len, d), case.dtype, device) for _ in range(n_sets)]
    vs = [nonzero_random((b, hkv, case.kv_len, d), case.dtype, device) for _ in range(n_sets)]
    gqa = hq != hkv

    def run(i):
        j = i % n_sets
        return F.scaled_dot_product_attention(qs[j], ks[j], vs[j], is_causal=bool(case.causal), enable_gqa=gqa)

    return Prepared(run=run, n_sets=n_sets, context=sdpa_context(case.backend), keep=qs + ks + vs)


# ---- one decoder layer ---------------------------------------------------------------------------
def _rms_norm(x, weight, eps=1e-5):
    if hasattr(F, "rms_norm"):
        return F.rms_norm(x, (x.shape[-1],), weight, eps)
    return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + eps).to(x.dtype) * weight


def _prepare_layer(case: Case, device) -> Prepared:
    """A LLaMA decoder layer, eager: RMSNorm, fused QKV, SDPA (GQA), O, RMSNorm, fused gate/up, SiLU, down.

    RoPE is left out. Decode writes the new token's K/V into a cache of ``kv_len`` positions and
    attends over all of them; prefill attends causally over its own ``q_len`` tokens.
    """
    dt = case.dtype
    hidden, ffn, hq, hkv, d = case.model_hidden, case.model_ffn, case.heads, case.kv_heads, case.head_dim
    b, t = case.batch, case.q_len
    w = {
        "norm1": torch.ones(hidden, device=device, dtype=TORCH_DTYPES[dt]),
        "norm2": torch.ones(hidden, device=device, dtype=TORCH_DTYPES[dt]),
        "qkv": nonzero_random(((hq + 2 * hkv) * d, hidden), dt, device) / hidden**0.5,
        "o": nonzero_random((hidden, hq * d), dt, device) / (hq * d) ** 0.5,
        "gate_up": nonzero_random((2 * ffn, hidden), dt, device) / hidden**0.5,
        "down": nonzero_random((hidden, ffn), dt, device) / ffn**0.5,
    }
    x = nonzero_random((b, t, hidden), dt, device)
    decode = case.phase == "decode"
    if decode:
        k_cache = nonzero_random((b, hkv, case.kv_len, d), dt, device)
        v_cache = nonzero_random((b, hkv, case.kv_len, d), dt, device)

    def run(_i):
        h = _rms_norm(x, w["norm1"])
        q, k, v = F.linear(h, w["qkv"]).split([hq * d, hkv * d, hkv * d], dim=-1)
        q = q.view(b, t, hq, d).transpose(1, 2)
        k = k.view(b, t, hkv, d).transpose(1, 2)
        v = v.view(b, t, hkv, d).transpose(1, 2)
        if decode:
            k_cache[:, :, -1:].copy_(k)
            v_cache[:, :, -1:].copy_(v)
            k, v = k_cache, v_cache
        a = F.scaled_dot_product_attention(q, k, v, is_causal=not decode, enable_gqa=hq != hkv)
        x1 = x + F.linear(a.transpose(1, 2).reshape(b, t, hq * d), w["o"])
        gate, up = F.linear(_rms_norm(x1, w["norm2"]), w["gate_up"]).chunk(2, dim=-1)
        return x1 + F.linear(F.silu(gate) * up, w["down"])

    keep = list(w.values()) + [x] + ([k_cache, v_cache] if decode else [])
    return Prepared(run=run, n_sets=1, keep=keep)

"""Cost models for the non-GEMM operators of a transformer: attention, memory-bound
element-wise ops (norms, activations, residual adds, embedding gathers) and tensor-parallel
all-reduces. Each returns the same columns as gemm.gemm_columns so a model's op table is one
DataFrame: flops, bytes, compute/memory/overhead/time in seconds, and the bound.
"""

from __future__ import annotations

import numpy as np

from simulator.hardware import HardwareSpec

BOUNDS = ("compute", "memory", "overhead")


def _roofline(hw: HardwareSpec, flops, bytes_, peak, compute_eff, memory_eff):
    flops, bytes_ = np.broadcast_arrays(np.asarray(flops, float), np.asarray(bytes_, float))
    compute = flops / (peak * compute_eff) if peak else np.zeros_like(flops)
    memory = bytes_ / (hw.memory_bandwidth_bytes_per_s * memory_eff)
    overhead = np.full_like(flops, hw.launch_overhead_s)
    roof = np.maximum(compute, memory)
    bound = np.where(overhead > roof, 2, np.where(compute >= memory, 0, 1))
    return {
        "flops": flops, "bytes": bytes_, "compute_time_s": compute, "memory_time_s": memory,
        "overhead_s": overhead, "time_s": roof + overhead, "bound_code": bound,
    }


def causal_pairs(q_len, kv_len):
    """Visible (query, key) pairs when the q_len queries are the last of kv_len positions."""
    q_len, kv_len = np.asarray(q_len, float), np.asarray(kv_len, float)
    return q_len * (kv_len - q_len) + q_len * (q_len + 1.0) / 2.0


def attention_columns(hw: HardwareSpec, batch, heads, kv_heads, head_dim, q_len, kv_len, dtype: str,
                      kv_bytes_per_element: float, act_bytes_per_element: float, kv_fraction=1.0):
    """Fused attention (FlashAttention for prefill, FlashDecoding-style for decode): one formula
    over q_len, so prefill (q_len = kv_len) and decode (q_len = 1) are the same code path.

    FLOP = 4 x batch x heads x head_dim x visible pairs (QK^T and PV, causal). Bytes: Q in and O
    out once, K and V of the ``kv_fraction`` of the context that is kept (KV methods, issue 5)
    read once from HBM. Math runs on the tensor cores at the dense GEMM efficiency; the K/V
    stream at the HBM efficiency.
    """
    pairs = causal_pairs(q_len, kv_len) * kv_fraction
    flops = 4.0 * batch * heads * head_dim * pairs
    kv_bytes = 2.0 * batch * kv_heads * head_dim * kv_len * kv_fraction * kv_bytes_per_element
    qo_bytes = 2.0 * batch * heads * head_dim * q_len * act_bytes_per_element
    peak = hw.matrix_peak_flop_per_s(dtype) or hw.vector_peak_flop_per_s(dtype)
    eff = hw.efficiency.dense_matrix.value if hw.matrix_peak_flop_per_s(dtype) else hw.efficiency.vector.value
    out = _roofline(hw, flops, kv_bytes + qo_bytes, peak, eff, hw.efficiency.hbm.value)
    out["bytes_kv"] = np.broadcast_to(kv_bytes, out["flops"].shape).astype(float)
    return out


def memory_op_columns(hw: HardwareSpec, bytes_moved, flops=0.0):
    """A memory-bound kernel (norm, activation, residual add, gather) moving ``bytes_moved``."""
    peak = hw.vector_peak_flop_per_s("fp32")
    return _roofline(hw, flops, bytes_moved, peak, hw.efficiency.vector.value, hw.efficiency.hbm.value)


def allreduce_columns(hw: HardwareSpec, message_bytes, tp: int):
    """Tensor-parallel all-reduce of each GPU's ``message_bytes`` (ring over the spec's link)."""
    message_bytes = np.asarray(message_bytes, float)
    comm = np.asarray(hw.allreduce_time_s(message_bytes, tp), float)
    zeros = np.zeros_like(message_bytes)
    return {
        "flops": zeros, "bytes": zeros, "compute_time_s": zeros, "memory_time_s": zeros,
        "overhead_s": zeros, "comm_time_s": comm, "time_s": comm,
        "bound_code": np.full(message_bytes.shape, 3),
    }

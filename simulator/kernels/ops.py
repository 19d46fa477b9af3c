"""Cost models for the non-GEMM operators of a transformer: memory-bound element-wise ops
(norms, activations, residual adds, embedding gathers) and tensor-parallel all-reduces
(attention, with its KV-cache methods, is in kvcache.py). Each returns the same columns as
gemm.gemm_columns so a model's op table is one DataFrame: flops, bytes, compute/memory/overhead/
time in seconds, and the bound.
"""

from __future__ import annotations

import numpy as np

from simulator.hardware.spec import HardwareSpec
from simulator.core.roofline import KERNEL_BOUNDS, Bound, bound_labels, roofline

BOUNDS = tuple(bound_labels(KERNEL_BOUNDS))


def _roofline(hw: HardwareSpec, flops, bytes_, peak, compute_eff, memory_eff):
    flops, bytes_ = np.broadcast_arrays(np.asarray(flops, float), np.asarray(bytes_, float))
    compute = flops / (peak * compute_eff) if peak else np.zeros_like(flops)
    memory = bytes_ / (hw.memory_bandwidth_bytes_per_s * memory_eff)
    overhead = np.full_like(flops, hw.launch_overhead_s)
    roof = roofline(compute, memory, overhead)
    return {
        "flops": flops, "bytes": bytes_, "compute_time_s": compute, "memory_time_s": memory,
        "overhead_s": overhead, "time_s": roof["time_s"], "bound_code": roof["bound_code"],
    }


def memory_op_columns(hw: HardwareSpec, bytes_moved, flops=0.0):
    """A memory-bound kernel (norm, activation, residual add, gather) moving ``bytes_moved``."""
    peak = hw.vector_peak_flop_per_s("fp32")
    return _roofline(hw, flops, bytes_moved, peak, hw.efficiency.vector.value, hw.efficiency.hbm.value)


def allreduce_columns(hw: HardwareSpec, message_bytes, tp: int):
    """Tensor-parallel all-reduce of each GPU's ``message_bytes`` over ``tp`` GPUs.

    Where the spec lists ``interconnect.topologies``: NCCL's ring/tree model of
    ``simulator.estimate_allreduce`` (collectives.allreduce_kernel_time, calibrated ``allreduce:``
    values included) on the first topology that spans ``tp`` GPUs, plus one launch (the NCCL
    kernel's, in ``overhead_s``). Otherwise (no topologies, or more GPUs than any spans) the spec's
    ``collective`` ring, HardwareSpec.allreduce_time_s, which also knows host-staged PCIe and the
    internode network."""
    from simulator.kernels.collectives import allreduce_kernel_time, topologies

    message_bytes = np.asarray(message_bytes, float)
    zeros = np.zeros_like(message_bytes)
    spans = [t for t in topologies(hw).values() if t.max_gpus >= tp] if (
        hw.interconnect is not None and hw.interconnect.topologies and tp > 1) else []
    if spans:
        comm, _, _ = allreduce_kernel_time(spans[0], message_bytes, tp)
        comm = np.asarray(comm, float)
        overhead = np.full_like(comm, hw.launch_overhead_s)
    else:
        comm = np.asarray(hw.allreduce_time_s(message_bytes, tp), float)
        overhead = zeros
    return {
        "flops": zeros, "bytes": zeros, "compute_time_s": zeros, "memory_time_s": zeros,
        "overhead_s": overhead, "comm_time_s": comm, "time_s": comm + overhead,
        "bound_code": np.full(message_bytes.shape, int(Bound.COMMUNICATION)),
    }


def alltoall_columns(hw: HardwareSpec, message_bytes, ranks: int):
    """An all-to-all over ``ranks`` GPUs, each sending ``message_bytes`` of which 1/ranks stays
    (MoE token dispatch or combine): collectives.alltoall_kernel_time on the first topology that
    spans ``ranks`` GPUs, plus one launch. Beyond one node, the share that leaves the node
    ((ranks - per node)/ranks of the bytes) crosses the spec's ``internode`` network."""
    from simulator.kernels.collectives import alltoall_kernel_time, topologies
    from simulator.core.errors import SimulatorError

    message_bytes = np.asarray(message_bytes, float)
    zeros = np.zeros_like(message_bytes)
    found = topologies(hw) if hw.interconnect is not None else {}
    spans = [t for t in found.values() if t.max_gpus >= ranks]
    if spans:
        comm = np.asarray(alltoall_kernel_time(spans[0], message_bytes, ranks), float)
    else:
        ic = hw.interconnect
        if ic is None or ic.internode is None or ic.gpus_per_node is None or not found:
            raise SimulatorError(f"--tp {ranks}: {hw.id}'s spec cannot price an all-to-all over {ranks} GPUs "
                                 "(no topology spans them and no interconnect.internode group)")
        # each GPU sends (per node - 1)/ranks of its bytes over the node's fabric (an all-to-all of
        # per-node GPUs on that share) and (ranks - per node)/ranks through its NIC, at once
        per_node = ic.gpus_per_node
        node = max(found.values(), key=lambda t: t.max_gpus)
        inside = alltoall_kernel_time(node, message_bytes * per_node / ranks, per_node)
        off_node = (ranks - per_node) / ranks * message_bytes
        between = ic.internode.latency_us * 1e-6 + off_node / (ic.internode.per_gpu_Gbps * 1e9 / 8.0)
        comm = np.maximum(np.asarray(inside, float), between)
    return {
        "flops": zeros, "bytes": zeros, "compute_time_s": zeros, "memory_time_s": zeros,
        "overhead_s": np.full_like(comm, hw.launch_overhead_s), "comm_time_s": comm,
        "time_s": comm + hw.launch_overhead_s,
        "bound_code": np.full(message_bytes.shape, int(Bound.COMMUNICATION)),
    }


def layer_text(members) -> str:
    """The layers a boolean mask over the (kept) layers selects, as 0-based index runs: '0-79',
    '0-1,4,6-31'; '' for none."""
    index = np.flatnonzero(np.asarray(members, dtype=bool))
    if index.size == 0:
        return ""
    breaks = np.flatnonzero(np.diff(index) > 1)
    starts = np.concatenate(([index[0]], index[breaks + 1]))
    stops = np.concatenate((index[breaks], [index[-1]]))
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in zip(starts.tolist(), stops.tolist()))

"""Course claims about hardware facts and single GEMMs (areas ``hw-fact`` and ``gemm``)."""

from __future__ import annotations

from simulator.course import Check, Claim, evaluates
from simulator.hardware import load_hw


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

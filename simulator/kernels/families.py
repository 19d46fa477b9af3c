"""The GEMM kernel families: one registry entry each (``KERNEL_FAMILIES``), with everything the rest
of sparsim needs to know about it in one place.

A sparsity format (simulator/formats/sparsity.py) names the family its weights run on
(``fmt.kernel``); ``gemm_columns`` prices it with the family's ``resolve`` (which peak, which
efficiencies, or a one-line refusal) and its flags (tiled or SpMM-style, zeros skipped or not, the
sparse path's extra kernels); the text report takes its ``description``, the figures its
``series``. Adding a family is one entry here plus its format; tests/test_registries.py runs the
shared contract over every entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from simulator.core.errors import SimulatorError
from simulator.core.registry import Registry

# The dtype patterns the sparse tensor cores run natively (spec ``matrix.sparse_pattern``).
NATIVE_PATTERNS = {"2:4": (2, 4, False), "1:2": (1, 2, False), "4:8-pairwise": (4, 8, True)}


@dataclass(frozen=True)
class KernelFamily:
    """A GEMM kernel family.

    ``resolve(hw, dtype, fmt, k)`` -> (family name, peak FLOP/s, compute efficiency, memory
    efficiency): the name may differ from the entry's where the hardware lacks the pattern (N:M
    without native support runs as the ``nm-whatif`` family). ``tiled``: priced by the tile, wave
    and split-K model (else the SpMM model: non-zeros over the peak, row imbalance for CSR).
    ``skips_zeros``: executes only the kept fraction of the dense FLOPs. ``sparse_extra``: torch's
    sparse path runs extra kernels around it (``overhead.sparse_kernel_extra_us``). ``series``:
    the figures' style key (simulator/report/figures.py SERIES). ``label``: a short legend name."""

    name: str
    description: str
    resolve: Callable
    tiled: bool
    series: str
    skips_zeros: bool = False
    sparse_extra: bool = False
    label: str = ""


KERNEL_FAMILIES = Registry("kernel family", "kernel")  # name -> KernelFamily


def _no_dtype(hw, dtype):
    return SimulatorError(f"dtype: {hw.id} cannot multiply {dtype}; it supports {', '.join(hw.compute_dtypes())}")


def _dense(hw, dtype, fmt, k):
    eff = hw.efficiency
    matrix = hw.matrix_peak_flop_per_s(dtype)
    if matrix is not None:
        return fmt.kernel, matrix, eff.matrix(dtype), eff.hbm.value
    vector = hw.vector_peak_flop_per_s(dtype)
    if vector is not None:
        return fmt.kernel, vector, eff.vector.value, eff.hbm.value
    raise _no_dtype(hw, dtype)


def _dtype_ratio(hw, dtype) -> float:
    """Sparse kernels of a dtype scale with its dense tensor-core efficiency."""
    return hw.efficiency.matrix(dtype) / hw.efficiency.dense_matrix.value


def _sparse_tc(hw, dtype, fmt, k):
    eff = hw.efficiency
    pattern = hw.sparse_pattern(dtype)
    if pattern is None:
        sparse_dtypes = [d for d in (hw.matrix.peaks if hw.matrix else {}) if hw.sparse_pattern(d)]
        raise SimulatorError(
            f"sparsity {fmt.label}: {hw.id} has no sparse tensor-core mode for {dtype} "
            f"(sparse dtypes: {', '.join(sparse_dtypes) or 'none'})"
        )
    if np.any(k % fmt.m):
        bad = int(k[(k % fmt.m) != 0].flat[0])
        raise SimulatorError(f"k: {fmt.label} needs K to be a multiple of {fmt.m}, got {bad}")
    compute_eff = min(1.0, eff.sparse_matrix.value * _dtype_ratio(hw, dtype))
    if (fmt.n, fmt.m, fmt.pairwise) == NATIVE_PATTERNS[pattern]:
        return "sparse-tc", hw.matrix_peak_flop_per_s(dtype, sparse=True), compute_eff, eff.hbm.value
    # What-if: a tensor core that skips all pruned positions of this N:M pattern, i.e. runs
    # M/N times the dense rate, with the sparse kernels' efficiency and PTX-style metadata.
    return "nm-whatif", hw.matrix_peak_flop_per_s(dtype) * fmt.m / fmt.n, compute_eff, eff.hbm.value


def _csr(hw, dtype, fmt, k):
    eff = hw.efficiency
    vector = hw.vector_peak_flop_per_s(dtype)
    if vector is None:
        raise SimulatorError(
            f"dtype: CSR kernels run on {hw.id}'s vector units, which have no {dtype} peak; "
            f"use one of {', '.join(hw.vector.peaks_TFLOPS)}"
        )
    if dtype in ("fp16", "bf16") and hw.vector_peak_flop_per_s("fp32") is not None:
        # 16-bit values are multiplied and accumulated in fp32: cuSPARSE's generic SpMM has
        # only 32-bit compute types for CUDA_R_16F/16BF data (nvmath.sparse.ComputeType lists
        # CUDA_R_32F, CUDA_R_64F and complex), Sputnik's half kernels accumulate in float,
        # and torch's CPU CSR kernel uses float opmath; packed half2 rates never apply.
        vector = hw.vector_peak_flop_per_s("fp32")
    return fmt.kernel, vector, eff.csr_compute.value, eff.csr_memory.value


def _compressed_load(hw, dtype, fmt, k):
    # load-as-sparse, compute-as-dense (SpInfer's bitmap, Flash-LLM's Tiled-CSL): one kernel
    # family, one pair of efficiencies; the formats differ in the bytes they load
    eff = hw.efficiency
    matrix = hw.matrix_peak_flop_per_s(dtype)
    if matrix is None:
        raise SimulatorError(
            f"sparsity {fmt.label}: the {fmt.storage} kernel decodes into tensor-core tiles, and "
            f"{hw.id} has no {dtype} tensor cores"
        )
    return fmt.kernel, matrix, eff.matrix(dtype) * eff.bitmap_compute.value, eff.bitmap_memory.value


def _bsr(hw, dtype, fmt, k):
    eff = hw.efficiency
    block_eff = fmt.block / (fmt.block + eff.bsr_half_block.value)
    matrix = hw.matrix_peak_flop_per_s(dtype)
    if matrix is not None:
        return fmt.kernel, matrix, eff.matrix(dtype) * block_eff, eff.hbm.value
    vector = hw.vector_peak_flop_per_s(dtype)
    if vector is not None:
        return fmt.kernel, vector, eff.vector.value * block_eff, eff.hbm.value
    raise SimulatorError(f"dtype: {hw.id} cannot multiply {dtype}")


for _family in (
    KernelFamily("dense", "dense GEMM (cuBLAS-like)", _dense, tiled=True, series="dense", label="dense"),
    KernelFamily("masked-dense", "masked dense: zeros stored and multiplied, nothing skipped", _dense, tiled=True,
                 series="masked"),
    KernelFamily("sparse-tc", "sparse tensor cores (cuSPARSELt/CUTLASS-like)", _sparse_tc, tiled=True, series="2:4",
                 skips_zeros=True, sparse_extra=True, label="2:4 sparse"),
    KernelFamily("nm-whatif", "WHAT-IF N:M tensor core: M/N x dense math, PTX-style metadata (no such hardware)",
                 _sparse_tc, tiled=True, series="structured", skips_zeros=True, sparse_extra=True),
    KernelFamily("csr-spmm", "CSR SpMM on CUDA cores / SIMD (cuSPARSE-like)", _csr, tiled=False, series="csr"),
    KernelFamily("bitmap-tc", "compressed load, dense tensor-core compute (SpInfer-like bitmap)", _compressed_load,
                 tiled=True, series="bitmap"),
    KernelFamily("tiled-csl-tc", "compressed load, dense tensor-core compute (Flash-LLM's Tiled-CSL)",
                 _compressed_load, tiled=True, series="tiled-csl"),
    KernelFamily("bsr-tc", "block-sparse (BSR) on tensor cores over the kept blocks", _bsr, tiled=False,
                 series="block"),
):
    KERNEL_FAMILIES.register(_family)

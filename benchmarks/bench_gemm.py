"""How fast is the GEMM cost model? Prints shapes per second for sweeps of random shapes.

    python benchmarks/bench_gemm.py [--sizes 1000,100000,1000000]

Run on one core for comparable numbers: OMP_NUM_THREADS=1 python benchmarks/bench_gemm.py
"""

from __future__ import annotations

import argparse

import numpy as np

from simulator.kernels.gemm import estimate_gemm, gemm_columns
from simulator.hardware.spec import load_hw

from _timing import best_of  # benchmarks/_timing.py (scripts run from this folder)

FORMATS = ["dense", "2:4", "unstructured:0.7:csr", "unstructured:0.7:bitmap", "block:32:0.8", "structured:0.3"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--hw", default="h100")
    args = parser.parse_args()
    hw = load_hw(args.hw)
    rng = np.random.default_rng(0)
    print(f"GEMM cost model speed on {hw.id} (best of 3; random M in [1, 16384], N, K in [256, 65536])")
    print(f"{'shapes':>9}  {'format':<24} {'arrays s':>9} {'DataFrame s':>12} {'shapes/s (DataFrame)':>21}")
    for size in (int(s) for s in args.sizes.split(",")):
        m = rng.integers(1, 16385, size)
        n = rng.integers(64, 16385, size) * 4
        k = rng.integers(64, 16385, size) * 4
        for fmt in FORMATS:
            t_arrays = best_of(lambda: gemm_columns(hw, m, n, k, "bf16", fmt))
            t_frame = best_of(lambda: estimate_gemm(hw, m, n, k, "bf16", fmt))
            print(f"{size:>9}  {fmt:<24} {t_arrays:>9.3f} {t_frame:>12.3f} {size / t_frame:>21,.0f}")


if __name__ == "__main__":
    main()

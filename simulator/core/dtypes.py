"""Data types: storage bytes per element and which unit computes them.

FLOP means 2 x multiply-accumulate for every dtype, integers included (a "TOPS" peak is
counted the same way). This is the convention of every NVIDIA datasheet we cite.
"""

from __future__ import annotations

from typing import Literal, get_args

Dtype = Literal["fp64", "fp32", "tf32", "fp16", "bf16", "fp8", "int8", "fp4", "int4"]
DTYPES: tuple[str, ...] = get_args(Dtype)

# Bytes one element occupies in memory. tf32 is stored as fp32; fp4/int4 are packed two per byte.
BYTES_PER_ELEMENT: dict[str, float] = {
    "fp64": 8.0,
    "fp32": 4.0,
    "tf32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "fp4": 0.5,
    "int4": 0.5,
}

# Bytes per element of the GEMM output, as the libraries we model write it:
# int8 GEMMs (torch._int_mm, cuBLASLt) return int32; fp8 (torch._scaled_mm) and fp4 return bf16.
OUTPUT_BYTES_PER_ELEMENT: dict[str, float] = {
    "fp64": 8.0,
    "fp32": 4.0,
    "tf32": 4.0,
    "fp16": 2.0,
    "bf16": 2.0,
    "fp8": 2.0,
    "int8": 4.0,
    "fp4": 2.0,
    "int4": 4.0,
}

# Block-scale bytes per element that travel with an operand. NVFP4 stores one UE4M3 scale
# per 16 elements (PTX ISA 9.1 §9.7.16.10 block scaling): 1/16 byte.
SCALE_BYTES_PER_ELEMENT: dict[str, float] = {"fp4": 1.0 / 16.0}


def check_dtype(dtype: str, where: str = "dtype") -> str:
    from simulator.core.errors import SimulatorError

    if dtype not in DTYPES:
        raise SimulatorError(f"{where}: unknown dtype {dtype!r}; allowed: {', '.join(DTYPES)}")
    return dtype


# dtype names as traces write them (torch's) -> sparsim's: read by validation and the kernel models
TRACE_DTYPES = {"fp32": "fp32", "tf32": "tf32", "fp16": "fp16", "bf16": "bf16", "fp8e4m3": "fp8",
                "fp8": "fp8", "int8": "int8"}

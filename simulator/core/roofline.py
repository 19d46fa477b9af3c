"""The one roofline and the one bound vocabulary every kernel family uses.

A kernel takes the longer of its compute time and its memory time (they overlap), plus what
does not overlap with either (launch latency, extra fixed kernels):

    roof = max(compute_s, memory_s)        time = roof + overhead_s

and it is *bound* by whichever term decides it: ``OVERHEAD`` when the fixed part exceeds the
roof, else ``COMPUTE`` when compute_s >= memory_s, else ``MEMORY``. An op that is not a kernel on
the device's own roofline carries its own bound: an all-reduce is ``COMMUNICATION``, a PCIe
transfer of offloaded weights ``OFFLOAD``, the host's per-step cost ``RUNTIME``.

Codes are small integers (``Bound``, an IntEnum) so that a whole model's op table stays numpy
arrays; labels are taken from the enum at the edge (``bound_labels``), never written by hand.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Bound(IntEnum):
    COMPUTE = 0
    MEMORY = 1
    OVERHEAD = 2
    COMMUNICATION = 3
    OFFLOAD = 4
    RUNTIME = 5

    @property
    def label(self) -> str:
        return self.name.lower()


# The bounds a single kernel on a device's roofline can have (estimate_gemm, estimate_attention).
KERNEL_BOUNDS = (Bound.COMPUTE, Bound.MEMORY, Bound.OVERHEAD)


def bound_labels(bounds=tuple(Bound)) -> list[str]:
    """['compute', 'memory', ...] for ``bounds`` (default: every Bound, in code order)."""
    return [Bound(b).label for b in bounds]


def bound_codes(compute_s, memory_s, overhead_s) -> np.ndarray:
    """Bound code per element (COMPUTE, MEMORY or OVERHEAD) of kernels with these time terms."""
    compute_s, memory_s, overhead_s = (np.asarray(x, float) for x in (compute_s, memory_s, overhead_s))
    return _codes(compute_s, memory_s, overhead_s, np.maximum(compute_s, memory_s))


def _codes(compute_s, memory_s, overhead_s, roof):
    return np.where(overhead_s > roof, int(Bound.OVERHEAD),
                    np.where(compute_s >= memory_s, int(Bound.COMPUTE), int(Bound.MEMORY)))


@dataclass(frozen=True, slots=True)
class Roof:
    """What ``roofline`` returns for kernels (arrays broadcast to one shape): the three time
    terms, the overlapped roof (max of compute and memory), the time (roof + overhead) and the
    bound code per element. Read by attribute or by name (``roof["time_s"]``, as the kernel
    families' columns are)."""

    compute_s: np.ndarray
    memory_s: np.ndarray
    overhead_s: np.ndarray
    roof_s: np.ndarray
    time_s: np.ndarray
    bound_code: np.ndarray

    def __getitem__(self, name: str) -> np.ndarray:
        return getattr(self, name)

    @property
    def bound(self) -> np.ndarray:
        """The Bound of each element (an array of enum members)."""
        return np.vectorize(Bound, otypes=[object])(self.bound_code)


def roofline(compute_s, memory_s, overhead_s) -> Roof:
    """The roofline of kernels with these time terms (arrays that broadcast): see ``Roof``."""
    compute_s, memory_s, overhead_s = (np.asarray(x, float) for x in (compute_s, memory_s, overhead_s))
    roof = np.maximum(compute_s, memory_s)
    time = roof + overhead_s
    codes = _codes(compute_s, memory_s, overhead_s, roof)
    if not (roof.shape == time.shape == codes.shape):  # a scalar term with array ones: every part full
        roof, time, codes = np.broadcast_arrays(roof, time, codes)
    return Roof(compute_s, memory_s, overhead_s, roof, time, codes)


def bound_categorical(codes, bounds=KERNEL_BOUNDS) -> "pd.Categorical":
    """The bound column of a DataFrame: codes as a categorical over ``bounds``' labels (the
    categories are positional, so ``bounds`` must be the enum's leading members in order)."""
    import pandas as pd  # here, not at the top: a CLI call that prints one GEMM never loads pandas

    labels = bound_labels(bounds)
    assert [int(b) for b in bounds] == list(range(len(labels))), "bounds must be Bound's leading members"
    return pd.Categorical.from_codes(np.asarray(codes).astype(np.int8), categories=labels)


# ---- the op record -----------------------------------------------------------------------------

# The numeric columns of an op row. Work and bytes are per launch of the op (one layer's worth),
# ``count`` how many times it runs per step; times in seconds. ``kernel_time_s`` is the kernel's
# own duration, what a profiler measures: its model's where it gives one, else the roof (the
# overlapped compute/memory part); a collective's is its communication time.
OP_NUMERIC = ("count", "m", "n", "k", "flops", "bytes", "bytes_weight", "bytes_metadata", "bytes_kv",
              "compute_time_s", "memory_time_s", "overhead_s", "comm_time_s", "time_s", "kernel_time_s")
# Per-op labels: where the op sits (scope, which layers), what it is (op, kind) and which kernel
# family prices it.
OP_LABELS = ("scope", "layer", "op", "kind", "kernel")


class OpTable:
    """The op record: the rows of an op graph over a set of points, as arrays.

    Every OP_NUMERIC column is an (ops, points) float array, ``bound_code`` an (ops, points) array
    of Bound codes, ``resident_weight_bytes`` one number per op (the weights it keeps in memory, all
    its copies), and every OP_LABELS column a tuple of one label per op (``layer`` None outside the
    layers). A whole model's time is a few array operations over it, never a loop over ops."""

    __slots__ = OP_LABELS + OP_NUMERIC + ("bound_code", "resident_weight_bytes")

    def __init__(self, labels: dict, numeric: dict, bound_code, resident_weight_bytes):
        for name in OP_LABELS:
            setattr(self, name, tuple(labels[name]))
        shape = (len(self.op), np.shape(numeric["time_s"])[-1])
        for name in OP_NUMERIC:
            value = numeric[name]
            if value.shape != shape:
                raise ValueError(f"OpTable: every column must be (ops, points) = {shape}; {name} is {value.shape}")
            setattr(self, name, value)
        self.bound_code = bound_code
        self.resident_weight_bytes = np.asarray(resident_weight_bytes, float)

    def __len__(self) -> int:
        return len(self.op)

    @property
    def n_points(self) -> int:
        return self.time_s.shape[1]

    def extended(self, other: "OpTable") -> "OpTable":
        """This table with ``other``'s rows after its own (same points)."""
        return OpTable({name: getattr(self, name) + getattr(other, name) for name in OP_LABELS},
                       {name: np.concatenate((getattr(self, name), getattr(other, name))) for name in OP_NUMERIC},
                       np.concatenate((self.bound_code, other.bound_code)),
                       np.concatenate((self.resident_weight_bytes, other.resident_weight_bytes)))

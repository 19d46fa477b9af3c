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


def roofline(compute_s, memory_s, overhead_s) -> dict:
    """The roofline of kernels with these time terms (arrays broadcast): ``roof_s`` (the
    overlapped compute/memory part), ``time_s`` (roof + overhead) and ``bound_code``, each an
    array of the broadcast shape."""
    compute_s, memory_s, overhead_s = (np.asarray(x, float) for x in (compute_s, memory_s, overhead_s))
    roof = np.maximum(compute_s, memory_s)
    time = roof + overhead_s
    codes = _codes(compute_s, memory_s, overhead_s, roof)
    if not (roof.shape == time.shape == codes.shape):  # a scalar term with array ones: every part full
        roof, time, codes = np.broadcast_arrays(roof, time, codes)
    return {"roof_s": roof, "time_s": time, "bound_code": codes}


def bound_categorical(codes, bounds=KERNEL_BOUNDS) -> "pd.Categorical":
    """The bound column of a DataFrame: codes as a categorical over ``bounds``' labels (the
    categories are positional, so ``bounds`` must be the enum's leading members in order)."""
    import pandas as pd  # here, not at the top: a CLI call that prints one GEMM never loads pandas

    labels = bound_labels(bounds)
    assert [int(b) for b in bounds] == list(range(len(labels))), "bounds must be Bound's leading members"
    return pd.Categorical.from_codes(np.asarray(codes).astype(np.int8), categories=labels)

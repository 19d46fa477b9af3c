"""The one roofline (simulator/core/roofline.py) every kernel family uses."""

import numpy as np
import pandas as pd
from hypothesis import given
from hypothesis import strategies as st

from simulator import estimate_gemm
from simulator.core.roofline import KERNEL_BOUNDS, Bound, bound_categorical, bound_codes, bound_labels, roofline

times = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def test_hand_derived_points():
    # compute 3 us, memory 5 us, launch 2 us: overlap gives 5 us, plus 2 = 7 us, memory-bound;
    # compute 3, memory 1, launch 4: the launch exceeds the 3 us roof -> overhead-bound, 7 us
    r = roofline([3e-6, 3e-6], [5e-6, 1e-6], [2e-6, 4e-6])
    assert np.allclose(r["time_s"], [7e-6, 7e-6])
    assert list(r["bound_code"]) == [Bound.MEMORY, Bound.OVERHEAD]
    assert bound_codes(2.0, 2.0, 0.0) == Bound.COMPUTE  # a tie is compute-bound (>=)


@given(times, times, times)
def test_time_is_at_least_each_term_and_the_bound_names_the_largest(compute, memory, overhead):
    r = roofline(compute, memory, overhead)
    t = float(r["time_s"])
    assert t >= compute and t >= memory and t >= overhead
    code = Bound(int(r["bound_code"]))
    if code is Bound.OVERHEAD:
        assert overhead > max(compute, memory)
    else:
        assert overhead <= max(compute, memory)
        assert (compute >= memory) == (code is Bound.COMPUTE)


def test_labels_come_from_the_enum():
    assert bound_labels(KERNEL_BOUNDS) == ["compute", "memory", "overhead"]
    assert bound_labels() == ["compute", "memory", "overhead", "communication", "offload", "runtime"]
    cat = bound_categorical(np.array([0, 2, 1]))
    assert isinstance(cat, pd.Categorical) and list(cat) == ["compute", "overhead", "memory"]


def test_estimate_gemm_bound_is_the_roofline_of_its_own_columns():
    df = estimate_gemm("h100", np.array([1, 64, 4096]), 8192, 8192, "bf16")
    overhead = df.time_s - np.maximum(df.compute_time_s, df.memory_time_s)
    expected = bound_labels(KERNEL_BOUNDS)
    codes = bound_codes(df.compute_time_s, df.memory_time_s, overhead)
    assert list(df.bound) == [expected[c] for c in codes]


def test_the_roofline_record_holds_its_parts_and_names_its_bounds():
    # roofline() returns its record: the three terms as given, roof = max(compute, memory),
    # time = roof + overhead, and the bound of each element as the enum
    r = roofline([3e-6, 1e-6, 2e-6], [5e-6, 1e-6, 1e-6], 1e-6)
    assert list(r.compute_s) == [3e-6, 1e-6, 2e-6] and list(r.roof_s) == [5e-6, 1e-6, 2e-6]
    assert np.array_equal(r.time_s, r["time_s"]) and np.allclose(r.time_s, [6e-6, 2e-6, 3e-6])
    assert list(r.bound) == [Bound.MEMORY, Bound.COMPUTE, Bound.COMPUTE]  # a tie (1, 1) is compute
    assert r.time_s.shape == r.roof_s.shape == r.bound_code.shape == (3,)

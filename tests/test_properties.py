"""Invariants of the cost model, checked over random shapes with hypothesis."""

import numpy as np
from hypothesis import assume, given
from hypothesis import strategies as st

from simulator.kernels.gemm import estimate_gemm
from simulator.hardware.spec import load_hw

dims = st.integers(min_value=1, max_value=1 << 16)
k_dims = st.integers(min_value=1, max_value=1 << 14).map(lambda x: 4 * x)  # 2:4 needs K % 4 == 0
devices = st.sampled_from(["a100", "h100", "b200", "rtx-4090", "l40s", "i7-5930k", "titan-x-maxwell"])
formats = st.sampled_from([
    "dense", "2:4", "1:4", "unstructured:0.5:csr", "unstructured:0.9:bitmap", "unstructured:0.8:tiled-csl",
    "unstructured:0.3:masked",
    "block:16:0.75", "block:64:0.5", "structured:0.25", "structured:0.5:k",
])


def _dtype_for(device, fmt):
    spec = load_hw(device)
    if fmt in ("2:4", "1:4"):
        return "fp16" if spec.sparse_pattern("fp16") == "2:4" else None
    if fmt.endswith(("bitmap", "tiled-csl")):
        return "fp16" if spec.matrix_peak_flop_per_s("fp16") else None
    return "fp16" if spec.matrix_peak_flop_per_s("fp16") else "fp32"


@given(device=devices, fmt=formats, m=dims, n=dims, k=k_dims)
def test_time_is_never_below_either_floor(device, fmt, m, n, k):
    dtype = _dtype_for(device, fmt)
    assume(dtype is not None)
    if fmt.startswith("block:"):  # a weight smaller than one block is refused
        assume(min(n, k) >= int(fmt.split(":")[1]))
    row = estimate_gemm(device, m, n, k, dtype, fmt).iloc[0]
    assert row.time_s >= row.compute_floor_s
    assert row.time_s >= row.memory_floor_s
    assert row.time_s >= row.compute_time_s and row.time_s >= row.memory_time_s
    assert np.isfinite(row.time_s) and row.time_s > 0
    assert row.bound in ("compute", "memory", "overhead")


@given(device=st.sampled_from(["a100", "h100", "b200", "rtx-4090"]), m=dims, n=dims, k=k_dims)
def test_24_never_beats_2x(device, m, n, k):
    dense = estimate_gemm(device, m, n, k, "fp16").iloc[0]
    sparse = estimate_gemm(device, m, n, k, "fp16", "2:4").iloc[0]
    assert sparse.compute_time_s >= dense.compute_time_s / 2 * (1 - 1e-12)
    assert sparse.time_s >= dense.time_s / 2 * (1 - 1e-12)


@given(m=dims, n=dims, k=k_dims, s1=st.floats(0, 0.99), s2=st.floats(0, 0.99),
       storage=st.sampled_from(["csr", "bitmap", "tiled-csl", "masked"]))
def test_more_unstructured_sparsity_never_adds_bytes(m, n, k, s1, s2, storage):
    low, high = sorted((s1, s2))
    df = estimate_gemm("a100", m, n, k, "fp16", f"unstructured:{low!r}:{storage}")
    df2 = estimate_gemm("a100", m, n, k, "fp16", f"unstructured:{high!r}:{storage}")
    assert df2.bytes[0] <= df.bytes[0]


@given(m=dims, n=dims, k=k_dims, s1=st.floats(0, 0.99), s2=st.floats(0, 0.99),
       block=st.sampled_from([8, 16, 32, 64]))
def test_more_block_sparsity_never_adds_bytes_or_time(m, n, k, s1, s2, block):
    assume(min(n, k) >= block)
    low, high = sorted((s1, s2))
    a = estimate_gemm("h100", m, n, k, "bf16", f"block:{block}:{low!r}").iloc[0]
    b = estimate_gemm("h100", m, n, k, "bf16", f"block:{block}:{high!r}").iloc[0]
    assert b.bytes <= a.bytes and b.time_s <= a.time_s


@given(m=dims, n=dims, k=k_dims.map(lambda k: 2 * k))  # 1:8 needs K % 8 == 0
def test_sparser_nm_patterns_store_fewer_bytes(m, n, k):
    by_pattern = {p: estimate_gemm("h100", m, n, k, "fp16", p).bytes[0] for p in ("dense", "2:4", "1:4", "1:8")}
    assert by_pattern["dense"] > by_pattern["2:4"] > by_pattern["1:4"] > by_pattern["1:8"]


@given(device=devices, fmt=formats, m=dims, n=dims, k=k_dims,
       axis=st.sampled_from(["m", "n", "k"]), grow=st.integers(1, 4096))
def test_time_is_monotone_in_each_dimension(device, fmt, m, n, k, axis, grow):
    dtype = _dtype_for(device, fmt)
    assume(dtype is not None)
    if fmt.startswith("block:"):  # a weight smaller than one block is refused
        assume(min(n, k) >= int(fmt.split(":")[1]))
    shape = {"m": m, "n": n, "k": k}
    bigger = dict(shape)
    bigger[axis] += 4 * grow  # keep K a multiple of 4
    small = estimate_gemm(device, **shape, dtype=dtype, sparsity=fmt).iloc[0]
    large = estimate_gemm(device, **bigger, dtype=dtype, sparsity=fmt).iloc[0]
    assert large.time_s >= small.time_s * (1 - 1e-12)
    assert large.bytes >= small.bytes


@given(m=st.lists(dims, min_size=1, max_size=20), n=dims, k=k_dims)
def test_vectorized_rows_equal_single_rows(m, n, k):
    df = estimate_gemm("h100", np.array(m), n, k, "bf16", "2:4")
    for i, tokens in enumerate(m):
        assert df.time_s[i] == estimate_gemm("h100", tokens, n, k, "bf16", "2:4").time_s[0]


@given(model=st.sampled_from(["llama-2-7b", "llama-2-70b", "llama-3.1-8b", "mixtral-8x7b", "qwen3-30b-a3b"]),
       device=st.sampled_from(["a100", "h100", "h200", "b200"]), tp=st.sampled_from([1, 2, 4, 8]),
       phase=st.sampled_from(["decode", "prefill"]), batch=st.integers(1, 256), context=st.integers(16, 65536),
       grow=st.integers(1, 64), axis=st.sampled_from(["batch", "context"]))
def test_more_batch_or_context_never_takes_less_time(model, device, tp, phase, batch, context, grow, axis):
    from simulator.core.errors import SimulatorError
    from simulator.model.llm import estimate_model

    bigger = dict(batch=batch + grow if axis == "batch" else batch,
                  context=context + grow if axis == "context" else context)
    try:
        small = estimate_model(model, device, phase, batch, context, tp=tp, with_ops=False).summary["time_s"]
        large = estimate_model(model, device, phase, bigger["batch"], bigger["context"], tp=tp,
                               with_ops=False).summary["time_s"]
    except SimulatorError:  # a TP degree the model's heads do not divide by
        assume(False)
    assert large >= small * (1 - 1e-12), (axis, batch, context, grow)

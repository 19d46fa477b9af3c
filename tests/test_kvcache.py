"""KV cache: hand-derived sizes, the decode-attention kernel, and one contract over every KV method."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.core.errors import SimulatorError
from simulator.capacity.kv_analysis import kv_anchor_table, load_kv_anchors, method_comparison
from simulator.methods.kvcache import (
    KV_METHODS,
    KVEnv,
    parse_kv_method,
)
from simulator.model.llm import estimate_model, estimate_request, sweep
from simulator.formats.models import load_model

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30


def summary(model="llama-3.1-8b", hw="h100", phase="decode", batch=1, context=32768, **kw):
    return estimate_model(model, hw, phase, batch, context, with_ops=False, **kw).summary


# ---- KV basics ---------------------------------------------------------------------------------

@pytest.mark.parametrize("model, per_token", [
    ("llama-2-70b", 80 * 2 * 8 * 128 * 2),      # 327,680 B: GQA, 8 KV heads
    ("llama-2-7b", 32 * 2 * 32 * 128 * 2),      # 524,288 B: MHA
    ("llama-3.1-8b", 32 * 2 * 8 * 128 * 2),     # 131,072 B
    ("llama-3.1-405b", 126 * 2 * 8 * 128 * 2),  # 516,096 B
    ("falcon-40b", 60 * 2 * 8 * 64 * 2),        # 122,880 B: head_dim 64
    ("mistral-7b", 32 * 2 * 8 * 128 * 2),       # 131,072 B
])
def test_kv_cache_bytes_hand_derived(model, per_token):
    # layers x 2 (K and V) x KV heads x head_dim x 2 B (bf16), per token, exactly
    assert load_model(model).kv_bytes_per_token() == per_token
    s = summary(model, "h200", batch=3, context=1000)
    assert s["kv_cache_bytes"] == per_token * 1000 * 3
    assert s["kv_read_bytes_per_step"] == per_token * 1000 * 3  # a dense decode step reads it all once


def test_course_kv_figures_and_where_the_slide_is_off():
    # LLaMA-70B: 80 x 8 x 128 x 2 x 2 B = 327,680 B = 320 KiB/token (the slide says 640 KB: the K/V
    # factor counted twice); 128k tokens -> 40 GiB (= 42.9 GB), batch 8 -> 320 GiB.
    one = summary("llama-2-70b", "h200", context=131072, tp=2)
    eight = summary("llama-2-70b", "h200", context=131072, batch=8, tp=8)
    assert one["kv_cache_bytes"] == 327_680 * 131_072 == 40 * GIB
    assert eight["kv_cache_bytes"] == 320 * GIB and eight["kv_cache_bytes_per_gpu"] == 40 * GIB
    # '28% of the weights' mixes GiB and GB: 42.95 GB / 137.95 GB = 31.1%
    dense = summary("llama-2-70b", "h200", context=131072, tp=2, dtype="fp16")
    ratio = dense["kv_cache_bytes"] / (dense["weight_bytes_per_gpu"] * 2)
    assert ratio == pytest.approx(0.311, abs=0.002)


def test_kv_dtype_and_tensor_parallel_split():
    full = summary("llama-2-70b", "h100", context=8192, tp=2)
    fp8 = summary("llama-2-70b", "h100", context=8192, tp=2, kv_dtype="fp8")
    assert fp8["kv_cache_bytes"] == full["kv_cache_bytes"] / 2
    # 8 KV heads over 8 GPUs: one each; over 16 would replicate (counted on every GPU)
    tp8 = summary("llama-2-70b", "h100", context=8192, tp=8)
    assert tp8["kv_cache_bytes_per_gpu"] == 80 * 2 * 1 * 128 * 2 * 8192


def test_prefill_attention_is_the_causal_formula():
    # LLaMA-2-7B prefill of 1024 tokens: 4 x heads x head_dim x 1024 x 1025 / 2 FLOP per layer
    ops = estimate_model("llama-2-7b", "h100", "prefill", 1, 1024).ops
    row = ops.loc[ops.op == "attention"].iloc[0]
    assert row["flops"] == 4 * 32 * 128 * 1024 * 1025 / 2 and row["count"] == 32


# ---- the decode-attention kernel -------------------------------------------------------------------

def test_split_kv_takes_the_fastest_split_count():
    # One sequence, one KV head, head_dim 128 (128-token tiles), 4096 cached tokens = 32 tiles on
    # an H100 (132 SMs): unsplit, one SM streams all 32 tiles at the per-SM feed; with 32 splits
    # 32 SMs stream one tile each, 32x the bandwidth, far below the HBM roof. The fastest split is
    # 32 (more would not be allowed: never more splits than KV tiles).
    from simulator.hardware.spec import load_hw
    from simulator.methods.kvcache import attention_columns

    hw = load_hw("h100")
    bytes_per_head = 4096 * 2 * 128 * 2  # K and V, 128 dims, bf16
    c = attention_columns(hw, batch=1, heads=1, kv_heads=1, head_dim=128, new_tokens=1, pairs=4096,
                          read_tokens=4096, read_bytes=bytes_per_head, dtype="bf16", act_bytes=2)
    assert float(c["splits"]) == 32
    per_block = bytes_per_head / 32 + 2 * 128 * 2  # one tile, plus its query and partial output
    assert abs(float(c["memory_time_s"]) - per_block / hw.operand_feed_bytes_per_s_per_unit) < 1e-15
    # 132 sequences fill every SM unsplit; a split could not beat one wave at the HBM roof
    c = attention_columns(hw, batch=132, heads=1, kv_heads=1, head_dim=128, new_tokens=1, pairs=4096,
                          read_tokens=4096, read_bytes=bytes_per_head, dtype="bf16", act_bytes=2)
    assert float(c["splits"]) == 1


def test_decode_time_never_falls_as_batch_or_context_grows():
    # the two points issue 14 found (a split's combine launch made one more sequence faster)
    t = [estimate_model("llama-2-70b", "h100", "decode", b, 4096, tp=4, with_ops=False).summary["time_s"]
         for b in range(48, 58)]
    assert all(b >= a for a, b in zip(t, t[1:]))
    t = [estimate_model("llama-3.1-8b", "h100", "decode", 1, c, with_ops=False).summary["time_s"]
         for c in range(128, 8192, 128)]
    assert all(b >= a for a, b in zip(t, t[1:]))


def test_short_contexts_do_not_saturate_bandwidth():
    # LLaMA-2-70B on 8 H100s holds one KV head per GPU: at batch 1 a short cache is a few blocks, and
    # the FlashAttention kernel (simulator.estimate_attention's model, which the op graph uses) pays its
    # fixed time (fixed_us 2 us) and a split's combine (combine_us 2 us) whatever it reads. Bandwidth
    # achieved = bytes / kernel time (time_s less the launches in overhead_s). By hand, with the
    # h100 roof 3350 GB/s x hbm 0.814 = 2.73 TB/s:
    # - 512 tokens: K+V 512 x 2 x 128 x 2 B = 262 kB (+ q/o, partials ~1.3 MB in all) -> under 0.5 us at the
    #   roof, but >= 4 us of fixed + combine: < 0.33 TB/s, well under 0.2 x roof;
    # - 65536 tokens: 33.6 MB -> 12.3 us at the roof, + 4 us: 33.6 / 16.3 = 2.06 TB/s, over 0.7 x roof.
    def effective_bandwidth(context):
        ops = estimate_model("llama-2-70b", "h100", "decode", 1, context, tp=8).ops
        row = ops.loc[ops.op == "attention"].iloc[0]
        return row["bytes"] / (row["time_s"] - row["overhead_s"])

    from simulator.hardware.spec import load_hw

    hw = load_hw("h100")
    roof = hw.memory_bandwidth_bytes_per_s * hw.efficiency.hbm.value
    short, long = effective_bandwidth(512), effective_bandwidth(65536)
    assert short < 0.2 * roof and 0.7 * roof < long < roof
    assert effective_bandwidth(2048) > short


def test_flash_decoding_anchor_within_uncalibrated_tolerance():
    # Published 64.4 us (A100, 64k, 16/2 heads); the model has no fixed per-call cost beyond two
    # launches, which the 64k -> 128k slope of the same table puts at ~22 us (docs/kv.md).
    table = kv_anchor_table().set_index("anchor")
    for anchor in ("flash-decoding-a100-64k", "flash-decoding-a100-128k", "flash-decoding-a100-b256"):
        assert 0.6 < table.loc[anchor, "ratio"] < 1.3, anchor


# ---- the registry and the contract over every method -------------------------------------------------

# Per method: parameters that keep everything (must equal no method) and budgets from large to
# small (KV must never grow). A new method must add itself here.
CONTRACT = {
    "h2o": ("h2o:heavy=0.5,recent=0.5", ["h2o:heavy=0.4,recent=0.2", "h2o", "h2o:heavy=0.02,recent=0.02"]),
    "streamingllm": ("streamingllm:window=100000", ["streamingllm:window=8000", "streamingllm",
                                                     "streamingllm:window=100"]),
    "snapkv": ("snapkv:tokens=100000", ["snapkv:tokens=8192", "snapkv", "snapkv:tokens=64"]),
    "pyramidkv": ("snapkv:tokens=100000+pyramidkv", ["snapkv:tokens=8192+pyramidkv", "pyramidkv",
                                                      "snapkv:tokens=512,window=8+pyramidkv"]),
    "adakv": ("snapkv:tokens=100000+adakv", ["snapkv:tokens=8192+adakv", "adakv", "snapkv:tokens=128+adakv"]),
    "quest": ("quest:tokens=100000,dense_layers=0", ["quest:tokens=8192", "quest", "quest:tokens=64"]),
    "razorattention": ("razorattention:retrieval=1", ["razorattention:retrieval=0.5", "razorattention",
                                                       "razorattention:retrieval=0,window=100"]),
    "kivi": ("kivi:bits=16", ["kivi:bits=8", "kivi:bits=4", "kivi", "kivi:bits=1,group=128"]),
    "minicache": ("minicache:start=1", ["minicache:start=0.75", "minicache", "minicache:start=0,retain=0"]),
    "lazyllm": ("lazyllm:keep=1", ["lazyllm:keep=0.9", "lazyllm", "lazyllm:keep=0.3"]),
}


def test_contract_covers_every_registered_method():
    assert set(CONTRACT) == set(KV_METHODS)


@pytest.mark.parametrize("name", sorted(KV_METHODS))
def test_every_method_is_documented_and_runs_with_its_defaults(name):
    cls = KV_METHODS[name]
    for attribute in ("paper", "defaults_source", "changes", "reported"):
        assert len(getattr(cls, attribute)) > 20, (name, attribute)
    for key, param in cls.params.items():
        assert param.help, (name, key)
    for phase in ("prefill", "decode"):
        s = summary(phase=phase, context=16384, kv_method=name)
        assert s["kv_method"] == name and s["time_s"] > 0 and s["kv_cache_bytes"] > 0


def _profile(kv, phase, context, model="llama-3.1-8b", batch=2, generated=0):
    cfg = load_model(model)
    q = np.array([context if phase == "prefill" else 1.0])
    env = KVEnv(layers=cfg.layers, heads=cfg.heads, kv_heads=cfg.kv_heads, head_dim=cfg.head_dim,
                hidden=cfg.hidden, kv_el=2.0, act_el=2.0, max_positions=cfg.max_position_embeddings,
                model=cfg.id, batch=np.array([float(batch)]), context=np.array([float(context)]), q_len=q,
                generated=np.array([float(generated)]))
    return parse_kv_method(kv).profile(env)


def _layer_sum(profile, field):
    return sum(g.count * getattr(g, field) for g in profile.groups)


@pytest.mark.parametrize("name", sorted(KV_METHODS))
@pytest.mark.parametrize("phase, context", [("prefill", 30000), ("decode", 30000), ("decode", 7)])
def test_full_budget_equals_no_method(name, phase, context):
    full, none = _profile(CONTRACT[name][0], phase, context), _profile(None, phase, context)
    for field in ("new", "read_tokens", "pairs", "read_bytes"):
        assert _layer_sum(full, field) == pytest.approx(_layer_sum(none, field), rel=1e-12), field
    # what is held: the same K/V bytes, except that H2O stays at its budget (100% of the prompt)
    # while a decode step appends one token
    slack = 1.0 if (name == "h2o" and phase == "decode") else 0.0
    assert _layer_sum(none, "held")[0] - slack * 32 <= _layer_sum(full, "held")[0] <= _layer_sum(none, "held")[0]
    if name not in ("h2o", "quest"):  # their state: accumulated scores, page metadata
        assert _layer_sum(full, "held_bytes")[0] == pytest.approx(_layer_sum(none, "held_bytes")[0], rel=1e-12)
    # and never faster: a full budget only adds the method's own kernels
    a = summary(phase=phase, context=context, kv_method=CONTRACT[name][0])
    b = summary(phase=phase, context=context)
    assert a["time_s"] >= b["time_s"] * (1 - 1e-12)


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(sorted(KV_METHODS)), st.sampled_from(["prefill", "decode"]),
       st.integers(2, 131072), st.integers(1, 16))
def test_kv_never_grows_with_a_smaller_budget(name, phase, context, batch):
    points = pd.DataFrame({"model": "llama-3.1-8b", "hw": "h200", "phase": phase, "batch": batch,
                           "context": context, "kv_method": [None] + CONTRACT[name][1]})
    result = sweep(points)
    for column in ("kv_cache_bytes", "kv_read_bytes_per_step"):
        values = result[column].to_numpy()
        if name == "minicache" and column == "kv_read_bytes_per_step":
            # MiniCache saves memory, not reads: each merged layer still reads the shared direction
            # plus its own magnitudes, so more merging reads slightly more (< 1%)
            assert np.all(values[1:] <= values[0] * 1.01), values
            continue
        if name == "quest" or context < 1024:
            # Against no method only where every budget in the list evicts: Quest's page metadata
            # (any budget >= the context reads everything plus the metadata), and at a few
            # tokens a budget rounds up to the whole prompt while the method's own state (H2O's
            # accumulated scores, read and written every step) still costs bytes
            values = values[1:]
        assert np.all(np.diff(values) <= 1e-9 * values[0]), (column, values)


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 131072), st.integers(1, 20000), st.sampled_from([1, 8, 16, 64]))
def test_quest_never_reads_more_than_full_attention_plus_metadata(context, tokens, page):
    full = summary(context=context)
    quest = summary(context=context, kv_method=f"quest:tokens={tokens},page={page},dense_layers=0")
    metadata = 32 * 8 * np.ceil((context - 1) / page) * 2 * 128 * 2  # min and max key per page
    assert quest["kv_read_bytes_per_step"] <= full["kv_read_bytes_per_step"] + metadata + 1e-6
    assert quest["kv_cache_bytes"] >= full["kv_cache_bytes"]  # it saves reads, not memory


@settings(max_examples=20, deadline=None)
@given(st.integers(2005, 131072), st.integers(2005, 131072), st.sampled_from(["decode", "prefill"]))
def test_streamingllm_kv_is_constant_in_context(a, b, phase):
    sa = summary(phase=phase, context=a, kv_method="streamingllm")
    sb = summary(phase=phase, context=b, kv_method="streamingllm")
    assert sa["kv_cache_bytes"] == sb["kv_cache_bytes"] == 32 * 8 * 2004 * 512
    if phase == "decode":
        assert sa["kv_read_bytes_per_step"] == sb["kv_read_bytes_per_step"]


def test_kivi_with_16_bits_everywhere_is_no_method():
    for phase in ("prefill", "decode"):
        a = summary(phase=phase, context=50000, kv_method="kivi:bits=16")
        b = summary(phase=phase, context=50000)
        for key in ("time_s", "memory_bytes_per_gpu", "kv_cache_bytes", "kv_read_bytes_per_step"):
            assert a[key] == b[key], key


def test_kivi_bytes_hand_derived():
    # 2 bits + fp16 scale and zero-point per 32 elements = 0.25 + 4/32 = 0.375 B per element; the
    # last 128 tokens in bf16. LLaMA-3.1-8B prefill of 32768: per layer and KV head
    # 2 x 128 x (128 x 2 + 32640 x 0.375) B, x 8 KV heads x 32 layers.
    s = summary(phase="prefill", context=32768, kv_method="kivi")
    assert s["kv_cache_bytes"] == 32 * 8 * 2 * 128 * (128 * 2 + 32640 * 0.375)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["prefill", "decode"]), st.integers(1, 16), st.integers(64, 65536),
                          st.integers(0, 50)), min_size=1, max_size=5),
       st.sampled_from(["h2o", "streamingllm:window=1000", "snapkv", "pyramidkv+kivi", "quest+kivi",
                        "razorattention", "minicache+kivi:bits=4", "lazyllm+snapkv", "h2o:scores=eager"]))
def test_sweep_equals_single_estimates(points, kv):
    points = [(p, b, c, 0 if p == "prefill" else min(g, c - 1)) for p, b, c, g in points]
    frame = pd.DataFrame(points, columns=["phase", "batch", "context", "generated"]).assign(
        model="llama-3.1-8b", hw="a100", kv_method=kv)
    result = sweep(frame)
    for row, (phase, batch, context, generated) in zip(result.itertuples(), points):
        single = estimate_model("llama-3.1-8b", "a100", phase, batch, context, kv_method=kv,
                                generated=generated, with_ops=False).summary
        assert row.time_s == pytest.approx(single["time_s"], rel=1e-12)
        assert row.kv_cache_bytes == pytest.approx(single["kv_cache_bytes"], rel=1e-12)
        assert row.kv_read_bytes_per_step == pytest.approx(single["kv_read_bytes_per_step"], rel=1e-12)


@pytest.mark.parametrize("kv", [None, "snapkv", "streamingllm", "kivi", "quest", "lazyllm", "h2o", "razorattention"])
def test_prefill_of_one_token_equals_decode_at_context_one(kv):
    a = summary(phase="prefill", context=1, batch=4, kv_method=kv)
    b = summary(phase="decode", context=1, batch=4, kv_method=kv)
    assert a["time_s"] == b["time_s"] and a["kv_cache_bytes"] == b["kv_cache_bytes"]


# ---- kv_read_bytes_per_step and kv_cache_bytes, by hand -------------------------------------------------

def test_read_and_held_bytes_by_hand():
    token = 2 * 128 * 2  # K and V of one token and KV head, bf16
    # SnapKV, decode right after a 131,071-token prompt: 2048 kept + the new token, all 32 layers
    s = summary(context=131072, kv_method="snapkv")
    assert s["kv_read_bytes_per_step"] == 32 * 8 * 2049 * token
    assert s["kv_cache_bytes"] == 32 * 8 * 2049 * token
    # ... and 100 steps later the generated tokens are appended
    assert summary(context=131172, kv_method="snapkv", generated=100)["kv_cache_bytes"] == 32 * 8 * 2149 * token
    # Quest: 2 dense layers read all; 30 read 2048 selected + 1 new + page metadata (min, max keys)
    q = summary(context=131072, kv_method="quest")
    pages = np.ceil(131071 / 16)
    assert q["kv_read_bytes_per_step"] == 8 * (2 * 131072 * token + 30 * (2049 * token + pages * 2 * 128 * 2))
    # StreamingLLM: 4 sinks + 2000 recent
    assert summary(context=131072, kv_method="streamingllm")["kv_read_bytes_per_step"] == 32 * 8 * 2004 * token


def test_h2o_prices_the_missing_scores():
    dense = estimate_model("llama-3.1-8b", "h100", "prefill", 1, 32768)
    h2o = estimate_model("llama-3.1-8b", "h100", "prefill", 1, 32768, kv_method="h2o")
    eager = estimate_model("llama-3.1-8b", "h100", "prefill", 1, 32768, kv_method="h2o:scores=eager")
    assert "h2o_scores" in set(h2o.ops.op) and h2o.summary["time_s"] > dense.summary["time_s"]
    # the eager score matrix of one layer (32 heads x 32768^2 x 4 B) does not fit an H100
    assert eager.summary["time_s"] > h2o.summary["time_s"] and not eager.summary["fits"]
    assert h2o.summary["kv_cache_bytes"] == pytest.approx(0.2 * dense.summary["kv_cache_bytes"], rel=0.05)


# ---- bad input, one line each ----------------------------------------------------------------------------

@pytest.mark.parametrize("kv, message", [
    ("h2o:heavy=0.7,recent=0.5", "budget above 1"),
    ("snapkv:budget=1.5", "fraction of the prompt"),
    ("streamingllm:window=5000", "longer than llama-2-7b's context window"),
    ("kivi:group=0", "group must be >= 1"),
    ("kivi:bits=2,group=0", "group must be >= 1"),
    ("snapkv:tokns=1024", "unknown parameter 'tokns'; known: tokens, budget, window, kernel"),
    ("snapkv:tokens", "write snapkv:key=value"),
    ("snapkv:tokens=many", "is not a number"),
    ("snapkv:tokens=16,window=32", "must exceed the observation window"),
    ("h2o2", "unknown method 'h2o2'; known: adakv, h2o, kivi, lazyllm, minicache, pyramidkv, quest"),
    ("h2o+streamingllm", "cannot be combined"),
    ("h2o+quest", "cannot be combined"),
    ("pyramidkv+h2o", "combine it with snapkv"),
    ("kivi+kivi", "appears twice"),
    ("lazyllm:keep=0", "(0, 1]"),
    ("quest:page=0", "page >= 1"),
    ("h2o:scores=lazy", "allowed: pass, eager"),
])
def test_bad_kv_methods_are_one_line(kv, message):
    with pytest.raises(SimulatorError) as info:
        summary("llama-2-7b", context=2048, kv_method=kv)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_other_bad_requests():
    with pytest.raises(SimulatorError, match="encoder; it keeps no KV cache"):
        estimate_model("bert-base", "a100", "prefill", 1, 128, kv_method="snapkv")
    with pytest.raises(SimulatorError, match="a prefill has generated no tokens"):
        summary(phase="prefill", generated=3)
    with pytest.raises(SimulatorError, match="fewer than the context"):
        summary(context=10, generated=10)


# ---- compositions -------------------------------------------------------------------------------------------

def test_snapkv_plus_kivi_composes():
    both = parse_kv_method("kivi+snapkv")
    assert both.text == parse_kv_method("snapkv+kivi").text == "snapkv+kivi"
    s = summary(phase="prefill", context=32768, kv_method="snapkv+kivi")
    # 2048 kept tokens: 128 in bf16 (KIVI's residual) + 1920 at 0.375 B per element
    assert s["kv_cache_bytes"] == 32 * 8 * 2 * 128 * (128 * 2 + 1920 * 0.375)


def test_allocators_keep_their_base_total():
    base = summary(phase="prefill", context=32768, kv_method="snapkv:tokens=2048,window=8")
    pyramid = summary(phase="prefill", context=32768, kv_method="snapkv:tokens=2048,window=8+pyramidkv")
    alone = summary(phase="prefill", context=32768, kv_method="pyramidkv")
    ada = summary(phase="prefill", context=32768, kv_method="snapkv:tokens=2048,window=8+adakv")
    assert pyramid["kv_cache_bytes"] == pytest.approx(base["kv_cache_bytes"], rel=1e-12)
    assert alone["kv_cache_bytes"] == pytest.approx(base["kv_cache_bytes"], rel=1e-12)
    assert ada["kv_cache_bytes"] == base["kv_cache_bytes"]
    assert parse_kv_method("pyramidkv").text == "pyramidkv"  # its implicit SnapKV base is not shown
    # the pyramid: bottom layers hold more than top layers
    groups = _profile("pyramidkv", "prefill", 32768).groups
    assert groups[0].held[0] > groups[-1].held[0]


def test_h2o_with_sinks_is_the_courses_sink_plus_heavy_hitter():
    a = summary(phase="prefill", context=10000, kv_method="h2o")
    b = summary(phase="prefill", context=10000, kv_method="h2o:sinks=4")
    assert b["kv_cache_bytes"] - a["kv_cache_bytes"] == 32 * 8 * 4 * 512 + 32 * 8 * 4 * 16  # + their scores


# ---- the whole model at long context --------------------------------------------------------------------------

@pytest.mark.parametrize("kv", ["h2o", "streamingllm", "snapkv", "pyramidkv", "adakv", "quest", "razorattention",
                                "kivi", "minicache", "lazyllm", "snapkv+kivi", "minicache+kivi:bits=4"])
def test_methods_move_time_and_memory_the_expected_way_at_long_context(kv):
    dense, s = summary(context=131072), summary(context=131072, kv_method=kv)
    if kv == "quest":
        assert s["kv_cache_bytes"] > dense["kv_cache_bytes"]  # page metadata
        assert s["kv_read_bytes_per_step"] < 0.2 * dense["kv_read_bytes_per_step"]
    else:
        assert s["kv_cache_bytes"] < 0.8 * dense["kv_cache_bytes"]
    if kv == "minicache":
        assert s["time_s"] == pytest.approx(dense["time_s"], rel=0.01)  # capacity, not bandwidth
    else:
        assert s["time_s"] < 0.95 * dense["time_s"]
    assert s["time_s"] > dense["weight_bytes_per_gpu"] / 4.8e12  # never below the weights' floor
    if kv == "lazyllm":
        assert summary(phase="prefill", context=32768, kv_method=kv)["time_s"] < 0.7 * summary(
            phase="prefill", context=32768)["time_s"]


def test_request_with_a_prompt_only_method():
    r = estimate_request("llama-3.1-8b", "h100", prompt=32768, output_tokens=200, kv_method="snapkv")
    dense = estimate_request("llama-3.1-8b", "h100", prompt=32768, output_tokens=200)
    assert r["kv_method"] == "snapkv" and r["tpot_mean_s"] < dense["tpot_mean_s"]
    assert r["kv_cache_bytes_last"] == 32 * 8 * (2048 + 200) * 512  # the budget + every generated token


# ---- anchors and docs -------------------------------------------------------------------------------------------

def test_kv_anchor_file_prices_every_row():
    anchors = load_kv_anchors()
    table = kv_anchor_table()
    assert len(table) == len(anchors) >= 15 and np.isfinite(table["estimate"]).all()
    rows = {a.anchor_row for a in anchors if a.anchor_row}
    assert {124, 129, 131, 132, 133, 134, 135, 136, 137, 145} <= rows


def test_bad_kv_anchor_file_names_the_field(tmp_path):
    path = tmp_path / "kv.yaml"
    path.write_text("anchors:\n  - {id: x, metric: speed, value: 1, model: llama-2-7b, hw: a100, context: 1, "
                    "source: abc}\n")
    expected = r"kv.yaml: anchors.0.metric: metric 'speed' unknown; known: attention_time_s"
    with pytest.raises(SimulatorError, match=expected):
        load_kv_anchors(path)


def test_kv_doc_quotes_current_numbers():
    doc = (ROOT / "docs" / "kv.md").read_text()
    for row in kv_anchor_table().itertuples():
        assert f"{row.ratio:.2f}" in doc, row.anchor
    table = method_comparison()
    section = doc[doc.index("## One table"):]
    for row in table.itertuples():
        line = next((ln for ln in section.splitlines() if ln.startswith(f"| `{row.method}` |")), None)
        assert line, row.method
        for value in (row.decode_speedup_32768, row.decode_speedup_131072, row.ttft_speedup):
            assert f"{value:.2f}×" in line, (row.method, value, line)
        assert f"{row.max_batch:d}" in line


def test_plot_data_and_figure(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("plot_kv_decode", ROOT / "scripts" / "plot_kv_decode.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    frame = module.decode_vs_context()
    assert set(frame["hw"]) == {"h100", "h200", "b200"} and (frame["time_gemm_ops_s"] > 0).all()
    dense = frame[(frame.method == "none") & (frame.hw == "h100")].sort_values("context")
    # (below ~4k the split count of the kernel jumps, and with it the SMs busy: small dips)
    assert dense.loc[dense.context >= 4096, "time_attention_ops_s"].is_monotonic_increasing
    parts = frame[["time_gemm_ops_s", "time_attention_ops_s", "time_other_ops_s"]].sum(axis=1)
    assert np.allclose(parts, frame["time_s"], rtol=1e-12)
    out = module.main(tmp_path / "figure.png", frame)
    assert Path(out).stat().st_size > 10_000
    assert re.search(r"tp", module.__doc__)


@pytest.mark.parametrize("name", sorted(KV_METHODS))
def test_every_registered_method_has_its_row_in_docs_kv(name):
    # docs/architecture.md: a new KV method is one class + this row + its CONTRACT entry
    doc = (ROOT / "docs" / "kv.md").read_text()
    assert any(line.startswith(f"| `{name}` | {KV_METHODS[name].role}") for line in doc.splitlines()), name


def test_streamingllm_prefill_is_a_sliding_window_flashattention_call():
    # StreamingLLM's prefill (each query sees sinks + window keys) is priced by the FlashAttention
    # model with that window, so the step is the same kernel on either side of the span and never
    # falls as the prompt grows past it (it fell 8% when the windowed prefill went to the split-KV model)
    contexts = np.arange(1500, 3000, 13)
    points = pd.DataFrame({"model": "llama-3.1-8b", "hw": "h100", "phase": "prefill", "batch": 2,
                           "context": contexts, "kv_method": "streamingllm"})
    t = sweep(points)["time_s"].to_numpy()
    assert np.all(np.diff(t) >= 0)
    beyond = estimate_model("llama-3.1-8b", "h100", "prefill", 2, 4000, kv_method="streamingllm")
    attention = beyond.ops.loc[beyond.ops.op == "attention"].iloc[0]
    assert attention.kernel == "flash-attention"
    dense = estimate_model("llama-3.1-8b", "h100", "prefill", 2, 4000).ops
    assert attention.time_s < dense.loc[dense.op == "attention", "time_s"].iloc[0]  # fewer pairs than causal

"""Whole-model estimates: the course's numbers, hand-derived memory, code paths that must agree."""

import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cli import main
from simulator.core.errors import SimulatorError
from simulator.model.llm import OP_COLUMNS, estimate_model, estimate_request, parse_recipe, sweep
from simulator.formats.models import load_model

GIB = 2**30


def decode(model="llama-2-70b", hw="h100", **kw):
    kw.setdefault("dtype", "fp16")
    return estimate_model(model, hw, "decode", kw.pop("batch", 1), kw.pop("context", 4096), **kw)


def test_course_llama70b_fp16_needs_more_than_one_h100():
    # 68,976,648,192 params x 2 B = 137.95 GB of weights > 80 GiB (85.9 GB) of HBM.
    s = decode().summary
    assert s["weight_bytes_per_gpu"] == pytest.approx(68_976_648_192 * 2, rel=1e-6)
    assert not s["fits"] and s["shortfall_bytes"] > 50e9


def test_course_24_weights_about_79_gb():
    # Course: 2:4 brings LLaMA-70B's weights from 140 to ~80 GB. By hand: the GEMM weights
    # (68,713,185,280 params, lm_head included) ... the recipe prunes the decoder's linear layers
    # (68,451,041,280 params) to 56.25% of 2 B = 77.0 GB; embedding and lm_head stay dense
    # (2 x 262,144,000 x 2 B = 1.05 GB); norms 2.6 MB. Total 78.06 GB.
    s = decode(recipe="2:4").summary
    linear = 68_451_041_280 * 2 * 0.5625
    dense_rest = 2 * 262_144_000 * 2 + 161 * 8192 * 2
    assert s["weight_bytes_per_gpu"] == pytest.approx(linear + dense_rest, rel=1e-6)
    assert 75e9 < s["weight_bytes_per_gpu"] < 80e9


def test_course_decode_is_bandwidth_bound_near_24_tokens_per_s():
    # Course C.1: 140 GB / 3.35 TB/s ~ 42 ms -> 24 tok/s on one H100 (bandwidth alone).
    s = decode().summary
    floor = 68_976_648_192 * 2 / 3.352e12
    assert s["tokens_per_s"] < 1 / floor  # never faster than the bandwidth floor (24.3 tok/s)
    # calibrated on Vidur's H100 GEMMs: weights stream at 81% of peak and each kernel pays a fitted
    # ~8.8 us memory ramp (80 layers x 4 GEMMs x 8.8 us = 2.8 ms): 41.2 / 0.81 + 2.8 = 53.6 ms plus
    # launches and the small ops, so about 18 tok/s, 74% of the floor's rate
    assert s["tokens_per_s"] > 0.7 / floor
    assert s["time_by_category_s"]["weights"] > 0.9 * s["time_s"]


def test_kv_cache_course_figures():
    # LLaMA-2-70B: 80 layers x 2 x 8 KV heads x 128 x 2 B = 327,680 B per token; x 131,072 tokens
    # = 40 GiB at batch 1 and 320 GiB at batch 8 (course L3; the slide's "640 KB/token" is 2x off).
    one = decode(context=131072).summary
    eight = decode(context=131072, batch=8, hw="h200", tp=8).summary
    assert one["kv_cache_bytes"] == 40 * GIB
    assert eight["kv_cache_bytes"] == 320 * GIB
    assert eight["kv_cache_bytes_per_gpu"] == 40 * GIB
    assert one["kv_read_bytes_per_step"] == pytest.approx(40 * GIB)


def test_time_is_the_sum_of_the_op_table():
    est = decode(recipe="2:4", tp=2)
    assert est.summary["time_s"] == pytest.approx(est.ops["total_time_s"].sum())
    assert sum(est.summary["time_by_category_s"].values()) == pytest.approx(est.summary["time_s"])
    assert est.ops.loc[est.ops.op == "allreduce", "count"].item() == 160


def test_op_table_built_on_first_read_is_the_same_whenever_it_is_read():
    # ModelEstimate.ops is built lazily from the cost model's arrays: reading it after other
    # estimates ran (which could reuse or overwrite shared arrays) must give the same table,
    # and later reads the same object.
    late = decode(recipe="2:4", tp=2, batch=3)
    decode(recipe="unstructured:0.5:csr", batch=9)  # other estimates in between
    estimate_model("mixtral-8x7b", "a100", "prefill", 4, 512)
    early = decode(recipe="2:4", tp=2, batch=3).ops
    pd.testing.assert_frame_equal(late.ops, early, check_exact=True)
    assert late.ops is late.ops
    assert tuple(early.columns) == OP_COLUMNS
    assert decode(with_ops=False).ops is None


def _layers_in(text: str) -> list:
    """'0-3,8' -> [0, 1, 2, 3, 8]"""
    out = []
    for run in text.split(","):
        first, _, last = run.partition("-")
        out.extend(range(int(first), int(last or first) + 1))
    return out


@pytest.mark.parametrize("kw", [
    dict(model="llama-2-7b", recipe="owl:0.7", kv_method="lazyllm", phase="prefill", context=512, tp=2),
    dict(model="llama-2-7b", kv_method="quest+minicache", context=4096),
    dict(model="mixtral-8x7b", recipe="depth:0.25+2:4", kv_method="pyramidkv", context=2048, batch=4),
])
def test_op_table_says_which_layers_and_phase_each_row_stands_for(kw):
    kw = dict(kw)
    est = estimate_model(kw.pop("model"), "a100", kw.pop("phase", "decode"), kw.pop("batch", 1),
                         kw.pop("context"), **kw)
    ops, layers = est.ops, est.summary["layers"]
    assert set(ops["phase"]) == {est.summary["phase"]}
    assert ops.loc[ops.scope != "layers", "layer"].isna().all()  # embedding and head: no layer
    per_layer = ops[ops.op.str.match(r"(qkv|o_proj|norms|attention|activation)\b")]
    for family in ("qkv", "o_proj", "norms", "attention", "activation"):
        rows = per_layer[per_layer.op.str.startswith(family)]
        covered = sorted(i for text in rows["layer"] for i in _layers_in(text))
        # every kept layer once, and each row's count is its layers (x 2 norms per layer)
        assert covered == list(range(layers)), family
        per = 2 if family == "norms" else 1
        assert all(c == per * len(_layers_in(t)) for c, t in zip(rows["count"], rows["layer"])), family


def test_op_table_layers_for_quest_and_owl_by_hand():
    # Quest leaves the first two layers dense (mit-han-lab/Quest; QuestMethod.dense_layers = 2), so
    # LLaMA-2-7B's 32 layers split 0-1 / 2-31, and only 2-31 run the page selection.
    ops = estimate_model("llama-2-7b", "a100", "decode", 1, 4096, kv_method="quest").ops
    assert ops.set_index("op").loc[["attention[0]", "attention[1]", "quest_select[1]"], "layer"].tolist() == \
        ["0-1", "2-31", "2-31"]
    # OWL bins 32 layers into 8 groups of 4 consecutive layers: group 2 is layers 8-11.
    ops = estimate_model("llama-2-7b", "a100", "decode", 1, 512, recipe="owl:0.7").ops
    assert ops.set_index("op").loc["qkv[2]", "layer"] == "8-11"


def test_kv_method_rows_say_where_their_kernels_run():
    # LazyLLM (4 stages over 32 layers) prunes where stages 1-3 begin: layers 8, 16, 24, once each.
    ops = estimate_model("llama-2-7b", "a100", "prefill", 1, 512, kv_method="lazyllm").ops.set_index("op")
    assert (ops.loc["lazyllm_prune", "layer"], ops.loc["lazyllm_prune", "count"]) == ("8,16,24", 3.0)
    # MiniCache merges pairs of layers in the second half: its row lists both layers of each pair
    # and runs once per pair (count = half the layers listed).
    ops = estimate_model("llama-2-7b", "a100", "decode", 1, 4096, kv_method="minicache").ops
    merge = ops[ops.op.str.startswith("minicache_merge")].iloc[0]
    assert merge["count"] * 2 == len(_layers_in(merge["layer"]))
    assert merge["layer"] == ops[ops.op == "attention" + merge["op"][len("minicache_merge"):]].layer.item()


def test_owl_storage_must_be_spelt_right():
    with pytest.raises(SimulatorError, match="owl:S"):
        parse_recipe("owl:0.7:0.1:tiled")
    assert parse_recipe("owl:0.7:0.1:tiled-csl").owl == (0.7, 0.1, "tiled-csl")


@settings(max_examples=40, deadline=None)
@given(model=st.sampled_from(["llama-2-7b", "mixtral-8x7b", "opt-6.7b", "llama-3.1-8b", "gpt-j-6b"]),
       hw=st.sampled_from(["a100", "h100", "b200"]), phase=st.sampled_from(["prefill", "decode"]),
       batch=st.integers(1, 64), context=st.integers(1, 2048), tp=st.sampled_from([1, 2, 4]),
       recipe=st.sampled_from(["dense", "2:4", "owl:0.7:tiled-csl", "unstructured:0.6:bitmap@mlp",
                               "depth:0.25+owl:0.6", "width:0.3+2:4", "block:32:0.8"]),
       kv=st.sampled_from([None, "h2o", "quest+minicache", "lazyllm+snapkv", "pyramidkv+kivi"]),
       dynamic=st.sampled_from([None, "teal", "powerinfer"]))
def test_any_op_table_adds_up_and_covers_every_kept_layer(model, hw, phase, batch, context, tp, recipe, kv,
                                                          dynamic):
    try:
        est = estimate_model(model, hw, phase, batch, context, tp=tp, recipe=recipe, kv_method=kv,
                             dynamic=dynamic)
    except SimulatorError:
        return  # a refused combination (TP not dividing heads, a KV method on a short prompt, ...)
    ops, s = est.ops, est.summary
    assert s["time_s"] == pytest.approx(ops["total_time_s"].sum(), rel=1e-9)
    assert np.isfinite(ops[["time_s", "bytes", "flops"]].to_numpy()).all()
    assert (ops[["time_s", "bytes", "flops", "count"]].to_numpy() >= 0).all()
    assert set(ops["phase"]) == {phase}
    for family in ("qkv", "o_proj", "attention"):
        rows = ops[ops.op.str.match(family + r"\b")]
        assert sorted(i for t in rows["layer"] for i in _layers_in(t)) == list(range(s["layers"])), family


def test_prefill_of_one_token_equals_decode_at_context_one():
    a = estimate_model("llama-3.1-8b", "h100", "prefill", 4, 1).summary
    b = estimate_model("llama-3.1-8b", "h100", "decode", 4, 1).summary
    assert a["time_s"] == b["time_s"]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["prefill", "decode"]), st.integers(1, 64), st.integers(1, 32768)),
                min_size=1, max_size=6),
       st.sampled_from(["llama-2-7b", "mixtral-8x7b", "opt-6.7b", "gpt-j-6b"]),
       st.sampled_from(["dense", "2:4", "unstructured:0.7:bitmap", "owl:0.6", "depth:0.25+width:0.2"]))
def test_sweep_equals_single_estimates(points, model, recipe):
    cfg = load_model(model)
    points = [(p, b, min(c, cfg.max_position_embeddings)) for p, b, c in points]
    frame = pd.DataFrame(points, columns=["phase", "batch", "context"]).assign(model=model, hw="a100", recipe=recipe)
    result = sweep(frame)
    for row, (phase, batch, context) in zip(result.itertuples(), points):
        single = estimate_model(model, "a100", phase, batch, context, recipe=recipe, with_ops=False).summary
        assert row.time_s == pytest.approx(single["time_s"], rel=1e-12)
        assert row.memory_bytes_per_gpu == pytest.approx(single["memory_bytes_per_gpu"], rel=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 64), st.integers(16, 16384), st.integers(1, 64))
def test_time_grows_with_batch_and_context(batch, context, extra):
    a = estimate_model("llama-2-7b", "h100", "decode", batch, context, with_ops=False).summary
    b = estimate_model("llama-2-7b", "h100", "decode", batch + extra, context, with_ops=False).summary
    c = estimate_model("llama-2-7b", "h100", "decode", batch, context + extra, with_ops=False).summary
    assert b["time_s"] >= a["time_s"] and c["time_s"] >= a["time_s"]
    assert b["memory_bytes_per_gpu"] >= a["memory_bytes_per_gpu"]


def test_tensor_parallel_splits_weights_and_adds_communication():
    one = decode(hw="h200").summary
    two = decode(hw="h200", tp=2).summary
    assert two["weight_bytes_per_gpu"] == pytest.approx(one["weight_bytes_per_gpu"] / 2, rel=0.001)
    assert two["time_by_category_s"]["communication"] > 0 and one["time_by_category_s"]["communication"] == 0
    assert two["time_s"] < one["time_s"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="llama-9b"), "unknown model"),
    (dict(tp=3), "not divisible"),
    (dict(model="falcon-40b", tp=3), "not divisible"),  # 128 query heads do not split 3 ways
    (dict(recipe="2:4+3:4"), "one sparsity format"),
    (dict(recipe="width:1.2"), "[0, 1)"),
    (dict(recipe="owl:0.5:0.7"), "lambda"),
    (dict(recipe="structured:0.3"), "width:/heads:/hidden:/depth:"),
    (dict(weights="int3"), "unknown dtype"),
    (dict(weights="int4:128"), "g<N>"),
    (dict(batch=0), "--batch"),
    (dict(hw="titan-x-maxwell", tp=2), "collective"),
])
def test_bad_requests_are_one_line(kwargs, message):
    kwargs = {"model": "llama-2-70b", **kwargs}
    model = kwargs.pop("model")
    with pytest.raises(SimulatorError) as info:
        decode(model, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_encoder_has_no_decode_and_learned_positions_cap_context():
    with pytest.raises(SimulatorError, match="encoder"):
        estimate_model("bert-base", "a100", "decode", 1, 128)
    assert estimate_model("bert-base", "a100", "prefill", 8, 512).summary["fits"]
    with pytest.raises(SimulatorError, match="learned positions up to 2048"):
        estimate_model("opt-6.7b", "a100", "decode", 1, 4096)


def test_moe_reads_only_the_experts_a_batch_touches():
    # Mixtral-8x7B, top-2 of 8: one token touches 2 experts per layer; 64 tokens nearly all 8
    # (8 x (1 - (6/8)^64) = 7.99999).
    one = estimate_model("mixtral-8x7b", "h100", "decode", 1, 1024, tp=2).ops
    many = estimate_model("mixtral-8x7b", "h100", "decode", 64, 1024, tp=2).ops
    # one fused (grouped) kernel per layer whatever the batch: 32 launches, not 32 x experts touched
    up_one = one.loc[one.op == "experts_gate_up"]
    up_many = many.loc[many.op == "experts_gate_up"]
    assert up_one["count"].item() == 32 and up_many["count"].item() == 32
    # weight bytes read scale with the experts touched: 7.99999 / 2
    ratio = up_many["bytes_weight"].item() / up_one["bytes_weight"].item()
    assert ratio == pytest.approx(8 * (1 - (6 / 8) ** 64) / 2, rel=1e-9)
    # resident weights do not depend on the batch: all 8 experts stay in memory
    assert one.resident_weight_bytes.sum() == pytest.approx(many.resident_weight_bytes.sum())


def test_structured_axes():
    base = decode(model="llama-2-7b").summary
    depth = decode(model="llama-2-7b", recipe="depth:0.25")
    assert depth.summary["layers"] == 24 and depth.summary["kv_cache_bytes"] == base["kv_cache_bytes"] * 0.75
    width = decode(model="llama-2-7b", recipe="width:0.5").ops
    assert width.loc[width.op == "down", "k"].item() == 5504
    # SliceGPT cuts the hidden (embedding) dimension: K/V projections shrink along their input,
    # but their outputs (KV heads x head_dim) and hence the KV cache stay the same size.
    hidden = decode(model="llama-2-7b", recipe="hidden:0.25")
    assert hidden.summary["kv_cache_bytes"] == base["kv_cache_bytes"]
    assert hidden.ops.loc[hidden.ops.op == "qkv", "k"].item() == 3072
    heads = decode(model="llama-2-70b", recipe="heads:0.25").ops
    assert heads.loc[heads.op == "o_proj", "k"].item() == 48 * 128  # 6 of 8 KV groups x 8 query heads


def test_owl_keeps_the_mean_sparsity():
    recipe = parse_recipe("owl:0.7:0.08:bitmap")
    groups = recipe.layer_groups(80)
    sparsities = np.array([float(s.split(":")[1]) for _, s in groups])
    counts = np.array([c for c, _ in groups])
    assert counts.sum() == 80 and len(groups) == 8
    assert np.average(sparsities, weights=counts) == pytest.approx(0.7, abs=1e-6)
    assert sparsities[0] < 0.7 < sparsities[-1]  # more outliers early: less sparsity there


def test_weight_only_quantization_and_24_compose():
    dense = decode(model="llama-2-7b").summary["weight_bytes_per_gpu"]
    int4 = decode(model="llama-2-7b", weights="int4:g128").summary["weight_bytes_per_gpu"]
    both = decode(model="llama-2-7b", weights="int4:g128", recipe="2:4").summary["weight_bytes_per_gpu"]
    assert int4 < 0.35 * dense and both < int4


def test_request_integrates_decode_over_context():
    r = estimate_request("llama-2-7b", "h100", prompt=2048, output_tokens=256, batch=4)
    assert r["ttft_s"] == pytest.approx(estimate_model("llama-2-7b", "h100", "prefill", 4, 2048).summary["time_s"])
    assert r["tpot_last_s"] >= r["tpot_first_s"]
    assert r["latency_s"] == pytest.approx(r["ttft_s"] + 256 * r["tpot_mean_s"])


def test_cli_model_json_and_text(capsys):
    assert main(["model", "--model", "llama-2-70b", "--hw", "h100", "--phase", "decode", "--batch", "1",
                 "--context", "4096", "--tp", "2", "--dtype", "bf16", "--recipe", "2:4", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("time_s", "tokens_per_s", "memory_bytes_per_gpu", "fits", "ops", "kv_cache_bytes",
                "kv_read_bytes_per_step"):
        assert key in out
    assert main(["model", "--model", "llama-2-70b", "--hw", "h100", "--dtype", "fp16"]) == 0
    text = capsys.readouterr().out
    assert "does not fit: needs" in text and "time goes to" in text and "weights" in text
    assert main(["model", "--model", "llama-2-70b", "--tp", "3"]) == 2
    assert "not divisible" in capsys.readouterr().err


def test_cli_request_mode(capsys):
    assert main(["model", "--model", "llama-3.1-8b", "--hw", "h100", "--context", "1024", "--output-tokens", "128",
                 "--batch", "4", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["output_tokens"] == 128 and r["ttft_s"] > 0 and r["latency_s"] > r["ttft_s"]
    assert main(["model", "--model", "llama-3.1-8b", "--output-tokens", "0"]) == 2


def test_regression_unsupported_math_dtype_is_one_line_not_a_traceback(capsys):
    # `sparsim model --dtype fp4` on an H100 used to crash in the attention model (no fp4 peak).
    assert main(["model", "--model", "llama-2-7b", "--hw", "h100", "--dtype", "fp4"]) == 2
    err = capsys.readouterr().err
    assert "cannot compute in fp4" in err and "--weights" in err and err.count("\n") == 1


def test_recipe_scope_applies_the_format_to_some_linear_layers_only():
    # LLaMA-2-7B: attention projections 4 x 4096^2 = 67.1M params per layer, MLP 3 x 4096 x 11008
    # = 135.3M. 2:4@mlp leaves attention dense: weights fall by 0.4375 x MLP bytes only.
    dense = decode(model="llama-2-7b").summary["weight_bytes_per_gpu"]
    mlp = decode(model="llama-2-7b", recipe="2:4@mlp")
    saved = dense - mlp.summary["weight_bytes_per_gpu"]
    assert saved == pytest.approx(32 * 3 * 4096 * 11008 * 2 * (1 - 0.5625), rel=1e-9)
    kernels = dict(zip(mlp.ops.op, mlp.ops.kernel))
    assert kernels["qkv"] == "dense" and kernels["o_proj"] == "dense" and kernels["gate_up"] == "sparse-tc"
    with pytest.raises(SimulatorError, match="scope @ffn unknown; allowed: @all, @attn, @mlp"):
        decode(model="llama-2-7b", recipe="2:4@ffn")
    with pytest.raises(SimulatorError, match="not to width"):
        decode(model="llama-2-7b", recipe="width:0.2@mlp")


def test_the_op_record_holds_every_op_over_every_point():
    # the op graph's record (core.roofline.OpTable): one row per op, each numeric column an
    # (ops, points) array; the estimate's time is count x time_s summed over its rows, per point,
    # and the op table is its first point
    from simulator.core.roofline import OP_NUMERIC, OpTable
    from simulator.hardware.spec import load_hw
    from simulator.model.llm import _plan, _totals

    batch, context = np.array([1.0, 8.0, 64.0]), np.array([512.0, 4096.0, 2048.0])
    phase = np.array(["decode", "decode", "prefill"], dtype=object)
    hw = load_hw("h100")
    table, info = _plan(load_model("llama-3.1-8b"), hw, phase, batch, context, 2, "bf16", None, "2:4", None,
                        "h2o", np.zeros(3), None, "vllm")
    assert isinstance(table, OpTable) and len(table) == len(table.op) == len(set(table.op))
    assert all(getattr(table, name).shape == (len(table), 3) for name in OP_NUMERIC)
    assert {"runtime", "allreduce", "attention", "lm_head"} <= set(table.op)
    totals = _totals(table, info, hw)
    np.testing.assert_allclose(totals["time_s"], (table.time_s * table.count).sum(axis=0), rtol=1e-12)
    assert np.all(table.time_s >= np.maximum(table.compute_time_s, table.memory_time_s))
    one = estimate_model("llama-3.1-8b", "h100", "decode", 8, 4096, tp=2, recipe="2:4", kv_method="h2o",
                         runtime="vllm")
    np.testing.assert_allclose(one.ops["time_s"], table.time_s[:, 1], rtol=1e-12)
    assert list(one.ops["op"]) == list(table.op)
    with pytest.raises(ValueError, match="every column must be"):
        OpTable({name: getattr(table, name) for name in ("scope", "layer", "op", "kind", "kernel")},
                {name: getattr(table, name)[:, :2] if name == "flops" else getattr(table, name)
                 for name in OP_NUMERIC}, table.bound_code, table.resident_weight_bytes)


def test_the_per_point_sums_add_the_ops_in_table_order():
    # a sweep's totals are sequential sums over the op record (what a loop over the ops gives,
    # bit for bit), at one point and at many
    from simulator.hardware.spec import load_hw
    from simulator.model.llm import _plan, _totals

    hw = load_hw("a100")
    for n in (1, 7, 64):
        batch = np.arange(1.0, n + 1.0)
        table, info = _plan(load_model("mixtral-8x7b"), hw, np.array(["decode"] * n, dtype=object), batch,
                            1000.0 + 37.0 * batch, 2, "bf16", "int4:g128", "owl:0.7", None, None, np.zeros(n))
        totals = _totals(table, info, hw)
        loop = np.zeros(n)
        for i in range(len(table)):
            loop = loop + table.time_s[i] * table.count[i]
        assert np.array_equal(totals["time_s"], loop)


def test_refusals_say_what_each_estimate_would_raise():
    # the capacity planner checks hundreds of deployments with llm.refusals: built one by one,
    # priced together; each answer must be what estimate_model itself says (None, or its message),
    # also when a batched kernel refuses one of them (a block larger than a TP shard: at pricing)
    from simulator.model.llm import refusals

    calls = [dict(model="llama-3.1-8b", hw="h100", tp=2),
             dict(model="llama-3.1-8b", hw="h100", tp=3),                      # heads do not divide
             dict(model="llama-3.1-8b", hw="a100", dtype="fp8"),              # no fp8 on an A100
             dict(model="llama-3.1-8b", hw="h100", tp=8, recipe="block:4096:0.5"),  # refused when priced
             dict(model="mixtral-8x7b", hw="h200", tp=4, kv_method="h2o", weights="int4:g128"),
             dict(model="llama-3.1-8b", hw="h100", memory_reserve_bytes=-1.0)]
    expected = []
    for kw in calls:
        try:
            estimate_model(**kw, with_ops=False)
            expected.append(None)
        except SimulatorError as err:
            expected.append(str(err))
    assert refusals(calls) == expected
    assert expected[0] is None and expected[4] is None and all(expected[i] for i in (1, 2, 3, 5))

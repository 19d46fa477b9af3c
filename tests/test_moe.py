"""MoE done as the kernels run it: fused (grouped) expert GEMMs over the expected distinct experts,
expert widths, shared experts, the MoE zoo against published counts, published_parameters checked."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.core.errors import SimulatorError
from simulator.model.llm import estimate_model, expected_experts_touched
from simulator.formats.models import load_model, models_dir
from tests._util import swap


# ---- the zoo against the published figures -------------------------------------------------------

@pytest.mark.parametrize("model_id, total, active", [
    # Qwen3 model cards: 30.5B total / 3.3B activated; 235B / 22B; Mistral AI: 141B / 39B (all rounded)
    ("qwen3-30b-a3b", 30.5e9, 3.3e9),
    ("qwen3-235b-a22b", 235e9, 22e9),
    ("mixtral-8x22b", 141e9, 39e9),
])
def test_moe_zoo_matches_published_totals(model_id, total, active):
    model = load_model(model_id)
    assert model.parameters() == pytest.approx(total, rel=0.01)
    # active counts are published to 2 significant figures (3.3B): within 2%
    assert model.active_parameters_per_token() == pytest.approx(active, rel=0.02)


def test_qwen3_30b_a3b_count_by_hand():
    # per layer: attention 2048x4096 + 2 x 2048x512 + 4096x2048 = 18,874,624, q/k norms 2 x 128,
    # 128 experts x 3 x 2048 x 768 = 603,979,776, router 2048 x 128 = 262,144, norms 2 x 2048;
    # = 623,120,640 x 48 = 29,909,790,720; + embedding and lm_head 2 x 151,936 x 2048 = 622,329,856
    # + final norm 2048 = 30,532,122,624
    assert load_model("qwen3-30b-a3b").parameters() == 30_532_122_624


def test_wrong_published_parameters_is_an_error_naming_both(tmp_path):
    path = tmp_path / "qwen3-30b-a3b.yaml"
    path.write_text(swap((models_dir() / "qwen3-30b-a3b.yaml").read_text(),
                         "published_parameters: 30500000000", "published_parameters: 32000000000"))
    with pytest.raises(SimulatorError) as err:
        load_model(str(path))
    assert "32,000,000,000" in str(err.value) and "30,532,122,624" in str(err.value)


def test_shared_experts_count_one_mlp_every_layer(tmp_path):
    text = (models_dir() / "qwen3-30b-a3b.yaml").read_text()
    # a Qwen-MoE-style shared expert of 4 x 768 channels: + 48 layers x 3 x 2048 x 3072 parameters,
    # all of them active; published_parameters moved with it so the file loads
    extra = 48 * 3 * 2048 * 3072
    path = tmp_path / "qwen3-30b-a3b.yaml"
    path.write_text(swap(swap(text, "  expert_ffn: 768\n", "  expert_ffn: 768\n  shared_experts: 4\n"),
                         "published_parameters: 30500000000", f"published_parameters: {30_532_122_624 + extra}"))
    shared, base = load_model(str(path)), load_model("qwen3-30b-a3b")
    assert shared.parameters() - base.parameters() == extra
    assert shared.active_parameters_per_token() - base.active_parameters_per_token() == extra
    ops = estimate_model(shared, "h100", "decode", 4, 1024).ops
    assert set(ops.op) >= {"shared_gate_up", "shared_down"}
    assert ops.loc[ops.op == "shared_gate_up", "n"].item() == 2 * 3072


# ---- fused expert kernels ------------------------------------------------------------------------

def test_expected_experts_touched_by_hand():
    # one token touches exactly k; 128 experts, top-8, 12 tokens: 128 (1 - (120/128)^12) = 69.0
    assert expected_experts_touched(128, 8, 1) == pytest.approx(8)
    assert expected_experts_touched(128, 8, 12) == pytest.approx(128 * (1 - (120 / 128) ** 12))


@given(st.integers(2, 256), st.integers(1, 64), st.integers(1, 10_000))
def test_experts_touched_between_k_and_e_and_at_most_all_routed(experts, k, tokens):
    k = min(k, experts)
    touched = float(expected_experts_touched(experts, k, tokens))
    assert k - 1e-9 <= touched <= experts + 1e-9
    assert touched <= tokens * k + 1e-9


def test_qwen3_30b_a3b_on_h100_is_priced_with_fused_moe_kernels():
    # The point: batch 12 decode used to show 3,311.91 expert launches per step. Now each of
    # the 48 layers launches a router, one grouped gate/up and one grouped down GEMM: 3 x 48 = 144.
    est = estimate_model("qwen3-30b-a3b", "h100", "decode", 12, 4096)
    ops = est.ops
    moe = ops[ops.op.isin(["router", "experts_gate_up", "experts_down"])]
    assert moe["count"].tolist() == [48.0, 48.0, 48.0]
    # weights read: the 69.0 experts 12 tokens touch, 3 x 2048 x 768 x 2 B each, per layer
    touched = 128 * (1 - (120 / 128) ** 12)
    read = ops.loc[ops.op.isin(["experts_gate_up", "experts_down"]), "bytes_weight"].sum()
    assert read == pytest.approx(touched * 3 * 2048 * 768 * 2, rel=1e-9)
    # M of each expert GEMM: 12 x 8 / 69.0 = 1.39 -> 1 token (whole rows)
    assert ops.loc[ops.op == "experts_gate_up", "m"].item() == 1
    # all 128 experts stay resident: bf16 weights are 2 x 30,532,122,624 B = 61.1 GB, it fits in 80 GB
    assert est.summary["weight_bytes_per_gpu"] == pytest.approx(2 * 30_532_122_624, rel=1e-6)
    assert est.summary["fits"]
    # launch overhead is now a small part of the step (it was 37%)
    assert est.summary["time_by_category_s"]["overhead"] < 0.2 * est.summary["time_s"]


def test_fused_moe_launches_do_not_grow_with_the_batch():
    small_est = estimate_model("mixtral-8x22b", "h100", "decode", 1, 2048, tp=8)
    big_est = estimate_model("mixtral-8x22b", "h100", "decode", 256, 2048, tp=8)
    small, big = small_est.summary, big_est.summary
    # the MoE kernels' launches (rows x count) and their overhead seconds: the same at batch 1 and 256
    # (attention's Flash-Decoding splits, and so its combine launches, do depend on the batch)
    def moe_launches(est, column):
        ops = est.ops[est.ops.op.isin(["router", "experts_gate_up", "experts_down"])]
        return ops["count"].sum() if column == "count" else (ops[column] * ops["count"]).sum()
    for column in ("count", "overhead_s"):
        assert moe_launches(big_est, column) == pytest.approx(moe_launches(small_est, column))
    assert moe_launches(big_est, "count") == 3 * 56
    # the weights read grow from 2 experts to all 8 per layer, so decode at 256 costs more, not 256x
    assert small["time_s"] < big["time_s"] < 8 * small["time_s"]


def test_moe_decode_reads_less_than_all_weights_at_batch_one():
    est = estimate_model("qwen3-235b-a22b", "h200", "decode", 1, 1024, tp=8, weights="fp8")
    ops = est.ops
    read = (ops.bytes_weight * ops["count"]).sum()
    active = load_model("qwen3-235b-a22b").active_parameters_per_token()
    # one token reads its 8 experts, attention, router and the lm_head (no embedding matrix: a gather):
    # about the active parameters at 1 byte each, split over 8 GPUs
    assert read == pytest.approx(active / 8, rel=0.05)
    assert est.summary["fits"]


def test_llm_doc_moe_example_quotes_current_numbers():
    # docs/llm.md's worked example (its command is also run by tests/test_docs.py)
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "llm.md").read_text()
    assert "sparsim model --model qwen3-30b-a3b --hw h100 --batch 12 --context 4096" in doc
    s = estimate_model("qwen3-30b-a3b", "h100", "decode", 12, 4096).summary
    assert f"{s['time_s'] * 1e3:.1f} ms per step ({s['tokens_per_s']:.1f} tokens/s)" in doc
    assert f"{s['time_by_category_s']['overhead'] * 1e6:.0f} us" in doc
    assert f"{float(expected_experts_touched(128, 8, 12)):.1f} experts per layer" in doc
    assert f"{s['weight_bytes_per_gpu'] / 1e9:.1f} GB held" in doc
    ops = estimate_model("qwen3-30b-a3b", "h100", "decode", 12, 4096).ops
    read = (ops.bytes_weight * ops["count"])[ops.op.isin(["experts_gate_up", "experts_down"])].sum()
    assert f"({read / 1e9:.1f} GB of the" in doc


# ---- expert parallelism ---------------------------------------------------------------------------

def test_busiest_rank_experts_by_hand():
    from simulator.model.llm import busiest_rank_experts
    # DeepSeek-V3 routing (E 256, top 8), one token, 8 GPUs of 32 experts: an expert is hit with
    # p = 8/256 = 1/32, a GPU's count ~ Binomial(32, 1/32) with CDF F(0) = (31/32)^32 = 0.3621,
    # F(1) = 0.7358, F(2) = 0.9226, F(3) = 0.9829, F(4) = 0.9970, F(5) = 0.99962;
    # E[max of 8] = sum (1 - F(x)^8) = 0.9997 + 0.9138 + 0.4752 + 0.1290 + 0.0238 + 0.0030 + ... = 2.544
    assert busiest_rank_experts(256, 8, 1, 8) == pytest.approx(2.544, abs=0.002)
    # one GPU holds every expert: its expected count is the expected distinct experts
    assert busiest_rank_experts(128, 8, np.array([3, 50]), 1) == pytest.approx(
        expected_experts_touched(128, 8, np.array([3, 50])), rel=1e-12)


@given(st.sampled_from([(8, 2), (64, 8), (128, 8), (256, 8)]), st.sampled_from([2, 4, 8]),
       st.integers(1, 100_000))
def test_busiest_rank_between_the_mean_and_its_share(moe, ranks, tokens):
    from simulator.model.llm import busiest_rank_experts
    experts, k = moe
    touched = float(expected_experts_touched(experts, k, tokens))
    busiest = float(busiest_rank_experts(experts, k, tokens, ranks))
    assert touched / ranks - 1e-9 <= busiest <= min(experts // ranks, touched) + 1e-9


def test_expert_parallel_keeps_memory_and_prices_whole_experts():
    kw = dict(phase="decode", batch=64, context=4096, tp=8, dtype="fp8")
    tp_ops = estimate_model("deepseek-v3", "h200", **kw).ops.set_index("op")
    ep_est = estimate_model("deepseek-v3", "h200", **kw, expert_parallel=True)
    ep_ops = ep_est.ops.set_index("op")
    assert ep_est.summary["expert_parallel"] is True
    # the same bytes resident per GPU: 256/8 whole experts or a 1/8 slice of all 256
    assert ep_ops["resident_weight_bytes"].sum() == pytest.approx(tp_ops["resident_weight_bytes"].sum(), rel=1e-12)
    # whole experts: gate/up is 2 x 2048 wide (DeepSeek-V3's moe_intermediate_size), not 2 x 2048 / 8
    assert ep_ops.loc["experts_gate_up", "n"] == 2 * 2048 and tp_ops.loc["experts_gate_up", "n"] == 2 * 2048 / 8
    # attention, shared experts and the all-reduce are unchanged
    for op in ("shared_gate_up", "allreduce"):
        assert ep_ops.loc[op, "time_s"] == pytest.approx(tp_ops.loc[op, "time_s"], rel=1e-12)


def test_expert_parallel_at_batch_one_waits_for_the_busiest_gpu():
    # one token's 8 experts land ~2.5 per GPU on the busiest of 8: it reads ~2.5 whole experts
    # where tensor parallelism reads 8 slices of 1/8 (one expert's bytes)
    kw = dict(phase="decode", batch=1, context=4096, tp=8, dtype="fp8")
    tp_w = estimate_model("deepseek-v3", "h200", **kw).ops.set_index("op").loc["experts_gate_up", "bytes_weight"]
    ep_w = estimate_model("deepseek-v3", "h200", **kw, expert_parallel=True).ops.set_index("op").loc[
        "experts_gate_up", "bytes_weight"]
    assert ep_w / tp_w == pytest.approx(2.544, rel=0.01)


def test_serving_and_sweep_carry_expert_parallel():
    import pandas as pd

    from simulator.model.llm import sweep
    from simulator.capacity.serving import serve
    one = estimate_model("qwen3-30b-a3b", "h100", "decode", 16, 2048, tp=2, expert_parallel=True, with_ops=False)
    swept = sweep(pd.DataFrame([dict(model="qwen3-30b-a3b", hw="h100", phase="decode", batch=16, context=2048,
                                     tp=2, expert_parallel=True)]))
    assert swept["time_s"].iloc[0] == pytest.approx(one.summary["time_s"], rel=1e-12)
    on, off = (serve("qwen3-30b-a3b", "h100", 2048, 128, batch=16, tp=2, expert_parallel=ep) for ep in (True, False))
    assert on["tpot_s"] != off["tpot_s"]


@pytest.mark.parametrize("model, tp, message", [
    ("llama-2-7b", 2, "not a mixture of experts"),
    ("mixtral-8x7b", 3, "do not place whole and evenly"),
])
def test_expert_parallel_refusals(model, tp, message):
    with pytest.raises(SimulatorError, match=message):
        estimate_model(model, "h100", tp=tp, expert_parallel=True)


def test_plan_searches_expert_parallel_and_its_answer_rederives():
    from simulator.capacity.plan import plan_serving
    from simulator.capacity.serving import serve
    table = plan_serving("qwen3-30b-a3b", 4096, 256, hws=("h100",), tps=(1, 2), max_tpot_s=0.03,
                         expert_parallel=(False, True))
    # TP 1 with and without EP is one deployment: priced once
    assert len(table[table["tp"] == 1]) == 1 and set(table.loc[table["tp"] == 2, "expert_parallel"]) == {False, True}
    row = table[(table["tp"] == 2) & table["expert_parallel"]].iloc[0]
    assert "--ep" in row["model_command"]
    again = serve("qwen3-30b-a3b", "h100", 4096, 256, batch=int(row["batch"]), tp=2, expert_parallel=True)
    assert again["tpot_s"] == pytest.approx(row["tpot_s"], rel=1e-9)
    assert again["output_tokens_per_s"] == pytest.approx(row["output_tokens_per_s"], rel=1e-9)


# ---- data-parallel attention with expert parallelism ---------------------------------------------

DP = dict(phase="decode", context=4096, dtype="fp8", weights="fp8")


def test_dp_attention_holds_attention_whole_experts_split_and_its_own_kv():
    one = estimate_model("deepseek-v3", "h200", batch=2, tp=1, **DP)
    dp = estimate_model("deepseek-v3", "h200", batch=16, tp=8, dp_attention=True, **DP)
    s = dp.summary
    assert s["dp_attention"] and s["expert_parallel"] and s["tp"] == 8 and s["batch"] == 16
    ops1 = one.ops.set_index("op")
    routed = ops1.loc[["experts_gate_up", "experts_down"], "resident_weight_bytes"].sum()
    # everything whole on every GPU but the routed experts, of which each GPU holds 256/8
    assert s["weight_bytes_per_gpu"] == pytest.approx(one.summary["weight_bytes_per_gpu"] - routed * 7 / 8, rel=1e-12)
    # each GPU caches its own 16/8 = 2 sequences: one GPU's KV at batch 2; the group holds 8 times that
    assert s["kv_cache_bytes_per_gpu"] == pytest.approx(one.summary["kv_cache_bytes_per_gpu"], rel=1e-12)
    assert s["kv_cache_bytes"] == pytest.approx(8 * one.summary["kv_cache_bytes_per_gpu"], rel=1e-12)
    ops = dp.ops.set_index("op")
    assert "allreduce" not in ops.index  # no tensor parallelism left to all-reduce
    # attention and the dense parts run whole for the GPU's 2 sequences, as on one GPU at batch 2
    for op in ("q_b", "o_proj", "attention", "shared_gate_up", "router"):
        assert ops.loc[op, "time_s"] == pytest.approx(ops1.loc[op, "time_s"], rel=1e-12), op
    assert s["tokens_per_s"] == pytest.approx(16 / s["time_s"], rel=1e-12)


def test_dp_attention_all_to_all_by_hand():
    from simulator.kernels.collectives import topologies
    from simulator.hardware.spec import load_hw

    hw = load_hw("h200")
    dp = estimate_model("deepseek-v3", hw, batch=16, tp=8, dp_attention=True, **DP).ops.set_index("op")
    row = dp.loc["all_to_all"]
    assert row["count"] == 2 * 58  # dispatch and combine in each of the 58 MoE layers
    # each GPU sends its 2 tokens x 8 experts x 7168 channels x 1 B (fp8): 114,688 B, of which 7/8 leave it
    message = 2 * 8 * 7168 * 1
    assert message == 114_688
    topo = [t for t in topologies(hw).values() if t.max_gpus >= 8][0]
    kernel = topo.base_latency_s + topo.step_latency_s + 7 / 8 * message / (topo.one_way_Bps * topo.bus_efficiency)
    assert row["time_s"] == pytest.approx(kernel + hw.launch_overhead_s, rel=1e-12)


def test_dp_attention_routes_only_the_tokens_there_are():
    # batch 1 on 8 GPUs: one GPU has the sequence, and its token's 8 experts land as under EP
    dp = estimate_model("deepseek-v3", "h200", batch=1, tp=8, dp_attention=True, **DP).ops.set_index("op")
    ep = estimate_model("deepseek-v3", "h200", batch=1, tp=8, expert_parallel=True, **DP).ops.set_index("op")
    assert dp.loc["experts_gate_up", "bytes_weight"] == pytest.approx(ep.loc["experts_gate_up", "bytes_weight"],
                                                                      rel=1e-12)


def test_dp_attention_pays_off_at_large_batch_and_fits_where_tensor_parallel_does_not():
    small, large = ({ep: estimate_model("deepseek-v3", "h200", batch=b, tp=8, with_ops=False, **DP,
                                        **({"dp_attention": True} if ep == "dp" else {"expert_parallel": True})).summary
                     for ep in ("dp", "ep")} for b in (1, 1024))
    assert small["dp"]["time_s"] > small["ep"]["time_s"]  # every GPU reads all attention weights for one token
    assert large["dp"]["time_s"] < large["ep"]["time_s"]  # and shares the MLA cache 8 ways instead of replicating it
    assert large["dp"]["fits"] and not large["ep"]["fits"]


@given(st.integers(1, 300))
def test_dp_attention_time_never_falls_as_the_batch_grows(batch):
    import pandas as pd

    from simulator.model.llm import sweep
    rows = sweep(pd.DataFrame(dict(model="qwen3-30b-a3b", hw="h100", phase="decode", batch=[batch, batch + 1],
                                   context=2048, tp=4, dp_attention=True)))
    assert rows["time_s"].iloc[1] >= rows["time_s"].iloc[0] * (1 - 1e-12)


@pytest.mark.parametrize("model, tp, message", [
    ("llama-2-7b", 2, "not a mixture of experts"),
    ("deepseek-v3", 1, "needs --tp 2 or more"),
    ("mixtral-8x7b", 3, "do not place whole and evenly"),
])
def test_dp_attention_refusals(model, tp, message):
    with pytest.raises(SimulatorError, match=message):
        estimate_model(model, "h100", tp=tp, dp_attention=True)


def test_llm_doc_placement_table_quotes_current_numbers():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "llm.md").read_text()
    for batch in (1, 16, 256, 1024):
        cells = []
        for kw in ({}, {"expert_parallel": True}, {"dp_attention": True}):
            s = estimate_model("deepseek-v3", "h200", "decode", batch, 4096, tp=8, dtype="fp8", with_ops=False,
                               **kw).summary
            cells.append(f"{s['time_s'] * 1e3:.3g} ({s['memory_bytes_per_gpu'] / 1e9:.0f} GB"
                         f"{'' if s['fits'] else ', does not fit'})")
        assert f"| {batch:<5} | " + " | ".join(cells) + " |" in doc, (batch, cells)


def test_dp_attention_serving_steps_are_the_groups_decode_steps():
    # each of 2 GPUs schedules half the sequences; a step without a prompt chunk is the decode step
    # of the whole group (both GPUs' sequences), interpolated between whole batches per GPU
    import math

    from simulator.capacity.serving import decode_share, request_mix, serve

    r = serve("qwen3-30b-a3b", "h100", 2048, 256, batch=64, tp=2, dp_attention=True)
    d, _, _, _, _ = decode_share(64 / 2, 2048, 256, 2048)
    d = float(d)
    assert r["decode_sequences"] == pytest.approx(2 * d, rel=1e-12)
    mix = request_mix(2048, 256)
    ctx = int(round(mix.decode_context_mean))
    gen = min(ctx - 1, int(round(mix.decode_context_mean - 2048)))
    lo, hi = max(1, math.floor(d)), max(1, math.ceil(d))
    step = lambda b: estimate_model("qwen3-30b-a3b", "h100", "decode", 2 * b, ctx, tp=2, dp_attention=True,  # noqa: E731
                                    generated=gen, with_ops=False).summary["time_s"]
    w = d - lo if hi > lo else 0.0
    assert r["step_without_chunk_s"] == pytest.approx(step(lo) * (1 - w) + step(hi) * w, rel=1e-9)
    assert r["output_tokens_per_s"] == pytest.approx(r["decode_sequences"] / r["tpot_s"], rel=1e-12)
    assert r["output_tokens_per_s_per_gpu"] == pytest.approx(r["output_tokens_per_s"] / 2, rel=1e-12)


def test_serving_doc_quotes_current_dp_attention_numbers():
    from pathlib import Path

    from simulator.capacity.serving import serve

    doc = " ".join((Path(__file__).resolve().parents[1] / "docs" / "serving.md").read_text().split())
    kw = dict(batch=256, tp=8, dtype="fp8")
    dp = serve("deepseek-v3", "h200", 4096, 512, dp_attention=True, **kw)
    ep = serve("deepseek-v3", "h200", 4096, 512, expert_parallel=True, **kw)
    assert (f"{dp['tpot_s'] * 1e3:.1f} ms TPOT, {dp['output_tokens_per_s']:,.0f} output tokens/s and "
            f"{dp['memory_bytes_per_gpu'] / 1e9:.0f} GB per GPU") in doc
    assert (f"{ep['tpot_s'] * 1e3:.1f} ms, {ep['output_tokens_per_s']:,.0f} tokens/s and "
            f"{ep['memory_bytes_per_gpu'] / 1e9:.0f} GB") in doc


def test_plan_searches_dp_attention_and_its_answer_rederives():
    from simulator.capacity.plan import plan_serving
    from simulator.capacity.serving import serve

    table = plan_serving("qwen3-30b-a3b", 4096, 256, hws=("h100",), tps=(1, 2), max_tpot_s=0.03,
                         expert_parallel=(False, True, "dp"))
    assert len(table[table["tp"] == 1]) == 1  # one GPU: every placement is the same deployment
    row = table[(table["tp"] == 2) & table["dp_attention"]].iloc[0]
    assert row["expert_parallel"] and "--dp-attention" in row["model_command"]
    again = serve("qwen3-30b-a3b", "h100", 4096, 256, batch=int(row["batch"]), tp=2, dp_attention=True)
    assert again["tpot_s"] == pytest.approx(row["tpot_s"], rel=1e-9)
    assert again["output_tokens_per_s"] == pytest.approx(row["output_tokens_per_s"], rel=1e-9)
    assert again["fits"] and row["batch"] <= row["max_batch"]
    # the search's largest batch fits (its memory line is per pair of sequences, one per GPU)
    assert serve("qwen3-30b-a3b", "h100", 4096, 256, batch=int(row["max_batch"]), tp=2, dp_attention=True)["fits"]


def test_dp_attention_all_to_all_across_two_nodes_by_hand():
    # 16 H200 = two 8-GPU nodes: each GPU sends 7/16 of its bytes over NVSwitch (an all-to-all of 8
    # on the 8/16 share it keeps in the node) and 8/16 through its 400 Gb/s NIC (50 GB/s) at once;
    # the slower part sets the time (here NVSwitch's, whose fitted per-call latency is the larger)
    from simulator.hardware.spec import load_hw
    from simulator.kernels.collectives import alltoall_kernel_time, topologies

    hw = load_hw("h200")
    row = estimate_model("deepseek-v3", hw, batch=512, tp=16, dp_attention=True, **DP).ops.set_index("op").loc[
        "all_to_all"]
    message = 32 * 8 * 7168 * 1  # 512 / 16 sequences x 8 experts x 7168 channels x 1 B (fp8)
    net = hw.interconnect.internode
    between = net.latency_us * 1e-6 + message * 8 / 16 / (net.per_gpu_Gbps * 1e9 / 8)
    node = max(topologies(hw).values(), key=lambda t: t.max_gpus)
    inside = float(alltoall_kernel_time(node, message * 8 / 16, 8))
    assert row["time_s"] == pytest.approx(max(between, inside) + hw.launch_overhead_s, rel=1e-12)


def test_plan_refuses_an_unknown_placement():
    from simulator.capacity.plan import plan_serving

    with pytest.raises(SimulatorError, match="placement 'bogus'; allowed"):
        plan_serving("qwen3-30b-a3b", 4096, 256, hws=("h100",), tps=(2,), expert_parallel=("bogus",))

"""MLA (multi-head latent attention) and DeepSeek-V3: the counts against the published totals, the
compressed KV cache by hand, the two forms of the attention (non-absorbed prefill, absorbed decode),
first-k dense layers, and DeepSeek-V3 on 8 x H200 in fp8 priced with fused MoE kernels."""

import numpy as np
import pandas as pd
import pytest

from simulator.cli import main
from simulator.core.errors import SimulatorError
from simulator.model.llm import estimate_model, sweep
from simulator.formats.models import load_model, models_dir
from tests._util import swap

# DeepSeek-V3's dimensions (https://huggingface.co/deepseek-ai/DeepSeek-V3/blob/main/config.json;
# DeepSeek-V3 Technical Report, arXiv 2412.19437, sec. 4.2)
HIDDEN, LAYERS, HEADS, VOCAB = 7168, 61, 128, 129280
Q_RANK, KV_RANK, NOPE, ROPE, V = 1536, 512, 128, 64, 128
DENSE_LAYERS, DENSE_FFN, EXPERTS, TOP_K, EXPERT_FFN = 3, 18432, 256, 8, 2048
MOE_LAYERS = LAYERS - DENSE_LAYERS

# one layer's MLA projections: q_a, q_b, kv_a (latent + RoPE key), kv_b (k_nope + v per head), o
MLA_PROJECTIONS = (HIDDEN * Q_RANK + Q_RANK * HEADS * (NOPE + ROPE) + HIDDEN * (KV_RANK + ROPE)
                   + KV_RANK * HEADS * (NOPE + V) + HEADS * V * HIDDEN)
# 11,010,048 + 37,748,736 + 4,128,768 + 16,777,216 + 117,440,512 = 187,105,280
assert MLA_PROJECTIONS == 187_105_280
EXPERT = 3 * HIDDEN * EXPERT_FFN  # one SwiGLU expert: 44,040,192


def test_deepseek_v3_count_by_hand_matches_671b():
    # attention: 61 x (187,105,280 + latent norms 1536 + 512) = 11,413,547,008
    # dense MLPs: 3 x 3 x 7168 x 18432 = 1,189,085,184
    # MoE layers: 58 x (256 + 1 shared) x 44,040,192 = 656,463,101,952
    # routers: 58 x 256 x (7168 + 1 score-correction bias) = 106,445,312
    # embedding + untied lm_head: 2 x 129,280 x 7168 = 1,853,358,080; norms (2 x 61 + 1) x 7168 = 881,664
    by_hand = (LAYERS * (MLA_PROJECTIONS + Q_RANK + KV_RANK) + DENSE_LAYERS * 3 * HIDDEN * DENSE_FFN
               + MOE_LAYERS * (EXPERTS + 1) * EXPERT + MOE_LAYERS * EXPERTS * (HIDDEN + 1)
               + 2 * VOCAB * HIDDEN + (2 * LAYERS + 1) * HIDDEN)
    assert by_hand == 671_026_419_200
    model = load_model("deepseek-v3")
    assert model.parameters() == by_hand
    # the published 671B is the main model without the MTP module (the 685B on Hugging Face is 671B +
    # 14B MTP, model card); the count is within 0.01% of it
    assert model.parameters() == pytest.approx(671e9, rel=0.01)
    assert model.parameters_by_part()["attention"] == 11_413_547_008


def test_deepseek_v3_active_parameters_match_37b():
    model = load_model("deepseek-v3")
    # a token runs 8 of 256 routed experts in the 58 MoE layers: 248 x 58 x 44,040,192 idle
    active = model.active_parameters_per_token()
    assert active == 671_026_419_200 - 248 * MOE_LAYERS * EXPERT == 37_552_297_472
    assert active == pytest.approx(37e9, rel=0.02)  # technical report: 37B activated (rounded)
    # README_WEIGHTS.md: 36.6B activated "including 0.9B for the output Head", i.e. without the
    # embedding table (a gather, not a matmul): 37,552,297,472 - 926,679,040 = 36,625,618,432
    assert active - VOCAB * HIDDEN == pytest.approx(36.6e9, rel=0.01)


def test_mla_kv_cache_by_hand_and_replicated_over_tp():
    # decode at batch 8 with 4096 tokens cached, fp8 cache (1 B): per GPU the whole latent, since
    # every GPU's heads read all of it: 8 x 4096 x 61 x (512 + 64) x 1 = 1,151,336,448 B; a GQA-style
    # split over 8 GPUs would have been 1/8 of that
    per_gpu = 8 * 4096 * LAYERS * (KV_RANK + ROPE) * 1
    assert per_gpu == 1_151_336_448
    for tp in (1, 8):
        s = estimate_model("deepseek-v3", "h200", "decode", 8, 4096, tp=tp, dtype="fp8", with_ops=False).summary
        assert s["kv_cache_bytes_per_gpu"] == per_gpu
        assert s["kv_cache_bytes"] == tp * per_gpu  # every GPU's copy
    assert load_model("deepseek-v3").kv_bytes_per_token(1.0) * 8 * 4096 == per_gpu


def test_decode_is_absorbed_and_reads_only_the_latent():
    est = estimate_model("deepseek-v3", "h200", "decode", 8, 4096, tp=8, dtype="fp8")
    ops = est.ops.set_index("op")
    assert "kv_b" not in ops.index and {"q_absorb", "v_up"} <= set(ops.index)
    # W_UK folded into the query: per GPU head (128 / 8 = 16) a [8 x 128] x [128 x 512] GEMM, one launch
    assert (ops.loc["q_absorb", ["m", "n", "k"]].tolist()) == [8, KV_RANK, NOPE]
    assert ops.loc["v_up", ["m", "n", "k"]].tolist() == [8, V, KV_RANK]
    assert ops.loc["q_absorb", "flops"] == 16 * 2 * 8 * KV_RANK * NOPE
    attention = ops.loc["attention"]
    # the cache read per layer: 8 sequences x 4096 tokens x 576 B (fp8), once (one latent "head")
    assert attention["bytes_kv"] == 8 * 4096 * (KV_RANK + ROPE)
    # per pair and GPU head: q.k over 576 and p.v over 512 elements, 2 FLOP each
    assert attention["flops"] == 8 * 16 * 4096 * 2 * ((KV_RANK + ROPE) + KV_RANK)


def test_prefill_is_non_absorbed_multi_head_attention():
    est = estimate_model("deepseek-v3", "h200", "prefill", 1, 2048, tp=8, dtype="fp8")
    ops = est.ops.set_index("op")
    assert "q_absorb" not in ops.index and "v_up" not in ops.index
    # kv_b decompresses every prompt token's latent into 16 heads' k_nope and v per GPU
    assert ops.loc["kv_b", ["m", "n", "k"]].tolist() == [2048, 16 * (NOPE + V), KV_RANK]
    # causal pairs per head: 2048 x 2049 / 2; q.k over 192 and p.v over 128, 2 FLOP each
    assert ops.loc["attention", "flops"] == pytest.approx(16 * 2048 * 2049 / 2 * 2 * ((NOPE + ROPE) + V))


def test_both_forms_hold_the_same_weights_and_a_mixed_sweep_agrees_with_single_points():
    args = dict(tp=8, dtype="fp8")
    prefill = estimate_model("deepseek-v3", "h200", "prefill", 2, 1024, **args).summary
    decode = estimate_model("deepseek-v3", "h200", "decode", 16, 3000, **args).summary
    assert prefill["weight_bytes_per_gpu"] == decode["weight_bytes_per_gpu"]
    points = pd.DataFrame({"model": "deepseek-v3", "hw": "h200", "tp": 8, "dtype": "fp8",
                           "phase": ["prefill", "decode"], "batch": [2, 16], "context": [1024, 3000]})
    mixed = sweep(points)
    for row, single in zip(mixed.itertuples(), (prefill, decode)):
        assert row.time_s == pytest.approx(single["time_s"], rel=1e-12)
        assert row.memory_bytes_per_gpu == pytest.approx(single["memory_bytes_per_gpu"], rel=1e-12)


def test_deepseek_v3_on_8_h200_fp8_fused_moe_and_weight_memory():
    est = estimate_model("deepseek-v3", "h200", "decode", 1, 4096, tp=8, dtype="fp8")
    ops = est.ops.set_index("op")
    # the 58 MoE layers launch router + grouped gate/up + grouped down + the shared expert's two GEMMs
    for name in ("router", "experts_gate_up", "experts_down", "shared_gate_up", "shared_down"):
        assert ops.loc[name, "count"] == MOE_LAYERS and ops.loc[name, "layer"] == "3-60"
    # the first 3 layers are dense, 18432 / 8 channels per GPU
    assert ops.loc["dense_gate_up", "count"] == DENSE_LAYERS and ops.loc["dense_gate_up", "layer"] == "0-2"
    assert ops.loc["dense_gate_up", "n"] == 2 * DENSE_FFN / 8
    # Memory: the published 671B main-model parameters at 1 B (fp8 e4m3, config.json's
    # quantization_config) are 671.0 GB over the 8 GPUs, plus what every GPU holds whole: q_a and kv_a
    # (61 x (7168 x 1536 + 7168 x 576) = 923,473,920), the routers (58 x 7168 x 256 = 106,430,464) and the
    # norms (61 x (2 x 7168 + 2048) + 7168 = 1,007,616). The routers' 58 x 256 biases are not held by a
    # GEMM row (14,848 B, not counted).
    replicated = LAYERS * HIDDEN * (Q_RANK + KV_RANK + ROPE) + MOE_LAYERS * HIDDEN * EXPERTS \
        + LAYERS * (2 * HIDDEN + Q_RANK + KV_RANK) + HIDDEN
    params = load_model("deepseek-v3").parameters()
    per_gpu = est.summary["weight_bytes_per_gpu"]
    assert 8 * per_gpu - 7 * replicated == pytest.approx(params - MOE_LAYERS * EXPERTS, rel=1e-12)
    assert per_gpu == pytest.approx(84.78e9, rel=1e-3)  # (671.03 - 1.03) / 8 + 1.03 GB
    assert est.summary["fits"]


def test_cli_model_deepseek_v3_on_8_h200_fp8(capsys):
    code = main(["model", "--model", "deepseek-v3", "--hw", "h200", "--tp", "8", "--dtype", "fp8"])
    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    for word in ("experts_gate_up", "experts_down", "shared_gate_up", "q_absorb", "dense_gate_up", "fits"):
        assert word in out, word


@pytest.mark.parametrize("method", ["kivi", "razorattention", "adakv", "minicache", "quest", "streamingllm+kivi"])
def test_head_wise_and_quantizing_kv_methods_on_an_mla_cache_are_refused(method):
    # one latent per token that every head shares: there are no K/V heads to budget, no separate
    # K and V to quantize per channel and per token, no per-head pages
    with pytest.raises(SimulatorError, match="MLA latent.*token-level methods apply: h2o, lazyllm"):
        estimate_model("deepseek-v3", "h200", "decode", 1, 4096, tp=8, dtype="fp8", kv_method=method)


def test_token_level_kv_methods_on_an_mla_cache_keep_whole_latents():
    # StreamingLLM keeps sinks + window tokens: 4 + 2000 latents of the 32768 per sequence and layer,
    # so the cache shrinks by exactly that ratio (every TP rank holds the whole latent cache)
    kw = dict(tp=8, dtype="fp8")
    full = estimate_model("deepseek-v3", "h200", "decode", 16, 32768, **kw).summary
    stream = estimate_model("deepseek-v3", "h200", "decode", 16, 32768, kv_method="streamingllm", **kw).summary
    assert stream["kv_cache_bytes"] / full["kv_cache_bytes"] == pytest.approx((4 + 2000) / 32768)
    assert stream["time_s"] < full["time_s"]
    # H2O at its 20% budget, plus its fp32 accumulated scores (one per query head and held token)
    h2o = estimate_model("deepseek-v3", "h200", "decode", 16, 32768, kv_method="h2o", **kw).summary
    assert 0.2 < h2o["kv_cache_bytes"] / full["kv_cache_bytes"] < 0.3
    from simulator.methods.kvcache import KV_METHODS

    assert {n for n, c in KV_METHODS.items() if c.on_mla} == {"h2o", "snapkv", "streamingllm", "pyramidkv", "lazyllm"}


@pytest.mark.parametrize("old, new, message", [
    ("head_dim: 192", "head_dim: 128", "qk_nope_head_dim"),
    ("kv_heads: 128", "kv_heads: 8", "must equal heads"),
    ("  first_dense_layers: 3", "  first_dense_layers: 61", "first_dense_layers"),
])
def test_inconsistent_mla_or_dense_layers_are_errors(tmp_path, old, new, message):
    path = tmp_path / "deepseek-v3.yaml"
    path.write_text(swap((models_dir() / "deepseek-v3.yaml").read_text(), old, new))
    with pytest.raises(SimulatorError, match=message):
        load_model(str(path))


def test_q_without_low_rank_is_one_projection(tmp_path):
    # DeepSeek-V2-Lite style (q_lora_rank null): q is one 7168 x (128 x 192) matrix instead of q_a, q_b and
    # the q_a norm: 61 x (176,160,768 - 11,010,048 - 37,748,736 - 1536) = 7,771,427,328 more parameters
    text = (models_dir() / "deepseek-v3.yaml").read_text()
    delta = LAYERS * (HIDDEN * HEADS * (NOPE + ROPE) - HIDDEN * Q_RANK - Q_RANK * HEADS * (NOPE + ROPE) - Q_RANK)
    path = tmp_path / "deepseek-v3.yaml"
    path.write_text(swap(swap(text, "  q_lora_rank: 1536\n", ""), "published_parameters: 671000000000",
                         f"published_parameters: {671_026_419_200 + delta}"))
    model = load_model(str(path))
    assert model.parameters() - load_model("deepseek-v3").parameters() == delta
    ops = estimate_model(model, "h200", "decode", 1, 1024, tp=8, dtype="fp8").ops
    assert "q_proj" in set(ops.op) and "q_a" not in set(ops.op)
    assert ops.loc[ops.op == "q_proj", "n"].item() == 16 * (NOPE + ROPE)
    assert np.isfinite(ops.time_s).all()


def test_llm_doc_deepseek_example_quotes_current_numbers():
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "llm.md").read_text()
    assert "sparsim model --model deepseek-v3 --hw h200 --tp 8 --dtype fp8" in doc
    est = estimate_model("deepseek-v3", "h200", "decode", 1, 4096, tp=8, dtype="fp8")
    s = est.summary
    read = (est.ops.bytes_weight * est.ops["count"]).sum()
    assert f"prints {s['time_s'] * 1e3:.2f} ms per decode step" in doc
    assert f"({read / 1e9:.2f} GB of weights read" in doc
    assert f"with {s['weight_bytes_per_gpu'] / 1e9:.1f} GB of weights held per GPU" in doc
    assert f"{load_model('deepseek-v3').parameters():,} parameters" in doc

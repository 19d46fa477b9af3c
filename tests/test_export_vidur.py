"""`sparsim export vidur`: Vidur's mlp.csv layout, read back identically by sparsim's Vidur importer,
priced as sparsim's GEMM model prices the same shapes, and what the layout cannot say refused."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simulator
from simulator.cli import main
from simulator.core.errors import SimulatorError
from simulator.model.llm import estimate_model
from simulator.truth.export_vidur import (all_reduce_table, attention_table, mlp_table, vidur_attention_grid,
                                    vidur_token_grid, write_mlp_csv, write_profiles)
from simulator.truth.importers import vidur_mlp

ROOT = Path(__file__).resolve().parents[1]
VIDUR = ROOT.parent / "shared" / "data" / "vidur" / "data" / "profiling" / "compute"
REAL = VIDUR / "h100" / "meta-llama" / "Llama-2-70b-hf" / "mlp.csv"
GEMMS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("vidur")
    path = write_mlp_csv(out, "llama-3.1-70b", "h200", tp=[1, 8], recipe="2:4", max_tokens=256)
    return path, pd.read_csv(path), vidur_mlp.read(path)


def test_token_grid_is_vidurs():
    # vidur/profiling/utils get_num_tokens_to_profile: 1, 2, 4; 8..1016 by 8 (127); 1024..2048 by 16 (65);
    # 2048..4096 by 32 (65, 2048 already counted): 3 + 127 + 65 + 64 = 259 counts up to 4096
    grid = vidur_token_grid(4096)
    assert len(grid) == 259 and grid[:4].tolist() == [1, 2, 4, 8] and grid[-1] == 4096
    assert vidur_token_grid(256).tolist() == [1, 2, 4] + list(range(8, 257, 8))
    if REAL.is_file():  # the counts of a real Vidur profile
        assert sorted(pd.read_csv(REAL)["num_tokens"].unique().tolist()) == grid.astype(int).tolist()


def test_columns_are_a_real_vidur_files(exported):
    _, raw, _ = exported
    if not REAL.is_file():
        pytest.skip("shared Vidur data not present")
    assert list(raw.columns) == list(pd.read_csv(REAL, nrows=1).columns)


def test_round_trip_reads_back_the_written_times_and_shapes(exported):
    _, raw, rows = exported
    # 2 TP degrees x 35 token counts x 4 GEMMs, all timed
    assert len(rows) == 2 * 35 * 4 and (rows["status"] == "ok").all()
    for op in GEMMS:
        got = rows[rows["group"] == f"vidur-{op}"].sort_values(["tp", "m"])
        want = raw.sort_values(["num_tensor_parallel_workers", "num_tokens"])
        np.testing.assert_array_equal(got["time_s_median"].to_numpy(), want[f"time_stats.{op}.median"].to_numpy() * 1e-3)
        np.testing.assert_array_equal(got["time_s_min"].to_numpy(), want[f"time_stats.{op}.min"].to_numpy() * 1e-3)
    # LLaMA-3.1-70B (hidden 8192, 64 heads, 8 KV heads, head_dim 128, ffn 28672) at TP 8:
    # QKV n = (64 + 2 x 8) x 128 / 8 = 1280; O k = 64 x 128 / 8 = 1024; gate+up n = 2 x 28672 / 8 = 7168
    tp8 = rows[(rows["tp"] == 8) & (rows["m"] == 256)].set_index("group")
    assert tuple(tp8.loc["vidur-attn_pre_proj", ["n", "k"]]) == (1280, 8192)
    assert tuple(tp8.loc["vidur-attn_post_proj", ["n", "k"]]) == (8192, 1024)
    assert tuple(tp8.loc["vidur-mlp_up_proj", ["n", "k"]]) == (7168, 8192)
    assert tuple(tp8.loc["vidur-mlp_down_proj", ["n", "k"]]) == (8192, 3584)


def test_exported_times_are_sparsims_gemm_kernel_times(exported):
    # a second code path: the importer's shapes priced by estimate_gemm directly (2:4 weights, fp16)
    _, _, rows = exported
    priced = simulator.estimate_gemm("h200", rows["m"].to_numpy(), rows["n"].to_numpy(), rows["k"].to_numpy(),
                                     "fp16", "2:4")
    np.testing.assert_allclose(rows["time_s_median"].to_numpy(), priced["kernel_time_s"].to_numpy(), rtol=1e-12)


def test_deterministic_stats_and_fused_ops(exported):
    _, raw, _ = exported
    for op in ("attn_pre_proj", "mlp_act", "input_layernorm"):
        for stat in ("min", "max", "mean"):
            assert (raw[f"time_stats.{op}.{stat}"] == raw[f"time_stats.{op}.median"]).all()
        assert (raw[f"time_stats.{op}.std"] == 0).all()
    assert (raw["time_stats.attn_rope.median"] == 0).all() and (raw["time_stats.add.median"] == 0).all()
    assert (raw["time_stats.mlp_act.median"] > 0).all() and (raw["time_stats.emb.median"] > 0).all()
    assert set(raw["use_gated_mlp"]) == {True} and set(raw["vocab_size"]) == {128256}


def test_layer_groups_average_to_the_models_total():
    # OWL gives 8 layer groups different sparsities: the exported per-layer time x 80 layers is the sum
    # of the groups' kernel times (count-weighted mean), at every token count
    table = mlp_table("llama-3.1-70b", "h200", tp=[8], recipe="owl:0.7:bitmap", max_tokens=64)
    groups = {}
    for count, sparsity in simulator.model.llm.parse_recipe("owl:0.7:bitmap").layer_groups(80):
        groups[sparsity] = groups.get(sparsity, 0) + count
    m = table["num_tokens"].to_numpy()
    total = sum(count * simulator.estimate_gemm("h200", m, 1280, 8192, "fp16", sparsity)["kernel_time_s"].to_numpy()
                for sparsity, count in groups.items())
    np.testing.assert_allclose(table["time_stats.attn_pre_proj.median"].to_numpy() * 1e-3 * 80, total, rtol=1e-12)


@pytest.mark.parametrize("kwargs, message", [
    (dict(model="qwen3-30b-a3b"), "mixture of experts"),
    (dict(model="deepseek-v3"), "mixture of experts"),
    (dict(model="llama-3.1-minitron-4b-width"), "head_dim"),
    (dict(model="bert-base"), "encoder"),
    (dict(model="llama-3.1-70b", recipe="2:4+width:0.25"), "structured"),
    (dict(model="llama-3.1-70b", tp=[3]), "--tp 3"),
])
def test_what_the_layout_cannot_say_is_refused(tmp_path, kwargs, message):
    args = {"hw": "h200", **kwargs}
    with pytest.raises(SimulatorError, match=message):
        write_mlp_csv(tmp_path, **args)


def test_cli_writes_the_file_and_a_manifest(tmp_path, capsys):
    code = main(["export", "vidur", "--model", "llama-3.1-8b", "--hw", "b200", "--tp", "1,2", "--recipe", "2:4",
                 "--kv-method", "h2o", "--max-tokens", "64", "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0 and err == "" and "mlp.csv" in out
    folder = next((tmp_path / "profiling" / "compute").glob("*/llama-3.1-8b"))
    raw = pd.read_csv(folder / "mlp.csv")
    assert sorted(raw["num_tensor_parallel_workers"].unique()) == [1, 2]
    manifest = json.loads((folder / "sparsim-export.json").read_text())
    assert manifest["recipe"] == "2:4" and manifest["kv_method"].startswith("h2o") and manifest["tp"] == [1, 2]
    assert (folder / "attention.csv").is_file()
    assert (tmp_path / "profiling" / "network" / folder.parent.name / "all_reduce.csv").is_file()
    assert main(["export", "vidur", "--model", "qwen3-30b-a3b", "--hw", "h100", "--out", str(tmp_path)]) == 2
    assert "mixture of experts" in capsys.readouterr().err



def test_llm_doc_quotes_the_comparison_with_vidurs_h100_profile():
    if not REAL.is_file():
        pytest.skip("shared Vidur data not present")
    doc = (ROOT / "docs" / "llm.md").read_text()
    ours = mlp_table("llama-2-70b", "h100", tp=[1], max_tokens=4096)
    real = pd.read_csv(REAL)
    a = ours[ours["num_tokens"] == 4096].iloc[0]
    b = real[(real["num_tensor_parallel_workers"] == 1) & (real["num_tokens"] == 4096)].iloc[0]
    up, qkv = "time_stats.mlp_up_proj.median", "time_stats.attn_pre_proj.median"
    assert f"gate/up {a[up]:.2f} vs {b[up]:.2f} ms, QKV {a[qkv]:.2f} vs {b[qkv]:.2f} ms" in doc


def test_vidur_simulator_runs_on_the_export(tmp_path):
    # Optional ([serving] extra): Vidur's own simulator trains its predictors on the exported mlp.csv
    # (with Vidur's measured A100 attention and all-reduce profiles beside it) and completes a short
    # Poisson run; 2:4 weights make its decode faster than the dense export, so it used our numbers.
    pytest.importorskip("vidur")
    shared = VIDUR.parent
    attention, all_reduce = shared / "a100" / "attention.csv", shared / "network" / "a100_dgx" / "all_reduce.csv"
    if not (attention.is_file() and all_reduce.is_file()):
        pytest.skip("shared Vidur data not present")
    from simulator.truth.export_vidur import run_vidur

    decode = {}
    for recipe in ("dense", "2:4"):
        mlp = write_mlp_csv(tmp_path / recipe.replace(":", "-"), "llama-3.1-70b", "a100", tp=[2], recipe=recipe)
        # Vidur's Llama-3-70B config has LLaMA-3.1-70B's shapes (64 heads, 8 KV heads, 8192, 28672, 128256)
        metrics = run_vidur(mlp, attention, all_reduce, tmp_path / f"run-{recipe.replace(':', '-')}",
                            vidur_model="meta-llama/Llama-3-70B", device="a100", network_device="a100_dgx", tp=2,
                            replicas=2, qps=2.0, requests=20)
        assert len(metrics) == 20 and (metrics["request_num_decode_tokens"] == 64).all()
        assert (metrics["request_e2e_time"] > 0).all()
        decode[recipe] = metrics["decode_time_execution_plus_preemption_normalized"].mean()
    assert decode["2:4"] < decode["dense"]


# ---- attention.csv and all_reduce.csv -------------------------------------------------------------

def test_attention_grid_is_vidurs():
    # Vidur 0.0.26 get_attention_input_combinations at max_seq_len 4096, batch 1..128, chunk <= 4096:
    # decode: cache sizes 32..1024 by 32 (32) and 1088..4032 by 64 (47) = 79, x 128 batch sizes
    grid = vidur_attention_grid(4096, 128)
    decode = grid[~grid["is_prefill"]]
    assert len(decode) == 79 * 128 and decode["kv_cache_size"].min() == 32 and decode["kv_cache_size"].max() == 4032
    prefill = grid[grid["is_prefill"]]
    assert (prefill["batch_size"] == 1).all()
    assert ((prefill["prefill_chunk_size"] + prefill["kv_cache_size"]) <= 4096).all()
    # chunk 512 over 0, 512, ..., 3584 cached tokens (4096 // 512 = 8 partitions)
    assert sorted(prefill.loc[prefill["prefill_chunk_size"] == 512, "kv_cache_size"]) == [512 * i for i in range(8)]


@pytest.fixture(scope="module")
def attention():
    return attention_table("llama-3.1-70b", "h200", tp=[8], max_seq_len=4096, max_batch_size=8)


def test_attention_decode_rows_are_the_models_decode_attention(attention):
    # batch 4 decoding over 512 cached tokens at TP 8 is the attention op of sparsim's decode step at
    # context 513 (the new token included), one layer, kernel time (no launch overhead)
    row = attention[(~attention["is_prefill"]) & (attention["batch_size"] == 4) & (attention["kv_cache_size"] == 512)]
    ops = estimate_model("llama-3.1-70b", "h200", "decode", 4, 513, tp=8, dtype="fp16").ops
    att = ops[ops.op == "attention"].iloc[0]
    # the kernel's own time: the op's time less its launches (FlashAttention: fixed time and combine included)
    assert row["time_stats.attn_decode.median"].item() == pytest.approx((att.time_s - att.overhead_s) * 1e3, rel=1e-9)
    assert np.isnan(row["time_stats.attn_prefill.median"].item())


def test_attention_prefill_rows_without_a_cache_are_the_models_prefill_attention(attention):
    row = attention[attention["is_prefill"] & (attention["prefill_chunk_size"] == 256)
                    & (attention["kv_cache_size"] == 0)]
    ops = estimate_model("llama-3.1-70b", "h200", "prefill", 1, 256, tp=8, dtype="fp16").ops
    att = ops[ops.op == "attention"].iloc[0]
    assert row["time_stats.attn_prefill.median"].item() == pytest.approx((att.time_s - att.overhead_s) * 1e3, rel=1e-9)
    # which is simulator.estimate_attention's kernel time for that call: 64 / 8 query heads, 8 / 8 KV heads
    alone = simulator.estimate_attention("h200", batch=1, q_tokens=256, kv_tokens=0, q_heads=8, kv_heads=1,
                                         head_dim=128, dtype="fp16")
    assert row["time_stats.attn_prefill.median"].item() == pytest.approx(alone["kernel_time_s"].iloc[0] * 1e3, rel=1e-9)
    # a chunk over a cached prefix attends to more pairs: slower than the same chunk alone
    later = attention[attention["is_prefill"] & (attention["prefill_chunk_size"] == 256)
                      & (attention["kv_cache_size"] == 768)]
    assert later["time_stats.attn_prefill.median"].item() > row["time_stats.attn_prefill.median"].item()


def test_a_kv_method_changes_the_decode_rows_only(attention):
    # StreamingLLM keeps 4 sinks + a 252-token window: over 4032 cached tokens it reads 256 of them
    window = attention_table("llama-3.1-70b", "h200", tp=[8], kv_method="streamingllm:window=252",
                             max_seq_len=4096, max_batch_size=8)
    decode = ~attention["is_prefill"] & (attention["kv_cache_size"] == 4032) & (attention["batch_size"] == 8)
    assert (window.loc[decode, "time_stats.attn_decode.median"].item()
            < attention.loc[decode, "time_stats.attn_decode.median"].item())
    prefill = attention["is_prefill"]
    np.testing.assert_array_equal(window.loc[prefill, "time_stats.attn_prefill.median"],
                                  attention.loc[prefill, "time_stats.attn_prefill.median"])


def test_all_reduce_rows_are_the_specs_ring_all_reduce():
    table = all_reduce_table("h200", "llama-3.1-70b", tp=[1, 2, 8])
    assert sorted(table["num_workers"].unique()) == [2, 8]  # TP 1 has no all-reduce
    assert (table["devices_per_node"] == table["num_workers"]).all()
    # Vidur's collective sizes: 1024, 5120, ... by 4 KiB
    assert table.loc[table["num_workers"] == 2, "size"].iloc[:3].tolist() == [1024, 5120, 9216]
    hw = simulator.load_hw("h200")
    row = table[(table["num_workers"] == 8) & (table["size"] == 1024 + 4096 * 100)].iloc[0]
    assert row["time_stats.all_reduce.median"] == pytest.approx(hw.allreduce_time_s(row["size"], 8) * 1e3, rel=1e-12)


def test_vidur_runs_a_16_replica_h200_cluster_on_sparsim_profiles_alone(tmp_path):
    # Optional ([serving] extra). Every profile from sparsim (no measured file), H200 added to Vidur's
    # device registry from sparsim's spec: 16 replicas of 2:4 LLaMA-3.1-70B at TP 2 under Poisson load.
    pytest.importorskip("vidur")
    from simulator.truth.export_vidur import run_vidur, vidur_device_for

    paths = write_profiles(tmp_path / "export", "llama-3.1-70b", "h200", tp=[2], recipe="2:4", max_batch_size=64)
    device = vidur_device_for("h200")
    # H200: 989 dense fp16 tensor TFLOP/s and 141 GB (sparsim's spec): Vidur's device entry
    assert device == {"name": "h200", "fp16_tflops": 989, "total_memory_gb": round(simulator.load_hw("h200").memory_capacity_bytes / 2**30)}
    metrics = run_vidur(paths["mlp.csv"], paths["attention.csv"], paths["all_reduce.csv"], tmp_path / "run",
                        vidur_model="meta-llama/Llama-3-70B", device="h200", network_device="h200_dgx", tp=2,
                        replicas=16, qps=10.0, requests=100, prefill_tokens=512, decode_tokens=64, new_device=device,
                        new_node={"name": "h200_dgx", "num_devices_per_node": 8, "device": "h200"})
    assert len(metrics) == 100 and (metrics["request_e2e_time"] > 0).all()

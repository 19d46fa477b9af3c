"""Imported GPU traces (Vidur, published 2:4): the importer, the by-model split, kernel time vs
the caller's time, the per-class bounds, calibration files that must be refused."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

import simulator
from simulator.truth import calibration, validation
from simulator.core.errors import SimulatorError
from simulator.truth.importers import published, vidur_mlp

ROOT = Path(__file__).resolve().parents[1]
VIDUR = ROOT.parent / "shared" / "data" / "vidur" / "data" / "profiling" / "compute"
BOUNDS = yaml.safe_load((ROOT / "workloads" / "validation" / "gpu-classes.yaml").read_text())


def test_kernel_time_is_time_without_launch():
    df = simulator.estimate_gemm("a100", m=[1, 16, 4096], n=4096, k=4096, dtype="fp16")
    hw = simulator.load_hw("a100") if hasattr(simulator, "load_hw") else None
    launch = df["time_s"] - df["kernel_time_s"]
    assert np.allclose(launch, launch.iloc[0]) and launch.iloc[0] > 0  # the launch, once per call
    assert (df["kernel_time_s"] >= df[["compute_floor_s", "memory_floor_s"]].max(axis=1)).all()


def test_vidur_shapes_of_llama2_7b():
    # Llama-2-7b: n_embd 4096, 32 heads (= kv heads), ffn 11008, gated. At TP 2:
    # QKV n = (32 + 2*32) * 128 / 2 = 6144, k = 4096; O n = 4096, k = 32*128/2 = 2048;
    # gate+up n = 2 * 11008 / 2 = 11008, k = 4096; down n = 4096, k = 11008 / 2 = 5504.
    path = VIDUR / "a100" / "meta-llama" / "Llama-2-7b-hf" / "mlp.csv"
    if not path.is_file():
        pytest.skip("shared Vidur data not present")
    rows = vidur_mlp.read(path)
    tp2 = rows[(rows["tp"] == 2) & (rows["m"] == 1)].set_index("group")
    assert tuple(tp2.loc["vidur-attn_pre_proj", ["n", "k"]]) == (6144, 4096)
    assert tuple(tp2.loc["vidur-attn_post_proj", ["n", "k"]]) == (4096, 2048)
    assert tuple(tp2.loc["vidur-mlp_up_proj", ["n", "k"]]) == (11008, 4096)
    assert tuple(tp2.loc["vidur-mlp_down_proj", ["n", "k"]]) == (4096, 5504)
    raw = pd.read_csv(path)
    first = raw[(raw["num_tensor_parallel_workers"] == 2) & (raw["num_tokens"] == 1)].iloc[0]
    assert tp2.loc["vidur-attn_pre_proj", "time_s_median"] == pytest.approx(
        first["time_stats.attn_pre_proj.median"] * 1e-3)  # ms -> s
    assert set(rows["source_commit"]) == {"7d47513363ec447a741ac5e47241580b47724fbf"}


def test_committed_traces_are_what_the_importer_writes(tmp_path):
    path = VIDUR / "h100" / "microsoft" / "phi-2" / "mlp.csv"
    if not path.is_file():
        pytest.skip("shared Vidur data not present")
    from simulator.cli.traces import import_files

    (target, count), = import_files("vidur", [path], "h100-sxm5-80gb", out_dir=tmp_path)
    committed = ROOT / "hwspecs" / "h100-sxm5-80gb" / "traces" / target.name
    assert target.read_text() == committed.read_text() and count == 1044


def test_published_rows_map_to_their_devices():
    rows = published.read(ROOT / "hwspecs" / "a100-sxm4-80gb" / "traces" / "published-sparse-kernels-given.csv"
                          ) if False else None
    src = ROOT.parent / "shared" / "reference" / "sparse-kernels-given.csv"
    if not src.is_file():
        pytest.skip("shared reference table not present")
    rows = published.read(src)
    assert set(rows["device"]) == {"a100-sxm4-80gb", "h100-sxm5-80gb"}
    # CUT408-01: 16384^3 at 243.19 TFLOP/s -> 2 * 16384^3 / 243.19e12 = 36.17 ms
    row = rows.set_index("case_id").loc["published/CUT408-01"]
    assert row["time_s_median"] == pytest.approx(2 * 16384**3 / 243.19e12)


def test_published_rows_are_read_as_what_they_time(tmp_path):
    # The committed traces are the importer's output on the shared table: re-importing gives them back.
    from simulator.cli.traces import import_files

    src = ROOT.parent / "shared" / "reference" / "sparse-kernels-given.csv"
    if not src.is_file():
        pytest.skip("shared reference table not present")
    for device in ("a100-sxm4-80gb", "h100-sxm5-80gb"):
        (target, _), = import_files("published", [src], device, out_dir=tmp_path)
        assert target.read_text() == (ROOT / "hwspecs" / device / "traces" / target.name).read_text()
    rows = published.read(src).set_index("case_id")
    ffn = rows.loc["published/AO2012-01"]  # "FFN: Linear(8192->8192) + SquaredReLU + Linear(8192->8192)"
    assert (ffn["structure"], ffn["n2"], ffn["k2"], ffn["activation"]) == ("ffn", 8192, 8192, "squaredrelu")
    assert ffn["flops"] == 2 * (2 * 64 * 8192 * 8192)  # two GEMMs of 64 x 8192 x 8192
    assert rows.loc["published/AO2012-02", "kernel_class"] == "2:4-activation"  # 2:4 on activations
    assert rows.loc["published/AOCSV-01", "structure"] == "gemm"
    listed = published.exclusions()
    excluded = rows[rows["status"] == "excluded"]
    assert {c.split("/", 1)[1] for c in excluded.index} == set(listed)
    assert (excluded["excluded_reason"] != "").all() and (excluded["time_s_median"] > 0).all()  # kept, with why


def test_excluded_rows_are_listed_not_scored():
    result = validation.validate("h100-sxm5-80gb")
    listed = {row["case_id"] for row in result["excluded"]}
    assert listed == {"published/AOCSV-02", "published/AOCSV-04", "published/AOCSV-06"}
    traces, _, _ = result["_frame"]
    assert not set(traces["case_id"]) & listed


def test_an_ffn_row_is_both_gemms_and_the_two_element_wise_kernels():
    hw = simulator.load_hw("h100-sxm5-80gb", calibrated=False)
    row = pd.DataFrame([{"kernel_class": "2:4", "dtype": "fp8e4m3", "m": 64.0, "n": 8192.0, "k": 8192.0,
                         "structure": "ffn", "n2": 4096.0, "k2": 8192.0, "timing_method": "published"}])
    got = validation.predict(hw, row)[0]
    from simulator.kernels.gemm import gemm_columns
    from simulator.kernels.ops import memory_op_columns

    one = lambda n, k: gemm_columns(hw, np.array([64.0]), np.array([n]), np.array([k]), "fp8", "2:4")["time_s"][0]
    # element-wise: read bf16 (2 B) and write fp8 (1 B) per element, one fp32 scale per row:
    # input 64 x 8192 x 3 + 64 x 4 = 1,573,120 B; hidden 64 x 8192 x 3 + 256 = 1,573,120 B
    assert 64 * 8192 * 3 + 4 * 64 == 1_573_120
    ew = 2 * memory_op_columns(hw, np.array([1_573_120.0]))["time_s"][0]
    assert got == pytest.approx(one(8192.0, 8192.0) + one(4096.0, 8192.0) + ew, rel=1e-12)


def test_speedup_class_scores_the_speedup_over_the_rows_own_dense_time():
    hw = simulator.load_hw("a100-sxm4-80gb")
    rows = pd.DataFrame([{"kernel_class": "2:4", "dtype": "fp16", "m": 4096.0, "n": 4096.0, "k": 4096.0,
                          "timing_method": "published", "time_s_median": 1.0e-4, "dense_time_s": 1.5e-4}])
    sparse = validation.predict(hw, rows)
    dense = validation.predict(hw, rows.assign(kernel_class="dense"))
    implied = validation.implied_from_dense(hw, rows, sparse)
    # the measured dense time times the model's sparse/dense ratio: the model's speed-up applied
    assert implied[0] == pytest.approx(1.5e-4 * sparse[0] / dense[0], rel=1e-12)
    # its error against the measured 2:4 time is the speed-up's: measured 1.5x over model's
    model_speedup = dense[0] / sparse[0]
    assert abs(implied[0] / 1.0e-4 - 1) == pytest.approx(abs(1.5 / model_speedup - 1), rel=1e-12)
    # a row without a baseline has none
    assert np.isnan(validation.implied_from_dense(hw, rows.assign(dense_time_s=np.nan), sparse)[0])


def test_split_holds_out_whole_models():
    traces = validation.load_traces("a100-sxm4-80gb")
    held = validation.holdout_mask(traces)
    vidur = traces["model"].notna().to_numpy()
    by_model = pd.Series(held[vidur]).groupby(traces.loc[vidur, "model"].to_numpy()).agg(["min", "max"])
    assert (by_model["min"] == by_model["max"]).all()  # a model is wholly on one side
    assert set(by_model.index[by_model["max"]]) == set(validation.HELDOUT_MODELS)


def test_validate_json_classes_have_the_contract_keys():
    result = validation.validate("a100-sxm4-80gb")
    for row in result["classes"]:
        assert {"class", "n", "median_ape", "p90_ape", "split"} <= set(row)
    names = {row["class"] for row in result["classes"]}
    assert {"dense", "2:4", "dense m<=16", "dense m>512"} <= names


def _scopes():
    import importlib.util

    spec = importlib.util.spec_from_file_location("refresh", ROOT / "scripts" / "refresh_validation_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.results()


def test_classes_within_bounds_or_known_misses_and_table_fresh():
    module, scopes = _scopes()
    for scope, classes in BOUNDS["bounds"].items():
        got = {c["class"]: c for c in scopes[scope]}
        for cls, bound in classes.items():
            row = got[cls]
            met = row["median_ape"] <= bound["median_ape"] and row["p90_ape"] <= bound.get("p90_ape", np.inf)
            miss = BOUNDS.get("misses", {}).get(scope, {}).get(cls)
            if miss is None:
                assert met, f"{scope} {cls} left its bound: {row}"
            else:
                assert not met, f"{scope} {cls} now meets its bound: drop it from `misses`"
                assert row["median_ape"] <= miss["median_ape"] + 0.005, f"{scope} {cls} got worse: {row}"
                assert row["p90_ape"] <= miss.get("p90_ape", np.inf) + 0.005, f"{scope} {cls} got worse: {row}"
    text = (ROOT / "docs" / "validation.md").read_text()
    assert module.table(scopes) in text, "docs/validation.md's GPU table is stale"


def _good_calibration():
    return yaml.safe_load((ROOT / "hwspecs" / "a100-sxm4-80gb" / "calibration.yaml").read_text())


@pytest.mark.parametrize("name,value", [("hbm", 5.0), ("hbm", -0.3), ("dense_matrix", 0.0),
                                        ("dense_matrix", float("nan")), ("memory_ramp_us", -1.0)])
def test_calibration_file_with_impossible_parameter_is_refused(name, value):
    data = _good_calibration()
    data["parameters"][name] = {"value": value, "prior": 0.8}
    spec = simulator.load_hw("a100-sxm4-80gb", calibrated=False)
    with pytest.raises(SimulatorError, match=f"parameters.{name}") as err:
        calibration.apply(spec, data, path="cal.yaml")
    assert "\n" not in str(err.value)


def test_calibration_sections_of_the_kernel_models_are_float_mappings():
    data = _good_calibration()
    data["attention"] = {"prefill_efficiency": 0.5}
    spec = simulator.load_hw("a100-sxm4-80gb", calibrated=False)
    calibration.apply(spec, data, path="cal.yaml")
    data["allreduce"] = {"bus_efficiency": "fast"}
    with pytest.raises(SimulatorError, match="allreduce"):
        calibration.apply(spec, data, path="cal.yaml")


def test_calibration_refuses_a_fit_worse_than_the_defaults():
    result = {"device": "a100-sxm4-80gb", "parameters": {"hbm": {"value": 0.5, "prior": 0.83}},
              "errors": {"holdout_before": [{"class": "dense", "median_ape": 0.05}],
                         "holdout_after": [{"class": "dense", "median_ape": 4550.0}]}}
    with pytest.raises(SimulatorError, match="worse than the spec defaults"):
        calibration.write(result)


PROFILING = VIDUR.parent  # shared/data/vidur/data/profiling


def test_vidur_attention_rows_per_gpu():
    # attention.csv: n_embd 8192, 64 q heads, 8 KV heads at TP 2 -> 32 q heads, 4 KV heads, head_dim 8192/64 = 128.
    from simulator.truth.importers import vidur_attention

    path = PROFILING / "a100" / "attention.csv"
    if not path.is_file():
        pytest.skip("shared Vidur data not present")
    rows = vidur_attention.read(path)
    assert set(rows["heads"]) == {32} and set(rows["kv_heads"]) == {4} and set(rows["head_dim"]) == {128}
    first = rows.iloc[0]  # the file's first row: decode, batch 1, 32 cached tokens, 0.015 ms
    assert (first["kernel_class"], first["batch"], first["q_len"], first["kv_cached"], first["kv_len"]) == (
        "attention-decode", 1, 1, 32, 33)
    assert first["time_s_median"] == pytest.approx(15e-6)
    # causal prefill of q new tokens over c cached: pairs q*c + q(q+1)/2; FLOP = 4 * 32 * 128 * pairs
    pre = rows[rows["kernel_class"] == "attention-prefill"].iloc[0]
    q, c = pre["q_len"], pre["kv_cached"]
    assert pre["flops"] == pytest.approx(4 * 32 * 128 * (q * c + q * (q + 1) / 2))
    assert set(rows["source_commit"]) == {"e2d00e9afba96cec9f0e7ea560bbfc4a539fae6a"}


def test_vidur_allreduce_topologies_from_the_folder():
    from simulator.truth.importers import vidur_allreduce

    dgx = PROFILING / "network" / "a100_dgx" / "all_reduce.csv"
    pairs = PROFILING / "network" / "a100_pairwise_nvlink" / "all_reduce.csv"
    if not dgx.is_file() or not pairs.is_file():
        pytest.skip("shared Vidur data not present")
    rows = vidur_allreduce.read(dgx)
    one_node = rows["gpus"] == rows["gpus_per_node"]
    assert set(rows.loc[one_node, "topology"]) == {"nvswitch"} and set(rows.loc[~one_node, "topology"]) == {"infiniband"}
    rows = vidur_allreduce.read(pairs)
    assert set(rows.loc[rows["gpus"] == 2, "topology"]) == {"nvlink-pair"}
    assert set(rows.loc[rows["gpus"] == 4, "topology"]) == {"pcie"}


def test_committed_attention_and_allreduce_traces_are_what_the_importer_writes(tmp_path):
    from simulator.cli.traces import import_files

    cases = [(PROFILING / "network" / "h100_dgx" / "all_reduce.csv", "h100-sxm5-80gb"),
             (PROFILING / "a100" / "attention.csv", "a100-sxm4-80gb")]
    for path, device in cases:
        if not path.is_file():
            pytest.skip("shared Vidur data not present")
        (target, _count), = import_files("vidur", [path], device, out_dir=tmp_path / device)
        committed = ROOT / "hwspecs" / device / "traces" / target.name
        assert target.read_text() == committed.read_text(), target.name


def test_vidur_layout_is_told_by_columns_not_the_name(tmp_path):
    from simulator.cli.traces import import_files

    src = PROFILING / "network" / "a100_pairwise_nvlink" / "all_reduce.csv"
    if not src.is_file():
        pytest.skip("shared Vidur data not present")
    renamed = tmp_path / "a100_pairwise_nvlink" / "my-profile.csv"
    renamed.parent.mkdir()
    renamed.write_bytes(src.read_bytes())
    (target, count), = import_files("vidur", [renamed], "a100-pcie-80gb", out_dir=tmp_path / "out")
    assert target.name == "vidur-all-reduce-a100_pairwise_nvlink.csv" and count == 4496
    junk = tmp_path / "attention.csv"
    junk.write_text("a,b\n1,2\n")
    with pytest.raises(SimulatorError, match="not a Vidur profile"):
        import_files("vidur", [junk], "a100-pcie-80gb", out_dir=tmp_path / "out")


def test_split_key_holds_out_whole_contexts_and_sizes():
    traces = validation.load_traces("a100-sxm4-80gb")
    held = validation.holdout_mask(traces)
    for kind, key in (("attention", "kv_cached"), ("allreduce", "message_bytes")):
        sel = traces["kernel_class"].str.startswith(kind).to_numpy()
        sides = pd.Series(held[sel]).groupby(traces.loc[sel, key].to_numpy()).agg(["min", "max"])
        assert (sides["min"] == sides["max"]).all()  # a context length / message size is wholly on one side
        assert 0.1 < held[sel].mean() < 0.4  # about one in four held out


def test_validate_reports_attention_and_allreduce_classes():
    names = {row["class"] for row in validation.validate("a100-sxm4-80gb")["classes"]}
    assert {"attention-prefill", "attention-decode", "allreduce nvswitch >=8MiB", "allreduce nvswitch <1MiB",
            "allreduce infiniband >=8MiB"} <= names


def test_an_exclusions_file_without_reasons_is_refused(tmp_path, monkeypatch):
    bad = tmp_path / "published-exclusions.yaml"
    bad.write_text("source: notes\nrows:\n  PT90119a-01: 3\n")
    monkeypatch.setattr(published, "EXCLUSIONS", bad)
    with pytest.raises(SimulatorError, match="published-exclusions.yaml"):
        published.exclusions()

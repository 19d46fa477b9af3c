"""Capacity planning (simulator/capacity/plan.py, `sparsim plan`): every row agrees with `sparsim model` at
its own point, the largest batch is the largest that fits, a TPOT target is honoured, and
deployments the model refuses are rows with a reason, not crashes."""

import json

import numpy as np
import pandas as pd
import pytest

from simulator.cli import main
from simulator.core.errors import SimulatorError
from simulator.hardware.spec import load_hw
from simulator.model.llm import estimate_model
from simulator.formats.models import load_model
from simulator.capacity.plan import plan


@pytest.fixture(scope="module")
def table():
    return plan("llama-2-70b", 32768, hws=("h100", "h200"), tps=(1, 2, 3), recipes=("dense", "2:4"),
                kv_methods=(None, "h2o"))


def _estimate(row, batch, phase="decode"):
    return estimate_model("llama-2-70b", row.hw, phase, batch, 32768, int(row.tp), "bf16", None, row.recipe,
                          kv_method=None if row.kv_method == "none" else row.kv_method, with_ops=False).summary


def test_rows_agree_with_the_model_at_their_own_points(table):
    served = table[table["batch"].notna()]
    assert len(served) >= 8
    for row in served.itertuples():
        at_batch = _estimate(row, int(row.batch))
        assert at_batch["fits"] and row.tpot_s == pytest.approx(at_batch["time_s"], rel=1e-9)
        assert row.tokens_per_s == pytest.approx(at_batch["tokens_per_s"], rel=1e-9)
        assert row.tokens_per_s_per_gpu == pytest.approx(row.tokens_per_s / row.tp)
        assert row.ttft_s == pytest.approx(_estimate(row, 1, "prefill")["time_s"], rel=1e-9)
        at_one = _estimate(row, 1)
        assert row.tpot_batch1_s == pytest.approx(at_one["time_s"], rel=1e-9)
        assert row.memory_bytes_per_gpu == pytest.approx(at_one["memory_bytes_per_gpu"], rel=1e-9)
        assert row.prefill_fits == _estimate(row, 1, "prefill")["fits"]


def test_max_batch_is_the_largest_that_fits(table):
    for row in table[table["fits"].astype(bool)].itertuples():
        top = int(row.max_batch)
        assert top >= 1 and _estimate(row, top)["fits"], row
        assert not _estimate(row, top + 1)["fits"], row


def test_max_batch_by_hand():
    # LLaMA-2-7B bf16 on one H100 at 4096 tokens: weights 6.738e9 params x 2 B = 13.48 GB; KV per
    # sequence 32 layers x 2 (K, V) x 4096 (32 heads x 128) x 2 B x 4096 tokens = 2.147 GB; CUDA
    # can allocate 81,559 MiB = 85.52 GB. (85.52 - 13.48) / 2.147 = 33.5, so at most 33 sequences,
    # fewer by what the activations and workspace take.
    row = plan("llama-2-7b", 4096, hws=("h100",), tps=(1,)).iloc[0]
    capacity, weights, kv = load_hw("h100").memory_capacity_bytes, 6.738e9 * 2, 32 * 2 * 4096 * 2 * 4096
    assert (capacity - weights) / kv == pytest.approx(33.5, abs=0.1)
    assert 30 <= row.max_batch <= 33


def test_the_tpot_batch_is_the_largest_within_the_target_even_where_time_dips():
    # Mixtral-8x7B on 2 x H200 at 1k: batch 24 takes 13.659 ms and batch 25 13.614 ms (wave
    # quantization), so a 13.615 ms target is met at 25 but not at 23 or 24: the answer is the
    # largest batch within the target over all batches, not the last before the first crossing.
    row = plan("mixtral-8x7b", 1024, hws=("h200",), tps=(2,), max_tpot_s=13.615e-3).iloc[0]
    from simulator.model.llm import sweep

    batches = np.arange(1, int(row.max_batch) + 1)
    every = sweep(pd.DataFrame(dict(model="mixtral-8x7b", hw="h200", tp=2, phase="decode", batch=batches,
                                    context=1024)))
    assert int(row.batch) == batches[(every.time_s <= 13.615e-3).to_numpy()].max()


def test_the_tpot_batch_is_the_largest_within_the_target():
    # Not a grid point: one more sequence would be over the target (or not fit).
    capped = plan("llama-2-70b", 32768, hws=("h200",), tps=(1, 2), recipes=("dense", "2:4"),
                  weights=(None, "int4:g128"), kv_methods=(None, "h2o"), max_tpot_s=0.050)
    checked = 0
    for row in capped[capped["batch"].notna()].itertuples():
        assert row.tpot_s <= 0.050
        if int(row.batch) < int(row.max_batch):
            nxt = estimate_model("llama-2-70b", row.hw, "decode", int(row.batch) + 1, 32768, int(row.tp), "bf16",
                                 None if row.weights == "bf16" else row.weights, row.recipe,
                                 kv_method=None if row.kv_method == "none" else row.kv_method, with_ops=False).summary
            assert nxt["time_s"] > 0.050, row
            checked += 1
    assert checked >= 4


def test_output_tokens_price_the_last_step_of_a_request():
    # SnapKV compresses the prompt only: after 2048 generated tokens each sequence holds its 2048-token
    # budget plus those 2048, twice the first step's cache, so fewer sequences fit; a dense cache holds
    # prompt + output either way, so 2048 + 2048 tokens is the same as a 4096-token prompt.
    first = plan("llama-2-7b", 4096, hws=("a100",), tps=(1,), kv_methods=("snapkv",)).iloc[0]
    last = plan("llama-2-7b", 4096, hws=("a100",), tps=(1,), kv_methods=("snapkv",), output_tokens=2048).iloc[0]
    assert last.max_batch < first.max_batch
    dense_last = plan("llama-2-7b", 2048, hws=("a100",), tps=(1,), output_tokens=2048).iloc[0]
    dense_prompt = plan("llama-2-7b", 4096, hws=("a100",), tps=(1,)).iloc[0]
    assert dense_last.max_batch == dense_prompt.max_batch


def test_single_values_and_repeats_are_accepted_from_python():
    one = plan("llama-2-7b", 4096, hws="h100", tps=1, recipes="2:4", kv_methods="h2o")
    assert len(one) == 1 and one.iloc[0].recipe == "2:4" and one.iloc[0].kv_method == "h2o"
    assert len(plan("llama-2-7b", 4096, hws=("h100", "h100-sxm5-80gb"), tps=(1, 1))) == 1
    # the default storage and "no method" however spelled are one deployment
    assert len(plan("llama-2-7b", 4096, hws="h100", tps=1, weights=("bf16", "none", None),
                    kv_methods=("none", "NONE", "", None))) == 1


def test_a_tpot_target_is_honoured_and_costs_batch():
    free = plan("llama-2-70b", 8192, hws=("h200",), tps=(1, 2), recipes=("2:4",))
    capped = plan("llama-2-70b", 8192, hws=("h200",), tps=(1, 2), recipes=("2:4",), max_tpot_s=0.030)
    for f, c in zip(free.itertuples(), capped.itertuples()):
        assert (f.hw, f.tp) == (c.hw, c.tp)
        if not pd.isna(c.batch):  # served within the target
            assert c.tpot_s <= 0.030 and c.batch <= f.batch
        else:
            assert c.tpot_batch1_s > 0.030 and "over the TPOT target" in c.note


def test_refused_deployments_are_rows_with_a_reason(table):
    refused = table[table["tp"] == 3]
    assert len(refused) == 8 and refused["note"].str.contains("not divisible").all()
    assert not refused["fits"].astype(bool).any()
    # and they sort last, after the deployments that fit and those that do not
    assert list(table.index[table["tp"] == 3]) == list(range(len(table) - 8, len(table)))


def test_more_gpus_never_shrink_the_batch(table):
    ok = table[table["note"].isna()]
    for (hw, recipe, kv), group in ok.groupby(["hw", "recipe", "kv_method"]):
        by_tp = group.sort_values("tp")["max_batch"].tolist()
        assert by_tp == sorted(by_tp), (hw, recipe, kv)


def test_cli_plan_text_and_json(capsys):
    # `sparsim plan` answers with the steady-state serving model (tests/test_serving.py); the decode
    # capacity table above stays plan.plan()'s.
    argv = ["plan", "--model", "llama-2-70b", "--context", "32768", "--hw", "h200", "--tp", "1,2",
            "--recipe", "dense", "--recipe", "2:4", "--kv-method", "none", "--kv-method", "h2o"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Serving plan: llama-2-70b" in out and "recommended (throughput)" in out and "limited by" in out
    assert main(argv + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert len(data["configurations"]) + len(data["not_meeting_targets"]) == 8 and data["context"] == 32768
    model = argv[argv.index("--model") + 1]
    positions = load_model(model).max_position_embeddings
    assert data["trained_context"] == positions
    assert {"hw", "tp", "fits", "max_batch", "ttft_s", "tpot_s", "output_tokens_per_s", "limited_by"} \
        <= set(data["configurations"][0])


@pytest.mark.parametrize("argv, message", [
    (["--hw", "h300"], "h300"),
    (["--tp", "1,x"], "--tp: 'x' is not a whole number"),
    (["--tp", "0"], "--tp: must be whole numbers >= 1"),
    (["--max-tpot-ms", "-5"], "--max-tpot-ms: must be a positive, finite time"),
    (["--context", "0"], "--context: must be a whole number from 1"),
    (["--recipe", "nonsense"], "--recipe 'nonsense'"),
    (["--kv-method", "nonsense"], "--kv-method 'nonsense'"),
    (["--weights", "int3"], "--weights: unknown dtype 'int3'"),
    (["--dtype", "int3"], "--dtype: unknown dtype 'int3'"),
    (["--top", "0"], "--top: must be a whole number from 1 to"),
    (["--tp", "1,,2"], "--tp: empty value"),
    (["--output-tokens", "-1"], "--output-tokens: must be a whole number from 1"),
    (["--weights", "bf16", "--dtype", "fp8"], "bf16 weights are wider than the --dtype fp8 math"),
    (["--recipe", ""], "--recipe: empty value"),
    (["--model", "opt-30b", "--context", "4096"], "opt-30b has learned positions up to 2048"),
    (["--model", "bert-base"], "an encoder has no decode phase"),
])
def test_cli_plan_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    model = [] if "--model" in argv else ["--model", "llama-2-7b"]  # a flag given twice is its own error
    assert main(["plan"] + model + argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_a_deployment_whose_prompt_cannot_be_prefilled_in_one_pass_is_served_in_chunks():
    # LLaMA-3.1-8B, 128k prompt, one H100: H2O's eager scores need the prefill's full score matrix
    # (docs/kv.md), so one prompt's prefill at once does not fit; chunked prefill needs a chunk's share
    # of it (chunk x prefix), which does. The serving plan prices the chunks.
    assert not plan("llama-3.1-8b", 131072, hws=("h100",), tps=(1,), kv_methods=("h2o:scores=eager",)).iloc[0].prefill_fits
    from simulator.capacity.plan import plan_serving

    row = plan_serving("llama-3.1-8b", 131072, 512, hws=("h100",), tps=(1,), kv_methods=("h2o:scores=eager",)).iloc[0]
    assert row.fits and row.meets_targets


def test_cli_plan_when_nothing_is_served_is_one_line(capsys):
    # 70B on 8 x H100: batch 1 decodes in ~10 ms, so a 5 ms target serves nothing; 1 x H100 does not fit.
    argv = ["plan", "--model", "llama-2-70b", "--hw", "h100", "--tp", "1,3,8", "--max-tpot-ms", "5"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no configuration meets TPOT <= 5 ms" in err and "limited by TPOT" in err
    assert main(argv + ["--json"]) == 2


def test_throughput_curves_run_from_batch_1_to_the_largest(table):
    from simulator.capacity.plan import throughput_curves

    curves = throughput_curves(table, "llama-2-70b", 32768)
    fitting = table[table["fits"].astype(bool)]
    keys = ["hw", "tp", "recipe", "weights", "kv_method"]
    assert curves.groupby(keys).ngroups == len(fitting)
    for row in fitting.itertuples():
        c = curves[(curves.hw == row.hw) & (curves.tp == row.tp) & (curves.recipe == row.recipe)
                   & (curves.kv_method == row.kv_method)]
        assert c.batch.min() == 1 and c.batch.max() == row.max_batch
        # at batch 1 and at the largest batch the curve is the plan's own numbers
        assert c.tpot_s.iloc[0] == pytest.approx(row.tpot_batch1_s, rel=1e-9)
        assert (c.tokens_per_s_per_gpu == c.tokens_per_s / row.tp).all()


def test_cli_plan_plot(tmp_path, capsys):
    out = tmp_path / "plan.png"
    argv = ["plan", "--model", "llama-2-7b", "--hw", "h100", "--tp", "1,2", "--max-tpot-ms", "20", "--plot", str(out)]
    assert main(argv) == 0 and out.stat().st_size > 10_000
    assert f"wrote {out}" in capsys.readouterr().err
    assert main(["plan", "--model", "llama-2-70b", "--hw", "h100", "--tp", "1", "--reserve-gb", "10",
                 "--plot", str(out)]) == 2
    assert "nothing to plot (no deployment fits)" in capsys.readouterr().err


def test_a_memory_reserve_counts_against_capacity_everywhere():
    from simulator.model.llm import estimate_model

    kw = dict(recipe="2:4", kv_method="h2o", with_ops=False)
    bare = estimate_model("llama-3.1-70b", "h200", "decode", 1, 32768, **kw).summary
    held = estimate_model("llama-3.1-70b", "h200", "decode", 1, 32768, memory_reserve_bytes=15e9, **kw).summary
    assert held["memory_bytes_per_gpu"] == pytest.approx(bare["memory_bytes_per_gpu"] + 15e9, rel=1e-12)
    assert held["memory_reserve_bytes_per_gpu"] == 15e9 and held["time_s"] == bare["time_s"]
    # the plan's largest batch is the largest that still fits with the reserve, and no larger
    row = plan("llama-3.1-70b", 32768, hws=("h200",), tps=(1,), recipes=("2:4",), kv_methods=("h2o",),
               memory_reserve_bytes=15e9).iloc[0]
    unreserved = plan("llama-3.1-70b", 32768, hws=("h200",), tps=(1,), recipes=("2:4",), kv_methods=("h2o",)).iloc[0]
    assert row.max_batch < unreserved.max_batch

    def fits(batch):
        return estimate_model("llama-3.1-70b", "h200", "decode", int(batch), 32768, memory_reserve_bytes=15e9,
                              **kw).summary["fits"]
    assert fits(row.max_batch) and not fits(row.max_batch + 1)
    with pytest.raises(SimulatorError, match="memory reserve"):
        estimate_model("llama-3.1-70b", "h200", memory_reserve_bytes=-1.0, **kw)


def test_longest_context_fits_and_a_little_more_does_not():
    from simulator.capacity.plan import longest_context

    kw = dict(recipe="2:4", kv_method="h2o", memory_reserve_bytes=10e9)
    found = longest_context("llama-3.1-70b", "h200", "decode", 8, **kw)
    assert found["limit"] == "memory" and found["summary"]["fits"]
    over = int(found["context"] * 1.001) + 1  # bisection stops within 0.1%
    assert not estimate_model("llama-3.1-70b", "h200", "decode", 8, over, with_ops=False, **kw).summary["fits"]
    # a learned position table ends before memory does; a model that cannot hold its weights gets 0
    assert longest_context("opt-6.7b", "a100")["context"] == 2048
    assert longest_context("opt-6.7b", "a100")["limit"] == "positions"
    assert longest_context("llama-3.1-70b", "h100")["context"] == 0


def test_cli_longest_context(capsys):
    assert main(["model", "--model", "opt-6.7b", "--hw", "a100", "--longest-context"]) == 0
    assert "longest context at batch 1: 2,048 tokens of context per sequence; the model's learned positions end" \
        in capsys.readouterr().out
    assert main(["model", "--model", "llama-3.1-70b", "--hw", "h100", "--longest-context"]) == 0
    assert "not even a 1-token context fits" in capsys.readouterr().out


def test_longest_context_says_when_nothing_runs_out_and_when_the_prefill_is_the_limit(capsys):
    from simulator.capacity.plan import SEARCH_CEILING, longest_context

    # StreamingLLM holds a fixed window: decode memory stops growing, the search hits its ceiling
    flat = longest_context("llama-3.1-8b", "h100", kv_method="streamingllm")
    assert (flat["context"], flat["limit"]) == (SEARCH_CEILING, "unbounded")
    # ... but the prompt still has to be prefilled, which memory does bound
    assert flat["prefill_limit"] == "memory" and 0 < flat["prefill_context"] < flat["context"]
    assert main(["model", "--model", "llama-3.1-8b", "--hw", "h100", "--kv-method", "streamingllm",
                 "--longest-context"]) == 0
    out = capsys.readouterr().out
    assert "memory stops growing" in out and "prefill fits only up to" in out
    assert main(["model", "--model", "llama-3.1-8b", "--longest-context", "--output-tokens", "5"]) == 2
    assert "--longest-context: not with --output-tokens" in capsys.readouterr().err

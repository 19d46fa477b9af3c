"""Dynamic (input-dependent) weight sparsity: the channels a step reads."""

import numpy as np
import pytest

from simulator.methods.dynamic import REGISTRY, ROLES, DejaVu, Naee, Teal, parse_dynamic, union_keep
from simulator.core.errors import SimulatorError
from simulator.formats.models import load_model


def test_union_of_tokens_by_hand():
    # A channel needed by each token with probability 1/2 is read by a step of 3 tokens unless
    # all three skip it: 1 - (1/2)^3 = 7/8.
    assert union_keep(0.5, 3) == pytest.approx(0.875)
    assert union_keep(0.5, 1) == 0.5 and union_keep(0.0, 5) == 0.0 and union_keep(1.0, 1) == 1.0


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_contract_every_method(name):
    method = parse_dynamic(name)
    tokens = np.array([1, 2, 8, 64, 4096])
    for role in ROLES:
        n, k = (np.broadcast_to(np.asarray(x, float), tokens.shape) for x in method.keep(role, tokens))
        assert ((0 < n) & (n <= 1) & (0 < k) & (k <= 1)).all()
        assert (np.diff(n) >= 0).all() and (np.diff(k) >= 0).all()  # more tokens never read less
        # a long prefill reads at least what this device holds (more when it loads the rest)
        assert method.resident_fraction(role) - 1e-9 <= n[-1] * k[-1] <= 1.0


def test_zero_sparsity_reads_everything():
    for method in (Teal(sparsity=0.0), DejaVu(mlp_sparsity=0.0, head_sparsity=0.0)):
        for role in ROLES:
            n, k = method.keep(role, 1)
            assert float(n) == 1.0 and float(k) == 1.0


def test_teal_skips_input_channels_at_batch_one():
    n, k = Teal(sparsity=0.4).keep("mlp_out", 1)
    assert n == 1.0 and float(k) == pytest.approx(0.6)


def test_naee_prunes_experts_of_moe_models_only():
    mixtral = load_model("mixtral-8x7b")
    pruned = Naee().transform_model(mixtral)
    assert pruned.moe.experts == 6
    assert Naee(skip_second_expert=0.3).experts_per_token(mixtral) == pytest.approx(1.7)
    with pytest.raises(SimulatorError, match="not a mixture-of-experts"):
        Naee().transform_model(load_model("llama-2-7b"))
    with pytest.raises(SimulatorError, match="between top-k 2 and 8"):
        Naee(keep_experts=1).transform_model(mixtral)


@pytest.mark.parametrize("text, message", [
    ("sparsegpt", "unknown method 'sparsegpt'; known: dejavu, flash, naee, powerinfer, teal"),
    ("powerinfer:gpu_fraction=0", "gpu_fraction must be > 0"),
    ("flash:window=-1", "window must be a whole number >= 0"),
    ("flash:bundle=2", "bundle is 0 or 1"),
    ("teal:sparsity=1", "[0, 1)"),
    ("teal:sparsity", "write teal:key=value"),
    ("teal:bogus=1", "unknown parameter 'bogus'; known: sparsity, kernel_efficiency"),
    ("dejavu:predictor_rank=x", "not a number"),
])
def test_bad_parameters_are_one_line(text, message):
    with pytest.raises(SimulatorError) as info:
        parse_dynamic(text)
    assert message in str(info.value) and "\n" not in str(info.value)


# ---- through the whole-model estimate ----------------------------------------------------------

def _decode(model, hw, dynamic=None, batch=1, **kw):
    from simulator.model.llm import estimate_model

    return estimate_model(model, hw, "decode", batch, 1024, dynamic=dynamic, with_ops=False, **kw).summary


def test_teal_speeds_up_batch_one_decode_but_not_batch_sixteen():
    dense, teal = _decode("llama-2-7b", "a100"), _decode("llama-2-7b", "a100", "teal:sparsity=0.5")
    # Linear layers read half their input channels; weights dominate batch-1 decode: close to 2x.
    assert 1.5 < dense["time_s"] / teal["time_s"] < 2.0
    assert teal["weight_bytes_per_gpu"] == dense["weight_bytes_per_gpu"]  # nothing leaves memory
    dense16, teal16 = _decode("llama-2-7b", "a100", batch=16), _decode("llama-2-7b", "a100", "teal", batch=16)
    assert teal16["time_s"] == pytest.approx(dense16["time_s"], rel=1e-3)  # 1 - 0.5^16: every channel read


def test_teal_does_nothing_for_prefill():
    from simulator.model.llm import estimate_model

    a = estimate_model("llama-2-7b", "a100", "prefill", 1, 2048, with_ops=False).summary
    b = estimate_model("llama-2-7b", "a100", "prefill", 1, 2048, dynamic="teal", with_ops=False).summary
    assert b["time_s"] == pytest.approx(a["time_s"], rel=1e-9)


def test_dejavu_adds_predictors_and_reads_fewer_weights():
    from simulator.model.llm import estimate_model

    est = estimate_model("opt-6.7b", "a100", "decode", 1, 1024, dynamic="dejavu")
    ops = est.ops
    assert {"predict_heads_in", "predict_mlp_out"} <= set(ops.op)
    up = ops.loc[ops.op == "up"].iloc[0]
    assert up.n == np.ceil(16384 * 0.15)  # 15% of the MLP neurons at batch 1
    dense = _decode("opt-6.7b", "a100")
    assert est.summary["time_s"] < dense["time_s"]
    assert est.summary["weight_bytes_per_gpu"] > dense["weight_bytes_per_gpu"]  # predictors are resident


def test_naee_fits_mixtral_on_one_80gb_gpu():
    full, pruned = _decode("mixtral-8x7b", "h100"), _decode("mixtral-8x7b", "h100", "naee")
    assert not full["fits"] and pruned["fits"]
    skip = _decode("mixtral-8x7b", "h100", "naee:skip_second_expert=0.5")
    assert skip["time_s"] < pruned["time_s"]


def test_cli_dynamic_flag(capsys):
    from simulator.cli import main

    assert main(["model", "--model", "llama-2-7b", "--hw", "a100", "--dynamic", "teal:sparsity=0.4", "--json"]) == 0
    assert "teal(sparsity=0.4," in capsys.readouterr().out
    assert main(["model", "--model", "llama-2-7b", "--dynamic", "naee"]) == 2
    assert "not a mixture-of-experts" in capsys.readouterr().err


def test_sweep_with_dynamic_column_equals_single_estimates():
    import pandas as pd

    from simulator.model.llm import sweep

    points = pd.DataFrame({"model": "llama-2-7b", "hw": "h100", "phase": ["decode", "decode", "prefill"],
                           "batch": [1, 4, 1], "context": [512, 4096, 256], "dynamic": ["teal", "dejavu", "teal"]})
    result = sweep(points)
    from simulator.model.llm import estimate_model

    for row in result.itertuples():
        s = estimate_model("llama-2-7b", "h100", row.phase, row.batch, row.context, dynamic=row.dynamic,
                           with_ops=False).summary
        assert row.time_s == pytest.approx(s["time_s"], rel=1e-12)


def test_powerinfer_splits_ffn_between_gpu_and_cpu():
    from simulator.model.llm import estimate_model

    base = estimate_model("opt-6.7b", "rtx-4090", "decode", 1, 512, dtype="fp16")
    est = estimate_model("opt-6.7b", "rtx-4090", "decode", 1, 512, dtype="fp16", dynamic="powerinfer:gpu_fraction=0.3")
    ffn = lambda e: e.ops.loc[e.ops.op.isin(["up", "down"]), "resident_weight_bytes"].sum()  # noqa: E731
    assert ffn(est) == pytest.approx(0.3 * ffn(base), rel=1e-6)  # only the hot 30% stay on the GPU
    assert (est.ops.loc[est.ops.kind == "offload", "time_s"] >= 0).all()
    more_gpu = estimate_model("opt-6.7b", "rtx-4090", "decode", 1, 512, dtype="fp16",
                              dynamic="powerinfer:gpu_fraction=0.6", with_ops=False).summary
    assert more_gpu["time_by_category_s"]["offload"] <= est.summary["time_by_category_s"]["offload"]
    with pytest.raises(SimulatorError, match="not a CPU spec"):
        estimate_model("opt-6.7b", "rtx-4090", "decode", 1, 512, dynamic="powerinfer:cpu=h100")


def test_flash_loads_new_neurons_and_bundling_helps():
    def run(spec):
        from simulator.model.llm import estimate_model

        return estimate_model("opt-6.7b", "rtx-4090", "decode", 1, 512, dtype="fp16", dynamic=spec,
                              with_ops=False).summary

    bundled, separate = run("flash"), run("flash:bundle=0")
    assert bundled["time_s"] < separate["time_s"]  # bigger chunks read faster from flash
    short, long = run("flash:window=1"), run("flash:window=10")
    assert long["time_by_category_s"]["offload"] < short["time_by_category_s"]["offload"]
    assert long["weight_bytes_per_gpu"] > short["weight_bytes_per_gpu"]  # a longer window holds more
    fast = run("flash:flash_GBps=12")
    assert fast["time_by_category_s"]["offload"] == pytest.approx(bundled["time_by_category_s"]["offload"] / 2)


def test_kernel_efficiency_slows_only_the_sparse_reads():
    ideal = _decode("llama-2-7b", "a100", "teal:sparsity=0.5")
    real = _decode("llama-2-7b", "a100", "teal:sparsity=0.5,kernel_efficiency=0.8")
    dense = _decode("llama-2-7b", "a100")
    assert ideal["time_s"] < real["time_s"] < dense["time_s"]
    from simulator.model.llm import estimate_model

    ops = {spec: estimate_model("llama-2-7b", "a100", "decode", 1, 1024, dynamic=spec).ops.set_index("op")
           for spec in ("teal", "teal:kernel_efficiency=0.8")}
    qkv_ideal, qkv_real = (ops[spec].loc["qkv", "memory_time_s"] for spec in ops)
    assert qkv_real == pytest.approx(qkv_ideal / 0.8)
    lm_ideal, lm_real = (ops[spec].loc["lm_head", "memory_time_s"] for spec in ops)
    assert lm_real == lm_ideal  # the LM head is not a sparse read
    with pytest.raises(SimulatorError, match=r"kernel_efficiency is a fraction in \(0, 1\]"):
        parse_dynamic("teal:kernel_efficiency=1.5")


def test_offload_wait_of_a_token_group_counts_only_its_own_ffn():
    # LazyLLM's first stage processes the whole prompt, so its per-layer offload wait must equal
    # the wait without LazyLLM; it once subtracted the FFN time of every later stage as well.
    from simulator.model.llm import estimate_model

    plain = estimate_model("llama-2-7b", "a100", "prefill", 1, 512, dynamic="powerinfer").ops
    staged = estimate_model("llama-2-7b", "a100", "prefill", 1, 512, kv_method="lazyllm", dynamic="powerinfer").ops
    assert staged.set_index("op").loc["offload[s0]", "time_s"] == plain.set_index("op").loc["offload", "time_s"]

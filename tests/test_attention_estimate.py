"""simulator.estimate_attention: the FlashAttention split-KV kernel model (hand-derived numbers,
floors, monotonicity, argument errors) and its held-out error on Vidur's A100 rows."""

import numpy as np
import pytest

import simulator
from simulator.core.errors import SimulatorError

A100 = "a100-sxm4-80gb"


def _defaults():
    return simulator.load_hw(A100, calibrated=False)  # spec defaults: attention parameters at their sources


def test_one_tile_decode_by_hand():
    # A100 defaults: mma_efficiency 0.5, sm_stream/append 1.0, hbm 0.83, fixed 2 us, combine 2 us, launch 4 us.
    # Decode, 1 sequence, 1 head (MHA), head_dim 128, 127 cached + 1 new = 128 keys = 1 tile of 128 keys.
    # One block (64 padded rows): MMA 4*64*128*128 = 4,194,304 FLOP at 312e12/108*0.5 = 1.4444e12 /s -> 2.9038 us;
    # K/V of the tile 2*128*128*2 = 65,536 B at the feed 47.4 B/clk * 1.41 GHz = 66.834 GB/s -> 0.9806 us;
    # tile = max = 2.9038 us; append 1 token * 4*128*2 B = 1,024 B / 66.834 GB/s = 0.0153 us -> 2.9191 us of one SM.
    # One split (one tile); 2 CTAs share an SM -> 2 * 2.9191 = 5.8383 us; HBM: 66,560 B / 1692.4 GB/s = 0.039 us.
    # kernel = 2 + 5.8383 = 7.8383 us; time = + one 4 us launch = 11.8383 us.
    df = simulator.estimate_attention(_defaults(), batch=1, q_tokens=1, kv_tokens=127, q_heads=1, kv_heads=1,
                                      head_dim=128, dtype="fp16")
    row = df.iloc[0]
    assert row["kernel_time_s"] == pytest.approx(7.8383e-6, rel=1e-3)
    assert row["time_s"] == pytest.approx(11.8383e-6, rel=1e-3)
    assert row["splits"] == 1 and row["bound"] == "compute"
    assert row["bytes"] == pytest.approx(65536 + 512 + 512)  # K,V read; Q in + O out; the new K,V written


def test_flops_count_visible_pairs():
    # causal prefill of 4 new tokens on 2 cached: pairs = 4*2 + 4*5/2 = 18; FLOP = 4 * heads * head_dim * pairs
    df = simulator.estimate_attention(A100, batch=1, q_tokens=4, kv_tokens=2, q_heads=1, kv_heads=1, head_dim=64,
                                      dtype="fp16")
    assert df["flops"].iloc[0] == 4 * 64 * 18
    full = simulator.estimate_attention(A100, batch=1, q_tokens=4, kv_tokens=2, q_heads=1, kv_heads=1, head_dim=64,
                                        dtype="fp16", causal=False)
    assert full["flops"].iloc[0] == 4 * 64 * 4 * 6  # every new token sees all 6 keys


def test_time_at_least_each_floor_and_kernel_time():
    df = simulator.estimate_attention(A100, batch=[[1], [8], [64]], q_tokens=[1, 64, 1024], kv_tokens=[0, 500, 4000],
                                      q_heads=32, kv_heads=4, head_dim=128, dtype="fp16", kv_block_tokens=16)
    assert len(df) == 9
    assert (df["time_s"] > df["kernel_time_s"]).all()  # launches on top
    assert (df["kernel_time_s"] >= df[["compute_time_s", "memory_time_s"]].max(axis=1)).all()
    assert set(df["bound"]) <= {"compute", "memory", "overhead"}


@pytest.mark.parametrize("q_tokens", [1, 7, 64, 512])
def test_more_cached_tokens_or_sequences_never_take_less_time(q_tokens):
    kv = np.arange(0, 8192, 97)
    by_kv = simulator.estimate_attention(A100, batch=3, q_tokens=q_tokens, kv_tokens=kv, q_heads=32, kv_heads=8,
                                         head_dim=128, dtype="bf16")
    # the split is the fastest kernel, a minimum over candidates that each grow with the work, and
    # the caller adds one launch whatever the split: neither time ever falls
    for column in ("kernel_time_s", "time_s"):
        assert np.all(np.diff(by_kv[column].to_numpy()) >= -1e-15), column
    batch = np.arange(1, 200, 3)
    by_batch = simulator.estimate_attention(A100, batch=batch, q_tokens=q_tokens, kv_tokens=2000, q_heads=32,
                                            kv_heads=8, head_dim=128, dtype="bf16")
    for column in ("kernel_time_s", "time_s"):
        assert np.all(np.diff(by_batch[column].to_numpy()) >= -1e-15), column


def test_vectorized_equals_scalar_calls():
    points = [(1, 1, 4000), (16, 1, 100), (1, 300, 700), (2, 2048, 0)]
    batch, q, kv = (np.array(c) for c in zip(*points))
    together = simulator.estimate_attention(A100, batch=batch, q_tokens=q, kv_tokens=kv, q_heads=32, kv_heads=4,
                                            head_dim=128, dtype="fp16")
    for i, (b, qq, c) in enumerate(points):
        alone = simulator.estimate_attention(A100, batch=b, q_tokens=qq, kv_tokens=c, q_heads=32, kv_heads=4,
                                             head_dim=128, dtype="fp16")
        assert alone["time_s"].iloc[0] == pytest.approx(together["time_s"].iloc[i], rel=1e-12)


@pytest.mark.parametrize("kwargs,name", [
    ({"batch": 0}, "batch"), ({"q_tokens": 1.5}, "q_tokens"), ({"kv_tokens": -1}, "kv_tokens"),
    ({"kv_heads": 3}, "kv_heads"), ({"head_dim": float("nan")}, "head_dim"), ({"dtype": "fp32"}, "dtype"),
    ({"causal": "yes"}, "causal"), ({"kv_block_tokens": 0}, "kv_block_tokens"), ({"batch": [1, 2, 3], "q_tokens": [1, 2]}, "shapes"),
])
def test_bad_arguments_name_themselves(kwargs, name):
    args = dict(batch=1, q_tokens=1, kv_tokens=10, q_heads=32, kv_heads=8, head_dim=128, dtype="bf16")
    args.update(kwargs)
    with pytest.raises(SimulatorError, match=name) as err:
        simulator.estimate_attention(A100, **args)
    assert "\n" not in str(err.value)


def test_cpu_spec_is_refused():
    with pytest.raises(SimulatorError, match="hw"):
        simulator.estimate_attention("epyc-zen4-vm-2vcpu", batch=1, q_tokens=1, kv_tokens=1, q_heads=1, kv_heads=1,
                                     head_dim=64)


def test_held_out_attention_classes_on_a100_meet_ten_percent():
    from simulator.truth import validation

    result = validation.validate(A100)
    got = {c["class"]: c for c in result["classes"]}
    for cls in ("attention-prefill", "attention-decode"):
        assert got[cls]["n"] > 500 and got[cls]["split"] == "by-key"
        assert got[cls]["median_ape"] <= 0.10, got[cls]


def test_the_split_search_shortcut_gives_the_full_search_answer(monkeypatch):
    # Many points price the first 16 split counts everywhere and the rest only where they can
    # still win (attention.FIRST_SPLITS); every point must get what the full search over all 128
    # gives, bit for bit, across decode and prefill, small and large batches, GQA and MHA
    from simulator.kernels import attention

    rng = np.random.default_rng(7)
    n = 4000
    kwargs = dict(batch=rng.integers(1, 257, n), q_tokens=np.where(rng.random(n) < 0.6, 1, rng.integers(1, 4097, n)),
                  kv_tokens=rng.integers(0, 131073, n), q_heads=32, kv_heads=rng.choice([1, 4, 8, 32], n),
                  head_dim=rng.choice([64, 128, 256], n), dtype="bf16")
    for device in ("a100", "h100", "b200"):
        fast = simulator.estimate_attention(device, **kwargs)
        monkeypatch.setattr(attention, "SPLIT_SEARCH_ONE_PASS", 10**12)  # every count at every point
        full = simulator.estimate_attention(device, **kwargs)
        monkeypatch.undo()
        assert n * 128 > attention.SPLIT_SEARCH_ONE_PASS  # the shortcut did run
        for column in ("time_s", "kernel_time_s", "splits", "compute_time_s", "memory_time_s"):
            assert np.array_equal(fast[column].to_numpy(), full[column].to_numpy()), (device, column)
        assert (full["splits"] > attention.FIRST_SPLITS).any()  # some points need the second pass


def test_a_sliding_window_reads_only_the_tiles_its_queries_reach():
    # flash_attention_columns(window=W): query i of a chunk over kv cached tokens attends
    # min(kv + i + 1, W) keys (FA2's window_size=(W - 1, 0)); FLOP count them, a window as long
    # as the sequence changes nothing, and a shorter one never costs more than full causal
    from simulator.kernels.attention import attention_parameters, flash_attention_columns

    hw = simulator.load_hw("h100")
    params = attention_parameters(hw)
    one = lambda *v: tuple(np.array([float(x)]) for x in v)
    for q, kv, w in [(5000, 0, 2004), (3000, 500, 1000), (1, 4000, 2004), (64, 10, 4096)]:
        args = one(2, q, kv, 32, 8, 128)
        windowed = flash_attention_columns(hw, params, *args, "bf16", np.ones(1, bool), window=np.array([float(w)]))
        full = flash_attention_columns(hw, params, *args, "bf16", np.ones(1, bool))
        pairs = sum(min(kv + i + 1, w) for i in range(q))  # by hand, query by query
        assert windowed["flops"][0] == pytest.approx(4 * 2 * 32 * 128 * pairs, rel=1e-12)
        assert windowed["kernel_time_s"][0] <= full["kernel_time_s"][0] * (1 + 1e-12)
    args = one(2, 3000, 100, 32, 8, 128)
    long = flash_attention_columns(hw, params, *args, "bf16", np.ones(1, bool), window=np.array([1e9]))
    none = flash_attention_columns(hw, params, *args, "bf16", np.ones(1, bool))
    assert all(np.array_equal(long[k], none[k]) for k in none)
    # a prefill chunk under a fixed window never takes less time as the chunk grows
    q = np.arange(1.0, 9000.0, 37.0)
    ones = np.ones_like(q)
    t = flash_attention_columns(hw, params, ones, q, 0 * q, 32 * ones, 8 * ones, 128 * ones, "bf16",
                                np.ones(q.shape, bool), window=2004 * ones)["time_s"]
    assert np.all(np.diff(t) >= -1e-15 * t[1:])


def test_estimate_attention_takes_a_sliding_window():
    # the public call with window=: the windowed pairs and a shorter time than full causal at 8k,
    # no change where the window covers the sequence, and one-line refusals
    shape = dict(batch=2, kv_tokens=0, q_heads=32, kv_heads=8, head_dim=128)
    windowed = simulator.estimate_attention("h100", q_tokens=[1024, 8192], window=2048, **shape)
    full = simulator.estimate_attention("h100", q_tokens=[1024, 8192], **shape)
    # 8192 queries, window 2048: 2048 x 2049 / 2 + (8192 - 2048) x 2048 pairs per head
    assert windowed["flops"].iloc[1] == pytest.approx(4 * 2 * 32 * 128 * (2048 * 2049 / 2 + 6144 * 2048), rel=1e-12)
    assert windowed["time_s"].iloc[1] < full["time_s"].iloc[1]
    assert windowed["time_s"].iloc[0] == full["time_s"].iloc[0] and list(windowed["window"]) == [2048, 2048]
    for bad, name in ((dict(window=0), "window"), (dict(window=10, causal=False), "causal"),
                      (dict(window=[1, 2, 3]), "shapes")):
        with pytest.raises(SimulatorError, match=name):
            simulator.estimate_attention("h100", q_tokens=[1024, 8192], **{**shape, **bad})

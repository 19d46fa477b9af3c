"""The course ledger's model-level claims (simulator/course/models.py), pinned to numbers derived
by hand from the model configs (workloads/models/*.yaml)."""

import pytest

from simulator.course import evaluate, load_claims, verdict

BY_ID = {c.id: c for c in load_claims()}


def _check(claim_id):
    claim = BY_ID[claim_id]
    return claim, evaluate(claim)


def test_llama70b_fp16_weights():
    # LLaMA-2-70B (80 layers, hidden 8192, 64 heads / 8 KV heads x 128, FFN 28672, vocab 32000, untied):
    #   per layer: q, o 8192 x 8192 = 2 x 67,108,864; k, v 8192 x 1024 = 2 x 8,388,608;
    #   gate/up/down 3 x 8192 x 28672 = 704,643,072; 2 RMSNorms 2 x 8192 = 16,384
    #   -> 855,654,400 x 80 = 68,452,352,000
    #   embedding + LM head 2 x 32000 x 8192 = 524,288,000; final norm 8,192
    #   total 68,976,648,192 parameters x 2 B (fp16) = 137,953,296,384 B (the slide's "140 GB").
    claim, check = _check("l1-c1-llama70b-fp16-weights")
    assert check.value == 137_953_296_384
    assert verdict(claim, check.value) == "agrees"  # 1.5% under 140 GB


def test_sparsegpt_24_weights_of_llama70b():
    # Linear parameters: (2 x 67,108,864 + 2 x 8,388,608 + 704,643,072) x 80 = 68,451,041,280.
    # 2:4 fp16 keeps half the values (2 B) plus a 2-bit index per kept value:
    #   0.5 x 2 B + 0.5 x 2/8 B = 1.125 B per weight -> 68,451,041,280 x 1.125 = 77,007,421,440 B.
    # Dense rest: embedding + LM head 524,288,000 and norms 80 x 2 x 8192 + 8192 = 1,318,912
    #   parameters x 2 B = 1,051,213,824 B.  Total 78,058,635,264 B (slide: "80 GB").
    claim, check = _check("l2-a3-sparsegpt24-memory-80gb")
    assert check.value == 78_058_635_264
    assert verdict(claim, check.value) == "agrees"


def test_naee_removes_24_percent_of_mixtral():
    # One Mixtral expert per layer is gate/up/down 3 x 4096 x 14336 = 176,160,768 parameters;
    # pruning 2 of 8 in each of 32 layers removes 64 x 176,160,768 = 11,274,289,152, and each
    # layer's router (4096 x experts) loses 2 outputs: 32 x 2 x 4096 = 262,144 -> 11,274,551,296.
    # Whole model: embedding 131,072,000 + attention 1,342,177,280 + experts 45,097,156,608
    #   + routers 1,048,576 + norms 266,240 + LM head 131,072,000 = 46,702,792,704.
    # bf16 weights are 2 B per parameter in both, so the byte ratio is the parameter ratio:
    # 11,274,551,296 / 46,702,792,704 = 0.24141 (slide: 25%).
    claim, check = _check("l3-a6-naee-mixtral-25pct")
    assert check.value == pytest.approx(11_274_551_296 / 46_702_792_704, rel=1e-12)
    assert verdict(claim, check.value) == "agrees"


def test_minitron_slide_cuts_together_make_2_65b_not_4b():
    # The slide's three cuts applied to LLaMA-3.1-8B: 16 layers, hidden 3072, FFN 9216, attention
    # kept at 32 query heads / 8 KV heads x 128 (q/o 3072 x 4096, k/v 3072 x 1024):
    #   per layer: 2 x 3072 x 4096 + 2 x 3072 x 1024 = 31,457,280; MLP 3 x 3072 x 9216 = 84,934,656;
    #   norms 2 x 3072 = 6,144 -> 116,398,080 x 16 = 1,862,369,280
    #   embedding + untied LM head 2 x 128,256 x 3072 = 788,004,864; final norm 3,072
    #   total 2,650,377,216 -- 34% short of "4B" (the released variants each make only some cuts).
    claim, check = _check("l2-d2-minitron-4b-params")
    assert check.value == 2_650_377_216
    assert verdict(claim, check.value) == "differs"
    # The -Depth variant does have 16 layers (Sreenivas et al. 2024, Table 3).
    depth_claim, depth = _check("l2-d2-minitron-depth-16")
    assert depth.value == 16 and verdict(depth_claim, depth.value) == "agrees"


def test_naee_gpu_count_and_the_slides_premise():
    # Mixtral-8x7B bf16: 46.7 B params = 93.4 GB of weights, over one A100's 85.9 GB (81,920 MiB) ->
    # 2 GPUs, the slide's "原需 2 张"; 6 of 8 experts: 70.9 GB -> 1 GPU.
    claim = next(c for c in load_claims() if c.id == "l3-a6-naee-single-80gb")
    check = evaluate(claim)
    assert check.value == 1.0
    assert f"dense {claim.setup['dense_gpus']} " in check.basis

"""The course ledger's storage evaluators (simulator/course/storage.py), pinned to numbers derived
by hand from the formats' definitions."""

import pytest

import simulator.course.storage  # noqa: F401  (registers the evaluators under test)
from simulator.course import evaluate, load_claims, verdict

BY_ID = {c.id: c for c in load_claims()}


def value(claim_id):
    return evaluate(BY_ID[claim_id]).value


def test_24_fp16_storage_fractions():
    # 2:4 keeps 2 of every 4 values and stores a 2-bit position per kept value: 4 bits per group of
    # 4 elements = 1 bit per element, against 16 bits per dense fp16 element -> 1/16 = 6.25%.
    assert value("l1-d2-24-metadata-overhead") == pytest.approx(1 / 16)
    # Values 2/4 = 50% of the dense bytes, + 6.25% metadata = 56.25% (the slide prints 53.1%).
    assert value("l1-d3-24-total-storage") == pytest.approx(0.5625)
    # A batch-1 GEMV reads exactly those bytes: 56.25%, a saving of 1 - 0.5625 = 43.75% (slide: ~47%),
    # i.e. a compression of 1 / 0.5625 = 16/9 = 1.78x (slide: "almost 2:1").
    assert value("l1-d3-dram-read-fraction") == pytest.approx(0.5625)
    assert value("l1-d3-bandwidth-saving-47pct") == pytest.approx(0.4375)
    assert value("l1-d3-24-near-2to1") == pytest.approx(16 / 9)
    assert verdict(BY_ID["l1-c5-24-bandwidth-halved"], value("l1-c5-24-bandwidth-halved")) == "near"  # 12.5% off


def test_24_metadata_bytes_of_a_4096_square_weight():
    # 4096 x 4096 / 4 = 4,194,304 groups x 4 bits = 16,777,216 bits / 8 = 2,097,152 B (2 MiB).
    assert value("l1-d3-metadata-size-4096") == 2_097_152


def test_nm_patterns_and_sparsity():
    # A group of M = 4 keeping N: C(4, 2) = 4! / (2! 2!) = 6 patterns; C(4, 1) = 4.
    assert value("l1-d1-24-pattern-count") == 6
    assert value("l1-d2-14-pattern-count") == 4
    # Sparsity = 1 - N/M: 2:4 -> 1/2; 2:8 -> 6/8 and 1:4 -> 3/4, both 0.75.
    assert value("l1-d2-24-sparsity") == 0.5
    assert value("l1-d2-14-28-sparsity") == 0.75


def test_csr_at_50_percent_is_larger_than_dense():
    # 4096 x 4096 fp16 at 50% in CSR (int32 indices): per element 0.5 x 2 B values + 0.5 x 4 B column
    # index = 3 B against 2 B dense = 1.5, plus row pointers (4096 + 1) x 4 B = 16,388 B over the
    # 33,554,432 dense bytes = 0.000488 -> 1.500488: the "halved bytes" of the slide is 3x off.
    assert value("l1-c3-naive-50pct-halves-bytes") == pytest.approx(1.5 + 16_388 / 33_554_432)
    # The position index each stored element carries is CSR's int32 column index, 4 B (the row
    # pointers, 16,388 B / 8,388,608 non-zeros = 0.002 B more, are per row): the top of the slide's 1-4 B.
    assert value("l1-c4-sparse-index-bits") == 4.0


def test_sparsegpt_24_plus_int4_on_llama_7b():
    # LLaMA-(2-)7B, 6,738,415,616 parameters, fp16: 13,476,831,232 B.
    # Linear layers per block: q, k, v, o 4 x 4096^2 + gate, up, down 3 x 4096 x 11008 = 202,375,168;
    # x 32 blocks = 6,476,005,376 weights at 2:4 + int4: 0.5 x 0.5 B values + 1 bit metadata per
    # element (0.125 B) = 0.375 B -> 2,428,502,016 B; per-channel fp16 scales: 32 x (12,288 + 4,096 +
    # 22,016 + 4,096) rows x 2 B = 2,719,744 B. lm_head int4 dense 32,000 x 4,096 x 0.5 B + 32,000 x 2 B
    # = 65,600,000 B; embedding fp16 262,144,000 B; norms 266,240 x 2 B = 532,480 B.
    # Total 2,759,498,240 B -> 13,476,831,232 / 2,759,498,240 = 4.884x (slide: 5.6x).
    assert value("l2-d1-sparsegpt24-gptq4-5.6x") == pytest.approx(13_476_831_232 / 2_759_498_240)


def test_eie_energy_gain_is_speedup_times_the_power_ratio():
    # The paper's energy efficiency is (baseline time x baseline power) / (EIE time x EIE chip power),
    # so it is the speed-up times P_baseline / P_EIE. sparsim's 64-PE chip power from [EIE] Table II:
    # 64 PEs x 9.157 mW + 21 LNZD units (a 16 + 4 + 1 tree) x 0.023 mW = 586.531 mW. Titan X 159 W
    # and i7-5930K 73 W as measured in the paper: factors 271.08 and 124.46.
    chip_w = (64 * 9.157 + 21 * 0.023) * 1e-3
    for speed, energy, watts in (("l1-b3-eie-speedup-vs-gpu", "l1-b3-eie-energy-vs-gpu", 159.0),
                                 ("l1-b3-eie-speedup-vs-cpu", "l1-b3-eie-energy-vs-cpu", 73.0)):
        assert value(energy) == pytest.approx(value(speed) * watts / chip_w, rel=1e-6)

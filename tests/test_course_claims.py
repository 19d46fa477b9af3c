"""The course's quantitative claims are data (workloads/course/claims.yaml): they must stay
well-formed and quote the course text exactly, and the GEMM-level ones this model covers are
recomputed here. Later issues add model-, KV- and EIE-level checks."""

from pathlib import Path

import pytest
import yaml

from simulator.gemm import estimate_gemm
from simulator.hardware import load_hw

ROOT = Path(__file__).resolve().parent.parent
CLAIMS = yaml.safe_load((ROOT / "workloads" / "course" / "claims.yaml").read_text())["claims"]
BY_ID = {c["id"]: c for c in CLAIMS}
SEED = ROOT.parent / "shared" / "seed" / "000_18f2b65b27920fa0.txt"
KEYS = {"id", "lecture", "part", "line", "quote", "claim", "quantity", "value", "unit", "setup", "area",
        "checkable", "note"}
AREAS = {"hw-fact", "gemm", "model", "kv", "dynamic", "eie", "storage", "other"}


def test_claims_are_well_formed():
    assert len(BY_ID) == len(CLAIMS), "duplicate claim ids"
    for claim in CLAIMS:
        assert {"id", "lecture", "line", "quote", "claim", "value", "unit", "area", "checkable"} <= set(claim)
        assert set(claim) <= KEYS, claim["id"]
        assert claim["area"] in AREAS and claim["lecture"] in (1, 2, 3), claim["id"]


@pytest.mark.skipif(not SEED.is_file(), reason="course text (shared/seed) not beside this checkout")
def test_quotes_match_the_course_text():
    lines = SEED.read_text().splitlines()
    for claim in CLAIMS:
        assert claim["quote"] in lines[claim["line"] - 1], claim["id"]


def test_h100_facts_quoted_by_the_course():
    h100 = load_hw("h100")
    assert h100.memory_bandwidth_bytes_per_s == pytest.approx(BY_ID["l1-c1-h100-hbm-bandwidth"]["value"], rel=0.01)
    # The slide's "80 GB" is the marketed capacity; the spec holds it as 80 GiB.
    assert h100.memory.capacity_GiB == BY_ID["l1-c1-h100-capacity"]["value"] / 1e9


def test_decode_and_prefill_intensity_claims():
    # Slide C.1: batch-1 decode ~1 FLOP/B; prefill > 100 FLOP/B (compute-bound on H100 needs
    # more: its ridge point is 989.4e12 / 3.352e12 = 295 FLOP/B, as the claim's note says).
    decode = estimate_gemm("h100", 1, 8192, 8192, "fp16").iloc[0]
    prefill = estimate_gemm("h100", 2048, 8192, 8192, "fp16").iloc[0]
    assert decode.arithmetic_intensity_flop_per_byte == pytest.approx(
        BY_ID["l1-c1-decode-arithmetic-intensity"]["value"], rel=0.01)
    assert prefill.arithmetic_intensity_flop_per_byte > BY_ID["l1-c1-prefill-arithmetic-intensity"]["value"]
    assert decode.bound == "memory" and prefill.bound == "compute"


def test_24_never_exceeds_the_claimed_2x():
    ceiling = BY_ID["l1-a3-24-2x-throughput"]["value"]
    m = [1, 64, 1024, 16384]
    dense = estimate_gemm("a100", m, 8192, 8192, "fp16")
    sparse = estimate_gemm("a100", m, 8192, 8192, "fp16", "2:4")
    assert ((dense.time_s / sparse.time_s) < ceiling).all()

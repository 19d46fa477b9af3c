"""The ledger's verdicts reach the reader: every claim carries its relation, a reason (with the
cause when it differs), the arithmetic for byte-level claims; one fact gets one verdict."""

from __future__ import annotations

import json

import pytest

from simulator.cli import main
from simulator.course import CAUSES, RELATIONS, Claim, ledger, load_claims, verdict


@pytest.fixture(scope="module")
def table():
    return ledger().set_index("id", drop=False)


def _claim(**kw) -> Claim:
    base = dict(id="l1-x-test", lecture=1, line=1, quote="q", claim="c", unit="ratio", area="gemm", checkable=True)
    return Claim(**{**base, **kw})


def test_a_floor_that_is_met_agrees_and_an_arithmetic_slip_inside_the_band_differs():
    # "可达 10×" is a floor: 33.6 >= 10 agrees (as an equality it read "differs": 33.6/10 - 1 > 25%).
    assert verdict(_claim(value=10.0, compare="at_least"), 33.6) == "agrees"
    assert verdict(_claim(value=10.0, compare="equal"), 33.6) == "differs"
    # "~47%" from 1 - 53.1%: as arithmetic it is exact, 0.4375 != 0.47 differs (inside the 10% band it "agreed").
    assert verdict(_claim(value=0.47, compare="equal", unit="fraction"), 0.4375) == "agrees"
    assert verdict(_claim(value=0.47, compare="exact", unit="fraction"), 0.4375) == "differs"


def test_every_row_has_a_relation_and_a_reason_and_each_difference_names_its_cause(table):
    for r in table.itertuples():
        assert r.relation in RELATIONS.values(), r.id
        assert r.reason and "\n" not in r.reason, r.id
        if r.verdict == "differs":
            assert any(r.reason.startswith(c) for c in CAUSES), (r.id, r.reason)


def test_the_slide_relations_follow_its_wording(table):
    # seed line 3012 "可达 10×" and 2781 "超过权重的 28%" are floors; line 1192 "= 53.1%" and 1206 "~47%"
    # (1 - 53.1%) are arithmetic, judged exactly.
    assert table.loc["l3-b-pyramidkv-kivi-10x", "relation"] == "at least"
    assert table.loc["l3-b-pyramidkv-kivi-10x", "verdict"] == "agrees"
    assert table.loc["l3-a9-kv-vs-weights-28pct", "relation"] == "at least"
    for cid in ("l1-d3-24-total-storage", "l1-d3-bandwidth-saving-47pct"):
        assert table.loc[cid, "relation"] == "exact" and table.loc[cid, "verdict"] == "differs", cid
        assert table.loc[cid, "reason"].startswith("slide error"), cid


def test_byte_level_claims_show_their_arithmetic(table):
    # 2:4 fp16 4096x4096: values 4096*4096*2/2 = 16,777,216 B, metadata 4096*4096/4*4 bit/8 = 2,097,152 B,
    # dense 33,554,432 B -> 0.5625. LLaMA-2-70B KV: 80 x 2 x 8 x 128 x 2 B = 327,680 B per token.
    assert "16,777,216 + 2,097,152 B of 33,554,432 B" in table.loc["l1-d3-24-total-storage", "arithmetic"]
    assert "= 327,680 B" in table.loc["l3-b-kv-bytes-per-token", "arithmetic"]
    assert "42,949,672,960 B" in table.loc["l3-b-kv-128k-bs1", "arithmetic"]


def test_a_quoted_paper_result_is_judged_on_the_quote_with_sparsims_estimate_beside_it(table):
    claims = {c.id: c for c in load_claims()}
    quoted = [c for c in claims.values() if c.checkable and c.source is not None]
    assert len(quoted) >= 10
    for c in quoted:
        r = table.loc[c.id]
        assert r["verdict"] == c.source.verdict
        assert c.source.ref in r["reason"] and "sparsim's own estimate" in r["reason"]
    # SnapKV's 3.6x is in its abstract: the quote agrees, though sparsim's roofline gives less
    snap = table.loc["l3-b-snapkv-3.6x"]
    assert snap["verdict"] == "agrees" and snap["sparsim_verdict"] == "differs"


def test_the_same_fact_gets_one_verdict(table):
    # "unstructured 50% buys nothing on a GPU" (A.3 line 181, C.3 line 930): one evaluator, best kernel
    a3, c3 = table.loc["l1-a3-unstructured-50pct-no-speedup"], table.loc["l1-c3-a100-unstructured-50pct"]
    assert a3["sparsim"] == pytest.approx(c3["sparsim"]) and a3["verdict"] == c3["verdict"] == "agrees"
    # "2:4 supports FP4" (D.4 list, D.7 FP4 + 2:4): B200's sparse FP4 is 4:8 pair-wise, not 2:4, in both
    for cid in ("l1-d4-sparse-dtypes", "l1-d7-blackwell-fp4-sparsity"):
        assert table.loc[cid, "sparsim"] == pytest.approx(1.0) and table.loc[cid, "verdict"] == "differs", cid
    # one evaluator per fact: the registered functions coincide
    from simulator.course import evaluators

    ev = evaluators()
    assert ev["l1-a3-unstructured-50pct-no-speedup"] is ev["l1-c3-a100-unstructured-50pct"]


def test_cli_shows_relation_reason_and_arithmetic(capsys):
    assert main(["course", "--id", "l1-d3-24-total-storage", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["claims"][0]
    assert {"relation", "reason", "arithmetic", "verdict", "basis", "compare"} <= set(row)
    assert row["relation"] == "exact" and row["reason"].startswith("slide error")
    assert main(["course", "--id", "l1-d3-24-total-storage"]) == 0
    out = capsys.readouterr().out
    assert "(exact)" in out and "why: slide error" in out and "arithmetic: values 0.5 + metadata 0.0625" in out


def test_kv_exceeds_the_weights_only_far_beyond_one_sequences_window(table):
    # LLaMA-2-70B fp16: weights 137,953,296,384 B (tests/test_course_kv.py derives them); KV per token
    # 80 x 2 x 8 x 128 x 2 B = 327,680 B -> one sequence's KV equals the weights at 421,000 tokens;
    # at 128k: 42,949,672,960 / 137,953,296,384 = 0.3113 < 1, a batch of ceil(1 / 0.3113) = 4 passes it.
    r = table.loc["l3-a9-kv-exceeds-weights-long-context"]
    assert r["sparsim"] == pytest.approx(42_949_672_960 / 137_953_296_384, rel=1e-9)
    assert r["relation"] == "at least" and r["verdict"] == "differs"
    assert "421,000 tokens" in r["arithmetic"] and "from batch 4" in r["basis"]

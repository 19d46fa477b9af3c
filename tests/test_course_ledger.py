"""The course ledger (simulator/course): every checkable claim of the course text is answered by
an evaluator, verdicts follow the fixed bands, and the CLI and docs show the same ledger."""

import json
import math

import pytest

from simulator.cli import main
from simulator.course import (AGREES, NEAR, Claim, distance, evaluators, format_value, ledger, load_claims,
                              verdict)


def _claim(value, compare=None, unit="ratio"):
    return Claim(id="l1-x-test", lecture=1, line=1, quote="q", claim="c", value=value, unit=unit,
                 area="gemm", checkable=True, compare=compare)


def test_distance_and_verdict_bands():
    # equal: |1.65 - 1.5| / 1.5 = 0.10 -> the edge of "agrees"; 1.8: 0.2 -> "near"; 2.0: 0.33 -> "differs"
    two = _claim(1.5)
    assert distance(two, 1.65) == pytest.approx(0.10)
    assert [verdict(two, v) for v in (1.5, 1.64, 1.8, 2.0)] == ["agrees", "agrees", "near", "differs"]
    # at_most 1.3: anything below is inside (distance 0); 1.56 is 20% above -> "near"
    below = _claim(1.3, "at_most")
    assert distance(below, 0.4) == 0.0 and distance(below, 1.56) == pytest.approx(0.2)
    # at_least 100: 300 is inside; 60 is 40% short -> "differs"
    above = _claim(100.0, "at_least")
    assert distance(above, 300.0) == 0.0 and verdict(above, 60.0) == "differs"
    # range [1.5, 1.8]: inside -> 0; 1.35 is 10% under the low end; 2.07 is 15% over the high end
    band = _claim([1.5, 1.8])
    assert band.comparison == "range" and distance(band, 1.6) == 0.0
    assert distance(band, 1.35) == pytest.approx(0.10) and distance(band, 2.07) == pytest.approx(0.15)
    assert verdict(band, None) == "not modelled"
    assert (AGREES, NEAR) == (0.10, 0.25)


def test_compare_must_fit_the_value():
    with pytest.raises(ValueError, match="range"):
        _claim(1.0, "range")
    with pytest.raises(ValueError, match="single value"):
        _claim([1.0, 2.0], "at_most")


def test_every_checkable_claim_has_exactly_one_evaluator_and_no_evaluator_is_stray():
    claims = load_claims()
    checkable = {c.id for c in claims if c.checkable}
    registered = set(evaluators())
    assert checkable - registered == set(), "checkable claims without an evaluator"
    assert registered - checkable == set(), "evaluators for claims that are not checkable (or do not exist)"


def test_the_ledger_answers_every_claim_with_a_finite_value_or_a_reason():
    table = ledger()
    assert len(table) == sum(c.checkable for c in load_claims())
    for r in table.itertuples():
        assert r.basis and "\n" not in r.basis, r.id
        if r.sparsim is None or (isinstance(r.sparsim, float) and math.isnan(r.sparsim)):
            assert r.verdict == "not modelled" and r.basis.startswith("not modelled"), r.id
        else:
            assert math.isfinite(r.sparsim) and r.sparsim >= 0, r.id
            assert r.verdict in ("agrees", "near", "differs"), r.id
    # most of the course's numbers are reproduced; the ones that are not are explained in docs/course.md
    assert (table["verdict"] == "agrees").sum() >= len(table) // 2


def test_value_formatting():
    assert format_value(140e9, "B") == "140 GB"
    assert format_value(0.042, "s") == "42 ms"
    assert format_value(1.53, "ratio") == "1.53×"
    assert format_value(0.0625, "fraction") == "6.25%"
    assert format_value([1.5, 1.8], "ratio") == "1.5× – 1.8×"
    assert format_value(None, "ratio") == "—" and format_value(float("nan"), "s") == "—"


def test_cli_course_json_and_text(capsys):
    assert main(["course", "--area", "hw-fact", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["claims"] and all(c["area"] == "hw-fact" for c in out["claims"])
    assert set(out["summary"]) == {"agrees", "near", "differs", "not modelled"}
    assert sum(out["summary"].values()) == len(out["claims"])
    assert main(["course", "--id", "l1-c1-h100-hbm-bandwidth"]) == 0
    text = capsys.readouterr().out
    assert "l1-c1-h100-hbm-bandwidth" in text and "3.35 TB/s" in text and "1 checkable claim(s)" in text


@pytest.mark.parametrize("argv, message", [
    (["course", "--area", "gpus"], "--area 'gpus': allowed"),
    (["course", "--id", "l9-nope"], "--id 'l9-nope': not a checkable claim"),
    (["course", "--verdict", "maybe"], "--verdict 'maybe': allowed"),
])
def test_cli_course_bad_input_is_one_line_and_exit_2(capsys, argv, message):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_course_plot_writes_the_figure(tmp_path, capsys):
    out = tmp_path / "ledger.png"
    assert main(["course", "--area", "storage", "--plot", str(out)]) == 0
    assert out.stat().st_size > 10_000
    assert "checkable claim(s)" in capsys.readouterr().out

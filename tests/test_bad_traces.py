"""Bad trace files: one SimulatorError line each, never a traceback (issue 14, traces)."""

import pytest

from simulator.core.errors import SimulatorError
from simulator.truth.validation import read_trace_file

HEADER = "hw,kernel_class,dtype,m,n,k,status,time_s_median\n"
GOOD = "a100-sxm4-80gb,dense,fp16,16,4096,4096,ok,3.1e-05\n"

CASES = [
    ("missing column", "kernel_class,dtype,status\ndense,fp16,ok\n", "missing column"),
    ("negative time", HEADER + GOOD.replace("3.1e-05", "-1e-5"), "time_s_median"),
    ("zero time", HEADER + GOOD.replace("3.1e-05", "0"), "time_s_median"),
    ("nan time", HEADER + GOOD.replace("3.1e-05", "nan"), "time_s_median"),
    ("junk time", HEADER + GOOD.replace("3.1e-05", "fast"), "time_s_median"),
    ("junk shape", HEADER + GOOD.replace(",16,", ",sixteen,"), "m 'sixteen'"),
    ("fractional shape", HEADER + GOOD.replace(",16,", ",1.5,"), "whole number"),
    ("unknown dtype", HEADER + GOOD.replace("fp16", "fp13"), "dtype 'fp13'"),
    ("empty file", "", "empty"),
    ("header only", HEADER, "no rows"),
    ("another device", HEADER + GOOD.replace("a100-sxm4-80gb", "h100-sxm5-80gb"), "rows of 'h100-sxm5-80gb'"),
]


@pytest.mark.parametrize("label,text,needle", CASES, ids=[c[0] for c in CASES])
def test_bad_trace_is_one_line(tmp_path, label, text, needle):
    path = tmp_path / "t.csv"
    path.write_text(text)
    with pytest.raises(SimulatorError, match=needle) as err:
        read_trace_file(path, "a100-sxm4-80gb")
    assert "\n" not in str(err.value)


def test_binary_file(tmp_path):
    path = tmp_path / "t.csv"
    path.write_bytes(b"\x00\x01\x02PK\x03\x04" * 100)
    with pytest.raises(SimulatorError, match="binary"):
        read_trace_file(path, "a100-sxm4-80gb")


def test_good_trace_reads(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + GOOD)
    frame = read_trace_file(path, "a100-sxm4-80gb")
    assert frame["time_s_median"].iloc[0] == 3.1e-05

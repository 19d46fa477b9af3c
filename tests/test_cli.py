"""The sparsim command: human output, JSON, sweeps, plots, and one-line errors with exit code 2."""

import json
import subprocess
import sys

import pytest
from _util import swap

from simulator.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_gemm_explains_the_estimate(capsys):
    code, out, err = run(capsys, "gemm", "--hw", "h100", "-m", "16", "-n", "8192", "-k", "8192",
                         "--dtype", "bf16", "--sparsity", "2:4")
    assert code == 0 and err == ""
    for word in ("sparse-tc", "intensity", "ridge point", "tiles", "wave", "memory-bound", "vs dense", "metadata"):
        assert word in out, word


def test_unstructured_shows_crossovers(capsys):
    code, out, _ = run(capsys, "gemm", "--hw", "a100", "-m", "1", "-n", "4096", "-k", "4096", "--dtype", "fp16",
                       "--sparsity", "unstructured:0.5:csr")
    assert code == 0 and "crossover" in out and "masked never" in out and "bitmap from" in out


def test_gemm_json_single_object(capsys):
    code, out, _ = run(capsys, "gemm", "--hw", "a100", "-m", "3072", "-n", "3072", "-k", "10240",
                       "--dtype", "fp16", "--json")
    assert code == 0
    record = json.loads(out)
    assert isinstance(record, dict)
    for key in ("time_s", "compute_time_s", "memory_time_s", "overhead_s", "flops", "bytes",
                "arithmetic_intensity_flop_per_byte", "bound", "kernel"):
        assert key in record
    assert record["flops"] == 2 * 3072 * 3072 * 10240


def test_gemm_json_sweep_is_a_list(capsys):
    code, out, _ = run(capsys, "gemm", "-m", "1:64:x4", "-n", "4096,8192", "-k", "4096",
                       "--sparsity", "unstructured:0.9:bitmap", "--json")
    records = json.loads(out)
    assert code == 0 and isinstance(records, list) and len(records) == 4 * 2  # M = 1, 4, 16, 64
    assert all(r["speedup_vs_dense"] > 0 for r in records)


def test_gemm_sweep_table(capsys):
    code, out, _ = run(capsys, "gemm", "-m", "1,4096", "-n", "8192", "-k", "8192", "--sparsity", "block:32:0.9")
    assert code == 0 and "bsr-tc" in out and "vs_dense" in out


def test_hw_list_and_show(capsys):
    code, out, _ = run(capsys, "hw", "list")
    assert code == 0
    for device in ("a100-sxm4-40gb", "h200-sxm-141gb", "b200-sxm-180gb", "tegra-k1", "i7-5930k"):
        assert device in out
    code, out, _ = run(capsys, "hw", "show", "h200")
    assert code == 0 and "h200-sxm-141gb" in out and "source" in out
    code, out, _ = run(capsys, "hw", "show", "b200", "--json")
    assert json.loads(out)["id"] == "b200-sxm-180gb"


def test_roofline_writes_png(capsys, tmp_path):
    path = tmp_path / "roof.png"
    code, out, _ = run(capsys, "roofline", "--hw", "h100", "-m", "1,64,4096", "-n", "8192", "-k", "8192",
                       "--sparsity", "2:4", "--out", str(path))
    assert code == 0 and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_user_spec_file_via_hw(capsys, tmp_path, spec_text):
    path = tmp_path / "my-gpu.yaml"
    path.write_text(swap(spec_text, "bandwidth_GBps: 3352", "bandwidth_GBps: 6704"))
    same = tmp_path / "same-gpu.yaml"  # an unchanged copy: a user file carries no calibration of its own
    same.write_text(spec_text)
    code, out, _ = run(capsys, "gemm", "--hw", str(path), "-m", "1", "-n", "8192", "-k", "8192", "--json")
    fast = json.loads(out)["memory_time_s"]
    code, out, _ = run(capsys, "gemm", "--hw", str(same), "-m", "1", "-n", "8192", "-k", "8192", "--json")
    assert fast == pytest.approx(json.loads(out)["memory_time_s"] / 2)


@pytest.mark.parametrize("argv, needle", [
    (["gemm", "--hw", "h300", "-m", "1", "-n", "1", "-k", "1"], "unknown device 'h300'"),
    (["gemm", "-m", "0", "-n", "1", "-k", "1"], "argument -m: must be a whole number >= 1, got 0"),
    (["gemm", "-m", "x", "-n", "1", "-k", "1"], "argument -m"),
    (["gemm", "-m", "1", "-n", "8", "-k", "8", "--sparsity", "unstructured:1.5"], "[0, 1)"),
    (["gemm", "-m", "1", "-n", "8", "-k", "8", "--sparsity", "4:2"], "1 <= N < M"),
    (["gemm", "-m", "1", "-n", "8", "-k", "8", "--dtype", "fp32", "--sparsity", "2:4"], "no sparse tensor-core mode"),
    (["gemm", "-m", "1", "-n", "8", "-k", "6", "--sparsity", "2:4"], "multiple of 4"),
    (["gemm", "-m", "1", "-n", "8", "-k", "8", "--dtype", "fp7"], "unknown dtype"),
    (["gemm", "--hw", "missing.yaml", "-m", "1", "-n", "8", "-k", "8"], "does not exist"),
    (["hw", "show", "h300"], "unknown device"),
    (["frobnicate"], "invalid choice"),
    (["gemm", "-n", "8", "-k", "8"], "required: -m"),
    # ranges that give nothing (or would never end: 0 x 2 = 0)
    (["gemm", "-m", "16:1:x2", "-n", "8", "-k", "8"], "range '16:1:x2' is empty"),
    (["gemm", "-m", "0:16:x2", "-n", "8", "-k", "8"], "starts below 1"),
    (["gemm", "-m", "1:100000000:+1", "-n", "8", "-k", "8"], "more than 1,000,000 values"),
    (["gemm", "-m", "1:1000:+1", "-n", "1:1000:+1", "-k", "1:10:+1"], "10,000,000 shapes"),
    (["roofline", "-m", "1", "-n", "8", "-k", "8", "--out", "/tmp/roofline.txt"], "--out '/tmp/roofline.txt'"),
    (["roofline", "-m", "1", "-n", "8", "-k", "8", "--out", "/nonexistent/dir/r.png"], "cannot write"),
    (["eie", "--compare", "--out", "/tmp/eie.txt"], "--out '/tmp/eie.txt'"),
    (["model", "--model", "llama-2-7b", "--reserve-gb", "-1"], "--reserve-gb: must be a finite number of GB >= 0"),
    (["plan", "--model", "llama-2-7b", "--reserve-gb", "nan"], "--reserve-gb: must be a finite number of GB >= 0"),
])
def test_bad_input_one_line_exit_2(capsys, argv, needle):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert needle in err
    assert err.count("\n") == 1 and err.startswith("sparsim: error: ")


def test_bad_spec_file_via_cli(capsys, tmp_path, spec_text):
    path = tmp_path / "broken.yaml"
    path.write_text(swap(spec_text, "capacity_GiB: 79.647", "capacity_GiB: -80"))
    code, out, err = run(capsys, "hw", "show", str(path))
    assert code == 2 and "broken.yaml" in err and "memory.capacity_GiB" in err and err.count("\n") == 1


def test_tour_runs_and_quotes_the_course(capsys, tmp_path):
    code, out, _ = run(capsys, "tour", "--plots", str(tmp_path))
    assert code == 0
    assert "42 ms" in out and "does not fit" in out and "56.3%" in out
    assert (tmp_path / "roofline-h100.png").exists() and (tmp_path / "ledger-slide.png").exists()
    # the measured-truth section quotes the held-out errors `sparsim validate` computes
    from simulator.truth.validation import validate

    dense = next(c for c in validate("epyc-zen4-vm-2vcpu")["classes"] if c["class"] == "dense")
    assert "(calibrated) median APE by class:" in out and f"dense {dense['median_ape']:.1%}" in out


def test_console_script_entry_point():
    result = subprocess.run([sys.executable, "-m", "simulator.cli", "gemm", "-m", "0", "-n", "1", "-k", "1"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr


def test_anchors_command_reports_every_anchor_and_its_calibration_state(capsys):
    from simulator.truth.workloads import load_gemm_anchors, load_model_anchors

    assert main(["anchors", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["gemm"]) == len(load_gemm_anchors()) and len(result["model"]) == len(load_model_anchors())
    from simulator.hardware.spec import hwspecs_dir, load_hw

    for row in result["gemm"] + result["model"]:
        spec = load_hw(row["hw"])
        sibling = spec.compute_calibration_from
        if (hwspecs_dir() / spec.id / "calibration.yaml").is_file():
            assert row["calibration"] == "calibrated"
        elif sibling and (hwspecs_dir() / sibling.device / "calibration.yaml").is_file():
            assert row["calibration"] == f"compute from {sibling.device}"
        else:
            assert row["calibration"] == "spec defaults"
    row72 = next(r for r in result["model"] if r["row"] == 72)
    assert row72["error"] == pytest.approx(row72["estimate"] / row72["published"] - 1.0)
    assert main(["anchors"]) == 0
    out = capsys.readouterr().out
    assert "| 72 | llama-2-7b | a100-sxm4-80gb |" in out and "whole-model anchors within 15%" in out

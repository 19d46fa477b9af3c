"""The trace-capture program: a real smoke run into a temp folder, the dry run, the CLI's errors,
and the promise that it needs nothing but torch, numpy and the standard library."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

REPO = Path(__file__).resolve().parents[1]
REQUIRED_COLUMNS = {
    "case_id", "suite", "kernel_class", "op", "backend", "dtype", "m", "n", "k", "density", "block_size",
    "batch", "heads", "kv_heads", "head_dim", "q_len", "kv_len", "causal", "model_hidden", "model_ffn",
    "bytes_copied", "time_s_median", "time_s_p10", "time_s_p90", "reps", "flops", "kernel_names", "status",
}
REQUIRED_ENV_KEYS = {
    "date_utc", "suite", "command", "hostname", "python_version", "torch_version", "torch_cuda_version",
    "numpy_version", "cpu_model", "torch_num_threads", "driver_version", "nvidia_smi_before",
    "nvidia_smi_after", "git_commit", "runs", "complete",
}


def capture(*args, timeout=120):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "simulator.capture", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("traces")
    done = capture("--suite", "smoke", "--device", "cpu", "--out", str(out))
    assert done.returncode == 0, done.stderr
    return out


def read_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_smoke_writes_a_csv_and_an_env_json_of_one_stem(smoke_run):
    csvs = sorted(smoke_run.glob("smoke-*.csv"))
    envs = sorted(smoke_run.glob("smoke-*.env.json"))
    assert len(csvs) == 1 and len(envs) == 1
    assert envs[0].name == csvs[0].name.replace(".csv", ".env.json")
    assert not list(smoke_run.glob("*.progress"))  # removed once the run finished


def test_smoke_rows_have_the_columns_and_sane_times(smoke_run):
    rows = read_rows(next(smoke_run.glob("*.csv")))
    assert rows and REQUIRED_COLUMNS <= set(rows[0])
    for row in rows:
        assert row["status"] == "ok", row
        median, p10, p90 = (float(row[c]) for c in ("time_s_median", "time_s_p10", "time_s_p90"))
        assert all(math.isfinite(t) and t > 0 for t in (median, p10, p90)), row
        assert p10 <= median <= p90, row
        assert int(row["reps"]) >= 5
    kinds = {row["kernel_class"] for row in rows}
    assert {"copy", "dense", "weight-only", "csr", "attention-prefill", "attention-decode", "layer"} <= kinds
    # the layer row counts its Python-level torch calls (every function, method, indexing and
    # operator call in the decode layer's source: a few dozen); other rows leave the column empty
    calls = {row["kernel_class"]: row["torch_calls"] for row in rows}
    assert 20 <= int(calls["layer"]) <= 60 and calls["dense"] == ""
    stored = {(row["op"], row["weight_dtype"], row["group_size"]) for row in rows if row["kernel_class"] == "weight-only"}
    assert stored == {("_weight_int8pack_mm", "int8", ""), ("_weight_int4pack_mm", "int4", "32")}
    assert any(row["kernel_names"] for row in rows)  # the profiler named what ran on some case


def test_smoke_flops_are_twice_the_macs(smoke_run):
    rows = {row["case_id"]: row for row in read_rows(next(smoke_run.glob("*.csv")))}
    dense = rows["smoke/linear/default/fp32/m64-n512-k256-d1"]
    assert float(dense["flops"]) == 2 * 64 * 512 * 256
    # Causal prefill, 64 queries over 64 keys: 64·65/2 visible pairs, 2 GEMMs of head_dim MACs each.
    attention = rows["smoke/sdpa/default/fp32/B1-h4-kvh2-hd32-q64-kv64-causal"]
    assert float(attention["flops"]) == 2 * 2 * 1 * 4 * 32 * (64 * 65 / 2)
    csr = rows["smoke/sparse.mm/default/fp32/m16-n256-k256-d0.1"]
    assert 0 < int(csr["nnz"]) < 0.2 * 256 * 256


def test_smoke_env_json_has_the_machine_and_run_facts(smoke_run):
    env = json.loads(next(smoke_run.glob("*.env.json")).read_text())
    assert REQUIRED_ENV_KEYS <= set(env)
    assert env["suite"] == "smoke" and env["complete"] is True
    assert env["torch_num_threads"] >= 1
    assert env["runs"][0]["status_counts"]["ok"] == len(read_rows(next(smoke_run.glob("*.csv"))))


def test_gpu_core_dry_run_lists_its_cases_without_cuda():
    # CUDA_VISIBLE_DEVICES="" hides any GPU, so this also holds on a GPU machine.
    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "simulator.capture", "--suite", "gpu-core", "--dry-run"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = [line for line in done.stdout.splitlines() if line[:5].strip().isdigit()]
    assert len(listed) > 300
    case_ids = [line.split()[1] for line in listed]
    assert len(set(case_ids)) == len(case_ids)
    for kind in ("copy_", "linear/cublas/bf16", "_scaled_mm", "_int_mm", "cusparselt", "sparse.mm/cusparse",
                 "-b32", "sdpa/flash", "decoder_layer", "_weight_int4pack_mm/tinygemm", "-wint4-g32",
                 "dequant_linear/inductor/bf16/m1-"):
        assert any(kind in c for c in case_ids), kind


def test_gpu_core_refuses_a_real_run_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    done = capture("--suite", "gpu-core", "--out", str(tmp_path))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "CUDA" in done.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("args", [
    ("--suite", "no-such-suite", "--dry-run"),
    ("--dry-run",),
    ("--suite", "cpu", "--groups", "no-such-group", "--dry-run"),
    ("--suite", "smoke", "--max-cases", "0", "--dry-run"),
])
def test_bad_input_is_one_line_and_exit_code_2(args):
    done = capture(*args)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "Traceback" not in done.stderr


def test_resume_records_the_case_that_crashed_and_skips_its_group(tmp_path):
    from simulator.capture.runner import TraceFiles

    first = capture("--suite", "smoke", "--device", "cpu", "--out", str(tmp_path), "--max-cases", "2",
                    "--tag", "t", "--no-profile")
    assert first.returncode == 0, first.stderr
    files = TraceFiles(tmp_path, next(tmp_path.glob("*.csv")).stem)
    # Pretend the process died while running the third case.
    crashed = "smoke/linear/default/fp32/m16-n256-k256-d1"
    files.progress.write_text(crashed + "\n")
    again = capture("--suite", "smoke", "--device", "cpu", "--out", str(tmp_path), "--max-cases", "4",
                    "--tag", "t", "--no-profile", "--resume")
    assert again.returncode == 0, again.stderr
    rows = {row["case_id"]: row["status"] for row in read_rows(files.csv)}
    assert len(rows) == 4
    assert rows[crashed].startswith("error:crashed")
    assert rows["smoke/linear/default/fp32/m64-n512-k256-d1"] == "skipped:group-crashed"
    assert len(json.loads(files.env.read_text())["runs"]) == 2


CAPTURE_MODULES = ("simulator.capture", "simulator.capture.__main__", "simulator.capture.suites",
                   "simulator.capture.kernels", "simulator.capture.timing", "simulator.capture.env",
                   "simulator.capture.runner")


def test_capture_needs_only_torch_numpy_and_the_standard_library():
    code = (
        "import importlib, sys\n"
        f"for name in {CAPTURE_MODULES!r}: importlib.import_module(name)\n"
        "banned = ('pandas', 'pydantic', 'yaml', 'scipy', 'matplotlib')\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] in banned)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


def test_dry_run_and_suite_building_do_not_import_torch():
    code = ("import sys\n"
            "sys.argv = ['capture', '--suite', 'gpu-core', '--dry-run']\n"
            "import simulator.capture.__main__ as m\n"
            "assert m.main(sys.argv[1:]) == 0\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=60)
    assert done.returncode == 0, done.stderr


# ---- the pure pieces, in process ---------------------------------------------------------------
def test_layer_flops_match_a_hand_count_for_llama3_8b_decode():
    from simulator.capture.suites import LLAMA3_8B, _layer, case_flops

    case = _layer("g", "bf16", 1, 1, 4096, "events", LLAMA3_8B, "llama-3-8b")
    # MACs per token: QKV 4096·6144 + O 4096·4096 + gate/up 4096·28672 + down 14336·4096 = 218,103,808;
    # attention: QKᵀ and PV over 4096 keys, 32 heads × 128 = 2·32·128·4096 = 33,554,432 MACs.
    assert case_flops(case) == 2 * 218_103_808 + 2 * 33_554_432


def test_rotation_covers_twice_the_cache_within_the_caps():
    from simulator.capture.kernels import MAX_SETS, rotation_sets

    assert rotation_sets(10 * 2**20, 50 * 2**20, 2**30) == 10  # 100 MB of 10 MB sets
    assert rotation_sets(1024, 50 * 2**20, 2**30) == MAX_SETS
    assert rotation_sets(600 * 2**20, 50 * 2**20, 2**30) == 1
    assert rotation_sets(10 * 2**20, 50 * 2**20, 30 * 2**20) == 3  # memory cap wins


def test_summary_is_ordered_and_positive():
    from simulator.capture.timing import summarize

    timing = summarize([0.0, 3e-6, 1e-6, 2e-6, 5e-6], "perf-counter")
    assert 0 < timing.min_s <= timing.p10_s <= timing.median_s <= timing.p90_s
    assert timing.median_s == 2e-6 and timing.reps == 5


def test_weight_only_cases_fit_the_kernels_constraints():
    from simulator.capture.suites import Case, build_suite

    cases = [c for c in build_suite("gpu-core", "cuda") if c.kernel_class == "weight-only"]
    int4 = [c for c in cases if c.weight_dtype == "int4"]
    # tinygemm (aten/src/ATen/native/cuda/int4mm.cu): N % 8 == 0, K % (16 x inner k-tiles 8) == 0,
    # and whole groups along K
    assert int4 and all(c.n % 8 == 0 and c.k % 128 == 0 and c.k % c.group_size == 0 for c in int4)
    assert {c.op for c in cases if c.weight_dtype == "int8"} == {"dequant_linear"}
    cpu = [c for c in build_suite("cpu", "cpu") if c.kernel_class == "weight-only"]
    assert cpu and all(c.group_size is None or c.k % c.group_size == 0 for c in cpu)
    with pytest.raises(ValueError, match="weight_dtype"):
        Case(group="g", kernel_class="dense", op="linear", backend="cpu", dtype="bf16", m=1, n=8, k=8,
             weight_dtype="int4")


def test_sparse_masks_keep_what_they_promise():
    from simulator.capture.kernels import block_mask, nonzero_random, two_four_mask

    mask = two_four_mask(64, 128, "cpu")
    assert (mask.view(64, 32, 4).sum(-1) == 2).all()
    blocks = block_mask(64, 128, 16, 0.3, "cpu").view(4, 16, 8, 16)
    per_block = blocks.sum(dim=(1, 3))
    assert ((per_block == 0) | (per_block == 256)).all() and per_block.sum() > 0
    for dtype in ("fp32", "bf16", "fp16", "int8", "fp8e4m3"):
        values = nonzero_random((256, 256), dtype, "cpu").float()
        assert (values != 0).all(), dtype


def test_nvidia_smi_output_is_parsed_into_numbers(tmp_path, monkeypatch):
    from simulator.capture import env

    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200, 570.86.15, 1980, 3201, 1980, 3201, 700.00, 120.5, 41, 0'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    (gpu,) = env.nvidia_smi()
    assert gpu["name"] == "NVIDIA H200" and gpu["driver_version"] == "570.86.15"
    assert gpu["clocks.sm"] == 1980.0 and gpu["clocks.max.mem"] == 3201.0 and gpu["power.limit"] == 700.0
    assert env.gpu_tag(gpu["name"]) == "h200"


def test_a_new_run_never_overwrites_and_resume_continues_the_last_file(tmp_path):
    from simulator.capture.runner import choose_stem

    assert choose_stem(tmp_path, "cpu-20250101-x", resume=False) == "cpu-20250101-x"
    assert choose_stem(tmp_path, "cpu-20250101-x", resume=True) == "cpu-20250101-x"
    (tmp_path / "cpu-20250101-x.csv").write_text("")
    assert choose_stem(tmp_path, "cpu-20250101-x", resume=False) == "cpu-20250101-x-2"
    (tmp_path / "cpu-20250101-x-2.csv").write_text("")
    assert choose_stem(tmp_path, "cpu-20250101-x", resume=True) == "cpu-20250101-x-2"


class _HostEvent:
    """Stands in for torch.cuda.Event on a CPU machine: records the host clock."""

    def __init__(self, enable_timing=False):
        self.t = None

    def record(self):
        import time

        self.t = time.perf_counter()

    def elapsed_time(self, end):  # milliseconds, like CUDA events
        return (end.t - self.t) * 1e3


def test_the_cuda_event_timer_logic_runs_with_stand_in_events(monkeypatch):
    from simulator.capture import timing
    from simulator.capture.kernels import Prepared

    slept = []
    monkeypatch.setattr(torch.cuda, "Event", _HostEvent)
    monkeypatch.setattr(torch.cuda, "_sleep", slept.append)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    a = torch.randn(64, 64)
    result = timing.measure(Prepared(run=lambda i: a @ a, n_sets=3), "cuda", "events",
                            target_s=0.01, min_reps=10, max_reps=120)
    assert result.method == "cuda-events" and 10 <= result.reps <= 120
    assert 0 < result.p10_s <= result.median_s <= result.p90_s
    assert len(slept) == -(-result.reps // timing.CHUNK_REPS) and all(c > 0 for c in slept)


def test_the_clock_sampler_collects_samples_during_a_run(tmp_path, monkeypatch):
    import time

    from simulator.capture import env

    fake = tmp_path / "nvidia-smi"
    fake.write_text("#!/bin/sh\necho 'NVIDIA H200, 570.86.15, 1755, 3201, 1980, 3201, 700.00, 420.0, 55, 100'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    sampler = env.ClockSampler(period_s=0.05).start()
    time.sleep(0.4)
    samples = sampler.stop()
    assert samples and samples[0]["clocks.sm"] == 1755.0 and "t_s" in samples[0]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch._dynamo's own imports warn on torch 2.13
def test_every_gemm_op_the_gpu_suites_name_has_a_callable():
    # Building the callable touches no tensor, so a CPU machine can check that every op a CUDA
    # suite names is dispatched (an unknown op would turn a whole GPU group into error rows).
    from simulator.capture.kernels import _gemm_callable
    from simulator.capture.suites import build_suite

    class Weight:
        packed = None

    cases = build_suite("smoke", "cuda") + build_suite("gpu-core", "cuda")
    gemm_cases = [c for c in cases if c.kernel_class in ("dense", "weight-only", "2:4", "csr", "bsr")]
    for op in sorted({c.op for c in gemm_cases}):
        case = next(c for c in gemm_cases if c.op == op)
        try:
            assert callable(_gemm_callable(case, [Weight()], [None], 1, "cpu")), op
        except RuntimeError as exc:  # bsr_dense_mm needs triton, which a CPU build lacks
            assert "triton" in str(exc), (op, exc)

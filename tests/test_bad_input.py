"""The bad-input battery: hostile input to every command and to the Python API.

Every case must end in one of two ways, whatever it is:
- refused: exit code 2 and exactly one line on stderr, starting ``sparsim: error: `` (never a
  traceback, never a second line), or
- accepted: exit code 0 with no NaN or infinity anywhere in the output (and strict JSON where
  ``--json`` was asked),
and within 10 s. Cases whose outcome is fixed say which (``ERR``/``OK``) and, for a refusal, a
piece of the message; the generated sweeps (every numeric flag, every key=value parameter, every
hostile file, for every command that reads one) accept either outcome and check its form.

Run in-process through ``simulator.cli.main`` (the console script is the same function): a few
hundred cases in well under a minute. tests/test_cli.py runs the real console script.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import re
import shlex
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.cli import main
from simulator.core.errors import SimulatorError
from simulator.core.paths import data_root

ERR, OK, EITHER = "error", "ok", "either"
SECONDS = 10
NON_FINITE = re.compile(r"(?<![A-Za-z_])(nan|NaN|inf|Inf|Infinity)(?![A-Za-z_])")
HUGE = "9" * 400

# ---- hostile files ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def d(tmp_path_factory) -> Path:
    """A folder of hostile files; cases name them as {d}/<file>."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "binary.yaml").write_bytes(bytes(range(256)) * 40)
    (root / "deep.yaml").write_text("a: " + "[" * 1500 + "]" * 1500 + "\n")
    (root / "empty.yaml").write_text("")
    (root / "list.yaml").write_text("- 1\n- 2\n")
    (root / "scalar.yaml").write_text("hello\n")
    (root / "folder.yaml").mkdir()
    (root / "huge.yaml").write_text("x: " + "a" * (17 * 2**20) + "\n")
    (root / "existing.png").write_text("not a picture")
    (root / "junk.csv").write_text("a,b\n1,2\n")
    (root / "empty.npy").write_bytes(b"")
    spec = (data_root() / "hwspecs" / "h100-sxm5-80gb.yaml").read_text()
    launch = "kernel_launch_us: {value: 2.1,"
    assert launch in spec, "test fixture drifted: the H100 spec's launch overhead moved"
    (root / "gpu.yml").write_text(spec)
    for name, value in (("inf", ".inf"), ("nan", ".nan"), ("1e400", "1e400"), ("neg", "-2.1")):
        (root / f"gpu-{name}.yaml").write_text(spec.replace(launch, "kernel_launch_us: {value: %s," % value))
    model = (data_root() / "workloads" / "models" / "llama-3.1-8b.yaml").read_text()
    (root / "models").mkdir()
    (root / "models" / "llama-3.1-8b.yml").write_text(model)  # a user's copy, .yml extension
    huge = root / "huge-layers"
    huge.mkdir()
    text = re.sub(r"^layers: 32$", "layers: 1000000000000", model, flags=re.M)
    text = re.sub(r"^published_parameters.*\n", "", text, flags=re.M)
    (huge / "llama-3.1-8b.yaml").write_text(text)
    for field, value in (("hidden", ".nan"), ("ffn", "1e400"), ("heads", "-32")):
        folder = root / f"bad-{field}"
        folder.mkdir()
        (folder / "llama-3.1-8b.yaml").write_text(re.sub(rf"^{field}: \d+$", f"{field}: {value}", model, flags=re.M))
    return root


def run(argv: list[str]) -> tuple[int, str, str, float]:
    """(exit code, stdout, stderr, seconds) of one in-process CLI call, killed after 3x SECONDS."""

    def timeout(*_):
        raise TimeoutError

    out, err = io.StringIO(), io.StringIO()
    previous = signal.signal(signal.SIGALRM, timeout)
    signal.alarm(3 * SECONDS)
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(argv)
            except SystemExit as exit_:  # --help, --version
                code = exit_.code
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    return code, out.getvalue(), err.getvalue(), time.perf_counter() - start


def check(argv: list[str], expect: str = EITHER, message: str | None = None) -> None:
    code, out, err, seconds = run(argv)
    shown = shlex.join(argv)
    assert seconds < SECONDS, f"{shown}: took {seconds:.1f} s"
    if code == 2:
        lines = err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("sparsim: error: "), f"{shown}: stderr {err!r}"
        assert "Traceback" not in err and "sparsim: error: sparsim" not in err, shown
        assert expect != OK, f"{shown}: refused ({err.strip()})"
        if message is not None:
            assert message in err, f"{shown}: {err.strip()!r} does not say {message!r}"
        return
    assert code in (0, None), f"{shown}: exit {code}, stderr {err!r}"
    assert expect != ERR, f"{shown}: accepted, should be refused ({message})"
    assert not NON_FINITE.search(out), f"{shown}: non-finite number in output: {NON_FINITE.search(out).group(0)!r}"
    if "--json" in argv:
        json.loads(out, parse_constant=lambda c: pytest.fail(f"{shown}: {c} is not JSON"))


# ---- the explicit table ----------------------------------------------------------------------

GEMM = "gemm -n 4096 -k 4096 -m"
MODEL = "model --model llama-3.1-8b"
PLAN = "plan --model llama-3.1-8b --hw h100 --tp 1 --top 1"

TABLE = [
    # numbers in lists and ranges
    (f"{GEMM} {HUGE}", ERR, "must be a whole number <="),
    (f"{GEMM} 2:10:x1e308", OK, None),
    (f"{GEMM} 2:10:xnan", ERR, "is not a whole number"),
    (f"{GEMM} 2:10:xinf", ERR, "is not a whole number"),
    (f"{GEMM} 2:10:+0", ERR, "is not a whole number"),
    (f"{GEMM} 1:{HUGE}:+1", ERR, "ends past"),
    (f"{GEMM} 1:1000000000:+1", ERR, "more than 1,000,000 values"),
    (f"{GEMM} 1:10", ERR, "is not a whole number"),
    (f"{GEMM} 1,,2", ERR, None),
    (f"{GEMM} 1e3", ERR, "is not a whole number"),
    (f"{GEMM} 16 -m 32", OK, None),  # repeated list flags add up
    (f"{GEMM} 1000000000000000 --json", OK, None),
    ("gemm -m 4096 -n 1000000000000000 -k 1000000000000000 --json", OK, None),
    # sparsity strings
    (f"{GEMM} 16 --sparsity unstructured:nan", ERR, "sparsity must lie in [0, 1)"),
    (f"{GEMM} 16 --sparsity unstructured:1e400", ERR, "sparsity must lie in [0, 1)"),
    (f"{GEMM} 16 --sparsity {HUGE}:{HUGE}", ERR, None),
    (f"{GEMM} 16 --sparsity block:0:0.5", ERR, None),
    (f"{GEMM} 16 --sparsity structured:inf", ERR, None),
    (f"{GEMM} 16 --sparsity 2:4 --sparsity dense", ERR, "given twice"),
    (f"{GEMM} 16 --hw h100 --hw a100", ERR, "given twice"),
    # key=value parameters of KV and dynamic methods (the list)
    (f"{MODEL} --kv-method streamingllm:window=inf", ERR, "window must be a finite number"),
    (f"{MODEL} --kv-method h2o:sinks=nan", ERR, "sinks must be a finite number"),
    (f"{MODEL} --kv-method kivi:bits=nan", ERR, "bits must be a finite number"),
    (f"{MODEL} --kv-method kivi:bits={HUGE}", ERR, "bits"),
    (f"{MODEL} --kv-method h2o:budget=0.2", OK, None),
    (f"{MODEL} --kv-method h2o:budget=nan", ERR, "budget must be a finite number"),
    (f"{MODEL} --kv-method h2o:budget=1.5", ERR, "budget is a fraction"),
    (f"{MODEL} --kv-method h2o:budget=0.2,heavy=0.3", ERR, "not both"),
    (f"{MODEL} --dynamic flash:flash_GBps=nan", ERR, "finite number"),
    (f"{MODEL} --dynamic flash:flash_GBps=-1", ERR, "must be > 0"),
    (f"{MODEL} --dynamic powerinfer:link_latency_us=-1e9", ERR, "link_latency_us must be a finite time >= 0"),
    (f"{MODEL} --dynamic powerinfer:link_latency_us=nan", ERR, "finite"),
    (f"{MODEL} --dynamic teal:sparsity=1e400", ERR, None),
    (f"{MODEL} --weights int4:g{HUGE}", EITHER, None),
    # flags given twice, flags that exclude each other
    (f"{MODEL} --batch 2 --batch 4", ERR, "given twice ('2', then '4')"),
    (f"{MODEL} --recipe 2:4 --recipe width:0.3", ERR, "join a recipe's parts with '+'"),
    (f"{MODEL} --recipe 2:4+width:0.25", OK, None),
    (f"{MODEL} --hw h100 --hw h200", ERR, "given twice"),
    (f"{MODEL} --output-tokens 5 --phase prefill", ERR, "not with --output-tokens"),
    (f"{MODEL} --output-tokens 5 --phase decode", ERR, "not with --output-tokens"),
    (f"{MODEL} --output-tokens 5", OK, None),
    (f"{MODEL} --output-tokens {HUGE}", ERR, "--output-tokens"),
    (f"{MODEL} --output-tokens 100000000", ERR, "--output-tokens"),
    (f"{MODEL} --batch {HUGE}", ERR, "--batch"),
    (f"{MODEL} --context {HUGE}", ERR, "--context"),
    (f"{MODEL} --tp {HUGE}", ERR, "--tp"),
    (f"{MODEL} --batch 1000000000 --context 1000000000 --json", OK, None),
    (f"{MODEL} --longest-context --batch 1000000000 --json", OK, None),
    (f"{MODEL} --reserve-gb 1e400", ERR, "--reserve-gb"),
    (f"{MODEL} --hw rtx-4090 --tp 2 --json", OK, None),
    (f"{MODEL} --hw epyc-zen4-vm-2vcpu --tp 2", ERR, "no interconnect"),
    (f"{PLAN} --max-tpot-ms nan", ERR, "--max-tpot-ms"),
    (f"{PLAN} --max-tpot-ms 1e400", ERR, "--max-tpot-ms"),
    (f"{PLAN} --top {HUGE}", ERR, "--top"),
    (f"{PLAN} --kv-method h2o:sinks=nan", ERR, "finite"),
    (f"plan --model llama-3.1-8b --hw h100 --tp {HUGE} --top 1", EITHER, None),
    # serving: the planner's targets, rates, prices and request mixes
    (f"{PLAN} --rate nan", ERR, "--rate"),
    (f"{PLAN} --rate 1e400", ERR, "--rate"),
    (f"{PLAN} --price h100=nan", ERR, "--price"),
    (f"{PLAN} --price h100=-1", ERR, "--price"),
    (f"{PLAN} --price h100", ERR, "--price"),
    (f"{PLAN} --price bogus=2", ERR, "unknown device"),
    (f"{PLAN} --objective cost", ERR, "--price"),
    (f"{PLAN} --objective bogus", ERR, "--objective"),
    (f"{PLAN} --price h100=2 --objective cost --json", OK, None),
    (f"{PLAN} --max-ttft-ms inf", ERR, "--max-ttft-ms"),
    (f"{PLAN} --pp {HUGE}", ERR, "--pp"),
    (f"{PLAN} --mix junk", ERR, "--mix"),
    (f"{PLAN} --mix 4096:256:nan", ERR, "--mix"),
    (f"{PLAN} --mix {HUGE}:1", ERR, "--mix"),
    (f"{PLAN} --token-budget {HUGE}", ERR, "--token-budget"),
    (f"{PLAN} --percentile nan", ERR, "--percentile"),
    ("plan --model llama-3.1-8b --hw rtx-4090 --rate 1000 --max-tpot-ms 1", ERR, "no configuration meets"),
    (f"{MODEL} --output-tokens 5 --rate nan", ERR, "--rate"),
    (f"{MODEL} --output-tokens 5 --percentile 0", ERR, "--percentile"),  # plan's rule: 0 < q < 100
    (f"{MODEL} --output-tokens 5 --percentile 100", ERR, "--percentile"),
    (f"{MODEL} --output-tokens 512 --batch 1000000000 --json", OK, None),
    ("export vidur --model llama-3.1-8b --hw h100 --out /proc/sparsim-export", ERR, "--out"),
    ("export vidur --model llama-3.1-8b --hw h100 --out {d}/existing.png", ERR, "--out"),
    ("export vidur --model deepseek-v3 --hw h100 --out {d}/export", ERR, "mixture of experts"),
    ("model --model llama-2-7b --hw h100 --tp 2 --dp-attention", ERR, "not a mixture of experts"),
    ("model --model qwen3-30b-a3b --hw h100 --dp-attention", ERR, "needs --tp 2 or more"),
    ("model --model qwen3-30b-a3b --hw h100 --tp 2 --dp-attention --output-tokens 64 --pp 2", ERR,
     "pipeline stages of data-parallel attention groups are not modelled"),
    ("model --model qwen3-30b-a3b --hw h100 --tp 2 --dp-attention --longest-context", ERR, "not with --dp-attention"),
    # EIE
    ("eie --scaling --scaling-pes 1:65535:+1", ERR, "slots"),
    ("eie --scaling --scaling-pes 1:65535:x2", ERR, "slots"),
    ("eie --layer alex-7 --pes 65535", ERR, "slots"),
    (f"eie --layer alex-7 --pes {HUGE}", ERR, "pes"),
    (f"eie --layer alex-7 --seed {HUGE}", EITHER, None),
    ("eie --layer alex-6 --out x.png", ERR, "add --compare"),
    ("eie --huffman index-entropy", ERR, "add --compression"),
    ("eie --compression --huffman bogus", ERR, "huffman"),
    ("eie --layer alex-7 --scaling-pes 1,2", ERR, "goes with --scaling"),
    # validate / calibrate / course / figures
    ("validate --hw a100-sxm4-80gb --fail-above nan", ERR, "--fail-above"),
    ("validate --hw a100-sxm4-80gb --fail-above -1", ERR, "--fail-above"),
    ("validate --hw a100-sxm4-80gb --fail-above 0", ERR, "--fail-above"),
    ("validate --hw a100-sxm4-80gb --fail-above inf", ERR, "--fail-above"),
    ("validate --hw nope", ERR, "unknown device"),
    ("calibrate --hw nope", ERR, "unknown device"),
    ("course --id bogus", ERR, "not a checkable claim"),
    ("course --area bogus", ERR, "--area"),
    ("course --verdict bogus", ERR, "--verdict"),
    ("figures --out /proc/sparsim-figures", ERR, "--out"),
    ("figures --out {d}/existing.png", ERR, "not a folder"),
    ("figures --out {d}/figs --format bogus", ERR, "--format"),
    ("figures --out {d}/figs --only bogus", ERR, "--only"),
    ("tour --plots {d}/existing.png", ERR, "--plots"),
    ("tour --plots /proc/sparsim-tour", ERR, "--plots"),
    ("hw show nope", ERR, "unknown device"),
    ("nosuchcommand", ERR, "invalid choice"),
    ("", ERR, None),
    # user spec and model files: paths work everywhere they are documented
    ("plan --model llama-3.1-8b --hw {d}/gpu.yml,h100 --tp 1 --top 1 --json", OK, None),
    ("gemm -m 16 -n 4096 -k 4096 --hw {d}/gpu.yml --json", OK, None),
    ("model --model {d}/models/llama-3.1-8b.yml --json", OK, None),
    ("plan --model {d}/models/llama-3.1-8b.yml --hw h100 --tp 1 --top 1 --json", OK, None),
    ("model --model {d}/huge-layers/llama-3.1-8b.yaml --json", EITHER, None),
    ("model --model {d}/bad-hidden/llama-3.1-8b.yaml", ERR, "hidden"),
    ("model --model llama-2-7b --ep", ERR, "not a mixture of experts"),
    ("model --model mixtral-8x7b --tp 16 --ep", ERR, "do not place whole and evenly"),
    ("plan --model llama-2-7b --ep", ERR, "not a mixture of experts"),
    ("model --model {d}/bad-ffn/llama-3.1-8b.yaml", ERR, "ffn"),
    ("model --model {d}/bad-heads/llama-3.1-8b.yaml", ERR, "heads"),
    ("gemm -m 16 -n 4096 -k 4096 --hw {d}/gpu-inf.yaml", ERR, "kernel_launch_us"),
    ("gemm -m 16 -n 4096 -k 4096 --hw {d}/gpu-nan.yaml", ERR, "kernel_launch_us"),
    ("gemm -m 16 -n 4096 -k 4096 --hw {d}/gpu-1e400.yaml", ERR, "kernel_launch_us"),
    ("gemm -m 16 -n 4096 -k 4096 --hw {d}/gpu-neg.yaml", ERR, "kernel_launch_us"),
    ("gemm -m 16 -n 4096 -k 4096 --hw {d}/folder.yaml", ERR, "is a folder"),
    ("gemm -m 16 -n 4096 -k 4096 --hw /dev/null", ERR, "not a regular file"),
    ("gemm -m 16 -n 4096 -k 4096 --hw {d}/missing.yaml", ERR, "does not exist"),
    ("gemm -m 16 -n 4096 -k 4096 --hw {d}/binary.yaml", ERR, "not a text (UTF-8)"),
    ("gemm -m 16 -n 4096 -k 4096 --hw {d}/deep.yaml", ERR, "nested too deeply"),
    ("gemm -m 16 -n 4096 -k 4096 --hw {d}/huge.yaml", ERR, "too large"),
    ("eie --matrix /dev/null", ERR, "--matrix"),
    ("eie --matrix {d}/empty.npy", ERR, "--matrix"),
    ("eie --layer alex-7 --activations {d}/empty.npy", ERR, "--activations"),
]


@pytest.mark.parametrize("case", TABLE, ids=[c[0][:60] for c in TABLE])
def test_table(d, case):
    text, expect, message = case
    check(shlex.split(text.format(d=d)), expect, message)


# ---- generated sweeps: every numeric flag, every parameter, every file reader -----------------

HOSTILE_NUMBERS = ["nan", "inf", "-inf", "1e400", HUGE, "-" + HUGE, "-1", "0", "", "x", "1e3", "0x10", "1_0", " 7 "]
NUMERIC_FLAGS = [
    ("gemm -n 64 -k 64", "-m"), ("gemm -m 64 -k 64", "-n"), ("gemm -m 64 -n 64", "-k"),
    (MODEL, "--batch"), (MODEL, "--context"), (MODEL, "--tp"), (MODEL, "--output-tokens"), (MODEL, "--reserve-gb"),
    ("plan --model llama-3.1-8b --hw h100 --tp 1", "--context"),
    ("plan --model llama-3.1-8b --hw h100 --tp 1", "--output-tokens"),
    ("plan --model llama-3.1-8b --hw h100", "--tp"),
    ("plan --model llama-3.1-8b --hw h100 --tp 1", "--max-tpot-ms"),
    ("plan --model llama-3.1-8b --hw h100 --tp 1", "--top"),
    ("plan --model llama-3.1-8b --hw h100 --tp 1", "--reserve-gb"),
    ("eie --layer alex-7", "--pes"), ("eie --layer alex-7", "--clock-mhz"), ("eie --layer alex-7", "--queue-depth"),
    ("eie --layer alex-7", "--weight-density"), ("eie --layer alex-7", "--act-density"),
    ("eie --layer alex-7", "--seed"), ("eie --scaling --layer alex-7", "--scaling-pes"),
    ("validate --hw a100-sxm4-80gb", "--fail-above"),
]
NUMERIC = [(base, flag, value) for base, flag in NUMERIC_FLAGS for value in HOSTILE_NUMBERS]


@pytest.mark.parametrize("base, flag, value", NUMERIC, ids=[f"{b.split()[0]} {f} {v[:8]!r}" for b, f, v in NUMERIC])
def test_every_numeric_flag(base, flag, value):
    check(shlex.split(base) + [flag, value])


def _kv_cases():
    from simulator.methods.kvcache import KV_METHODS

    for name, cls in sorted(KV_METHODS.items()):
        for key, param in cls.params.items():
            values = ["x"] if param.kind is str else ["nan", "inf", "-1e9", "1e400", HUGE, "x", ""]
            for value in values:
                yield f"{name}:{key}={value}"


def _dynamic_cases():
    from dataclasses import fields

    from simulator.methods.dynamic import REGISTRY

    for name, cls in REGISTRY.items():
        for f in fields(cls):
            for value in (["x"] if f.type in (str, "str") else ["nan", "-inf", "-1e9", "1e400", HUGE, "x"]):
                yield f"{name}:{f.name}={value}"


RECIPES = [f"{axis}:{v}" for axis in ("width", "heads", "hidden", "depth", "unstructured", "owl", "sparsegpt", "wanda")
           for v in ("nan", "inf", "-0.5", "1", "1e400", HUGE, "")] + ["2:4@bogus", "2:4+2:4", "+", "@mlp", "nan:nan"]
WEIGHTS = ["int4:g0", "int4:gnan", "int4:g-1", f"int4:g{HUGE}", "int4:", ":g128", "int8:g128:x", "fp8e4m3"]
PARAMS = ([("--kv-method", c) for c in _kv_cases()] + [("--dynamic", c) for c in _dynamic_cases()]
          + [("--recipe", r) for r in RECIPES] + [("--weights", w) for w in WEIGHTS])


@pytest.mark.parametrize("flag, value", PARAMS, ids=[f"{f} {v[:30]}" for f, v in PARAMS])
def test_every_parameter(flag, value):
    check(shlex.split(MODEL) + ["--context", "4096", flag, value])


FILES = ["binary.yaml", "deep.yaml", "empty.yaml", "list.yaml", "scalar.yaml", "folder.yaml", "huge.yaml",
         "missing.yaml", "junk.csv", "/dev/null", "gpu-inf.yaml"]
READERS = ["gemm -m 16 -n 64 -k 64 --hw {f}", "model --model {f}", "plan --model llama-3.1-8b --tp 1 --hw {f}",
           "hw show {f}", "eie --spec {f}", "eie --matrix {f}", "eie --layer alex-7 --activations {f}",
           "validate --hw a100-sxm4-80gb --targets {f}", "traces import --format vidur --hw a100 {f}",
           "traces import --format published --hw a100 {f}", "calibrate --hw {f} --dry-run"]
FILE_CASES = [(reader, name) for reader in READERS for name in FILES]


@pytest.mark.parametrize("reader, name", FILE_CASES, ids=[f"{r.split('{')[0].strip()} {n}" for r, n in FILE_CASES])
def test_every_file_reader(d, reader, name):
    path = name if name.startswith("/") else str(d / name)
    check(shlex.split(reader.format(f=path)), ERR)


OUTPUTS = ["roofline -m 16 -n 64 -k 64 --out {o}", "plan --model llama-3.1-8b --hw h100 --tp 1 --plot {o}",
           "course --id l1-a3-24-2x-throughput --plot {o}", "validate --hw a100-sxm4-80gb --plot {o}",
           "figures --only storage-2to4 --out {o}", "eie --compare --out {o}", "tour --plots {o}"]
PLACES = ["/proc/sparsim/x.png", "", "x.bogus", "{d}/folder.yaml/", "{d}/existing.png"]
# a valid place makes tour/eie --compare do their whole (tens of seconds) job: only refusals here
SLOW = {"tour", "eie"}
OUTPUT_CASES = [(c, p) for c in OUTPUTS for p in PLACES
                if c.split()[0] not in SLOW or p in ("/proc/sparsim/x.png", "{d}/existing.png")]


@pytest.mark.parametrize("command, place", OUTPUT_CASES)
def test_every_output_path(d, command, place, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # 'x.bogus' and friends land here, not in the checkout
    check(shlex.split(command.format(o=shlex.quote(place.format(d=d)) if place else "''")))


# ---- contracts the battery found broken ------------------------------------------------------

def test_roofline_draws_every_sparsity_given(tmp_path, capsys):
    out = tmp_path / "r.png"
    assert main(["roofline", "-m", "16,4096", "-n", "4096", "-k", "4096", "--sparsity", "dense",
                 "--sparsity", "2:4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "4 point(s)" in printed and "dense, 2:4" in printed and out.stat().st_size > 0


def test_repeated_m_adds_shapes(capsys):
    assert main(["gemm", "-m", "16", "-m", "32,64", "-n", "64", "-k", "64", "--json"]) == 0
    assert [r["m"] for r in json.loads(capsys.readouterr().out)] == [16, 32, 64]


def test_h2o_budget_is_split_equally_between_heavy_hitters_and_recent_tokens():
    from simulator.methods.kvcache import parse_kv_method
    from simulator.model.llm import estimate_model

    # budget=0.3 is heavy 0.15 + recent 0.15 (H2O's equal split): the same pipeline and the same numbers
    assert parse_kv_method("h2o:budget=0.3").role("select").ratios == (0.15, 0.15)
    a = estimate_model("llama-3.1-8b", "h100", "decode", 4, 32768, kv_method="h2o:budget=0.3").summary
    b = estimate_model("llama-3.1-8b", "h100", "decode", 4, 32768, kv_method="h2o:heavy=0.15,recent=0.15").summary
    assert a["time_s"] == b["time_s"] and a["kv_cache_bytes"] == b["kv_cache_bytes"]
    # the default is the papers' "20% budget": budget=0.2 changes nothing
    c = estimate_model("llama-3.1-8b", "h100", "decode", 4, 32768, kv_method="h2o").summary
    d = estimate_model("llama-3.1-8b", "h100", "decode", 4, 32768, kv_method="h2o:budget=0.2").summary
    assert c["kv_cache_bytes"] == d["kv_cache_bytes"]


def test_a_huge_layer_count_is_a_result_not_a_hang(d, capsys):
    assert main(["model", "--model", str(d / "huge-layers" / "llama-3.1-8b.yaml"), "--json"]) in (0, 2)
    captured = capsys.readouterr()
    if captured.out:
        summary = json.loads(captured.out)
        assert summary["fits"] is False and math.isfinite(summary["time_s"])


# ---- the Python API --------------------------------------------------------------------------

API = {
    "lengths differ": lambda e: e("h100", [1, 2, 3], [4096, 4096], 4096),
    "object array": lambda e: e("h100", np.array([1, "a"], dtype=object), 4096, 4096),
    "text": lambda e: e("h100", "16", 4096, 4096),
    "bool": lambda e: e("h100", True, 4096, 4096),
    "complex": lambda e: e("h100", 1 + 2j, 4096, 4096),
    "400 digits": lambda e: e("h100", 10**400, 4096, 4096),
    "1e300": lambda e: e("h100", 1e300, 1e300, 1e300),
    "nan": lambda e: e("h100", float("nan"), 4096, 4096),
    "inf": lambda e: e("h100", 4096, np.inf, 4096),
    "negative": lambda e: e("h100", -1, 4096, 4096),
    "fraction": lambda e: e("h100", 1.5, 4096, 4096),
    "empty": lambda e: e("h100", [], 4096, 4096),
    "None": lambda e: e("h100", None, 4096, 4096),
    "bad dtype": lambda e: e("h100", 16, 4096, 4096, dtype=None),
    "bad sparsity": lambda e: e("h100", 16, 4096, 4096, sparsity=3),
    "bad hw": lambda e: e(None, 16, 4096, 4096),
}


@pytest.mark.parametrize("name", sorted(API))
def test_estimate_gemm_refuses_bad_arguments_by_name(name):
    from simulator import estimate_gemm

    with pytest.raises(SimulatorError) as info:
        API[name](estimate_gemm)
    assert "\n" not in str(info.value) and len(str(info.value)) < 400


MODEL_API = {
    "batch nan": dict(batch=float("nan")),
    "batch 400 digits": dict(batch=10**400),
    "context 1e300": dict(context=1e300),
    "context text": dict(context=np.array(["a"], dtype=object)),
    "lengths differ": dict(batch=np.array([1, 2, 3]), context=np.array([4096, 8192])),
    "tp nan": dict(tp=float("nan")),
    "tp list": dict(tp=[1, 2]),
    "tp fraction": dict(tp=2.5),
    "reserve nan": dict(memory_reserve_bytes=float("nan")),
    "phase bogus": dict(phase="bogus"),
}


@pytest.mark.parametrize("name", sorted(MODEL_API))
def test_estimate_model_refuses_bad_arguments_by_name(name):
    from simulator.model.llm import estimate_model

    kwargs = {"phase": "decode", "batch": 1, "context": 4096, **MODEL_API[name]}
    with pytest.raises(SimulatorError) as info:
        estimate_model("llama-3.1-8b", "h100", **kwargs)
    assert "\n" not in str(info.value)


# ---- hypothesis: random text and numbers into every parser -----------------------------------

def _parsers():
    import argparse

    from simulator.cli.util import _finite, _int_list, _whole
    from simulator.core.dtypes import check_dtype
    from simulator.methods.dynamic import parse_dynamic
    from simulator.methods.kvcache import parse_kv_method
    from simulator.model.llm import parse_recipe, parse_weights
    from simulator.formats.sparsity import parse_sparsity

    return {
        "sparsity": parse_sparsity, "recipe": parse_recipe, "kv-method": parse_kv_method,
        "dynamic": parse_dynamic, "weights": lambda t: parse_weights(t, "bf16"), "dtype": check_dtype,
        "int-list": _int_list("-m"), "whole": _whole(1, 10**9), "finite": _finite(0.0),
    }, (SimulatorError, argparse.ArgumentTypeError)


PARSERS, REFUSALS = _parsers()
PIECES = st.sampled_from(["2:4", "unstructured", "block", "h2o", "kivi", "teal", "width", "int4", "g128", "nan", "inf",
                          "1e400", "-1", "0", "0.5", HUGE, ":", ",", "=", "+", "@", "x", "mlp", "bits", "budget"])
TEXT = st.one_of(st.text(max_size=40), st.lists(PIECES, max_size=8).map("".join),
                 st.lists(PIECES, max_size=6).map(":".join), st.lists(PIECES, max_size=6).map("=".join))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(sorted(PARSERS)), text=TEXT)
def test_parsers_refuse_or_accept_but_never_crash(name, text):
    try:
        PARSERS[name](text)
    except REFUSALS as err:
        assert "\n" not in str(err) and str(err)


NUMBERS = st.one_of(st.integers(min_value=-10**30, max_value=10**30), st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(min_value=10**300, max_value=10**400))


@settings(max_examples=200, deadline=None)
@given(m=NUMBERS, n=NUMBERS, k=st.sampled_from([64, 4096]))
def test_estimate_gemm_on_random_numbers_is_finite_or_refused(m, n, k):
    from simulator import estimate_gemm

    try:
        df = estimate_gemm("h100", m, n, k, "bf16", "2:4")
    except SimulatorError as err:
        assert "\n" not in str(err)
        return
    numeric = df.select_dtypes("number").to_numpy(dtype=float)
    assert np.isfinite(numeric).all() and (df["time_s"] > 0).all()


def test_a_libyaml_that_refuses_deep_nesting_itself_says_so(tmp_path, monkeypatch):
    # Newer libyaml builds stop at their own depth limit ("exceeded maximum nesting depth") before
    # sparsim's depth check runs; the clean-venv CI got one. The message must be the same either way.
    import yaml

    from simulator.core import datafiles

    def refuse(text):
        raise yaml.YAMLError("while parsing a flow node: exceeded maximum nesting depth")

    monkeypatch.setattr(datafiles, "parse_yaml", refuse)
    path = tmp_path / "deep.yaml"
    path.write_text("a: [[[]]]\n")
    with pytest.raises(SimulatorError, match="nested too deeply"):
        datafiles.read_yaml(path)

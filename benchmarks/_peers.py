"""Peer simulators timed on the same question as sparsim, in the same run (benchmarks/bench_models.py).

The question every tool can answer: one decode step of LLaMA-2-70B, bf16, batch 1, 4,096 tokens of
context, tensor parallel 4 on H100 SXM. A peer that is not installed is skipped and says so:

    pip install llm-analysis==0.2.2 genz-llm==0.0.16    # both from the package index

llm-analysis (github.com/cli99/llm-analysis): ``llm_analysis.analysis.infer``, its own model and GPU
configs ("upstage_Llama-2-70b-instruct-v2", "h100-sxm-80gb"), w16a16e16; its ``decode_latency``.
GenZ (github.com/abhibambhaniya/GenZ-LLM-Analyzer): ``GenZ.LLM_inference.decode_moddeling`` (sic)
with its "llama2_70b" model and "H100_GPU" system; its ``Latency`` is in milliseconds.
The step times printed beside are each tool's own answer, not a verdict on any: no measured step
time of this configuration is at hand here.
"""

from __future__ import annotations

import importlib.util
import time
import warnings

from _timing import best_of

QUESTION = "LLaMA-2-70B decode step, bf16, batch 1, 4096 context, TP 4, H100 SXM"


def _sparsim():
    from simulator.model.llm import estimate_model

    def one():
        return float(estimate_model("llama-2-70b", "h100", "decode", 1, 4096, tp=4, with_ops=False).summary["time_s"])
    return "sparsim", one


def _llm_analysis():
    import logging

    from llm_analysis.analysis import infer

    logging.getLogger("llm_analysis").setLevel(logging.ERROR)

    def one():
        r = infer(model_name="upstage_Llama-2-70b-instruct-v2", gpu_name="h100-sxm-80gb", dtype_name="w16a16e16",
                  log_level="ERROR", batch_size_per_gpu=1, seq_len=4096, num_tokens_to_generate=1, tp_size=4)
        return float(r["decode_latency"])
    return "llm-analysis", one


def _genz():
    from GenZ.LLM_inference import decode_moddeling

    def one():
        out = decode_moddeling(model="llama2_70b", batch_size=1, input_tokens=4096, output_tokens=0,
                               system_name="H100_GPU", bits="bf16", tensor_parallel=4)
        return float(out["Latency"]) * 1e-3  # GenZ reports milliseconds
    return "GenZ", one


PEERS = ((None, _sparsim), ("llm_analysis", _llm_analysis), ("GenZ", _genz))


def rows(repeats: int = 20) -> list[tuple[str, str, float | None, float | None]]:
    """(tool, note, seconds per estimate, its step time in seconds) per tool, peers skipped when absent."""
    out = []
    for module, make in PEERS:
        if module is not None and importlib.util.find_spec(module) is None:
            out.append((module, f"not installed (pip install {'llm-analysis' if module == 'llm_analysis' else 'genz-llm'})",
                        None, None))
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = time.perf_counter()
            name, one = make()
            step_s = one()  # first call: imports and caches
            first = time.perf_counter() - start
            each = best_of(lambda: [one() for _ in range(repeats)], 3) / repeats
        out.append((name, f"first call {first:.2f} s (imports included)", each, step_s))
    return out


def print_table(repeats: int = 20) -> None:
    print(f"\nPeers, same run: {QUESTION}")
    print(f"{'tool':<14} {'ms per estimate':>16} {'step time':>11}  note")
    for name, note, each, step_s in rows(repeats):
        if each is None:
            print(f"{name:<14} {'-':>16} {'-':>11}  skipped: {note}")
        else:
            print(f"{name:<14} {each * 1e3:>16.3f} {step_s * 1e3:>8.2f} ms  {note}")

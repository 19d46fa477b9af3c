"""Regenerate tests/golden/cli.json: the JSON of representative sparsim calls, pinned so that a
refactor (moving code between modules, a new op record) provably changes no number.

    python scripts/refresh_golden.py          # rewrite the file and list the calls whose output moved

Run it only when a number is meant to change (a new cost term, a recalibration); the commit that
does so says which calls moved and why. tests/test_golden.py compares every call at 1e-9 relative.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "cli.json"

# Each call is a sparsim command line that prints JSON. Chosen to cover every kernel family,
# format, KV and dynamic method family, MoE/MLA, serving and planning, EIE and the course.
CALLS = [
    # single GEMMs: dense, 2:4, N:M, unstructured storages, blocks, structured, quantized, CPU, skinny shapes
    "gemm --hw h100 -m 1,16,128,4096 -n 28672 -k 8192 --dtype bf16 --json",
    "gemm --hw a100 -m 1,4096 -n 4096 -k 4096 --sparsity 2:4 --json",
    "gemm --hw h200 -m 256,257 -n 13312 -k 16384 --dtype fp8 --json",
    "gemm --hw b200 -m 1,2048 -n 8192 -k 8192 --sparsity 2:4 --dtype fp8 --json",
    "gemm --hw a100 -m 1,4096 -n 4096 -k 4096 --sparsity unstructured:0.7 --json",
    "gemm --hw a100 -m 1,64 -n 4096 -k 4096 --sparsity unstructured:0.7:bitmap --json",
    "gemm --hw h100 -m 1,64 -n 4096 -k 4096 --sparsity unstructured:0.8:tiled-csl --json",
    "gemm --hw h100 -m 2048 -n 4096 -k 4096 --sparsity block:32:0.8 --json",
    "gemm --hw h100 -m 2048 -n 14336 -k 4096 --sparsity structured:0.3 --json",
    "gemm --hw h100 -m 1,4096 -n 4096 -k 4096 --sparsity 1:4 --json",
    "gemm --hw a100 -m 1,16 -n 8192 -k 8192 --dtype int8 --json",
    "gemm --hw epyc-zen4-vm-2vcpu -m 1,32 -n 1024 -k 1024 --dtype fp32 --json",
    "gemm --hw b200 -m 1,4096 -n 8192 -k 8192 --dtype fp4 --json",
    "gemm --hw a100 -m 1,4096 -n 4096 -k 4096 --sparsity 2:4 --dtype int8 --json",
    "gemm --hw a100 -m 1 -n 4096 -k 4096 --sparsity unstructured:0.5:masked --json",
    "gemm --hw rtx-4090 -m 1,512 -n 4096 -k 4096 --json",
    "gemm --hw l40s -m 1,512 -n 4096 -k 4096 --sparsity 2:4 --json",
    "gemm --hw a100-pcie-80gb -m 8 -n 11008 -k 4096 --json",
    # whole models, per phase, with recipes, weights, KV and dynamic methods, parallelism, MoE, MLA
    "model --model llama-3.1-8b --hw h100 --phase decode --batch 8 --context 4096 --json",
    "model --model llama-3.1-8b --hw h100 --phase prefill --batch 1 --context 2048 --json",
    "model --model llama-3.1-70b --hw h100 --tp 4 --phase decode --batch 16 --context 8192 --recipe 2:4 --json",
    "model --model llama-3.1-70b --hw h200 --phase decode --batch 8 --context 32768 --kv-method h2o --json",
    "model --model llama-3.1-8b --hw a100 --phase decode --batch 4 --context 16384 --kv-method kivi --json",
    "model --model llama-3.1-8b --hw h100 --phase decode --batch 2 --context 16384 --kv-method snapkv+kivi --json",
    "model --model llama-2-7b --hw a100 --phase decode --batch 1 --context 1024 --dynamic teal --json",
    "model --model llama-2-7b --hw a100 --phase decode --batch 1 --context 1024 --weights int4:g128 --json",
    "model --model llama-3.1-8b --hw h100 --phase decode --batch 1 --context 4096 --recipe width:0.3 --json",
    "model --model deepseek-v3 --hw h200 --tp 8 --dtype fp8 --phase decode --batch 1 --context 4096 --json",
    "model --model deepseek-v3 --hw h200 --tp 8 --dtype fp8 --weights fp8 --batch 256 --context 4096 --dp-attention --json",
    "model --model qwen3-30b-a3b --hw h100 --phase decode --batch 12 --context 2048 --json",
    "model --model mixtral-8x7b --hw a100 --tp 2 --phase prefill --batch 1 --context 2048 --json",
    "model --model llama-3.1-70b --hw h200 --context 32768 --output-tokens 512 --batch 23 --recipe 2:4 --kv-method h2o --reserve-gb 15 --json",
    "model --model llama-3.1-8b --hw h100 --context 4096 --output-tokens 256 --batch 16 --runtime vllm --json",
    "model --model llama-3.1-8b --hw rtx-4090 --phase decode --batch 1 --context 32768 --kv-method streamingllm --json",
    "model --model llama-2-70b --hw a100 --tp 8 --phase prefill --batch 1 --context 4096 --json",
    "model --model llama-2-7b --hw rtx-4090 --phase decode --batch 1 --context 65536 --kv-method quest --weights int4:g128 --json",
    "model --model qwen3-235b-a22b --hw h200 --tp 8 --dtype fp8 --phase decode --batch 32 --context 4096 --json",
    # planning
    "plan --model llama-3.1-70b --context 32768 --hw h200 --tp 1,2 --recipe 2:4 --kv-method h2o --max-tpot-ms 50 --reserve-gb 15 --json",
    "plan --model llama-3.1-8b --context 4096 --hw h100,a100 --tp 1,2 --max-ttft-ms 1000 --max-tpot-ms 30 --rate 2 --price h100=2.5,a100=1.5 --objective cost --json",
    # EIE and Deep Compression
    "eie --layer alex-7 --json",
    "eie --compare --json",
    "eie --compression --json",
    "eie --scaling --layer vgg-6 --scaling-pes 1,4,16,64,256 --json",
    # the course and the anchors
    "course --area storage --json",
    "course --area kv --json",
    "anchors --json",
]


def run(call: str):
    from simulator.cli import main

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = main(call.split())
    if rc not in (0, None):
        raise SystemExit(f"golden call failed (exit {rc}): sparsim {call}")
    return json.loads(out.getvalue())


def main() -> int:
    old = json.loads(GOLDEN.read_text()) if GOLDEN.is_file() else {}
    new = {call: run(call) for call in CALLS}
    moved = [c for c in CALLS if c in old and old[c] != new[c]]
    GOLDEN.write_text(json.dumps(new, indent=None, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"{GOLDEN.relative_to(ROOT)}: {len(new)} calls, {GOLDEN.stat().st_size / 1e3:.0f} kB")
    for c in moved:
        print(f"  moved: sparsim {c}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

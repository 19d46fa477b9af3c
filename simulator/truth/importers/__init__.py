"""Importers: other tools' measurement files -> sparsim trace rows (docs/traces.md).

Each module exposes ``read(path: Path) -> pandas.DataFrame`` of trace-schema rows with
provenance per row (``source``, ``source_file``, ``source_commit``):

- ``vidur_mlp``: Vidur's ``mlp.csv`` (per-GPU linear layers, kernel time, fp16)
- ``vidur_attention``: Vidur's ``attention.csv`` (paged FlashAttention prefill/decode)
- ``vidur_allreduce``: Vidur's ``all_reduce.csv`` (NCCL all-reduce)
- ``published``: published 2:4 kernel timings (one table, one source URL per row)
"""

from __future__ import annotations

# Vidur commits the profiling files were copied at (shared/data/vidur/README.md).
VIDUR_COMMITS = {
    "mlp.csv": "7d47513363ec447a741ac5e47241580b47724fbf",
    "attention.csv": "e2d00e9afba96cec9f0e7ea560bbfc4a539fae6a",
    "all_reduce.csv": "main",
}
VIDUR_SOURCE = "vidur (github.com/microsoft/vidur, MIT)"


def vidur_relative(path) -> str:
    """The file's path inside Vidur's repository (from ``data/profiling/``), else its name."""
    from pathlib import Path

    parts = Path(path).resolve().parts
    for i in range(len(parts) - 1):
        if parts[i] == "data" and parts[i + 1] == "profiling":
            return "/".join(parts[i:])
    return Path(path).name

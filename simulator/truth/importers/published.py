"""Published 2:4 kernel timings (a table with one source URL per row) -> trace rows.

The table's columns (id, source_url, where, gpu, dtype, kernel, sparsity, m_tokens, n_out, k_in,
metric, value, dense_time_us, confidence, notes) are read as they are: ``m_tokens``/``n_out``/
``k_in`` are already in sparsim's y = x.W^T convention (tokens x out x in); a ``tflops`` metric
becomes a time through 2 M N K / rate. The dense baseline a row quotes stays in ``dense_time_s``.
Which spec a row belongs to is read from its ``gpu`` text (``DEVICE_RULES``): A100 rows map to the
A100 SXM4 80GB (the CUTLASS rows say SXM4; the PR rows' dense rates of 220-240 TFLOP/s fit an SXM4
at 312 peak better than a PCIe card's power-capped clocks), Hopper SM90 rows to the H100 SXM5.

What a row times is read from its ``batch_or_notes`` text, not assumed:
- ``FFN: Linear(a->b) + <activation> + Linear(b->c)`` rows (torchao PR #2012) time a whole
  feed-forward block: two GEMMs, the activation and the fp8 quantization between them. They get
  ``structure`` ``ffn`` with the second GEMM's shape in ``n2``/``k2`` and the flops of both.
- sparsity ``2:4:runtime-activation`` (2:4 on the *activations*, packed at run time, on the second
  GEMM only) is a different method from 2:4 weights: kernel class ``2:4-activation``, which the
  cost models do not cover (counted, not scored).
- rows listed in ``workloads/validation/published-exclusions.yaml`` (the table's own notes say they
  do not time the shipped kernel: a superseded prototype, a build without sparse support, a
  constant per-call overhead) keep their numbers with status ``excluded`` and the reason in
  ``excluded_reason``.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from pydantic import Field

from simulator.core.datafiles import Strict, load_yaml
from simulator.core.errors import SimulatorError
from simulator.core.paths import workloads_path

COLUMNS = ("id", "source_url", "gpu", "dtype", "kernel", "sparsity", "m_tokens", "n_out", "k_in", "metric",
           "value", "dense_time_us")
DEVICE_RULES = (("a100", "a100-sxm4-80gb"), ("hopper", "h100-sxm5-80gb"), ("h100", "h100-sxm5-80gb"))
BACKENDS = {"cutlass-2:4": ("2:4", "cutlass"), "cusparselt": ("2:4", "cusparselt"),
            "cutlass-dense": ("dense", "cutlass")}


FFN_TEXT = re.compile(r"FFN:\s*Linear\((\d+)\s*->\s*(\d+)\)\s*\+\s*(\w+)\s*\+\s*Linear\((\d+)\s*->\s*(\d+)\)")
EXCLUSIONS = workloads_path("validation", "published-exclusions.yaml")


class _Exclusions(Strict):
    source: str = Field(min_length=3)
    rows: dict[str, str] = Field(min_length=1)  # row id -> why it is not scored


def exclusions() -> dict[str, str]:
    """Row id -> why it is not scored (workloads/validation/published-exclusions.yaml)."""
    return dict(load_yaml(EXCLUSIONS, _Exclusions).rows)


def _structure(notes) -> "tuple[str, float, float, str]":
    """(structure, n2, k2, activation) from a row's batch_or_notes text: ('gemm', nan, nan, '') or
    ('ffn', out and in features of the second linear, the activation's name)."""
    found = FFN_TEXT.search(str(notes))
    if not found:
        return "gemm", np.nan, np.nan, ""
    _, _, activation, k2, n2 = found.groups()
    return "ffn", float(n2), float(k2), activation.lower()


def device_of(gpu_text: str) -> "str | None":
    low = str(gpu_text).lower()
    for needle, device in DEVICE_RULES:
        if needle in low:
            return device
    return None


def read(path: Path) -> pd.DataFrame:
    """Trace rows (kernel_class 2:4 or dense), with a ``device`` column naming the spec."""
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SimulatorError(f"{path}: not a published-kernels table ({type(exc).__name__})") from None
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise SimulatorError(f"{path}: not a published-kernels table: missing column(s) {', '.join(missing)}")
    m, n, k, value = (pd.to_numeric(raw[c], errors="coerce").to_numpy(float)
                      for c in ("m_tokens", "n_out", "k_in", "value"))
    if not np.all(np.isfinite(np.c_[m, n, k, value]) & (np.c_[m, n, k, value] > 0)):
        raise SimulatorError(f"{path}: m_tokens, n_out, k_in and value must be positive numbers in every row")
    metric = raw["metric"].astype(str)
    if not metric.isin(["time_us", "tflops"]).all():
        raise SimulatorError(f"{path}: metric: {metric[~metric.isin(['time_us', 'tflops'])].iloc[0]!r}; "
                             "allowed: time_us, tflops")
    time_s = np.where(metric == "time_us", value * 1e-6, 2.0 * m * n * k / (value * 1e12))
    kinds = raw["kernel"].map(lambda s: BACKENDS.get(str(s), (None, None)))
    classes = [("2:4-activation" if c == "2:4" and "activation" in str(sp).lower() else c)
               for (c, _), sp in zip(kinds, raw["sparsity"])]
    dtype = np.where(raw["dtype"].astype(str).str.lower().str.contains("fp8"), "fp8e4m3", "fp16")
    notes = raw["batch_or_notes"] if "batch_or_notes" in raw else pd.Series([""] * len(raw))
    shapes = [_structure(t) for t in notes]
    n2, k2 = (np.array([s[i] for s in shapes], float) for i in (1, 2))
    ffn = np.array([s[0] == "ffn" for s in shapes])
    # a metric in TFLOP/s is per one GEMM of (m, n, k); an FFN row's flops are both GEMMs'
    flops = 2.0 * m * n * k + np.where(ffn, 2.0 * m * np.nan_to_num(n2) * np.nan_to_num(k2), 0.0)
    skip = exclusions()
    ids = raw["id"].astype(str)
    status = ["error:unknown-kernel" if c is None else "excluded" if i in skip else "ok"
              for i, c in zip(ids, classes)]
    return pd.DataFrame({
        "case_id": "published/" + ids,
        "suite": "published", "group": "published-" + raw["kernel"].astype(str),
        "kernel_class": classes, "op": "published", "backend": [b for _, b in kinds],
        "dtype": dtype, "m": m, "n": n, "k": k,
        "structure": [s[0] for s in shapes], "n2": n2, "k2": k2, "activation": [s[3] for s in shapes],
        "density": np.where([c == "2:4" for c, _ in kinds], 0.5, 1.0),
        "flops": flops, "time_s_median": time_s,
        "dense_time_s": pd.to_numeric(raw["dense_time_us"], errors="coerce").to_numpy(float) * 1e-6,
        "timing_method": "published", "status": status, "excluded_reason": [skip.get(i, "") for i in ids],
        "device": raw["gpu"].map(device_of),
        "source": raw["source_url"].astype(str), "source_file": path.name, "source_commit": raw["id"].astype(str),
    })

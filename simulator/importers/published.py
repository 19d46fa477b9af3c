"""Published 2:4 kernel timings (a table with one source URL per row) -> trace rows.

The table's columns (id, source_url, where, gpu, dtype, kernel, sparsity, m_tokens, n_out, k_in,
metric, value, dense_time_us, confidence, notes) are read as they are: ``m_tokens``/``n_out``/
``k_in`` are already in sparsim's y = x.W^T convention (tokens x out x in); a ``tflops`` metric
becomes a time through 2 M N K / rate. The dense baseline a row quotes stays in ``dense_time_s``.
Which spec a row belongs to is read from its ``gpu`` text (``DEVICE_RULES``): A100 rows map to the
A100 SXM4 80GB (the CUTLASS rows say SXM4; the PR rows' dense rates of 220-240 TFLOP/s fit an SXM4
at 312 peak better than a PCIe card's power-capped clocks), Hopper SM90 rows to the H100 SXM5.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.errors import SimulatorError

COLUMNS = ("id", "source_url", "gpu", "dtype", "kernel", "sparsity", "m_tokens", "n_out", "k_in", "metric",
           "value", "dense_time_us")
DEVICE_RULES = (("a100", "a100-sxm4-80gb"), ("hopper", "h100-sxm5-80gb"), ("h100", "h100-sxm5-80gb"))
BACKENDS = {"cutlass-2:4": ("2:4", "cutlass"), "cusparselt": ("2:4", "cusparselt"),
            "cutlass-dense": ("dense", "cutlass")}


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
    dtype = np.where(raw["dtype"].astype(str).str.lower().str.contains("fp8"), "fp8e4m3", "fp16")
    return pd.DataFrame({
        "case_id": "published/" + raw["id"].astype(str),
        "suite": "published", "group": "published-" + raw["kernel"].astype(str),
        "kernel_class": [c for c, _ in kinds], "op": "published", "backend": [b for _, b in kinds],
        "dtype": dtype, "m": m, "n": n, "k": k,
        "density": np.where([c == "2:4" for c, _ in kinds], 0.5, 1.0),
        "flops": 2.0 * m * n * k, "time_s_median": time_s,
        "dense_time_s": pd.to_numeric(raw["dense_time_us"], errors="coerce").to_numpy(float) * 1e-6,
        "timing_method": "published", "status": ["ok" if c else "error:unknown-kernel" for c, _ in kinds],
        "device": raw["gpu"].map(device_of),
        "source": raw["source_url"].astype(str), "source_file": path.name, "source_commit": raw["id"].astype(str),
    })

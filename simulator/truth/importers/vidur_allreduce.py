"""Vidur's ``all_reduce.csv``: NCCL all-reduce of an fp16 buffer, rank 0's kernel time in ms.

Vidur's collective profiler (vidur/profiling/collectives/) runs eager
``torch.distributed.all_reduce`` of ``size`` bytes per GPU over ``num_workers`` GPUs,
``devices_per_node`` of them per node, and records rank 0's NCCL kernel time (which includes
waiting for its peers). The interconnect is named by the folder the file sits in, which is how
Vidur names its network profiles; each maps to a topology of the spec the rows are imported to
(docs/traces.md):

    *_dgx, one node         nvswitch    (8 SXM GPUs on NVSwitch)
    *_dgx, several nodes    infiniband  (GPUs on 2+ nodes: the ring crosses the nodes' NICs)
    *_pairwise_nvlink, 2    nvlink-pair (a 2-GPU NVLink bridge)
    *_pairwise_nvlink, 4    pcie        (two bridged pairs joined over PCIe)

Another folder name gives ``intra-node`` / ``inter-node``, which no shipped spec prices (such rows
are listed as unmodelled, not dropped). ``split_key`` holds out whole message sizes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.core.errors import SimulatorError
from simulator.truth.importers import VIDUR_COMMITS, VIDUR_SOURCE, vidur_relative

SHAPE_COLUMNS = ("num_workers", "size", "devices_per_node", "rank")
TIME_COLUMNS = ("time_stats.all_reduce.median", "time_stats.all_reduce.min")


def topology(folder: str, gpus: np.ndarray, gpus_per_node: np.ndarray) -> np.ndarray:
    """The interconnect name of each row, from Vidur's folder name (see the module docstring)."""
    multi_node = gpus > gpus_per_node
    if folder.endswith("_dgx"):
        return np.where(multi_node, "infiniband", "nvswitch")
    if folder.endswith("_pairwise_nvlink"):
        return np.where(multi_node, "inter-node", np.where(gpus <= 2, "nvlink-pair", "pcie"))
    return np.where(multi_node, "inter-node", "intra-node")


def read(path: Path) -> pd.DataFrame:
    """Trace rows (kernel_class allreduce), one per row of ``path``."""
    path = Path(path)
    try:
        raw = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SimulatorError(f"{path}: not a Vidur all_reduce.csv ({type(exc).__name__})") from None
    missing = [c for c in SHAPE_COLUMNS + TIME_COLUMNS if c not in raw.columns]
    if missing:
        raise SimulatorError(f"{path}: not a Vidur all_reduce.csv: missing column(s) {', '.join(missing[:4])}")
    if raw.empty:
        raise SimulatorError(f"{path}: no rows")
    if "collective" in raw and (raw["collective"].astype(str) != "all_reduce").any():
        other = raw.loc[raw["collective"].astype(str) != "all_reduce", "collective"].iloc[0]
        raise SimulatorError(f"{path}: column collective: {other!r}; this importer reads all_reduce rows")
    s = {}
    for c in SHAPE_COLUMNS:
        values = pd.to_numeric(raw[c], errors="coerce").to_numpy(float)
        low = 0 if c == "rank" else 1
        if not np.all(np.isfinite(values) & (values >= low) & (values == np.floor(values))):
            raise SimulatorError(f"{path}: column {c}: needs whole numbers >= {low}")
        s[c] = values
    gpus, per_node, size = s["num_workers"], s["devices_per_node"], s["size"]
    topo = topology(path.parent.name, gpus, per_node)
    median = pd.to_numeric(raw["time_stats.all_reduce.median"], errors="coerce").to_numpy(float) * 1e-3  # ms -> s
    fastest = pd.to_numeric(raw["time_stats.all_reduce.min"], errors="coerce").to_numpy(float) * 1e-3
    rows = pd.DataFrame({
        "case_id": [f"vidur/all_reduce/{path.parent.name}/{t}/g{int(g)}-per-node{int(d)}/bytes{int(b)}"
                    for t, g, d, b in zip(topo, gpus, per_node, size)],
        "suite": "vidur", "group": "vidur-all_reduce", "kernel_class": "allreduce", "op": "all_reduce",
        "backend": "nccl", "dtype": "fp16", "message_bytes": size, "gpus": gpus.astype(int),
        "gpus_per_node": per_node.astype(int), "topology": topo, "rank": s["rank"].astype(int),
        "shape_source": f"vidur:{path.parent.name}", "time_s_median": median, "time_s_min": fastest,
        "timing_method": "kernel-sum", "status": "ok", "split_key": [f"allreduce|bytes={int(b)}" for b in size],
        "source": VIDUR_SOURCE, "source_file": vidur_relative(path), "source_commit": VIDUR_COMMITS["all_reduce.csv"],
    })
    bad = ~np.isfinite(median) | (median <= 0)
    rows.loc[bad, "status"] = "error:no-time"
    return rows

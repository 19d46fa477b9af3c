"""NCCL all-reduce over a spec's interconnects: the model behind ``simulator.estimate_allreduce``.

For ``p`` GPUs each holding ``S`` bytes, over a topology whose links carry ``B`` bytes/s per GPU and
direction at NCCL bus efficiency ``e`` (docs/cost-models.md, "All-reduce"):

    ring  t = base + 2(p-1) step + 2(p-1)/p x S / (e B)       (reduce-scatter + all-gather)
    tree  t = base + 2 ceil(log2 p) step + 2 S / (0.92 e B)     (reduce up, broadcast down)

and NCCL runs the faster of the two (its tuner, src/graph/tuning.cc, picks by the same kind of
latency + size / bandwidth model; the tree's 0.92 and its bandwidth of half the bus bandwidth
for all-reduce are from there). ``base`` is the per-call latency, ``step`` the latency of one ring
step or tree hop. The kernel time is what a profiler sees on one rank (waiting for its peers
included); ``time_s`` adds one launch. The parameters are the spec's per-topology values
(``interconnect.topologies``), replaced by the ``allreduce:`` section of the device's
calibration.yaml (keys ``<topology>.bus_efficiency``, ``<topology>.step_latency_us``,
``<topology>.base_latency_us``). A device without its own fit takes a same-silicon sibling's
(``compute_calibration_from``) for every topology the two share unchanged: the H200 SXM sits on
the H100 SXM's NVLink 4 NVSwitch baseboard, so it uses the H100's fitted NCCL parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.core.errors import SimulatorError

TREE_BANDWIDTH_FACTOR = 0.92  # NCCL src/graph/tuning.cc: tree all-reduce busBw x 0.92
FIELDS = ("bus_efficiency", "step_latency_us", "base_latency_us")
BOUNDS = ("latency", "bandwidth")


@dataclass(frozen=True)
class Topology:
    name: str
    one_way_Bps: float
    max_gpus: int
    bus_efficiency: float
    step_latency_s: float
    base_latency_s: float


def topologies(hw, overrides: "dict | None" = None) -> dict[str, Topology]:
    """The spec's interconnects by name (its ``collective`` ring as ``default`` when it lists none),
    with the device's calibrated ``allreduce:`` values and ``overrides`` applied."""
    from simulator.kernels.attention import _calibrated_section

    found = _spec_topologies(hw)
    values = _sibling_fabric_section(hw, found)
    values.update(_calibrated_section(hw, "allreduce"))
    values.update(overrides or {})
    for key, value in values.items():
        name, _, field = key.rpartition(".")
        if name in found and field in FIELDS:
            found[name][field] = float(value)
    return {name: Topology(name=name, one_way_Bps=v["one_way_Bps"], max_gpus=int(v["max_gpus"]),
                           bus_efficiency=v["bus_efficiency"], step_latency_s=v["step_latency_us"] * 1e-6,
                           base_latency_s=v["base_latency_us"] * 1e-6) for name, v in found.items()}


def inherits_allreduce(hw) -> bool:
    """Whether ``hw`` prices its all-reduce with a same-silicon sibling's fitted values (and has
    no fit of its own that replaces them)."""
    from simulator.kernels.attention import _calibrated_section

    return bool(_sibling_fabric_section(hw, _spec_topologies(hw))) and not _calibrated_section(hw, "allreduce")


def _spec_topologies(hw) -> dict:
    """The spec's own interconnect parameters by topology name (its ``collective`` ring as
    ``default`` when it lists none), before any calibration."""
    inter = hw.interconnect
    found = {}
    if inter is not None and inter.topologies:
        for t in inter.topologies:
            found[t.name] = dict(one_way_Bps=t.one_way_GBps * 1e9, max_gpus=t.max_gpus, bus_efficiency=t.bus_efficiency,
                                 step_latency_us=t.step_latency_us, base_latency_us=t.base_latency_us)
    elif inter is not None and inter.collective is not None:
        c = inter.collective
        bidirectional = inter.nvlink_bidirectional_GBps if c.link == "nvlink" else inter.pcie_bidirectional_GBps
        found["default"] = dict(one_way_Bps=bidirectional * 1e9 / 2.0, max_gpus=1 << 20, bus_efficiency=c.bus_efficiency,
                                step_latency_us=c.step_latency_us, base_latency_us=0.0)
    return found


def _sibling_fabric_section(hw, found: dict) -> dict[str, float]:
    """The fitted ``allreduce:`` values of a same-silicon sibling (``compute_calibration_from``) for
    each topology this spec shares with it: same name, same link bandwidth and GPU count (the same
    NVSwitch baseboard, so the same NCCL latencies and bus efficiency). The device's own fit, when it
    has one, replaces them."""
    sibling = getattr(hw, "compute_calibration_from", None)
    if sibling is None or not found:
        return {}
    from simulator.kernels.attention import _calibrated_section
    from simulator.hardware.spec import load_hw

    other = load_hw(sibling.device)
    if other.interconnect is None or not other.interconnect.topologies:
        return {}
    theirs = {t.name: t for t in other.interconnect.topologies}
    same = {name for name, v in found.items() if name in theirs
            and theirs[name].one_way_GBps * 1e9 == v["one_way_Bps"] and theirs[name].max_gpus == v["max_gpus"]}
    return {key: value for key, value in _calibrated_section(other, "allreduce").items()
            if key.rpartition(".")[0] in same}


def allreduce_kernel_time(topo: Topology, message_bytes, gpus):
    """(kernel seconds, bandwidth-bound?, ring?) of the faster of ring and tree, vectorized."""
    s, p = np.broadcast_arrays(np.asarray(message_bytes, float), np.asarray(gpus, float))
    bw = topo.one_way_Bps * topo.bus_efficiency
    ring_lat = topo.base_latency_s + 2.0 * (p - 1.0) * topo.step_latency_s
    ring_bw = 2.0 * (p - 1.0) / p * s / bw
    tree_lat = topo.base_latency_s + 2.0 * np.ceil(np.log2(np.maximum(p, 1.0))) * topo.step_latency_s
    tree_bw = 2.0 * s / (TREE_BANDWIDTH_FACTOR * bw)
    ring, tree = ring_lat + ring_bw, tree_lat + tree_bw
    use_ring = ring <= tree
    kernel = np.where(p > 1, np.where(use_ring, ring, tree), 0.0)
    bandwidth_bound = np.where(use_ring, ring_bw > ring_lat, tree_bw > tree_lat)
    return kernel, bandwidth_bound, use_ring


def alltoall_kernel_time(topo: Topology, message_bytes, gpus):
    """Kernel seconds of an all-to-all in which each of ``gpus`` GPUs holds ``message_bytes`` and
    keeps 1/gpus of them (MoE dispatch or combine under expert parallelism), vectorized.

    NCCL runs an all-to-all as grouped point-to-point sends (ncclGroupStart, one ncclSend and
    ncclRecv per peer): every GPU sends (p-1)/p of its bytes, to all peers at once over the switch,
    so one hop of latency and its link's one-way bandwidth: base + step + (p-1)/p x S / (e B). The bus
    efficiency ``e`` is the topology's all-reduce fit (no all-to-all was measured: a JUDGEMENT)."""
    s, p = np.broadcast_arrays(np.asarray(message_bytes, float), np.asarray(gpus, float))
    bandwidth = (p - 1.0) / np.maximum(p, 1.0) * s / (topo.one_way_Bps * topo.bus_efficiency)
    return np.where(p > 1, topo.base_latency_s + topo.step_latency_s + bandwidth, 0.0)


def estimate_allreduce(hw, *, message_bytes, gpus, topology=None) -> pd.DataFrame:
    """NCCL all-reduce of ``message_bytes`` per GPU over ``gpus`` GPUs (arrays broadcast), on the
    spec's interconnect ``topology`` (a name from ``interconnect.topologies``; None: the first).

    Returns one row per point: ``time_s`` (the caller's wait: one launch included),
    ``kernel_time_s`` (one rank's NCCL kernel, what a profiler measures), ``algorithm``
    (ring or tree), ``bus_bandwidth_Bps`` and ``bound`` (latency or bandwidth). Seconds, bytes.
    """
    from simulator.hardware.spec import load_hw

    hw = load_hw(hw)
    known = topologies(hw)
    if not known:
        raise SimulatorError(f"hw: {hw.id}'s spec has no interconnect.collective or interconnect.topologies, "
                             "so an all-reduce cannot be estimated on it")
    if topology is None:
        topology = next(iter(known))
    if topology not in known:
        raise SimulatorError(f"topology: {topology!r} is not an interconnect of {hw.id}; known: {', '.join(known)}")
    topo = known[topology]
    size = np.asarray(message_bytes, dtype=float)
    if size.size == 0 or np.any(~np.isfinite(size) | (size < 0)):
        bad = size[~np.isfinite(size) | (size < 0)].flat[0] if size.size else "nothing"
        raise SimulatorError(f"message_bytes: must be a finite number of bytes >= 0, got {bad}")
    count = np.asarray(gpus, dtype=float)
    wrong = ~np.isfinite(count) | (count < 1) | (count != np.floor(count)) | (count > topo.max_gpus)
    if count.size == 0 or np.any(wrong):
        bad = count[wrong].flat[0] if count.size else "nothing"
        raise SimulatorError(f"gpus: must be a whole number in 1..{topo.max_gpus} on {hw.id}'s {topology}, got {bad}")
    try:
        size, count = (a.reshape(-1) for a in np.broadcast_arrays(size, count))
    except ValueError:
        raise SimulatorError(f"message_bytes, gpus: shapes {np.shape(message_bytes)} and {np.shape(gpus)} "
                             "do not broadcast") from None
    kernel, bandwidth, ring = allreduce_kernel_time(topo, size, count)
    p = count
    launch = np.where(p > 1, hw.launch_overhead_s, 0.0)
    return pd.DataFrame({
        "message_bytes": size, "gpus": count, "topology": topology,
        "algorithm": np.where(p > 1, np.where(ring, "ring", "tree"), "none"),
        "bus_bandwidth_Bps": topo.one_way_Bps * topo.bus_efficiency,
        "kernel_time_s": kernel, "time_s": kernel + launch,
        "bound": pd.Categorical.from_codes(bandwidth.astype(np.int8), categories=list(BOUNDS)),
    })


def predict_trace_rows(hw, rows: pd.DataFrame, params: "dict | None" = None) -> np.ndarray:
    """Kernel seconds for all-reduce trace rows (validation's external model); NaN where the row's
    topology is not one of the spec's."""
    from simulator.hardware.spec import load_hw

    hw = load_hw(hw)
    rows = rows.reset_index(drop=True)
    out = np.full(len(rows), np.nan)
    if "topology" not in rows or "message_bytes" not in rows:
        return out
    known = topologies(hw, params)
    for name, sub in rows.groupby(rows["topology"].astype(str)):
        if name not in known:
            continue
        index = sub.index.to_numpy()
        gpus = pd.to_numeric(sub["gpus"], errors="coerce").to_numpy(float)
        kernel, _, _ = allreduce_kernel_time(known[name], pd.to_numeric(sub["message_bytes"]).to_numpy(float), gpus)
        out[index] = np.where(gpus <= known[name].max_gpus, kernel, np.nan)
    return out

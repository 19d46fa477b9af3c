"""simulator.estimate_allreduce: NCCL ring/tree per topology (hand-derived numbers, floors,
monotonicity, argument errors) and the Vidur all-reduce importer's topologies."""

import numpy as np
import pytest

import simulator
from simulator.core.errors import SimulatorError

A100 = "a100-sxm4-80gb"


def _defaults():
    return simulator.load_hw(A100, calibrated=False)


def test_ring_of_eight_by_hand():
    # A100 nvswitch defaults: 300 GB/s per direction x 0.82 = 246 GB/s bus; base 7 us; step 1 us; launch 4 us.
    # 64 MiB over 8 GPUs, ring: 7 + 2*7*1 = 21 us + 2*7/8 * 67,108,864 / 246e9 = 477.40 us -> 498.40 us;
    # tree: 7 + 2*3*1 = 13 us + 2 * 67,108,864 / (0.92 * 246e9) = 593.05 us -> 606 us: the ring runs.
    row = simulator.estimate_allreduce(_defaults(), message_bytes=64 * 2**20, gpus=8).iloc[0]
    assert row["kernel_time_s"] == pytest.approx(498.40e-6, rel=1e-4)
    assert row["time_s"] == pytest.approx(502.40e-6, rel=1e-4)
    assert row["algorithm"] == "ring" and row["bound"] == "bandwidth"


def test_small_message_takes_the_tree():
    # 2 KiB over 8: ring 21 us + 0.015 us; tree 13 us + 2*2048/(0.92*246e9) = 0.018 us -> 13.018 us
    row = simulator.estimate_allreduce(_defaults(), message_bytes=2048, gpus=8).iloc[0]
    assert row["algorithm"] == "tree" and row["bound"] == "latency"
    assert row["kernel_time_s"] == pytest.approx(13.018e-6, rel=1e-3)


def test_one_gpu_is_free():
    row = simulator.estimate_allreduce(A100, message_bytes=1e6, gpus=1).iloc[0]
    assert row["time_s"] == 0 and row["kernel_time_s"] == 0


def test_more_bytes_or_gpus_never_take_less_time_and_floors_hold():
    sizes = np.unique(np.geomspace(1, 2**31, 300).round())
    for topology, counts in (("nvswitch", (2, 4, 8)), ("infiniband", (2, 16, 64))):
        df = simulator.estimate_allreduce(A100, message_bytes=sizes[:, None], gpus=np.array(counts)[None, :],
                                          topology=topology)
        t = df["kernel_time_s"].to_numpy().reshape(len(sizes), len(counts))
        assert np.all(np.diff(t, axis=0) >= 0) and np.all(np.diff(t, axis=1) >= 0)
        bus = df["bus_bandwidth_Bps"].to_numpy()
        p = df["gpus"].to_numpy()
        floor = np.minimum(2 * (p - 1) / p, 2 / 0.92) * df["message_bytes"].to_numpy() / bus  # the faster algorithm's bytes
        assert np.all(df["kernel_time_s"].to_numpy() >= floor * (1 - 1e-12))
        assert (df["time_s"] > df["kernel_time_s"]).all()


@pytest.mark.parametrize("kwargs,name", [
    ({"topology": "ethernet"}, "topology"), ({"gpus": 9}, "gpus"), ({"gpus": 0}, "gpus"), ({"gpus": 2.5}, "gpus"),
    ({"message_bytes": -1}, "message_bytes"), ({"message_bytes": float("inf")}, "message_bytes"),
])
def test_bad_arguments_name_themselves(kwargs, name):
    args = dict(message_bytes=2**20, gpus=8)
    args.update(kwargs)
    with pytest.raises(SimulatorError, match=name) as err:
        simulator.estimate_allreduce(A100, **args)
    assert "\n" not in str(err.value)


def test_spec_without_collective_is_refused():
    with pytest.raises(SimulatorError, match="hw"):
        simulator.estimate_allreduce("epyc-zen4-vm-2vcpu", message_bytes=1, gpus=2)


def test_pcie_pairs_spec_names_both_interconnects():
    pair = simulator.estimate_allreduce("a100-pcie-80gb", message_bytes=64 * 2**20, gpus=2, topology="nvlink-pair")
    pcie = simulator.estimate_allreduce("a100-pcie-80gb", message_bytes=64 * 2**20, gpus=4, topology="pcie")
    assert pcie["kernel_time_s"].iloc[0] > 3 * pair["kernel_time_s"].iloc[0]  # PCIe hops are the slow ones
    with pytest.raises(SimulatorError, match="gpus"):
        simulator.estimate_allreduce("a100-pcie-80gb", message_bytes=1, gpus=4, topology="nvlink-pair")


def test_same_fabric_sibling_shares_the_fitted_allreduce():
    estimate_allreduce = simulator.estimate_allreduce
    # The H200 SXM sits on the H100 SXM's NVLink 4 NVSwitch baseboard (same 450 GB/s per direction,
    # 8 GPUs): with no traces of its own it takes the H100's fitted NCCL parameters, so the two price
    # every all-reduce alike; a small decode all-reduce is then latency-bound at the fitted base
    # (tens of us), not the ~2 us of a bare ring step.
    from simulator.kernels.collectives import topologies
    from simulator.hardware.spec import load_hw

    sizes = np.array([32768.0, 1 << 20, 64 << 20])
    h100 = estimate_allreduce("h100", message_bytes=sizes, gpus=2)
    h200 = estimate_allreduce("h200", message_bytes=sizes, gpus=2)
    assert np.allclose(h100.kernel_time_s, h200.kernel_time_s, rtol=1e-12)
    assert topologies(load_hw("h200"))["nvswitch"] == topologies(load_hw("h100"))["nvswitch"]
    assert h200.kernel_time_s.iloc[0] > 10e-6
    # B200 (NVLink 5: 900 GB/s per direction) has its own topology: a large message is faster than on H100
    b200 = estimate_allreduce("b200", message_bytes=sizes, gpus=8)
    assert b200.kernel_time_s.iloc[-1] < estimate_allreduce("h100", message_bytes=sizes, gpus=8).kernel_time_s.iloc[-1]


def test_the_calibration_note_names_the_inherited_allreduce_only_where_it_applies():
    from simulator.kernels.collectives import inherits_allreduce
    from simulator.hardware.spec import load_hw

    assert inherits_allreduce(load_hw("h200"))       # same NVSwitch topology as the fitted H100
    assert not inherits_allreduce(load_hw("h100"))   # its own fit; its sibling (H200) has none
    assert not inherits_allreduce(load_hw("b200"))   # no same-silicon sibling: its values are the spec's

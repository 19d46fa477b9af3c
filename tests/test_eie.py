"""EIE PE-array model, Deep Compression storage, baselines, and the `sparsim eie` command."""

import json
import re
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import assume, given
from hypothesis import strategies as st

from simulator.kernels.deep_compression import (
    compression_table,
    fillers_per_nonzero,
    index_entropy_bits,
    network_summary,
)
from simulator.kernels.eie import (
    PAPER_HEADLINE,
    comparison_table,
    entry_counts,
    headline_gains,
    load_eie,
    load_layers,
    queue_cycles,
    scaling_study,
    simulate_layer,
    simulate_layers,
    synthetic_matrix,
)
from simulator.core.errors import SimulatorError

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ["alex-6", "alex-7", "alex-8", "vgg-6", "vgg-7", "vgg-8", "nt-we", "nt-wd", "nt-lstm"]


@pytest.fixture(scope="module")
def nine():
    return simulate_layers().set_index("layer")


@pytest.fixture(scope="module")
def comparison():
    return comparison_table()


def _spec(pes=4, depth=8, accumulators=64, min_cycles=1):
    spec = load_eie("eie-64pe", pes=pes, queue_depth=depth, accumulators_per_pe=accumulators)
    return spec.model_copy(update={"pipeline": spec.pipeline.model_copy(update={"min_cycles_per_column": min_cycles})})


# ---- a slow, independent reference: walk every slice, then simulate cycle by cycle ---------------

def reference_entries(W, pes, accumulators, bits=4):
    """Entries per (PE, batch, column) by walking each slice and applying [EIE] §III-B literally:
    a non-zero after more than 15 zeros needs a filler zero (the 16th zero becomes an entry)."""
    rows, cols = W.shape
    local_rows = -(-rows // pes)
    batches = -(-local_rows // accumulators)
    E = np.zeros((pes, batches, cols), dtype=int)
    for p in range(pes):
        for b in range(batches):
            for c in range(cols):
                count = pending = run = 0
                for local in range(b * accumulators, min((b + 1) * accumulators, local_rows)):
                    r = p + local * pes
                    if r >= rows:
                        break
                    if W[r, c] != 0:
                        count += pending + 1
                        pending = run = 0
                    else:
                        run += 1
                        if run == 2 ** bits:  # this zero is stored as a filler (if a non-zero follows)
                            pending += 1
                            run = 0
                E[p, b, c] = count
    return E


def reference_cycles(jobs, depth):
    """Cycle-by-cycle: at most one broadcast per cycle, only when every queue has room; each PE
    works one cycle on its head; zero-work activations leave the queue as soon as they reach it."""
    pes = len(jobs[0]) if jobs else 0
    queues = [deque() for _ in range(pes)]
    t = nxt = 0
    while nxt < len(jobs) or any(queues):
        if nxt < len(jobs) and all(len(q) < depth for q in queues):
            for p in range(pes):
                queues[p].append(jobs[nxt][p])
            nxt += 1
        for q in queues:
            while q and q[0] == 0:
                q.popleft()
            if q:
                q[0] -= 1
                if q[0] == 0:
                    q.popleft()
                    while q and q[0] == 0:
                        q.popleft()
        t += 1
    return t


def reference_simulation(W, a, pes, depth, accumulators, min_cycles, stages=4):
    E = reference_entries(W, pes, accumulators)
    active = [c for c in range(W.shape[1]) if a[c] != 0]
    jobs = [[max(int(E[p, b, c]), min_cycles) for p in range(pes)]
            for b in range(E.shape[1]) for c in active]
    busy = reference_cycles(jobs, depth)
    return E, busy + (stages - 1 if busy else 0), sum(int(E[p, b, c]) for p in range(pes)
                                                    for b in range(E.shape[1]) for c in active)


# ---- specs and data files ----------------------------------------------------------------------

def test_spec_loads_with_the_papers_parameters():
    spec = load_eie()
    assert spec.kind == "pe-array" and spec.pes == 64 and spec.clock_hz == 800e6
    assert spec.spmat_bytes_per_pe == 128 * 1024  # "131K" 8-bit entries
    assert spec.encoding.entry_bits == 8 and spec.entries_per_spmat_read == 8
    assert spec.pipeline.activation_queue_depth == 8
    assert spec.projection_28nm_256pe.pes == 256


def test_event_energies_derived_from_table_ii():
    # Table II at 800 MHz: SpmatRead 4.955 mW -> 4.955e-3 / 800e6 = 6.19 pJ per cycle; one 64-bit read
    # per 8 cycles at the operating point -> 49.55 pJ per read. Pointers 1.807 mW -> 18.07 pJ per
    # pair read; arithmetic 1.162 mW -> 1.4525 pJ per entry; act R/W 1.4025 pJ; queue 1.12 pJ.
    e = load_eie().event_energies_J
    assert e["spmat_read"] == pytest.approx(49.55e-12)
    assert e["pointer_read"] == pytest.approx(18.07e-12)
    assert e["arithmetic"] == pytest.approx(1.4525e-12)
    assert e["activation_rw"] == pytest.approx(1.4025e-12)
    assert e["queue_op"] == pytest.approx(1.12e-12)
    assert e["idle_pe_cycle"] == pytest.approx(1.874e-3 / 800e6)
    # A PE busy at the operating point (8 entries per column) burns Table II's 9.157 mW.
    per_8_cycles = e["spmat_read"] + 8 * (e["arithmetic"] + e["activation_rw"]) + e["pointer_read"] + e["queue_op"]
    assert per_8_cycles / 8 * 800e6 == pytest.approx(9.157e-3, rel=1e-3)


def test_lnzd_quadtree_units():
    assert load_eie(pes=64).lnzd_units() == 16 + 4 + 1  # [EIE] §VI: 21 units for 64 PEs
    assert load_eie(pes=256).lnzd_units() == 64 + 16 + 4 + 1
    assert load_eie(pes=1).lnzd_units() == 1


def test_gpu_cpu_loader_points_to_sparsim_eie():
    from simulator.hardware.spec import list_hw, load_hw

    with pytest.raises(SimulatorError, match="sparsim eie"):
        load_hw("eie-64pe")
    assert "eie-64pe" not in [s.id for s in list_hw()]


def test_spec_typo_is_an_error_naming_the_field(tmp_path):
    text = (ROOT / "hwspecs" / "eie-64pe.yaml").read_text()
    bad = tmp_path / "eie-typo.yaml"
    bad.write_text(text.replace("  activation_queue_depth: 8", "  activation_queue_dept: 8"))
    with pytest.raises(SimulatorError, match=r"pipeline\.activation_queue_dept: unrecognized key.*activation_queue_depth"):
        load_eie(str(bad))
    bad.write_text(text.replace("per_pe_total_mW: 9.157", "per_pe_total_mW: 19.157"))
    with pytest.raises(SimulatorError, match="module powers add up"):
        load_eie(str(bad))
    bad.write_text(text.replace('source: "[EIE] §VI: \'Using 64', 'source: "[NOPE] §VI: \'Using 64'))
    with pytest.raises(SimulatorError, match=r"\[NOPE\]"):
        load_eie(str(bad))


def test_nine_layers_with_sizes_in_the_papers_order():
    layers = load_layers()
    assert list(layers) == LAYERS
    # Table III prints input x output: AlexNet fc6 maps 9216 inputs to 4096 outputs (W is 4096 x 9216).
    assert (layers["alex-6"].rows, layers["alex-6"].cols) == (4096, 9216)
    assert (layers["nt-wd"].rows, layers["nt-wd"].cols) == (8791, 600)
    assert (layers["nt-we"].rows, layers["nt-we"].cols) == (600, 4096)  # "it has only 600 rows"


# ---- hand-derived counts ---------------------------------------------------------------------

def test_fillers_of_the_papers_example_column():
    # [EIE] §III-B: [0,0,1,2, 18 zeros, 3] encodes as v = [1,2,0,3], z = [2,0,15,2]: 3 non-zeros + 1 filler.
    column = np.array([0, 0, 1, 2] + [0] * 18 + [3], dtype=float)[:, None]
    rows, cols = np.nonzero(column)
    entries, nonzeros = entry_counts(rows, cols, 23, 1, pes=1, accumulators_per_pe=64, relative_index_bits=4)
    assert entries[0, 0, 0] == 4 and nonzeros[0, 0, 0] == 3
    # On 2 PEs the slices are half as long: PE 0 holds rows 2 and 22 (local 1 and 11, gap 9), PE 1
    # holds row 3 (local 1): no filler at all - more PEs, fewer fillers ([EIE] Fig. 12).
    entries, _ = entry_counts(rows, cols, 23, 1, pes=2, accumulators_per_pe=64, relative_index_bits=4)
    assert entries[:, 0, 0].tolist() == [2, 1]


def test_tiny_matrix_cycles_counted_by_hand():
    # W 4x3 on 2 PEs (PE 0: rows 0, 2; PE 1: rows 1, 3), every activation non-zero:
    #   column 0: rows 0, 2       -> PE 0 does 2 entries, PE 1 none (1 cycle: its pointer read)
    #   column 1: rows 1, 3       -> PE 0 1 cycle, PE 1 2 entries
    #   column 2: all four rows   -> 2 and 2
    # Deep queues: broadcasts at cycles 0, 1, 2. PE 0 works [0,2) [2,3) [3,5); PE 1 [0,1) [1,3) [3,5):
    # 5 cycles, + 3 to drain the 4-stage pipeline = 8. Ideal: 8 entries / 2 PEs = 4 -> balance 50%.
    W = np.array([[1, 0, 1], [0, 1, 1], [1, 0, 1], [0, 1, 1]])
    r = simulate_layer(_spec(pes=2, depth=8), W, activations=np.ones(3))
    assert (r["cycles"], r["cycles_ideal"], r["load_balance"]) == (8, 4.0, 0.5)
    # Queue depth 1: a broadcast waits until every PE finished the previous activation:
    # b = 0 (done at 2, 1), b = 2 (done at 3, 4), b = 4 (done at 6, 6): 6 + 3 = 9 cycles.
    assert simulate_layer(_spec(pes=2, depth=1), W, activations=np.ones(3))["cycles"] == 9
    # Zero activations are skipped: only column 2 -> 2 cycles + 3.
    assert simulate_layer(_spec(pes=2, depth=8), W, activations=np.array([0, 0, 5]))["cycles"] == 5


def test_alex6_fits_on_chip_at_64_pes(nine):
    # Pointers: one 16-bit pointer per column + 1: (9216 + 1) x 2 B = 18,434 B <= 32 KiB.
    # SpMat: a PE's slice of a column is 64 rows at density 0.09 -> 5.76 non-zeros; fillers: a
    # non-zero at local row i >= 16k follows >= 16k zeros with probability q^k, q = 0.91^16 = 0.2211,
    # so per slice d x 16 (3q + 2q^2 + q^3) = 1.111 fillers. Per PE: 9216 x 6.87 = 63.3k entries,
    # i.e. 61.8 KiB of the 128 KiB SpMat SRAM (the worst PE a little more).
    r = nine.loc["alex-6"]
    q = 0.91 ** 16
    expected_entries_per_pe = 9216 * 64 * 0.09 + 9216 * 0.09 * 16 * (3 * q + 2 * q ** 2 + q ** 3)
    assert r["pointer_bytes_per_pe"] == 18434
    assert r["entries"] / 64 == pytest.approx(expected_entries_per_pe, rel=0.02)
    assert r["spmat_bytes_per_pe"] < 128 * 1024 and r["fits_on_chip"]


def test_vgg6_pointer_sram_overflows_and_no_spill_is_an_error(nine):
    # 25,088 columns need (25,088 + 1) x 2 B = 50,178 B of pointers per PE > 32 KiB, at any PE count.
    r = nine.loc["vgg-6"]
    assert r["pointer_bytes_per_pe"] == 50178 and not r["pointer_fits"] and not r["fits_on_chip"]
    assert r["sram_shortfall_bytes"] >= 50178 - 32768
    with pytest.raises(SimulatorError, match="vgg-6 does not fit on chip at 64 PEs.*pointer SRAM"):
        simulate_layer("eie-64pe", "vgg-6", allow_spill=False)


def test_nt_wd_runs_in_three_output_batches(nine):
    # 8791 outputs / 64 PEs = 138 rows per PE > 64 accumulators -> 3 batches, each re-broadcasting a.
    r = nine.loc["nt-wd"]
    assert r["output_batches"] == 3 and r["broadcasts"] == 3 * 600


# ---- the nine layers ---------------------------------------------------------------------------

def test_nine_layers_run(nine):
    assert list(nine.index) == LAYERS
    for col in ("cycles", "cycles_ideal", "time_s", "time_s_ideal", "energy_j"):
        assert (nine[col] > 0).all() and np.isfinite(nine[col]).all(), col
    assert (nine["cycles"] >= nine["cycles_ideal"]).all()
    assert ((nine["load_balance"] > 0) & (nine["load_balance"] <= 1)).all()
    # NT-We has only 600 rows: ~1 entry per PE per column, the worst balance ([EIE] §VI-C).
    assert nine["load_balance"].idxmin() == "nt-we"


def test_nine_layers_against_table_iv(nine):
    """Validation: nothing was fitted to Table IV, and it must stay close to it."""
    error = nine["time_s"] / nine["paper_time_s"] - 1.0
    ideal_error = nine["time_s_ideal"] / nine["paper_time_s_theoretical"] - 1.0
    assert error.abs().max() < 0.30, error.to_dict()        # worst: VGG-6 (-28%)
    assert error.abs().median() < 0.10, error.to_dict()
    assert ideal_error.abs().median() < 0.10, ideal_error.to_dict()


def test_alexnet_fc_frames_per_second(nine):
    # Abstract: FC layers of AlexNet at 1.88e4 frames/s (fc6 + fc7 + fc8 = 53.2 us with Table V's time).
    fps = 1.0 / nine.loc[["alex-6", "alex-7", "alex-8"], "time_s"].sum()
    assert fps == pytest.approx(1.88e4, rel=0.15)


def test_256_pe_projection_runs_faster():
    base = simulate_layer("eie-64pe", "alex-7")
    big = simulate_layer(load_eie(pes=256, clock_mhz=1200), "alex-7")
    assert big["pes"] == 256 and big["time_s"] < base["time_s"] / 3


def test_given_sparse_matrix_and_activations():
    W = synthetic_matrix(300, 200, 0.1, seed=3)
    a = np.random.default_rng(0).random(200) * (np.random.default_rng(1).random(200) < 0.4)
    r_sparse = simulate_layer("eie-64pe", W, activations=a)
    r_dense = simulate_layer("eie-64pe", W.toarray(), activations=sp.csr_matrix(a))
    assert r_sparse["cycles"] == r_dense["cycles"] and r_sparse["energy_j"] == r_dense["energy_j"]
    assert r_sparse["active_columns"] == int(np.count_nonzero(a))


def test_synthetic_matrix_density_and_seed():
    W = synthetic_matrix(4096, 1000, 0.25, seed=7)
    assert W.nnz / (4096 * 1000) == pytest.approx(0.25, rel=0.01)
    assert (synthetic_matrix(4096, 1000, 0.25, seed=7) != W).nnz == 0
    assert synthetic_matrix(64, 64, 1.0).nnz == 64 * 64


def test_scaling_study_speedup_and_balance():
    df = scaling_study("alex-7", pes=[1, 4, 16, 64, 256])
    assert df["speedup"].iloc[0] == 1.0 and df["speedup"].is_monotonic_increasing
    assert df["speedup"].iloc[3] > 50  # near-linear to 64 PEs ([EIE] Fig. 11)
    assert ((df["load_balance"] > 0) & (df["load_balance"] <= 1)).all()


def test_big_layer_is_fast():
    # A 25088 x 4096 layer (VGG-6, 4.1M non-zeros) well under a second once the matrix exists;
    # the bound here is loose so that a loaded CI machine does not fail it.
    simulate_layer("eie-64pe", "vgg-6")
    start = time.perf_counter()
    simulate_layer("eie-64pe", "vgg-6", seed=0)
    assert time.perf_counter() - start < 1.0


# ---- vectorized == reference ---------------------------------------------------------------------

@given(rows=st.integers(1, 90), cols=st.integers(1, 10), density=st.floats(0.02, 1.0),
       act=st.floats(0.1, 1.0), pes=st.integers(1, 6), depth=st.integers(1, 4),
       accumulators=st.sampled_from([1, 2, 3, 5, 8, 64]), min_cycles=st.sampled_from([0, 1]),
       seed=st.integers(0, 10_000))
def test_vectorized_equals_slow_reference(rows, cols, density, act, pes, depth, accumulators, min_cycles, seed):
    rng = np.random.default_rng(seed)
    W = (rng.random((rows, cols)) < density) * rng.integers(1, 16, (rows, cols))
    a = (rng.random(cols) < act).astype(float)
    spec = _spec(pes=pes, depth=depth, accumulators=accumulators, min_cycles=min_cycles)
    E_ref, cycles_ref, entries_ref = reference_simulation(W, a, pes, depth, accumulators, min_cycles)
    rr, cc = np.nonzero(W.T)[::-1]
    order = np.lexsort((rr, cc))
    E, _ = entry_counts(rr[order], cc[order], rows, cols, pes, accumulators, 4)
    assert np.array_equal(E, E_ref)
    r = simulate_layer(spec, W, activations=a)
    assert r["cycles"] == cycles_ref
    assert r["entries_processed"] == entries_ref


@given(pes=st.integers(1, 3), depth=st.integers(1, 3), seed=st.integers(0, 1000))
def test_fillers_match_reference_on_tall_sparse_matrices(pes, depth, seed):
    rng = np.random.default_rng(seed)
    W = (rng.random((200, 4)) < 0.03).astype(float)  # long zero runs: many fillers
    a = np.ones(4)
    E_ref, cycles_ref, _ = reference_simulation(W, a, pes, depth, 64, 1)
    r = simulate_layer(_spec(pes=pes, depth=depth), W, activations=a)
    assert r["entries"] == E_ref.sum() and r["cycles"] == cycles_ref


def test_queue_recurrence_equals_cycle_loop_on_random_service_times():
    rng = np.random.default_rng(5)
    for depth in (1, 2, 3, 8):
        s = rng.integers(0, 6, size=(57, 5))
        assert queue_cycles(s, depth)[0] == reference_cycles(s.tolist(), depth)


# ---- invariants (hypothesis) -----------------------------------------------------------------------

matrices = st.builds(lambda rows, cols, seed: (rows, cols, seed), st.integers(8, 120), st.integers(4, 40),
                     st.integers(0, 10_000))


def _random(rows, cols, seed):
    return np.random.default_rng(seed).random((rows, cols))


@given(m=matrices, density=st.floats(0.02, 1.0), pes=st.lists(st.integers(1, 70), min_size=2, max_size=2, unique=True))
def test_more_pes_never_increase_ideal_cycles(m, density, pes):
    U = _random(*m)
    W = (U < density).astype(float)
    assume(W.any())
    low, high = sorted(pes)
    a = np.ones(m[1])
    r_low = simulate_layer(load_eie(pes=low), W, activations=a)
    r_high = simulate_layer(load_eie(pes=high), W, activations=a)
    assert r_high["cycles_ideal"] <= r_low["cycles_ideal"] + 1e-9


@given(m=matrices, density=st.floats(0.01, 1.0), act=st.floats(0.01, 1.0), pes=st.integers(1, 300),
       depth=st.integers(1, 16))
def test_load_balance_in_unit_interval(m, density, act, pes, depth):
    W = (_random(*m) < density).astype(float)
    r = simulate_layer(load_eie(pes=pes, queue_depth=depth), W, activation_density=act)
    assume(r["entries_processed"] > 0)
    assert 0.0 < r["load_balance"] <= 1.0
    assert r["cycles"] >= r["cycles_ideal"] and r["energy_j"] > 0


@given(m=matrices, clocks=st.lists(st.floats(1.0, 5000.0), min_size=2, max_size=2, unique=True))
def test_higher_clock_less_time(m, clocks):
    W = (_random(*m) < 0.2).astype(float)
    assume(W.any())
    slow, fast = sorted(clocks)
    assume(fast > slow * (1 + 1e-9))
    r_slow = simulate_layer(load_eie(clock_mhz=slow), W)
    r_fast = simulate_layer(load_eie(clock_mhz=fast), W)
    assert r_fast["time_s"] < r_slow["time_s"] and r_fast["cycles"] == r_slow["cycles"]


@given(m=matrices, densities=st.lists(st.floats(0.01, 1.0), min_size=2, max_size=2), pes=st.integers(1, 16),
       act=st.floats(0.05, 1.0))
def test_more_weight_density_more_cycles_and_energy(m, densities, pes, act):
    # Nested masks (U < d): the denser W keeps every non-zero of the sparser one.
    U = _random(*m)
    low, high = sorted(densities)
    spec = load_eie(pes=pes)
    r_low = simulate_layer(spec, (U < low).astype(float), activation_density=act)
    r_high = simulate_layer(spec, (U < high).astype(float), activation_density=act)
    assert r_high["cycles"] >= r_low["cycles"]
    assert r_high["energy_j"] >= r_low["energy_j"] * (1 - 1e-12)


@given(m=matrices, acts=st.lists(st.floats(0.01, 1.0), min_size=2, max_size=2), pes=st.integers(1, 16),
       depth=st.integers(1, 8), seed=st.integers(0, 100))
def test_more_activation_density_more_cycles(m, acts, pes, depth, seed):
    # The synthetic a keeps a prefix of one permutation: a denser a has every column of a sparser one.
    W = (_random(*m) < 0.3).astype(float)
    low, high = sorted(acts)
    spec = load_eie(pes=pes, queue_depth=depth)
    assert (simulate_layer(spec, W, activation_density=high, seed=seed)["cycles"]
            >= simulate_layer(spec, W, activation_density=low, seed=seed)["cycles"])


def test_named_layer_density_overrides_move_the_right_way():
    base = simulate_layer("eie-64pe", "alex-7")
    denser_w = simulate_layer("eie-64pe", "alex-7", weight_density=0.2)
    denser_a = simulate_layer("eie-64pe", "alex-7", activation_density=0.7)
    assert denser_w["cycles"] > base["cycles"] and denser_w["energy_j"] > base["energy_j"]
    assert denser_a["cycles"] > base["cycles"]


# ---- invalid input -------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: load_eie(pes=0), "pes: must be a whole number between 1 and 65535, got 0"),
    (lambda: load_eie(clock_mhz=-5), "clock_mhz: must be a positive number"),
    (lambda: simulate_layer("eie-64pe", "alex-7", weight_density=1.5), r"weight_density: must lie in \(0, 1\]"),
    (lambda: simulate_layer("eie-64pe", "alex-7", weight_density=0), r"weight_density: must lie in \(0, 1\]"),
    (lambda: simulate_layer("eie-64pe", "alex-7", activation_density=-0.1), "activation_density"),
    (lambda: simulate_layer("eie-64pe", "alex-9"), "unknown EIE layer 'alex-9'; known: alex-6, alex-7"),
    (lambda: simulate_layer("eie-64pe", np.ones((4, 3)), activations=np.ones(5)), "need 3 values"),
    (lambda: simulate_layer("eie-64pe", np.ones(4)), "must be a non-empty 2-D array"),
    (lambda: simulate_layer("eie-64pe", np.full((2, 2), np.nan)), "NaN"),
    (lambda: load_eie("eie-128pe"), "unknown PE-array spec 'eie-128pe'; known: eie-64pe"),
])
def test_invalid_input_is_one_clear_error(call, message):
    with pytest.raises(SimulatorError, match=message) as err:
        call()
    assert "\n" not in str(err.value)


# ---- baselines and the comparison ------------------------------------------------------------------

def test_baselines_use_estimate_gemm_with_eies_size_convention(comparison):
    from simulator.kernels.gemm import estimate_gemm

    row = comparison[(comparison["layer"] == "alex-6") & (comparison["platform"] == "gpu")
                     & (comparison["model"] == "dense")].iloc[0]
    # b = W a, W 4096 x 9216 -> y = x.W^T with N = 4096 outputs, K = 9216 inputs, M = 1.
    expected = estimate_gemm("titan-x-maxwell", 1, 4096, 9216, "fp32", "dense").iloc[0]
    assert row["time_s"] == expected["time_s"] and row["energy_j"] == pytest.approx(expected["time_s"] * 159)
    sparse = comparison[(comparison["layer"] == "alex-6") & (comparison["platform"] == "cpu")
                        & (comparison["model"] == "sparse")].iloc[0]
    assert sparse["kernel"] == "csr-spmm" and sparse["sparsity"] == "unstructured:0.91:csr"


def test_eie_beats_every_2016_baseline_on_every_layer(comparison):
    old = comparison[comparison["platform"].isin(["cpu", "gpu", "mgpu"])]
    assert (old["speedup"] > 1).all() and (old["energy_gain"] > 100).all()


def test_headline_gains_from_the_models(comparison):
    gains = headline_gains(comparison).set_index(["platform", "model"])
    # The GPU (Titan X) dense baseline is where our roofline and the paper's measurement agree:
    # [EIE] reports 13x (abstract; Fig. 6 geomean), we must land within 25%.
    assert gains.loc[("gpu", "dense"), "speedup"] == pytest.approx(PAPER_HEADLINE[("gpu", "dense")][0], rel=0.25)
    assert gains.loc[("mgpu", "dense"), "speedup"] == pytest.approx(PAPER_HEADLINE[("mgpu", "dense")][0], rel=0.25)
    # Table IV itself reproduces the paper's headline numbers (a check of our data entry):
    assert gains.loc[("cpu", "dense"), "paper_speedup"] == pytest.approx(189, rel=0.05)
    assert gains.loc[("cpu", "dense"), "paper_energy_gain"] == pytest.approx(24000, rel=0.05)
    assert gains.loc[("gpu", "dense"), "paper_energy_gain"] == pytest.approx(3400, rel=0.06)
    # Ordering the course shows: CPU-dense gain > GPU-dense gain; energy gains in the thousands.
    assert gains.loc[("cpu", "dense"), "speedup"] > gains.loc[("gpu", "dense"), "speedup"]
    assert gains.loc[("cpu", "dense"), "energy_gain"] > 1000


def test_modern_gpus_take_the_faster_sparse_kernel(comparison):
    modern = comparison[comparison["platform"].isin(["a100", "h100"]) & (comparison["model"] == "sparse")]
    assert set(modern["kernel"]) <= {"bitmap-tc", "csr-spmm"}
    assert modern["power_basis"].eq("tdp").all()


# ---- Deep Compression --------------------------------------------------------------------------

def test_filler_and_entropy_models_by_hand():
    # d = 0.09, 4-bit index: q = 0.91^16 = 0.22113, fillers per non-zero q / (1 - q) = 0.2839.
    assert fillers_per_nonzero(0.09, 4) == pytest.approx(0.91 ** 16 / (1 - 0.91 ** 16))
    # d = 0.5, 1-bit index: p(z=0) = 0.5, p(z=1) = 0.5 x 0.5 + q (q = 0.25) = 0.5 -> exactly 1 bit.
    assert index_entropy_bits(0.5, 1) == pytest.approx(1.0)
    assert index_entropy_bits(1.0, 4) == pytest.approx(0.0)


def test_deep_compression_totals():
    s = network_summary().set_index("network")
    # Dense fp32 bytes of the weights: 60,954,656 x 4 and 138,344,128 x 4 ("240 MB", "552 MB").
    assert s.loc["alexnet", "bytes_dense"] == 60_954_656 * 4
    assert s.loc["vgg-16", "bytes_dense"] == 138_344_128 * 4
    assert s.loc["alexnet", "ratio_pqh"] == pytest.approx(35, rel=0.10)   # model 32.9x
    assert s.loc["vgg-16", "ratio_pqh"] == pytest.approx(49, rel=0.10)    # model 49.8x
    assert s.loc["alexnet", "ratio_pq"] == pytest.approx(27, rel=0.10)
    assert s.loc["vgg-16", "ratio_pq"] == pytest.approx(31, rel=0.10)
    assert s.loc["alexnet", "weight_density"] == pytest.approx(0.11, abs=0.01)  # "11% (9x)"
    for net in ("alexnet", "vgg-16"):
        t = compression_table(net)
        assert (t["bytes_pqh"] < t["bytes_pq"]).all() and (t["bytes_pq"] < t["bytes_pruned"]).all()
        assert (t["bytes_pqh"] / t["bytes_dense"] * 100 / t["reported_percent_pqh"] - 1).abs().max() < 0.25


def test_deep_compression_rejects_unknown_network():
    with pytest.raises(SimulatorError, match="unknown network 'resnet'; known: alexnet, vgg-16"):
        compression_table("resnet")


# ---- the command -------------------------------------------------------------------------------

def run_eie(capsys, *argv):
    from simulator.cli import _Parser
    from simulator.cli.eie import add_parser

    parser = _Parser(prog="sparsim")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)
    add_parser(sub)
    try:
        args = parser.parse_args(["eie", *argv])
        code = args.func(args)
    except SimulatorError as err:  # what simulator.cli.main does
        print(f"sparsim: error: {err}", file=sys.stderr)
        code = 2
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_layer_json(capsys):
    code, out, err = run_eie(capsys, "--layer", "alex-6", "--pes", "64", "--json")
    record = json.loads(out)
    assert code == 0 and err == ""
    for key in ("cycles", "time_s", "time_s_ideal", "load_balance", "energy_j", "fits_on_chip"):
        assert key in record
    assert record["pes"] == 64 and record["fits_on_chip"] is True


def test_cli_layer_text_and_table(capsys):
    code, out, _ = run_eie(capsys, "--layer", "vgg-6", "--clock-mhz", "1000", "--seed", "2")
    assert code == 0 and "DOES NOT FIT" in out and "load balance" in out and "Table IV" in out
    code, out, _ = run_eie(capsys)
    assert code == 0 and all(layer in out for layer in LAYERS)


def test_cli_density_overrides(capsys):
    _, out_a, _ = run_eie(capsys, "--layer", "alex-7", "--json")
    _, out_b, _ = run_eie(capsys, "--layer", "alex-7", "--weight-density", "0.2", "--act-density", "0.5", "--json")
    a, b = json.loads(out_a), json.loads(out_b)
    assert b["weight_density"] == pytest.approx(0.2, rel=0.02) and b["cycles"] > a["cycles"]


def test_cli_scaling(capsys):
    code, out, _ = run_eie(capsys, "--scaling", "--layer", "alex-7", "--scaling-pes", "1,4,16,64", "--json")
    records = json.loads(out)
    assert code == 0 and [r["pes"] for r in records] == [1, 4, 16, 64]
    assert records[-1]["speedup"] > 50
    code, out, _ = run_eie(capsys, "--scaling", "--layer", "nt-we", "--scaling-pes", "1:256:x4")
    assert code == 0 and "speed-up" in out and "256" in out


def test_cli_compare(capsys, tmp_path):
    chart = tmp_path / "eie.png"
    code, out, _ = run_eie(capsys, "--compare", "--out", str(chart))
    assert code == 0 and chart.stat().st_size > 10_000
    assert "geometric mean" in out and "189x" in out and "H100" in out
    code, out, _ = run_eie(capsys, "--compare", "--json")
    data = json.loads(out)
    assert {"layers", "headline"} <= set(data) and len(data["layers"]) == 9 * 5 * 2


def test_cli_compression(capsys):
    code, out, _ = run_eie(capsys, "--compression")
    assert code == 0 and "alexnet" in out and "35x" in out


def test_cli_matrix_file(capsys, tmp_path):
    path = tmp_path / "w.npz"
    sp.save_npz(path, synthetic_matrix(500, 300, 0.1, seed=1))
    code, out, _ = run_eie(capsys, "--matrix", str(path), "--act-density", "0.5", "--json")
    assert code == 0 and json.loads(out)["rows"] == 500


@pytest.mark.parametrize("argv, message", [
    (["--layer", "alex-6", "--pes", "0"], "pes: must be a whole number between 1 and 65535, got 0"),
    (["--layer", "alex-6", "--weight-density", "1.5"], r"weight_density: must lie in \(0, 1\].*got 1.5"),
    (["--layer", "alex-6", "--act-density", "0"], "activation_density: must lie in"),
    (["--layer", "resnet-1"], "unknown EIE layer 'resnet-1'; known: alex-6, alex-7, alex-8, vgg-6"),
    (["--layer", "vgg-6", "--no-spill"], "does not fit on chip"),
    (["--layer", "alex-6", "--pes", "many"], "invalid int value"),
    (["--scaling-pes", "1,2"], "--scaling-pes goes with --scaling"),
    (["--matrix", "/nonexistent/w.npz"], "does not exist"),
    (["--compare", "--scaling"], "not allowed with argument"),
])
def test_cli_errors_are_one_line_exit_2(capsys, argv, message):
    code, out, err = run_eie(capsys, *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("sparsim: error:")
    assert re.search(message, err), err


# ---- docs and import weight ---------------------------------------------------------------------

def test_docs_quote_the_current_nine_layer_numbers(nine):
    doc = (ROOT / "docs" / "eie.md").read_text()
    for layer, r in nine.iterrows():
        row = next((line for line in doc.splitlines() if line.startswith(f"| {layer} ")), None)
        assert row is not None, layer
        assert f"{r['time_s'] * 1e6:.1f}" in row and f"{r['cycles']:,}" in row, (layer, row)


def test_eie_import_stays_light():
    code = ("import sys, simulator.kernels.eie, simulator.kernels.deep_compression, simulator.cli.eie; "
            "print('matplotlib' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"

"""Every shipped spec loads and validates; malformed specs fail with one line naming file and field."""

import pytest
from _util import swap

from simulator.core.errors import SimulatorError
from simulator.hardware.spec import hwspecs_dir, list_hw, load_hw

EXPECTED_IDS = {
    "a100-sxm4-40gb", "a100-sxm4-80gb", "a100-pcie-80gb", "h100-sxm5-80gb", "h100-pcie-80gb",
    "h200-sxm-141gb", "b200-sxm-180gb", "rtx-4090", "l40s", "i7-5930k", "titan-x-maxwell", "tegra-k1",
}


def test_every_issue_device_is_shipped_and_valid():
    ids = {spec.id for spec in list_hw()}
    assert EXPECTED_IDS <= ids


@pytest.mark.parametrize("alias, device", [
    ("a100", "a100-sxm4-80gb"), ("h100", "h100-sxm5-80gb"), ("h200", "h200-sxm-141gb"),
    ("b200", "b200-sxm-180gb"), ("H100", "h100-sxm5-80gb"),
])
def test_aliases_resolve(alias, device):
    assert load_hw(alias).id == device


def test_aliases_are_unique():
    seen = {}
    for spec in list_hw():
        for name in [spec.id, *spec.aliases]:
            assert name not in seen, f"{name} names both {seen[name]} and {spec.id}"
            seen[name] = spec.id


def test_si_conversion_h100():
    h100 = load_hw("h100")
    assert h100.memory_bandwidth_bytes_per_s == pytest.approx(3.352e12)
    assert h100.l2_size_bytes == 50 * 2**20  # deviceQuery: 52,428,800 B
    assert h100.matrix_peak_flop_per_s("bf16") == pytest.approx(989.4e12)
    assert h100.matrix_peak_flop_per_s("bf16", sparse=True) == pytest.approx(1978.9e12)
    assert h100.matrix_peak_flop_per_s("int4") is None  # Hopper lists no INT4 tensor rate


@pytest.mark.parametrize("device, flop_per_clk_per_sm", [
    # A100: 4 tensor cores x 256 FP16 FMA/clk x 2 FLOP = 2048 FLOP/clk/SM; 108 x 2048 x 1.41 GHz = 312 TF
    ("a100-sxm4-80gb", 2048),
    # H100 SXM: 4096 FLOP/clk/SM at the 1830 MHz tensor clock; 132 x 4096 x 1.83 GHz = 989.4 TF
    ("h100-sxm5-80gb", 4096),
])
def test_dense_fp16_peak_matches_sm_arithmetic(device, flop_per_clk_per_sm):
    spec = load_hw(device)
    derived = spec.units * flop_per_clk_per_sm * spec.clock_hz
    assert spec.matrix_peak_flop_per_s("fp16") == pytest.approx(derived, rel=0.005)


def test_sparse_peaks_are_twice_dense_where_listed():
    for spec in list_hw():
        if spec.matrix is None:
            continue
        for dtype, peak in spec.matrix.peaks.items():
            if peak.sparse_TFLOPS is not None:
                assert peak.sparse_TFLOPS == pytest.approx(2 * peak.dense_TFLOPS, rel=0.01), (spec.id, dtype)


def _write(tmp_path, text, name="my-gpu.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _load_error(tmp_path, text) -> str:
    with pytest.raises(SimulatorError) as info:
        load_hw(str(_write(tmp_path, text)))
    message = str(info.value)
    assert "\n" not in message
    return message


def test_user_spec_file_loads(tmp_path, spec_text):
    spec = load_hw(str(_write(tmp_path, spec_text)))
    assert spec.id == "h100-sxm5-80gb"


def test_negative_bandwidth_names_file_and_field(tmp_path, spec_text):
    message = _load_error(tmp_path, swap(spec_text, "bandwidth_GBps: 3352", "bandwidth_GBps: -5"))
    assert "my-gpu.yaml" in message and "memory.bandwidth_GBps" in message and "-5" in message


def test_sparse_peak_for_unsupported_dtype_is_rejected(tmp_path, spec_text):
    text = swap(spec_text, "fp64: {dense_TFLOPS: 66.9}",
                             'fp64: {dense_TFLOPS: 66.9, sparse_TFLOPS: 133.8, sparse_pattern: "2:4"}')
    message = _load_error(tmp_path, text)
    assert "matrix.peaks.fp64.sparse_TFLOPS" in message and "hopper" in message


@pytest.mark.parametrize("old, new, expect", [
    # mma.sp stores half of A's K, so its K is twice the dense instruction's
    ("fp16: {dense: m16n8k16, sparse: m16n8k32}", "fp16: {dense: m16n8k16, sparse: m16n8k16}", "K doubled"),
    ("fp16: {dense: m16n8k16, sparse: m16n8k32}", "fp16: {dense: 16x8x16, sparse: m16n8k32}", "mma_sync.shapes.fp16.dense"),
    # a shape for a dtype the tensor cores do not run
    ("fp16: {dense: m16n8k16, sparse: m16n8k32}", "fp16: {dense: m16n8k16, sparse: m16n8k32}\n      int4: {dense: m16n8k64}",
     "no int4 tensor-core peak"),
])
def test_mma_instruction_shapes_are_checked(tmp_path, spec_text, old, new, expect):
    assert old in spec_text
    message = _load_error(tmp_path, swap(spec_text, old, new))
    assert expect in message


def test_missing_source_is_rejected(tmp_path, spec_text):
    text = swap(spec_text, '  source: "[H100-DS]: up to 700 W (configurable)"\n', "")
    message = _load_error(tmp_path, text)
    assert "power.source" in message


def test_unknown_key_lists_recognized_keys(tmp_path, spec_text):
    message = _load_error(tmp_path, swap(spec_text, "capacity_GiB: 79.647", "capacity_GiB: 79.647\n  capcity_GiB: 81"))
    assert "memory.capcity_GiB" in message and "recognized keys" in message and "capacity_GiB" in message


def test_source_citing_undefined_reference_is_rejected(tmp_path, spec_text):
    message = _load_error(tmp_path, swap(spec_text, "[H100-DS]: up to 700 W", "[NOPE-DS]: up to 700 W"))
    assert "[NOPE-DS]" in message


def test_efficiency_outside_unit_interval_is_rejected(tmp_path, spec_text):
    message = _load_error(tmp_path, swap(spec_text, "hbm: {value: 0.85", "hbm: {value: 1.3"))
    assert "efficiency" in message and "(0, 1]" in message


def test_not_yaml_names_line(tmp_path):
    message = _load_error(tmp_path, "id: [unclosed\n")
    assert "my-gpu.yaml" in message and "YAML" in message


def test_unknown_device_lists_known():
    with pytest.raises(SimulatorError, match="unknown device 'h300'.*h100-sxm5-80gb"):
        load_hw("h300")


def test_missing_spec_file():
    with pytest.raises(SimulatorError, match="does not exist"):
        load_hw("nowhere/gpu.yaml")


def test_every_spec_id_matches_its_file_name():
    from simulator.hardware.spec import _spec_files

    paths = _spec_files()
    assert len(paths) >= len(EXPECTED_IDS)
    for path in paths:
        assert load_hw(str(path)).id == path.stem


def test_pe_array_specs_are_not_gpus():
    for path in sorted(hwspecs_dir().glob("*.yaml")):
        if "kind: pe-array" in path.read_text():
            with pytest.raises(SimulatorError, match="sparsim eie"):
                load_hw(path.stem)


def test_same_silicon_claims_hold_between_the_specs():
    # A spec that borrows another's compute calibration must match it in every compute fact.
    specs = {spec.id: spec for spec in list_hw()}
    borrowers = [spec for spec in specs.values() if spec.compute_calibration_from]
    assert borrowers  # h100 -> h200
    for spec in borrowers:
        other = specs[spec.compute_calibration_from.device]
        assert other.id != spec.id and other.architecture == spec.architecture
        assert (other.compute.units, other.compute.clock_MHz) == (spec.compute.units, spec.compute.clock_MHz)
        assert other.matrix.model_dump(exclude={"source"}) == spec.matrix.model_dump(exclude={"source"})
        assert other.vector.peaks_TFLOPS == spec.vector.peaks_TFLOPS


def test_a_same_silicon_calibration_carries_compute_parameters_only(tmp_path, monkeypatch):
    import shutil

    import yaml

    from simulator.truth import calibration
    from simulator.hardware.spec import hwspecs_dir

    root = tmp_path / "hwspecs"
    shutil.copytree(hwspecs_dir(), root, ignore=shutil.ignore_patterns("traces", "calibration.yaml"))
    monkeypatch.setenv("SPARSIM_HWSPECS", str(root))
    h100_default = load_hw("h100")
    fitted = {"dense_matrix": 0.71, "dense_matrix_fp8": 0.52, "hbm": 0.93, "kernel_launch_us": 3.3,
              "weight_only_int4_memory": 0.62}
    record = {"device": "h200-sxm-141gb", "fitted_utc": "2099-01-01T00:00:00+00:00", "traces": ["t.csv"],
              "split": "by shape (test record)", "loss": "test", "train_rows": 1, "holdout_rows": 1,
              "converged": True,
              "parameters": {k: {"value": v, "prior": 0.5} for k, v in fitted.items()},
              "errors": {"holdout_after": [{"class": "dense", "median_ape": 0.04}]}}
    (root / "h200-sxm-141gb").mkdir(exist_ok=True)
    (root / "h200-sxm-141gb" / "calibration.yaml").write_text(yaml.safe_dump(record))
    h100 = load_hw("h100")
    assert h100.efficiency.dense_matrix.value == 0.71 and h100.efficiency.matrix("fp8") == 0.52
    assert h100.overhead.kernel_launch_us.value == 3.3
    assert h100.efficiency.hbm.value == h100_default.efficiency.hbm.value  # HBM3 is not HBM3e
    # a dequantizing kernel's slowdown is the kernel's: passed on as a ratio to each device's hbm
    assert h100.efficiency.weight_only("int4", "memory") == pytest.approx(0.62 / 0.93 * h100.efficiency.hbm.value)
    assert "INHERITED from h200-sxm-141gb" in h100.efficiency.dense_matrix.source
    assert h100.calibration_state == "compute from h200-sxm-141gb"
    assert load_hw("h200").efficiency.hbm.value == 0.93
    assert load_hw("h100", calibrated=False).efficiency.dense_matrix.value == h100_default.efficiency.dense_matrix.value
    # the device's own traces, once it has them, win over its sibling's where they pinned a
    # parameter; where they did not (fp8 here), the sibling's value stays
    own = dict(record, device="h100-sxm5-80gb", parameters={"dense_matrix": {"value": 0.66, "prior": 0.5}})
    (root / "h100-sxm5-80gb").mkdir(exist_ok=True)
    (root / "h100-sxm5-80gb" / "calibration.yaml").write_text(yaml.safe_dump(own))
    h100 = load_hw("h100")
    assert h100.efficiency.dense_matrix.value == 0.66 and h100.efficiency.matrix("fp8") == 0.52
    assert h100.calibration_state == "calibrated"
    assert calibration.COMPUTE_PARAMETERS  # the list the inheritance draws from
    # a fit of the H100's own traces starts from (and reports errors on top of) the same layers
    assert calibration._prior("h100").efficiency.matrix("fp8") == 0.52


def test_sources_name_documents_a_reader_can_find():
    """A `source:` names the datasheet, paper or URL itself, never the team's private compilation
    (shared/reference/hwspec-facts.md is not in the repository)."""
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    files = [root / "README.md", *(root / "docs").glob("*.md"), *(root / "hwspecs").rglob("*.yaml"),
             *(root / "workloads").rglob("*.yaml"), *(root / "simulator").rglob("*.py")]
    offenders = [str(f.relative_to(root)) for f in files if "hwspec-facts" in f.read_text() or "[FACTS]" in f.read_text()]
    assert not offenders, offenders


def test_a_name_is_resolved_again_when_its_spec_or_calibration_changes(tmp_path, monkeypatch):
    # load_hw keeps what a name resolved to for the process, checked against the files' stamps:
    # an edit in place, a calibration file added or removed, each shows at the next load
    import shutil
    import time

    import yaml

    from simulator.hardware.spec import hwspecs_dir

    root = tmp_path / "hwspecs"
    shutil.copytree(hwspecs_dir(), root, ignore=shutil.ignore_patterns("traces", "calibration.yaml"))
    monkeypatch.setenv("SPARSIM_HWSPECS", str(root))
    first = load_hw("h100")
    assert load_hw("h100") is first  # unchanged files: the same spec object
    path = root / "h100-sxm5-80gb.yaml"
    time.sleep(0.01)
    path.write_text(path.read_text().replace("bandwidth_GBps: 3352", "bandwidth_GBps: 3000"))
    assert load_hw("h100").memory_bandwidth_bytes_per_s == 3000e9
    record = {"device": "h100-sxm5-80gb", "fitted_utc": "2099-01-01T00:00:00+00:00", "traces": ["t.csv"],
              "split": "by shape (test record)", "loss": "test", "train_rows": 1, "holdout_rows": 1,
              "converged": True, "parameters": {"hbm": {"value": 0.5, "prior": 0.8}},
              "errors": {"holdout_after": [{"class": "dense", "median_ape": 0.04}]}}
    (root / "h100-sxm5-80gb").mkdir(exist_ok=True)
    calibration = root / "h100-sxm5-80gb" / "calibration.yaml"
    calibration.write_text(yaml.safe_dump(record))
    assert load_hw("h100").efficiency.hbm.value == 0.5
    assert load_hw("h100", calibrated=False).efficiency.hbm.value != 0.5
    calibration.unlink()
    assert load_hw("h100").efficiency.hbm.value == load_hw("h100", calibrated=False).efficiency.hbm.value

"""The calibration file (``hwspecs/<id>/calibration.yaml``): its schema, the parameters it may
set and their physical ranges, and how a spec takes them (``apply``). The hardware layer reads
it when a spec is loaded; the fit that writes it is simulator.truth.calibration (truth layer). Only
core modules are imported here, so the spec loader depends on nothing above it."""

from __future__ import annotations

from typing import Optional

import numpy as np
from pydantic import Field

from simulator.core.datafiles import Strict
from simulator.core.errors import SimulatorError

# name -> (group, field, lower bound, upper bound). Efficiencies are fractions in (0, 1];
# overheads are microseconds; bsr_half_block is a block edge in elements.
PARAMETERS = {
    "hbm": ("efficiency", "hbm", 0.02, 1.0),
    "dense_matrix": ("efficiency", "dense_matrix", 0.02, 1.0),
    "dense_matrix_fp8": ("efficiency", "dense_matrix_fp8", 0.02, 1.0),
    "dense_matrix_int8": ("efficiency", "dense_matrix_int8", 0.02, 1.0),
    "vector": ("efficiency", "vector", 0.02, 1.0),
    "wave_tail": ("efficiency", "wave_tail", 0.01, 1.0),
    "sparse_ratio": ("efficiency", "sparse_matrix", 0.02, 1.0),  # sparse_matrix / dense_matrix
    "csr_compute": ("efficiency", "csr_compute", 0.001, 1.0),
    "csr_memory": ("efficiency", "csr_memory", 0.02, 1.0),
    "bsr_half_block": ("efficiency", "bsr_half_block", 0.1, 4096.0),
    "weight_only_int8_memory": ("efficiency", "weight_only_int8_memory", 0.02, 1.0),
    "weight_only_int8_compute": ("efficiency", "weight_only_int8_compute", 0.005, 1.0),
    "weight_only_int4_memory": ("efficiency", "weight_only_int4_memory", 0.02, 1.0),
    "weight_only_int4_compute": ("efficiency", "weight_only_int4_compute", 0.005, 1.0),
    "kernel_launch_us": ("overhead", "kernel_launch_us", 0.05, 200.0),
    "host_call_us": ("overhead", "host_call_us", 0.1, 500.0),
    "memory_ramp_us": ("overhead", "memory_ramp_us", 0.01, 50.0),
    "tile_fixed_us": ("overhead", "tile_fixed_us", 0.01, 20.0),
    "sparse_kernel_extra_us": ("overhead", "sparse_kernel_extra_us", 0.05, 200.0),
}


# What a device on the same die and clocks may take from another's calibration (hardware
# SameSilicon): the fractions of the math units' peaks and the launch costs. Not the memory-side
# ones: a different memory system (H100's HBM3, H200's HBM3e) streams at its own fraction.
COMPUTE_PARAMETERS = ("dense_matrix", "dense_matrix_fp8", "dense_matrix_int8", "vector", "sparse_ratio",
                      "csr_compute", "bsr_half_block", "weight_only_int8_compute", "weight_only_int4_compute",
                      "kernel_launch_us", "sparse_kernel_extra_us", "tile_fixed_us", "wave_tail")


def with_parameters(hw: "HardwareSpec", names, values, source: str) -> "HardwareSpec":
    """A copy of ``hw`` with the named parameters set (sparse_ratio scales dense_matrix)."""
    updates: dict[str, dict] = {"efficiency": {}, "overhead": {}}
    sourced = type(hw.efficiency.hbm)  # the spec's value-with-source class (hardware.Sourced)
    chosen = dict(zip(names, values))
    dense = chosen.get("dense_matrix", hw.efficiency.dense_matrix.value)
    for name, value in chosen.items():
        group, field, _, _ = PARAMETERS[name]
        if name == "sparse_ratio":
            value = value * dense
        updates[group][field] = sourced(value=float(value), source=source)
    return hw.model_copy(update={
        group: getattr(hw, group).model_copy(update=fields) for group, fields in updates.items() if fields
    })


def _check_value(name: str, value, where) -> None:
    group, _field, _lower, upper = PARAMETERS[name]
    if not isinstance(value, (int, float)) or not np.isfinite(value) or value <= 0 or (
            group == "efficiency" and name != "bsr_half_block" and value > 1.0):
        allowed = "a fraction in (0, 1]" if group == "efficiency" and name != "bsr_half_block" else "a number > 0"
        raise SimulatorError(f"{where}: parameters.{name}.value: {value!r}; allowed: {allowed}")


class _Parameter(Strict):
    value: float
    prior: Optional[float] = None


class CalibrationFile(Strict):
    """What ``write`` produces (and what ``apply`` accepts): strict, so a typo or a hand edit fails."""

    device: str
    fitted_utc: str
    traces: list[str]
    split: str
    loss: str
    train_rows: int = Field(ge=0)
    holdout_rows: int = Field(ge=0)
    parameters: dict[str, _Parameter]
    not_pinned: list[str] = Field(default_factory=list)
    errors: dict[str, list[dict]]
    converged: bool
    # Parameter sets of the attention and all-reduce kernel models (simulator.kernels.attention,
    # simulator.kernels.collectives): name -> float, read by those modules.
    attention: Optional[dict[str, float]] = None
    allreduce: Optional[dict[str, float]] = None


def read_calibration(data, path) -> dict:
    """A calibration file's content, checked against CalibrationFile and the parameter ranges."""
    import pydantic

    try:
        parsed = CalibrationFile.model_validate(data)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise SimulatorError(f"{path}: {where}: {err['msg']}") from None
    for name, p in parsed.parameters.items():
        if name not in PARAMETERS:
            raise SimulatorError(f"{path}: parameters: unknown {name}; known: {', '.join(PARAMETERS)}")
        _check_value(name, p.value, path)
    for section in ("attention", "allreduce"):
        for name, value in (getattr(parsed, section) or {}).items():
            if not np.isfinite(value) or value <= 0:
                raise SimulatorError(f"{path}: {section}.{name}: {value!r}; allowed: a finite number > 0")
    return data


# Memory-side weight-only fractions a same-silicon sibling passes on as a ratio to its own `hbm`:
# how much slower a dequantizing kernel streams than a plain one is the kernel's, not the memory's.
RATIO_PARAMETERS = ("weight_only_int8_memory", "weight_only_int4_memory")


def apply(hw: "HardwareSpec", calibration: dict, compute_only: bool = False, path="calibration.yaml",
          uncalibrated=None) -> "HardwareSpec":
    """The spec with a calibration file's parameters in place (called by hardware.load_hw for each layer;
    ``uncalibrated(device)`` gives a sibling's spec defaults).

    ``compute_only``: the file (``path``) is a same-silicon sibling's (``hw.compute_calibration_from``):
    take COMPUTE_PARAMETERS as they are and RATIO_PARAMETERS relative to the sibling's `hbm`
    (times this device's own), and say so in the sources.
    """
    calibration = read_calibration(calibration, path)
    names = list(calibration["parameters"])
    unknown = [n for n in names if n not in PARAMETERS]
    if unknown:
        raise SimulatorError(f"{path}: parameters: unknown {', '.join(unknown)}; "
                             f"known: {', '.join(PARAMETERS)}")
    values = [calibration["parameters"][n]["value"] for n in names]
    if compute_only:
        fitted = dict(zip(names, values))
        sibling_hbm = fitted.get("hbm") or uncalibrated(calibration["device"]).efficiency.hbm.value
        names = [n for n in names if n in COMPUTE_PARAMETERS or n in RATIO_PARAMETERS]
        values = [min(1.0, fitted[n] / sibling_hbm * hw.efficiency.hbm.value) if n in RATIO_PARAMETERS
                  else fitted[n] for n in names]
    heldout = {row["class"]: row["median_ape"] for row in calibration["errors"]["holdout_after"]}
    source = (f"CALIBRATED {calibration['fitted_utc'][:10]} on {', '.join(calibration['traces'])} "
              f"(held-out median APE: {', '.join(f'{k} {v:.1%}' for k, v in heldout.items())})")
    if compute_only:
        source = (f"INHERITED from {calibration['device']} (same silicon: {hw.compute_calibration_from.source}); "
                  f"compute-side parameters only; {source}")
    calibrated = with_parameters(hw, names, values, source)
    return calibrated.model_copy(update={"calibration": source})

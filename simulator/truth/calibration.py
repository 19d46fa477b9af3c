"""Fit a device's achievable-efficiency parameters to its measured traces.

What is fitted: only the fractions and overheads in the spec's ``efficiency`` and ``overhead``
groups, never a datasheet peak, never a per-shape table. A parameter is free only when the
training rows contain a kernel class that depends on it, so no class gets more free
parameters than its rows can pin down. The fit is scipy's ``least_squares`` on log(model /
measured) over the *training* split (validation.holdout_mask), with a soft-L1 loss so a few
noisy rows cannot drag it, and bounds that keep every efficiency in (0, 1]. The result is
written to ``hwspecs/<device>/calibration.yaml`` with the date, the trace files and the train
and held-out errors; ``load_hw`` applies it. Reported accuracy is always the held-out number.
"""

from __future__ import annotations

import datetime as _dt
from pathlib import Path

import numpy as np
import yaml

from simulator.core.datafiles import parse_yaml
from simulator.core.errors import SimulatorError
from simulator.hardware.calibration_file import (COMPUTE_PARAMETERS, PARAMETERS, RATIO_PARAMETERS, CalibrationFile,  # noqa: F401
                                        _check_value, read_calibration, with_parameters)
from simulator.hardware.calibration_file import apply as _apply
from simulator.hardware.spec import HardwareSpec, hwspecs_dir, load_hw
from simulator.truth.validation import (
    EXTERNAL_MODELS,
    MODELLED_CLASSES,
    SPLIT_RULE,
    error_table,
    holdout_mask,
    load_traces,
    predict,
)

# Where the fit of an absent host cost per torch call starts: eager PyTorch calls cost microseconds
# to tens of microseconds of host time; the fit, not this number, sets the value.
HOST_CALL_START_US = 10.0
# Where the fit of an absent memory ramp starts (a DRAM round trip is ~0.5-1 us; a kernel's first
# and last waves add a few): the fit sets the value.
MEMORY_RAMP_START_US = 2.0
TILE_FIXED_START_US = 1.0


def calibration_path(hw: HardwareSpec) -> Path:
    return hwspecs_dir() / hw.id / "calibration.yaml"


def free_parameters(hw: HardwareSpec, traces) -> list[str]:
    """The parameters the training rows can pin down, in a fixed order."""
    names = set()
    kernel_timed = "timing_method" in traces and bool((traces["timing_method"] == "kernel-sum").any())
    weight_dtypes = traces["weight_dtype"] if "weight_dtype" in traces else [None] * len(traces)
    for kernel_class, dtype, weight_dtype in set(zip(traces["kernel_class"], traces["dtype"], weight_dtypes)):
        if kernel_class not in MODELLED_CLASSES:
            continue
        names |= {"kernel_launch_us", "hbm"}
        if kernel_class in ("dense", "2:4") and kernel_timed:
            names.add("memory_ramp_us")  # only kernel-timed rows see it apart from the launch
            names.add("tile_fixed_us")  # likewise: a tile's prologue and epilogue
        if kernel_class in ("dense", "2:4"):
            names.add("wave_tail")  # tiled kernels' partial last wave
        model_dtype = _model_dtype(dtype)
        on_matrix = hw.matrix_peak_flop_per_s(model_dtype) is not None
        matrix_name = f"dense_matrix_{model_dtype}" if f"dense_matrix_{model_dtype}" in PARAMETERS else "dense_matrix"
        if kernel_class in ("dense", "bsr", "attention-prefill", "attention-decode", "layer", "layer-eager"):
            names.add(matrix_name if on_matrix else "vector")
        if kernel_class == "layer-eager":
            names.add("host_call_us")
        if kernel_class == "2:4" and matrix_name != "dense_matrix":
            names.add(matrix_name)  # 8-bit 2:4 kernels scale with their dtype's dense efficiency
        if kernel_class == "weight-only" and f"weight_only_{weight_dtype}_memory" in PARAMETERS:
            names |= {f"weight_only_{weight_dtype}_memory", f"weight_only_{weight_dtype}_compute"}
        if kernel_class == "2:4":
            names |= {"sparse_ratio", "sparse_kernel_extra_us"}
        if kernel_class == "csr":
            names |= {"csr_compute", "csr_memory"}
        if kernel_class == "bsr":
            names.add("bsr_half_block")
    return [name for name in PARAMETERS if name in names]


def _model_dtype(trace_dtype: str) -> str:
    from simulator.truth.validation import TRACE_DTYPES

    return TRACE_DTYPES.get(trace_dtype, trace_dtype)


def current_values(hw: HardwareSpec, names) -> np.ndarray:
    values = []
    for name in names:
        group, field, _, _ = PARAMETERS[name]
        current = getattr(getattr(hw, group), field)
        if current is None and name == "host_call_us":
            values.append(HOST_CALL_START_US)  # a starting point for the fit, not a claim
            continue
        if current is None and name == "memory_ramp_us":
            values.append(MEMORY_RAMP_START_US)  # a starting point for the fit, not a claim
            continue
        if current is None and name == "wave_tail":
            values.append(1.0)  # whole waves: the model without it
            continue
        if current is None and name == "tile_fixed_us":
            values.append(TILE_FIXED_START_US)  # a starting point for the fit, not a claim
            continue
        if current is None:  # an absent optional efficiency starts from the plain kernel's
            eff = hw.efficiency
            if name.endswith("_memory"):
                current = eff.hbm
            else:
                current = eff.dense_matrix if (hw.matrix or name.startswith("dense_matrix")) else eff.vector
        value = current.value
        if name == "sparse_ratio":
            value = value / hw.efficiency.dense_matrix.value
        values.append(value)
    return np.array(values, dtype=float)


# A parameter that too few training rows respond to is not pinned by them: its value would be
# whatever the optimizer stopped at, or a fit to the noise of one or two rows. A row responds
# when its |d log(time)| per unit d log(parameter), for a 10% step either way, is at least
# MIN_ELASTICITY; a parameter needs MIN_RESPONSIVE_ROWS such rows, else it is dropped and the fit
# redone without it.
MIN_ELASTICITY = 0.02
MIN_RESPONSIVE_ROWS = 3


def _responsive_rows(prior, names, values, rows) -> np.ndarray:
    """For each parameter, how many rows respond to it at ``values``."""
    base = np.log(predict(with_parameters(prior, names, values, "trial"), rows))
    counts = []
    for i, name in enumerate(names):
        lower, upper = PARAMETERS[name][2:]
        elasticity = np.zeros_like(base)
        for step in (1.1, 1 / 1.1):
            trial = values.copy()
            trial[i] = np.clip(values[i] * step, lower, upper)
            if trial[i] == values[i]:
                continue
            changed = np.log(predict(with_parameters(prior, names, trial, "trial"), rows))
            elasticity = np.maximum(elasticity, np.abs(changed - base) / abs(np.log(trial[i] / values[i])))
        counts.append(int((elasticity >= MIN_ELASTICITY).sum()))
    return np.array(counts)


def _prior(hw) -> HardwareSpec:
    """What a fit starts from, and what its unpinned parameters stay at when the result is
    loaded: the spec's defaults, under a same-silicon sibling's compute side where there is one
    (load_hw applies the same layers in the same order)."""
    prior = load_hw(hw, calibrated=False)
    sibling = prior.compute_calibration_from
    path = hwspecs_dir() / sibling.device / "calibration.yaml" if sibling is not None else None
    if path is not None and path.is_file():
        prior = apply(prior, parse_yaml(path.read_text()), compute_only=True, path=path)
    return prior


def fit(hw, traces=None, include_smoke: bool = False) -> dict:
    """Fit on the training split; return the parameters and the before/after error tables.

    ``traces`` defaults to the device's committed trace files (validation.load_traces).
    """
    prior = _prior(hw)
    if traces is None:
        traces = load_traces(prior, include_smoke)
    traces = traces.reset_index(drop=True)
    holdout = holdout_mask(traces)
    train = ~holdout
    before = predict(prior, traces)
    # Rows a parameter the spec lacks would model (host-timed layers need host_call_us) take part
    # in the fit from its starting point; "before" errors stay those of the spec as it is.
    start = prior
    if prior.overhead.host_call_us is None:
        start = with_parameters(prior, ["host_call_us"], [HOST_CALL_START_US], "fit starting point")
    modelled = np.isfinite(predict(start, traces))
    # Attention and all-reduce rows have kernel models of their own, with their own parameter
    # sections (fit_sections): they never move the GEMM fractions.
    # (captured sdpa attention rows stay here: the op graph prices them with the GEMM fractions)
    flash = (traces["op"] == "flash_attn_with_kvcache").to_numpy() if "op" in traces else np.zeros(len(traces), bool)
    own_model = (traces["kernel_class"] == "allreduce").to_numpy() | (
        traces["kernel_class"].str.startswith("attention").to_numpy() & flash)
    usable = train & modelled & ~own_model
    if usable.sum() == 0 and not (train & modelled & own_model).any():
        raise SimulatorError(f"--hw {prior.id}: no training rows of a modelled kernel class to fit")
    if usable.sum() == 0:
        return _sections_only(prior, traces, holdout, before)
    names = free_parameters(prior, traces[usable])
    measured = traces["time_s_median"].to_numpy(float)
    train_rows = traces[usable]
    not_pinned = []
    while True:
        lower = np.array([PARAMETERS[n][2] for n in names])
        upper = np.array([PARAMETERS[n][3] for n in names])
        x0 = np.clip(current_values(prior, names), lower, upper)

        def residuals(x, names=names):
            trial = with_parameters(prior, names, x, "trial")
            return np.log(predict(trial, train_rows) / measured[usable])

        # Fit in log space of the parameters so bounds and scales are comparable.
        from scipy.optimize import least_squares  # only a fit needs scipy; loading a calibration does not

        solution = least_squares(lambda z: residuals(np.exp(z)), np.log(x0),
                                 bounds=(np.log(lower), np.log(upper)), loss="soft_l1", f_scale=0.1, x_scale=1.0)
        fitted = np.exp(solution.x)
        responsive = _responsive_rows(prior, names, fitted, train_rows)
        weak = [n for n, count in zip(names, responsive) if count < MIN_RESPONSIVE_ROWS]
        if not weak:
            break
        not_pinned += weak  # left at the spec's value, and said so
        names = [n for n in names if n not in weak]
        if not names:
            raise SimulatorError(
                f"--hw {prior.id}: no parameter is pinned by the {int(usable.sum())} training rows (each needs "
                f"{MIN_RESPONSIVE_ROWS} rows that respond to it): {', '.join(not_pinned)}; capture more shapes")
    stamp = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d")
    files = sorted(set(traces["trace_file"])) if "trace_file" in traces else ["(in-memory traces)"]
    source = f"CALIBRATED {stamp} by `sparsim calibrate` on {', '.join(files)} (training split)"
    after_spec = with_parameters(prior, names, fitted, source)
    sections = fit_sections(after_spec, traces, train)
    after = predict(after_spec, traces, external=_external(sections))
    return {
        "device": prior.id,
        "fitted_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "traces": files,
        "split": SPLIT_RULE,
        "loss": "least squares on log(model/measured), soft-L1 with f_scale 0.1, parameters fitted in log space",
        "train_rows": int(usable.sum()),
        "holdout_rows": int((holdout & modelled).sum()),
        "parameters": {
            name: {"value": float(value), "prior": float(prior_value)}
            for name, value, prior_value in zip(names, fitted, x0)
        },
        "not_pinned": not_pinned + sections.get("not_pinned", []),
        "errors": {
            "train_before": _records(error_table(traces, before, train)),
            "train_after": _records(error_table(traces, after, train)),
            "holdout_before": _records(error_table(traces, before, holdout)),
            "holdout_after": _records(error_table(traces, after, holdout)),
        },
        "converged": bool(solution.success),
        **{name: values for name, values in sections.items() if values and name != "not_pinned"},
    }


def _external(sections: dict) -> dict:
    return {EXTERNAL_MODELS["attention-prefill"]: sections.get("attention") or {},
            EXTERNAL_MODELS["allreduce"]: sections.get("allreduce") or {}}


def _sections_only(prior, traces, holdout, before) -> dict:
    """A fit where only attention / all-reduce rows train (a device with no GEMM traces)."""
    train = ~holdout
    sections = fit_sections(prior, traces, train)
    after = predict(prior, traces, external=_external(sections))
    stamp = _dt.datetime.now(_dt.timezone.utc)
    files = sorted(set(traces["trace_file"])) if "trace_file" in traces else ["(in-memory traces)"]
    modelled = np.isfinite(after)
    return {
        "device": prior.id, "fitted_utc": stamp.replace(microsecond=0).isoformat(), "traces": files,
        "split": SPLIT_RULE, "loss": SECTION_LOSS, "train_rows": int((train & modelled).sum()),
        "holdout_rows": int((holdout & modelled).sum()), "parameters": {},
        "not_pinned": sections.get("not_pinned", []),
        "errors": {"train_before": _records(error_table(traces, before, train)),
                   "train_after": _records(error_table(traces, after, train)),
                   "holdout_before": _records(error_table(traces, before, holdout)),
                   "holdout_after": _records(error_table(traces, after, holdout))},
        "converged": True,
        **{name: values for name, values in sections.items() if values and name != "not_pinned"},
    }


SECTION_LOSS = "least squares on log(model/measured), soft-L1 with f_scale 0.1, parameters fitted in log space"
# All-reduce rows below this size sit on a noisy host/profiler floor of tens of microseconds
# (shared/data/vidur/README.md), which no link latency explains: they are scored, not fitted.
ALLREDUCE_FIT_MIN_BYTES = 2**20


def fit_sections(hw, traces, train) -> dict:
    """The attention and all-reduce kernel models' parameters, fitted on the training rows of their
    classes (``attention:`` and ``allreduce:`` of calibration.yaml); {} where a class has none."""
    from scipy.optimize import least_squares

    from simulator.kernels import attention, collectives

    traces = traces.reset_index(drop=True)
    measured = traces["time_s_median"].to_numpy(float)
    out = {}
    att = train & traces["kernel_class"].isin(["attention-prefill", "attention-decode"]).to_numpy()
    if att.any():
        att &= np.isfinite(attention.predict_trace_rows(hw, traces))
    if att.sum() >= 3 * len(attention.ATTENTION_PARAMETERS):
        rows = traces[att].reset_index(drop=True)
        names = list(attention.ATTENTION_PARAMETERS)
        start = attention.attention_parameters(hw)
        lower = np.array([attention.ATTENTION_PARAMETERS[n][1] for n in names])
        upper = np.array([attention.ATTENTION_PARAMETERS[n][2] for n in names])
        x0 = np.clip([start[n] for n in names], lower, upper)

        not_pinned = []
        while names:
            def residuals(z, names=names):
                params = dict(zip(names, np.exp(z)))
                return np.log(attention.predict_trace_rows(hw, rows, params) / measured[att])

            sol = least_squares(residuals, np.log(x0), bounds=(np.log(lower), np.log(upper)), loss="soft_l1",
                                f_scale=0.1)
            fitted = dict(zip(names, np.exp(sol.x)))
            # the GEMM fit's rule: a parameter fewer than MIN_RESPONSIVE_ROWS rows respond to stays at its default
            base = np.log(attention.predict_trace_rows(hw, rows, fitted))
            weak = []
            for name in names:
                step = dict(fitted, **{name: fitted[name] * 1.1})
                response = np.abs(np.log(attention.predict_trace_rows(hw, rows, step)) - base) / np.log(1.1)
                if int((response >= MIN_ELASTICITY).sum()) < MIN_RESPONSIVE_ROWS:
                    weak.append(name)
            if not weak:
                break
            not_pinned += weak
            keep = [i for i, n in enumerate(names) if n not in weak]
            names, lower, upper, x0 = [names[i] for i in keep], lower[keep], upper[keep], x0[keep]
        out["attention"] = {n: float(v) for n, v in fitted.items()} if names else {}
        out["not_pinned"] = [f"attention.{n}" for n in not_pinned]
    red = train & (traces["kernel_class"] == "allreduce").to_numpy()
    if red.any() and "topology" in traces:
        red &= pd_numeric(traces["message_bytes"]) >= ALLREDUCE_FIT_MIN_BYTES
        known = collectives.topologies(hw)
        fitted = {}
        for name in sorted(set(traces.loc[red, "topology"].astype(str)) & set(known)):
            sel = red & (traces["topology"].astype(str) == name).to_numpy()
            rows = traces[sel].reset_index(drop=True)
            counts = set(rows["gpus"].astype(int))
            # with one GPU count the step latency and the base latency are one number: fit the base
            fields = ["bus_efficiency", "base_latency_us"] + (["step_latency_us"] if len(counts) > 1 else [])
            if sel.sum() < 3 * len(fields):
                continue
            topo = known[name]
            x0 = np.array([{"bus_efficiency": topo.bus_efficiency, "base_latency_us": topo.base_latency_s * 1e6,
                            "step_latency_us": topo.step_latency_s * 1e6}[f] for f in fields])
            lower = np.array([{"bus_efficiency": 0.01, "base_latency_us": 0.1, "step_latency_us": 0.01}[f] for f in fields])
            # a per-call latency above 100 us, or 20 us per hop, is no longer a latency (NCCL's tuner,
            # src/graph/tuning.cc, uses base latencies of a few to tens of us and per-hop ones of a few us)
            upper = np.array([{"bus_efficiency": 1.0, "base_latency_us": 100.0, "step_latency_us": 20.0}[f] for f in fields])
            x0 = np.clip(x0, lower * 1.0001, upper / 1.0001)

            def residuals(z, fields=fields, rows=rows, sel=sel, name=name):
                params = {f"{name}.{f}": v for f, v in zip(fields, np.exp(z))}
                return np.log(collectives.predict_trace_rows(hw, rows, params) / measured[sel])

            sol = least_squares(residuals, np.log(x0), bounds=(np.log(lower), np.log(upper)), loss="soft_l1",
                                f_scale=0.1)
            fitted.update({f"{name}.{f}": float(v) for f, v in zip(fields, np.exp(sol.x))})
        if fitted:
            out["allreduce"] = fitted
    return out


def pd_numeric(column) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(column, errors="coerce").to_numpy(float)


def _records(table):
    keep = ["class", "n", "median_ape", "p90_ape", "bias"]
    return [{k: (None if row[k] is None or (isinstance(row[k], float) and np.isnan(row[k])) else row[k])
             for k in keep} for row in table[table["modelled"]].to_dict(orient="records")]


WORSE_TOLERANCE = 5e-4  # median APE, absolute: 0.05 percentage points


def check_result(result: dict) -> None:
    """Refuse a fit that cannot be written: a parameter outside its physical range, or a held-out
    error worse than the spec defaults' on any class the fit touched (one line, SimulatorError).
    Worse means by more than WORSE_TOLERANCE (0.05 percentage points of median APE, below the
    report's precision): a class priced by another kernel model moves only through the shared
    launch cost, by rounding amounts."""
    for name, p in result["parameters"].items():
        _check_value(name, p["value"], "fit")
    before = {r["class"]: r["median_ape"] for r in result["errors"]["holdout_before"]}
    for row in result["errors"]["holdout_after"]:
        old = before.get(row["class"])
        if old is not None and row["median_ape"] is not None and row["median_ape"] > old + WORSE_TOLERANCE:
            raise SimulatorError(
                f"calibrate --hw {result['device']}: not written: the fit is worse than the spec defaults on the "
                f"held-out split for class {row['class']} (median APE {old:.1%} -> {row['median_ape']:.1%})")


def write(result: dict) -> Path:
    check_result(result)
    hw = load_hw(result["device"], calibrated=False)
    path = calibration_path(hw)
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("# Fitted by `sparsim calibrate --hw {d}`; do not edit by hand, refit instead.\n"
              "# `parameters` override the spec's efficiency/overhead defaults (`prior`) when the spec is loaded.\n"
              "# Errors are absolute percentage errors as fractions; report the holdout_after numbers.\n")
    path.write_text(header.format(d=result["device"]) + yaml.safe_dump(result, sort_keys=False, width=110))
    return path


def apply(hw: HardwareSpec, calibration: dict, compute_only: bool = False, path=None) -> HardwareSpec:
    """simulator.hardware.calibration_file.apply with this device's file as the default path."""
    return _apply(hw, calibration, compute_only, path or calibration_path(hw),
                  uncalibrated=lambda device: load_hw(device, calibrated=False))


def transfer(fit_hw, target_hw) -> dict:
    """Cross-device check: fit on ``fit_hw``'s training split only, put those fractions and
    overheads into ``target_hw``'s own spec (its own peaks and bandwidth), and report the error on
    every row of the target's traces (none was seen by the fit) per class (class_rows)."""
    from simulator.truth.validation import SPEEDUP_CLASS, class_rows, implied_from_dense

    result = fit(fit_hw)
    names = list(result["parameters"])
    values = [p["value"] for p in result["parameters"].values()]
    target = with_parameters(load_hw(target_hw, calibrated=False), names, values,
                             f"TRANSFERRED from {result['device']}'s fit (cross-device check)")
    traces = load_traces(target)
    # the attention and all-reduce sections travel too (an all-reduce topology by its name)
    predicted = predict(target, traces, external=_external(result))
    seen = load_traces(result["device"])
    if "topology" in traces and "topology" in seen:
        unseen = (traces["kernel_class"] == "allreduce") & ~traces["topology"].isin(set(seen["topology"].dropna()))
        predicted = np.where(unseen.to_numpy(), np.nan, predicted)
    rows = class_rows(traces, predicted, np.ones(len(traces), dtype=bool),
                      implied_from_dense(target, traces, predicted, external=_external(result)))
    # a class the fit device has no rows of (H100 has no attention traces, no InfiniBand topology)
    # would be scored on the target's spec defaults, which is no transfer: left out
    from simulator.truth.validation import class_labels

    seen_classes = set(class_labels(seen)) | set(seen["kernel_class"])
    if "2:4" in seen_classes:
        seen_classes.add(SPEEDUP_CLASS)
    rows = [row for row in rows if row["class"] in seen_classes]
    for row in rows:
        row["split"] = "cross-device"  # fitted on the other device's training split; every row scored
    return {"fit_on": result["device"], "predicted": target.id, "parameters": dict(zip(names, values)),
            "attention": result.get("attention") or {}, "allreduce": result.get("allreduce") or {},
            "classes": rows}

"""Workload data files: layer sets (a model's GEMMs) and published anchors, strictly validated."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import pandas as pd
from pydantic import Field

from simulator.core.datafiles import Strict, check_file, load_yaml, looks_like_path
from simulator.core.errors import SimulatorError
from simulator.core.paths import workloads_path


class LayerGemm(Strict):
    name: str = Field(min_length=1)
    n: int = Field(gt=0)
    k: int = Field(gt=0)
    count: int = Field(gt=0)


class LayerSet(Strict):
    id: str = Field(pattern=r"^[a-z0-9]+([.-][a-z0-9]+)*$")
    name: str
    source: str = Field(min_length=3)
    non_gemm_parameters: int = Field(ge=0)
    gemms: list[LayerGemm] = Field(min_length=1)

    @property
    def parameters(self) -> int:
        return sum(g.n * g.k * g.count for g in self.gemms) + self.non_gemm_parameters

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([g.model_dump() for g in self.gemms])


class GemmAnchor(Strict):
    id: str
    anchor_row: int
    hw: str
    dtype: str
    sparsity: str
    m: int = Field(gt=0)
    n: int = Field(gt=0)
    k: int = Field(gt=0)
    time_s: float = Field(gt=0)
    source: str = Field(min_length=3)


class GemmAnchors(Strict):
    anchors: list[GemmAnchor]


class ModelAnchor(Strict):
    id: str
    anchor_row: int
    model: str
    hw: str
    metric: Literal["decode_tokens_per_s", "ttft_s"]
    value: float = Field(gt=0)
    batch: int = Field(gt=0)
    context: int = Field(gt=0)
    dtype: str
    weights: Optional[str] = None
    # the software that was measured (simulator/formats/runtimes.py): its per-step costs are part of the number
    runtime: Literal["eager", "cuda-graphs", "vllm", "trtllm", "gpt-fast"] = "eager"
    source: str = Field(min_length=3)


class ModelAnchors(Strict):
    anchors: list[ModelAnchor]


class SpeedupAnchor(Strict):
    """A published speed-up of a sparse kernel over a baseline kernel (dense unless given),
    averaged over shapes x tokens."""

    id: str
    anchor_row: int
    kernel: str = Field(min_length=1)
    hw: str
    dtype: str
    sparsity: str
    shapes: list[tuple[int, int]] = Field(min_length=1)  # (n, k): weight rows, reduction
    tokens: list[int] = Field(min_length=1)  # m
    baseline: str = "dense"  # the kernel the speed-up is over, as a sparsity string
    speedup: float = Field(gt=0)
    source: str = Field(min_length=3)


class SpeedupAnchors(Strict):
    shapes: list[tuple[int, int]] = Field(default_factory=list)  # the file's shared shape set
    anchors: list[SpeedupAnchor]


def workloads_dir() -> Path:
    return workloads_path()


def load_layerset(name: str) -> LayerSet:
    if looks_like_path(name):
        check_file(name, "layer set file")
    path = Path(name) if looks_like_path(name) else workloads_dir() / "layersets" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted((workloads_dir() / "layersets").glob("*.yaml")))
        raise SimulatorError(f"unknown layer set {name!r}; known: {known}")
    return load_yaml(path.resolve(), LayerSet)


def load_gemm_anchors() -> list[GemmAnchor]:
    return load_yaml((workloads_dir() / "anchors" / "gemm.yaml").resolve(), GemmAnchors).anchors


def calibration_state(hw) -> str:
    """How a device's efficiencies were set: 'calibrated', 'compute from <device>' or 'spec defaults'."""
    from simulator.hardware.spec import load_hw

    return load_hw(hw).calibration_state


def anchor_table() -> pd.DataFrame:
    """Model vs published for every single-GEMM anchor, on the devices as they load (calibrated
    where a calibration exists; the ``calibration`` column says which)."""
    from simulator.kernels.gemm import estimate_gemm

    rows = []
    for a in load_gemm_anchors():
        est = estimate_gemm(a.hw, a.m, a.n, a.k, a.dtype, a.sparsity).iloc[0]
        rows.append({
            "anchor": a.id, "row": a.anchor_row, "hw": a.hw, "dtype": a.dtype, "sparsity": a.sparsity,
            "m": a.m, "n": a.n, "k": a.k, "published_time_s": a.time_s, "model_time_s": est.time_s,
            "error": est.time_s / a.time_s - 1.0, "bound": est.bound, "calibration": calibration_state(a.hw),
        })
    return pd.DataFrame(rows)


def load_model_anchors() -> list[ModelAnchor]:
    return load_yaml((workloads_dir() / "anchors" / "llm.yaml").resolve(), ModelAnchors).anchors


def model_anchor_table(runtime: "str | None" = None) -> pd.DataFrame:
    """Model vs published for every whole-model anchor, on the devices as they load (the
    ``calibration`` column says whether that is a calibration or the spec's defaults), each with
    the runtime it was measured on (``runtime`` given: that one for all, e.g. "eager" for the
    model without runtime costs)."""
    from simulator.model.llm import estimate_model

    rows = []
    for a in load_model_anchors():
        phase = "prefill" if a.metric == "ttft_s" else "decode"
        s = estimate_model(a.model, a.hw, phase, a.batch, a.context, dtype=a.dtype, weights=a.weights,
                           with_ops=False, runtime=runtime or a.runtime).summary
        model_value = s["time_s"] if a.metric == "ttft_s" else s["tokens_per_s"]
        rows.append({"anchor": a.id, "row": a.anchor_row, "model": a.model, "hw": a.hw, "metric": a.metric,
                     "dtype": a.dtype, "weights": a.weights or a.dtype, "context": a.context,
                     "runtime": runtime or a.runtime,
                     "published": a.value, "estimate": model_value, "error": model_value / a.value - 1.0,
                     "calibration": calibration_state(a.hw)})
    return pd.DataFrame(rows)


def load_speedup_anchors() -> list[SpeedupAnchor]:
    return load_yaml((workloads_dir() / "anchors" / "spmm.yaml").resolve(), SpeedupAnchors).anchors


def speedup_anchor_table() -> pd.DataFrame:
    """Model vs published for every kernel speed-up anchor: the model's speed-up over the
    baseline (baseline time / kernel time) at each (shape, tokens) point of the anchor's set,
    averaged as the arithmetic mean, with its range, on the device as it loads."""
    import numpy as np

    from simulator.kernels.gemm import gemm_columns
    from simulator.hardware.spec import load_hw

    rows = []
    for a in load_speedup_anchors():
        hw = load_hw(a.hw)
        n, k = (np.tile([float(s[i]) for s in a.shapes], len(a.tokens)) for i in (0, 1))
        m = np.repeat(np.array(a.tokens, dtype=float), len(a.shapes))
        baseline = gemm_columns(hw, m, n, k, a.dtype, a.baseline)
        sparse = gemm_columns(hw, m, n, k, a.dtype, a.sparsity)
        speedup = baseline["time_s"] / sparse["time_s"]
        bounds = pd.Series(sparse["bound"]).value_counts()
        rows.append({
            "anchor": a.id, "row": a.anchor_row, "kernel": a.kernel, "hw": a.hw, "dtype": a.dtype,
            "sparsity": a.sparsity, "baseline": a.baseline, "points": int(speedup.size),
            "published_speedup": a.speedup, "model_speedup": float(speedup.mean()),
            "model_min": float(speedup.min()), "model_max": float(speedup.max()),
            "error": float(speedup.mean()) / a.speedup - 1.0,
            "model_bound": ", ".join(f"{b} {c}" for b, c in bounds.items() if c),
            "calibration": calibration_state(a.hw),
        })
    return pd.DataFrame(rows)

"""Workload data files: layer sets (a model's GEMMs) and published anchors, strictly validated."""

from __future__ import annotations

import functools
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulator.errors import SimulatorError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LayerGemm(_Strict):
    name: str = Field(min_length=1)
    n: int = Field(gt=0)
    k: int = Field(gt=0)
    count: int = Field(gt=0)


class LayerSet(_Strict):
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


class GemmAnchor(_Strict):
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


class GemmAnchors(_Strict):
    anchors: list[GemmAnchor]


def workloads_dir() -> Path:
    return Path(__file__).resolve().parent.parent / "workloads"


@functools.lru_cache(maxsize=32)
def _load(path: Path, model: type[BaseModel]):
    if not path.is_file():
        raise SimulatorError(f"{path}: no such workload file")
    try:
        return model.model_validate(yaml.safe_load(path.read_text()))
    except ValidationError as err:
        first = err.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise SimulatorError(f"{path}: {loc}: {first['msg']}") from None
    except yaml.YAMLError as err:
        raise SimulatorError(f"{path}: not valid YAML ({err})") from None


def load_layerset(name: str) -> LayerSet:
    path = Path(name) if name.endswith(".yaml") else workloads_dir() / "layersets" / f"{name}.yaml"
    if not path.is_file():
        known = ", ".join(p.stem for p in sorted((workloads_dir() / "layersets").glob("*.yaml")))
        raise SimulatorError(f"unknown layer set {name!r}; known: {known}")
    return _load(path.resolve(), LayerSet)


def load_gemm_anchors() -> list[GemmAnchor]:
    return _load((workloads_dir() / "anchors" / "gemm.yaml").resolve(), GemmAnchors).anchors


def anchor_table() -> pd.DataFrame:
    """Model vs published for every single-GEMM anchor (before any calibration)."""
    from simulator.gemm import estimate_gemm

    rows = []
    for a in load_gemm_anchors():
        est = estimate_gemm(a.hw, a.m, a.n, a.k, a.dtype, a.sparsity).iloc[0]
        rows.append({
            "anchor": a.id, "row": a.anchor_row, "hw": a.hw, "dtype": a.dtype, "sparsity": a.sparsity,
            "m": a.m, "n": a.n, "k": a.k, "published_time_s": a.time_s, "model_time_s": est.time_s,
            "error": est.time_s / a.time_s - 1.0, "bound": est.bound,
        })
    return pd.DataFrame(rows)

"""Runtime profiles: what the software running a model adds to each forward step.

A measured end-to-end step includes more than its kernels: the host launches each kernel (eager
PyTorch: one Python call per op), or replays a captured CUDA graph (one launch per step, a small
gap per kernel on the GPU), and a serving engine schedules the batch, builds input tensors and
processes outputs every step. A runtime profile (workloads/runtimes.yaml, every number sourced)
states three things per runtime:

- the cost of one kernel launch in each phase (``None``: the device spec's eager launch cost);
- a fixed host cost per step (``step_us``);
- a host cost per sequence of the batch per step (``per_sequence_us``).

``simulator.model.llm`` uses them: each op's launch overhead is re-priced at the runtime's cost for
its phase, and the host costs are one ``runtime`` op per step (its own time category). The
default, ``eager``, is sparsim's model before runtimes existed (every number unchanged).
"""

from __future__ import annotations

import functools
from typing import Literal, Optional

import numpy as np
from pydantic import Field, model_validator

from simulator.core.datafiles import Strict, check_citations, load_yaml
from simulator.core.errors import SimulatorError
from simulator.core.paths import workloads_path
from simulator.core.registry import Registry
from simulator.core.roofline import Bound, bound_codes

RUNTIME_NAMES = ("eager", "cuda-graphs", "vllm", "trtllm", "gpt-fast")
DEFAULT_RUNTIME = "eager"
# The axis: a runtime's name -> itself; its numbers are workloads/runtimes.yaml's profile of that name.
RUNTIMES = Registry("runtime", "--runtime")
for _name in RUNTIME_NAMES:
    RUNTIMES.register(_name, name=_name)
# The serving engine's scheduler settings the steady-state model (simulator.capacity.serving) assumes by
# default; here, beside the runtime profiles, so the CLI's parser reads them without loading the
# cost models.
DEFAULT_TOKEN_BUDGET = 2048  # tokens per step, decode and prefill chunks (vLLM max_num_batched_tokens)
DEFAULT_PERCENTILE = 90.0  # TTFT and inter-token latency are also given at this percentile


class LaunchCost(Strict):
    """One kernel launch's cost in microseconds, or None for the device spec's eager cost."""

    value: Optional[float] = Field(default=None, gt=0)
    source: str = Field(min_length=3)


class HostCost(Strict):
    value: float = Field(ge=0)
    source: str = Field(min_length=3)


class RuntimeProfile(Strict):
    description: str = Field(min_length=3)
    prefill_kernel_launch_us: LaunchCost
    decode_kernel_launch_us: LaunchCost
    step_us: HostCost
    per_sequence_us: HostCost

    def launch_s(self, hw, prefill) -> "np.ndarray":
        """The cost of one kernel launch per point (seconds): ``prefill`` a bool array over the
        points; the device spec's eager cost where the profile gives none."""
        pre = self.prefill_kernel_launch_us.value
        dec = self.decode_kernel_launch_us.value
        pre_s = hw.launch_overhead_s if pre is None else pre * 1e-6
        dec_s = hw.launch_overhead_s if dec is None else dec * 1e-6
        return np.where(np.asarray(prefill, bool), pre_s, dec_s)

    def host_s(self, sequences) -> "np.ndarray":
        """Host time per step (seconds) for a batch of ``sequences`` (array)."""
        return self.step_us.value * 1e-6 + self.per_sequence_us.value * 1e-6 * np.asarray(sequences, float)

    @property
    def changes_launches(self) -> bool:
        return self.prefill_kernel_launch_us.value is not None or self.decode_kernel_launch_us.value is not None

    @property
    def has_host_cost(self) -> bool:
        return self.step_us.value > 0 or self.per_sequence_us.value > 0


class RuntimeFile(Strict):
    default: Literal[RUNTIME_NAMES]  # type: ignore[valid-type]
    references: dict[str, str] = Field(min_length=1)
    runtimes: dict[Literal[RUNTIME_NAMES], RuntimeProfile]  # type: ignore[valid-type]

    @model_validator(mode="after")
    def _complete(self):
        missing = [n for n in RUNTIME_NAMES if n not in self.runtimes]
        if missing:
            raise ValueError(f"runtimes: missing {', '.join(missing)}")
        check_citations(self, self.references)
        return self


@functools.lru_cache(maxsize=4)
def _load(path: str) -> RuntimeFile:
    return load_yaml(path, RuntimeFile)


@functools.lru_cache(maxsize=1)
def _runtimes_path() -> str:
    return str(workloads_path("runtimes.yaml"))


def runtime_file() -> RuntimeFile:
    """workloads/runtimes.yaml, validated."""
    return _load(_runtimes_path())


def load_runtime(name: "str | RuntimeProfile | None" = None) -> RuntimeProfile:
    """The profile called ``name`` (None: the default, eager); a RuntimeProfile passes through."""
    if isinstance(name, RuntimeProfile):
        return name
    key = DEFAULT_RUNTIME if name is None else RUNTIMES.lookup(name)
    return runtime_file().runtimes[key]


def runtime_name(name: "str | None") -> str:
    """The canonical name of a runtime argument (checked)."""
    load_runtime(name)
    return DEFAULT_RUNTIME if name is None else str(name).strip().lower()


def reprice_launches(columns: dict, launch_s, hw, sparse_extra=False) -> None:
    """Re-price ops' launch overhead in place: the spec's eager launch cost in ``overhead_s``
    becomes ``launch_s`` per launch (an array over the points). The columns are one op's arrays
    over the points, or an op record's (ops, points) arrays. ``sparse_extra`` (one bool, or one per
    op as an (ops, 1) array): the op's overhead also holds the device's sparse-kernel extra (torch's
    2:4 path's extra kernels), which is kernel work and stays. Time and bound are recomputed."""
    overhead = np.asarray(columns["overhead_s"], float)
    if not np.any(overhead):
        return
    extra = hw.sparse_kernel_extra_s * np.asarray(sparse_extra, float)  # per op where an array
    launches = np.maximum(overhead - extra, 0.0) / hw.launch_overhead_s
    new_overhead = launches * launch_s + (overhead - np.maximum(overhead - extra, 0.0))
    time = np.asarray(columns["time_s"], float)
    roof = time - overhead
    columns["overhead_s"] = new_overhead
    columns["time_s"] = roof + new_overhead
    code = np.asarray(columns["bound_code"])
    if "compute_time_s" in columns and "memory_time_s" in columns:
        compute = np.asarray(columns["compute_time_s"], float)
        memory = np.asarray(columns["memory_time_s"], float)
        on_roof = code < Bound.COMMUNICATION  # kernels on the device's roofline; comm/offload/runtime keep theirs
        kept = np.where(on_roof, bound_codes(compute, memory, 0.0), code)
        columns["bound_code"] = np.where(on_roof & (new_overhead > roof), int(Bound.OVERHEAD), kept)


def describe() -> list[dict]:
    """One row per runtime: its name, numbers (us; None = the device's eager launch) and sources."""
    rows = []
    for name, p in runtime_file().runtimes.items():
        rows.append({"runtime": name, "description": p.description,
                     "prefill_kernel_launch_us": p.prefill_kernel_launch_us.value,
                     "decode_kernel_launch_us": p.decode_kernel_launch_us.value,
                     "step_us": p.step_us.value, "per_sequence_us": p.per_sequence_us.value,
                     "sources": {k: getattr(p, k).source for k in ("prefill_kernel_launch_us",
                                                                   "decode_kernel_launch_us", "step_us",
                                                                   "per_sequence_us")}})
    return rows

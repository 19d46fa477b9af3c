"""Hardware specs: a strict pydantic schema over ``hwspecs/<id>.yaml``, loaded once into SI units.

Spec files say their units in their keys (``bandwidth_GBps``, ``size_MiB``, ``dense_TFLOPS``)
and carry a ``source`` next to every group of numbers. This module converts them once:
everything the cost models read is in seconds, bytes, FLOP and their rates.

Conventions (also stated at the top of every spec file):
- GBps and TFLOPS are decimal (1e9 B/s, 1e12 FLOP/s); MiB and GiB are binary (2**20, 2**30 B).
  Memory capacity is binary because memory parts are: nvidia-smi reports an A100 80GB as 81,920 MiB.
- Matrix (tensor-core) peaks are per dtype, dense; ``sparse_TFLOPS`` is the 2:4 (or 1:2 / 4:8
  pair-wise) peak counted in dense-equivalent FLOP, as NVIDIA quotes it.
- FLOP = 2 x MAC for every dtype, integers included.
- ``matrix.mma_sync`` (optional) lists the PTX warp-level instruction shapes per dtype
  ('m16n8k16'; mma.sp doubles K); facts for teaching, not read by the cost models.
- Datasheet peaks and achievable fractions (``efficiency``) are separate; calibration fits the
  fractions, never the peaks.

Over 600 lines: the spec schema, every field with its meaning and unit, and the loader.
"""

from __future__ import annotations

import functools
import os
import re
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import Field, field_validator, model_validator

from simulator.core.datafiles import Strict, check_citations, check_file, looks_like_path, parse_yaml, read_yaml, validate
from simulator.core.dtypes import Dtype
from simulator.core.errors import SimulatorError
from simulator.core.paths import data_root

Architecture = Literal[
    "kepler", "maxwell", "ampere", "ada", "hopper", "blackwell", "haswell", "zen4"
]
SparsePattern = Literal["2:4", "1:2", "4:8-pairwise"]

# Which dtypes each architecture's tensor cores run sparse, and with which pattern
# (PTX ISA 9.1 §9.7.14.6, §9.7.15.6, §9.7.16.10.8; cuSPARSELt 0.8.1 data-type table, PyPI nvidia-cusparselt-cu13 0.8.1).
SPARSE_PATTERNS: dict[str, dict[str, str]] = {
    "ampere": {"tf32": "1:2", "fp16": "2:4", "bf16": "2:4", "int8": "2:4", "int4": "4:8-pairwise"},
    "ada": {"tf32": "1:2", "fp16": "2:4", "bf16": "2:4", "fp8": "2:4", "int8": "2:4",
            "int4": "4:8-pairwise"},
    "hopper": {"tf32": "1:2", "fp16": "2:4", "bf16": "2:4", "fp8": "2:4", "int8": "2:4"},
    "blackwell": {"tf32": "1:2", "fp16": "2:4", "bf16": "2:4", "fp8": "2:4", "int8": "2:4",
                  "fp4": "4:8-pairwise"},
}



class Sourced(Strict):
    """One number and where it comes from."""

    value: float = Field(gt=0)
    source: str = Field(min_length=3)


class ComputeSpec(Strict):
    units: int = Field(gt=0, description="SMs on a GPU, cores on a CPU")
    unit_name: str = Field(min_length=1)
    clock_MHz: float = Field(gt=0, description="clock at which the matrix peaks are quoted")
    source: str = Field(min_length=3)


class MatrixPeak(Strict):
    dense_TFLOPS: float = Field(gt=0)
    sparse_TFLOPS: Optional[float] = Field(default=None, gt=0)
    sparse_pattern: Optional[SparsePattern] = None

    @model_validator(mode="after")
    def _sparse_consistent(self):
        if (self.sparse_TFLOPS is None) != (self.sparse_pattern is None):
            raise ValueError("sparse_TFLOPS and sparse_pattern go together")
        if self.sparse_TFLOPS is not None and not (
            self.dense_TFLOPS <= self.sparse_TFLOPS <= 2.0 * self.dense_TFLOPS * 1.001
        ):
            raise ValueError(
                f"sparse_TFLOPS {self.sparse_TFLOPS} must lie between dense_TFLOPS "
                f"{self.dense_TFLOPS} and 2x dense (a 50% pattern cannot do better)"
            )
        return self


class MmaShape(Strict):
    """A warp-level MMA instruction's shape, written as PTX does: 'm16n8k16'."""

    dense: str = Field(pattern=r"^m\d+n\d+k\d+$")
    sparse: Optional[str] = Field(default=None, pattern=r"^m\d+n\d+k\d+$")

    @staticmethod
    def mnk(text: str) -> tuple[int, int, int]:
        m, n, k = re.fullmatch(r"m(\d+)n(\d+)k(\d+)", text).groups()
        return int(m), int(n), int(k)

    @model_validator(mode="after")
    def _sparse_doubles_k(self):
        if self.sparse is not None:
            (m, n, k), (sm, sn, sk) = self.mnk(self.dense), self.mnk(self.sparse)
            if (sm, sn, sk) != (m, n, 2 * k):
                raise ValueError(f"sparse {self.sparse} must be dense {self.dense} with K doubled "
                                 "(mma.sp stores half of A's K)")
        return self


class MmaInstructions(Strict):
    """PTX warp-level mma.sync / mma.sp shapes per dtype (the largest of each)."""

    shapes: dict[Dtype, MmaShape] = Field(min_length=1)
    source: str = Field(min_length=3)


class MatrixSpec(Strict):
    peaks: dict[Dtype, MatrixPeak]
    source: str = Field(min_length=3)
    mma_sync: Optional[MmaInstructions] = None

    @model_validator(mode="after")
    def _instructions_match_peaks(self):
        if self.mma_sync is not None:
            for dtype, shape in self.mma_sync.shapes.items():
                if dtype not in self.peaks:
                    raise ValueError(f"mma_sync.shapes.{dtype}: no {dtype} tensor-core peak in peaks")
                if (shape.sparse is not None) != (self.peaks[dtype].sparse_pattern is not None):
                    raise ValueError(f"mma_sync.shapes.{dtype}: a sparse shape goes with a sparse peak, "
                                     "and only with one")
        return self


class VectorSpec(Strict):
    peaks_TFLOPS: dict[Dtype, float]
    source: str = Field(min_length=3)

    @field_validator("peaks_TFLOPS")
    @classmethod
    def _positive(cls, peaks):
        for dtype, value in peaks.items():
            if not value > 0:
                raise ValueError(f"{dtype}: peak must be > 0, got {value}")
        return peaks


class MemorySpec(Strict):
    type: str = Field(min_length=1)
    capacity_GiB: float = Field(gt=0)
    bandwidth_GBps: float = Field(gt=0)
    source: str = Field(min_length=3)


class CacheSpec(Strict):
    size_MiB: float = Field(gt=0)
    bandwidth_GBps: Optional[float] = Field(default=None, gt=0)
    source: str = Field(min_length=3)


class CollectiveSpec(Strict):
    """Ring all-reduce over ``link``: 2(p-1) steps of latency, 2(p-1)/p of the data over the
    link's one-way bandwidth x ``bus_efficiency`` (NCCL's protocol overhead)."""

    link: Literal["nvlink", "pcie"]
    step_latency_us: float = Field(gt=0)
    bus_efficiency: float = Field(gt=0, le=1)
    source: str = Field(min_length=3)


class InternodeSpec(Strict):
    """The network between nodes, per GPU (one NIC each, as in DGX/HGX systems): what pipeline
    stages on different nodes, or a ring that leaves the node, send over."""

    per_gpu_Gbps: float = Field(gt=0)
    latency_us: float = Field(gt=0)
    source: str = Field(min_length=3)


class TopologySpec(Strict):
    """One interconnect an all-reduce can run over (simulator.kernels.collectives): NCCL ring or tree over
    links of ``one_way_GBps`` per GPU and direction, at ``bus_efficiency`` of it (NCCL's bus
    bandwidth), ``step_latency_us`` per ring step / tree hop and ``base_latency_us`` per call."""

    name: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    link: Literal["nvswitch", "nvlink-bridge", "pcie", "infiniband"]
    one_way_GBps: float = Field(gt=0, description="per GPU, per direction, decimal GB/s")
    max_gpus: int = Field(ge=2)
    bus_efficiency: float = Field(gt=0, le=1)
    step_latency_us: float = Field(gt=0)
    base_latency_us: float = Field(gt=0)
    source: str = Field(min_length=3)


class InterconnectSpec(Strict):
    nvlink_bidirectional_GBps: Optional[float] = Field(default=None, gt=0)
    pcie_bidirectional_GBps: Optional[float] = Field(default=None, gt=0)
    source: str = Field(min_length=3)
    collective: Optional[CollectiveSpec] = None
    # False for GeForce cards: no GPU-to-GPU DMA, so traffic between GPUs is staged through host
    # memory (device -> host, host -> device: each byte crosses PCIe twice)
    peer_to_peer: bool = True
    gpus_per_node: Optional[int] = Field(default=None, ge=1)  # the NVLink/PCIe domain of one node
    internode: Optional[InternodeSpec] = None
    # The interconnects estimate_allreduce can name (the first is the default); absent: the
    # ``collective`` ring above is the only one.
    topologies: Optional[list[TopologySpec]] = Field(default=None, min_length=1)

    @field_validator("topologies")
    @classmethod
    def _unique_names(cls, topologies):
        names = [t.name for t in topologies or []]
        if len(set(names)) != len(names):
            raise ValueError(f"topology names must be unique, got {names}")
        return topologies

    @model_validator(mode="after")
    def _link_exists(self):
        if self.collective is not None:
            bw = self.nvlink_bidirectional_GBps if self.collective.link == "nvlink" else self.pcie_bidirectional_GBps
            if bw is None:
                raise ValueError(f"collective.link: {self.collective.link!r} has no bandwidth in this group")
        return self


class PowerSpec(Strict):
    tdp_W: float = Field(gt=0)
    source: str = Field(min_length=3)


class TilingSpec(Strict):
    """What the GEMM libraries do with a shape: tiles (tokens x weights), split-K, operand feed."""

    tile_candidates: list[tuple[int, int]] = Field(min_length=1)
    split_k_max: int = Field(ge=1)
    # Bytes per clock one SM (core) receives from L2 for its operand tiles: caps a tile's rate
    # at feed x tile intensity. DERIVED from the L2 bandwidth / units where that is published.
    operand_feed_bytes_per_clk_per_unit: float = Field(gt=0)
    source: str = Field(min_length=3)

    @field_validator("tile_candidates")
    @classmethod
    def _tiles_positive(cls, tiles):
        for tile in tiles:
            if min(tile) <= 0:
                raise ValueError(f"tile {list(tile)} must have positive sides")
        return tiles


class SameSilicon(Strict):
    """Another shipped device on the same die and clocks, whose fitted compute-side efficiencies
    (calibration_file.COMPUTE_PARAMETERS) this one uses while it has no traces of its own."""

    device: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    source: str = Field(min_length=3)


class OverheadSpec(Strict):
    kernel_launch_us: Sourced
    sparse_kernel_extra_us: Sourced
    # Host time of one Python-level torch call in eager PyTorch (interpreter, dispatcher, launch),
    # which bounds an eager, unbatched step from below. No source gives it; absent until fitted on
    # host-timed layer traces (validation class layer-eager), and then a property of the host and
    # software that ran them, not of the GPU.
    host_call_us: Optional[Sourced] = None
    # Small-kernel memory ramp: a streaming kernel pays a fixed time before its bytes flow at the
    # achievable bandwidth (DRAM latency, the first wave's loads in flight, the tail wave draining),
    # so a 10 MB weight streams well below peak. Absent: 0 (bytes at bandwidth from the first byte).
    # Fitted on kernel-timed GEMM traces (Vidur's); part of kernel_time_s, not of the launch.
    memory_ramp_us: Optional[Sourced] = None
    # Fixed time of one CTA tile of a tiled (tensor-core) GEMM apart from its K loop: filling the
    # shared-memory pipeline before the first MMA (the prologue's loads) and storing the output
    # tile (the epilogue), so a tile with a short K loop runs below the MMA rate. Absent: 0.
    # Fitted on kernel-timed GEMM traces; compute-side (the SM's pipeline, not the memory).
    tile_fixed_us: Optional[Sourced] = None


class EfficiencySpec(Strict):
    """Achievable fractions of the datasheet peaks. Calibration refits these, never the peaks."""

    hbm: Sourced
    dense_matrix: Sourced
    sparse_matrix: Sourced
    vector: Sourced
    csr_compute: Sourced
    csr_memory: Sourced
    bitmap_compute: Sourced
    bitmap_memory: Sourced
    bsr_half_block: Sourced  # block edge (elements) at which BSR reaches half its dense rate
    # The 8-bit tensor-core paths run other kernels (cuBLASLt fp8 with scaling, IMMA) than 16-bit
    # GEMMs and reach another share of their peak; absent: dense_matrix. Sparse (2:4) and block
    # kernels of these dtypes scale by the same ratio.
    dense_matrix_fp8: Optional[Sourced] = None
    dense_matrix_int8: Optional[Sourced] = None
    # Weight-only quantization (int8/int4 weights, math in the activations' dtype): the fractions
    # of peak bandwidth and of the math peak that a dequantizing kernel reaches (unpacking and
    # scaling every weight on the way in takes issue slots; a different kernel tiles differently).
    # Absent: the plain kernel's `hbm` and `dense_matrix`/`vector`, i.e. dequantization is free.
    # Calibration fits them on weight-only traces (capture class "weight-only").
    weight_only_int8_memory: Optional[Sourced] = None
    weight_only_int8_compute: Optional[Sourced] = None
    weight_only_int4_memory: Optional[Sourced] = None
    weight_only_int4_compute: Optional[Sourced] = None
    # How much of a partly filled last wave of CTA tiles a tiled GEMM still pays: 1 = whole waves
    # (every wave as long as a full one), 0 = none (work spread evenly over the SMs, as stream-K /
    # persistent schedules and cuBLAS's choice among tile shapes approach). Absent: 1.
    wave_tail: Optional[Sourced] = None

    @model_validator(mode="after")
    def _fractions(self):
        for name in type(self).model_fields:
            if name == "bsr_half_block" or getattr(self, name) is None:
                continue
            value = getattr(self, name).value
            if not 0.0 < value <= 1.0:
                raise ValueError(f"{name}.value: an efficiency is a fraction in (0, 1], got {value}")
        if self.sparse_matrix.value > self.dense_matrix.value:
            raise ValueError(
                "sparse_matrix.value must not exceed dense_matrix.value "
                f"({self.sparse_matrix.value} > {self.dense_matrix.value}): "
                "a 2:4 kernel is never better tuned than the dense one, so 2:4 math stays <= 2x"
            )
        return self


    def matrix(self, dtype: str) -> float:
        """Dense tensor-core efficiency for ``dtype``: its own field if set, else dense_matrix."""
        field = getattr(self, f"dense_matrix_{dtype}", None) if dtype in ("fp8", "int8") else None
        return self.dense_matrix.value if field is None else field.value

    def weight_only(self, weight_dtype: str, resource: str) -> "float | None":
        """``weight_only_<weight_dtype>_<resource>`` (resource: memory or compute), None if absent."""
        field = getattr(self, f"weight_only_{weight_dtype}_{resource}", None)
        return None if field is None else field.value


class HardwareSpec(Strict):
    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    name: str = Field(min_length=1)
    kind: Literal["gpu", "cpu"]
    architecture: Architecture
    compute_capability: Optional[str] = None
    aliases: list[str] = Field(default_factory=list)
    notes: Optional[str] = None
    references: dict[str, str] = Field(min_length=1)
    compute: ComputeSpec
    matrix: Optional[MatrixSpec] = None
    vector: VectorSpec
    memory: MemorySpec
    l2: Optional[CacheSpec] = None
    interconnect: Optional[InterconnectSpec] = None
    power: PowerSpec
    tiling: TilingSpec
    overhead: OverheadSpec
    efficiency: EfficiencySpec
    compute_calibration_from: Optional[SameSilicon] = None
    # Set by load_hw when hwspecs/<id>/calibration.yaml was applied (never written in a spec file).
    calibration: Optional[str] = None

    @property
    def calibration_state(self) -> str:
        """'calibrated' (its own traces), 'compute from <device>' (a same-silicon sibling's fit
        only) or 'spec defaults'."""
        if self.calibration is None:
            return "spec defaults"
        if self.calibration.startswith("INHERITED") and self.compute_calibration_from is not None:
            return f"compute from {self.compute_calibration_from.device}"
        return "calibrated"

    @model_validator(mode="after")
    def _cross_checks(self):
        supported = SPARSE_PATTERNS.get(self.architecture, {})
        if self.matrix is not None:
            for dtype, peak in self.matrix.peaks.items():
                if peak.sparse_TFLOPS is None:
                    continue
                if dtype not in supported:
                    allowed = ", ".join(supported) or "none"
                    raise ValueError(
                        f"matrix.peaks.{dtype}.sparse_TFLOPS: {self.architecture} tensor cores "
                        f"have no sparse mode for {dtype} (sparse dtypes: {allowed})"
                    )
                if peak.sparse_pattern != supported[dtype]:
                    raise ValueError(
                        f"matrix.peaks.{dtype}.sparse_pattern: {peak.sparse_pattern!r} is not the "
                        f"{self.architecture} pattern for {dtype} ({supported[dtype]!r})"
                    )
        check_citations(self, self.references)
        return self

    # ---- SI accessors: the only way cost models read a spec ------------------------------
    @property
    def units(self) -> int:
        return self.compute.units

    @property
    def clock_hz(self) -> float:
        return self.compute.clock_MHz * 1e6

    @property
    def memory_bandwidth_bytes_per_s(self) -> float:
        return self.memory.bandwidth_GBps * 1e9

    @property
    def memory_capacity_bytes(self) -> float:
        return self.memory.capacity_GiB * 2**30

    @property
    def l2_size_bytes(self) -> Optional[float]:
        return None if self.l2 is None else self.l2.size_MiB * 2**20

    @property
    def l2_bandwidth_bytes_per_s(self) -> Optional[float]:
        if self.l2 is None or self.l2.bandwidth_GBps is None:
            return None
        return self.l2.bandwidth_GBps * 1e9

    @property
    def launch_overhead_s(self) -> float:
        return self.overhead.kernel_launch_us.value * 1e-6

    @property
    def memory_ramp_s(self) -> float:
        ramp = self.overhead.memory_ramp_us
        return 0.0 if ramp is None else ramp.value * 1e-6

    @property
    def tile_fixed_s(self) -> float:
        fixed = self.overhead.tile_fixed_us
        return 0.0 if fixed is None else fixed.value * 1e-6

    @property
    def sparse_kernel_extra_s(self) -> float:
        return self.overhead.sparse_kernel_extra_us.value * 1e-6

    @property
    def operand_feed_bytes_per_s_per_unit(self) -> float:
        return self.tiling.operand_feed_bytes_per_clk_per_unit * self.clock_hz

    def allreduce_time_s(self, message_bytes, tp: int):
        """Ring all-reduce of ``message_bytes`` (per GPU) over ``tp`` GPUs, in seconds."""
        if tp == 1:
            return message_bytes * 0.0
        coll = self.interconnect.collective if self.interconnect else None
        if coll is None:
            from simulator.core.errors import SimulatorError

            raise SimulatorError(f"--tp {tp}: {self.id}'s spec has no interconnect.collective parameters, "
                                 "so multi-GPU communication cannot be estimated on it")
        bidirectional = (self.interconnect.nvlink_bidirectional_GBps if coll.link == "nvlink"
                         else self.interconnect.pcie_bidirectional_GBps)
        one_way = bidirectional * 1e9 / 2.0
        if not self.interconnect.peer_to_peer:
            one_way = one_way / 2.0  # staged through host memory: each byte crosses PCIe twice
        step_latency_s = coll.step_latency_us * 1e-6
        per_node = self.interconnect.gpus_per_node
        if per_node is not None and tp > per_node:
            # a ring over several nodes runs at its slowest link: the internode network
            net = self.interconnect.internode
            if net is None:
                from simulator.core.errors import SimulatorError

                raise SimulatorError(f"--tp {tp}: more GPUs than one {self.id} node ({per_node}) and its spec has "
                                     "no interconnect.internode group to price the ring between nodes")
            one_way = min(one_way, net.per_gpu_Gbps * 1e9 / 8.0)
            step_latency_s = max(step_latency_s, net.latency_us * 1e-6)
        steps = 2 * (tp - 1)
        return steps * step_latency_s + steps / tp * message_bytes / (one_way * coll.bus_efficiency)

    def p2p_time_s(self, message_bytes, across_nodes: bool = False):
        """One GPU sending ``message_bytes`` to another (a pipeline stage boundary), in seconds:
        over the internode network when ``across_nodes``, else the node's link (NVLink, or PCIe,
        through host memory without peer-to-peer) at the collective's bus efficiency."""
        from simulator.core.errors import SimulatorError

        ic = self.interconnect
        if across_nodes:
            if ic is None or ic.internode is None:
                raise SimulatorError(f"--pp: {self.id}'s spec has no interconnect.internode group, so stages on "
                                     "different nodes cannot be priced (use fewer GPUs per replica)")
            net = ic.internode
            return net.latency_us * 1e-6 + message_bytes / (net.per_gpu_Gbps * 1e9 / 8.0)
        coll = ic.collective if ic else None
        if coll is None:
            raise SimulatorError(f"--pp: {self.id}'s spec has no interconnect.collective parameters, so "
                                 "GPU-to-GPU transfers cannot be estimated on it")
        bidirectional = ic.nvlink_bidirectional_GBps if coll.link == "nvlink" else ic.pcie_bidirectional_GBps
        one_way = bidirectional * 1e9 / 2.0 * (1.0 if ic.peer_to_peer else 0.5)
        return coll.step_latency_us * 1e-6 + message_bytes / (one_way * coll.bus_efficiency)

    def matrix_peak_flop_per_s(self, dtype: str, sparse: bool = False) -> Optional[float]:
        """Tensor-core peak for ``dtype`` in FLOP/s (dense-equivalent when sparse), or None."""
        if self.matrix is None or dtype not in self.matrix.peaks:
            return None
        peak = self.matrix.peaks[dtype]
        value = peak.sparse_TFLOPS if sparse else peak.dense_TFLOPS
        return None if value is None else value * 1e12

    def sparse_pattern(self, dtype: str) -> Optional[str]:
        if self.matrix is None or dtype not in self.matrix.peaks:
            return None
        return self.matrix.peaks[dtype].sparse_pattern

    def vector_peak_flop_per_s(self, dtype: str) -> Optional[float]:
        """CUDA-core / SIMD peak in FLOP/s; 16-bit types fall back to fp32 units if not listed."""
        peaks = self.vector.peaks_TFLOPS
        if dtype in peaks:
            return peaks[dtype] * 1e12
        if dtype in ("fp16", "bf16", "tf32") and "fp32" in peaks:
            return peaks["fp32"] * 1e12
        return None

    def compute_dtypes(self) -> list[str]:
        """Dtypes this device can multiply, on tensor cores or vector units."""
        found = list(self.matrix.peaks) if self.matrix else []
        found += [d for d in ("fp64", "fp32", "fp16", "bf16") if self.vector_peak_flop_per_s(d)
                  and d not in found]
        return found


# ---- loading ---------------------------------------------------------------------------------

def hwspecs_dir() -> Path:
    """Where the shipped spec files live (override with $SPARSIM_HWSPECS)."""
    return _hwspecs_dir(os.environ.get("SPARSIM_HWSPECS"))


@functools.lru_cache(maxsize=8)
def _hwspecs_dir(override: "str | None") -> Path:
    path = Path(override).absolute() if override else data_root() / "hwspecs"
    if not path.is_dir():
        raise SimulatorError(
            f"hardware spec folder {path} not found; reinstall sparsim (pip install .) or point "
            "SPARSIM_HWSPECS at a folder of spec files"
        )
    return path


@functools.lru_cache(maxsize=64)
def _load_file(path: Path, mtime: float) -> HardwareSpec:
    raw = read_yaml(path)
    if isinstance(raw, dict) and raw.get("kind") == "pe-array":
        raise SimulatorError(f"{path}: {raw.get('id')} is a PE-array accelerator (kind: pe-array), not a GPU "
                             "or CPU; it is modelled by `sparsim eie` (simulator.kernels.eie)")
    return validate(path, raw, HardwareSpec)


def load_hw_file(path: str | Path) -> HardwareSpec:
    path = check_file(path, "--hw: spec file")
    return _load_file(path.absolute(), path.stat().st_mtime)


# Spec files of other kinds share hwspecs/ but not this schema: the EIE PE array
# (`kind: pe-array`) is read by simulator/kernels/eie.py.
GPU_CPU_KINDS = ("gpu", "cpu")


def _spec_files() -> list[Path]:
    """GPU and CPU spec files (a file whose kind cannot be read stays in, to fail loudly)."""
    folder = hwspecs_dir()
    return list(_spec_files_cached(folder, folder.stat().st_mtime_ns))


@functools.lru_cache(maxsize=8)
def _spec_files_cached(folder: Path, folder_mtime_ns: int) -> tuple:
    # Keyed on the folder's mtime: adding, removing or renaming a spec invalidates it; editing
    # a file in place is caught by _load_file's own (path, mtime) key.
    paths = sorted(folder.glob("*.yaml"))
    kinds = _raw_kinds(folder, tuple((p.name, p.stat().st_mtime) for p in paths))
    return tuple(p for p in paths if kinds.get(p.stem) in GPU_CPU_KINDS + (None,))


@functools.lru_cache(maxsize=8)
def _raw_kinds(folder: Path, files: tuple) -> dict[str, "str | None"]:
    return {stem: kind for stem, (kind, _aliases) in _raw_headers(folder, files).items()}


# The top-level `kind:` and `aliases:` lines of a spec, read without parsing the whole file (an
# alias lookup would otherwise parse every spec in hwspecs/); any other layout is parsed whole.
_HEADER_LINE = re.compile(r"^(?:kind|aliases):[^\n]*$", re.MULTILINE)


def _header_fields(text: str):
    try:
        raw = parse_yaml("\n".join(m.group(0) for m in _HEADER_LINE.finditer(text)))
        if isinstance(raw, dict) and all(raw.get(key) is not None for key in raw):
            return raw
        return parse_yaml(text)  # e.g. a block list under `aliases:`
    except yaml.YAMLError:
        try:
            return parse_yaml(text)
        except yaml.YAMLError:
            return None


@functools.lru_cache(maxsize=8)
def _raw_headers(folder: Path, files: tuple) -> dict[str, tuple]:
    """stem -> (kind, aliases) of every YAML file in ``folder``, each parsed once per process and
    not validated (one broken spec breaks only itself, when it is loaded)."""
    headers = {}
    for name, _mtime in files:
        raw = _header_fields((folder / name).read_text())
        kind = raw.get("kind") if isinstance(raw, dict) else None
        aliases = raw.get("aliases") if isinstance(raw, dict) else None
        headers[name.removesuffix(".yaml")] = (kind if isinstance(kind, str) else None,
                                               tuple(str(a).lower() for a in aliases) if isinstance(aliases, list) else ())
    return headers


def list_hw() -> list[HardwareSpec]:
    """Every shipped device spec, validated, sorted by id."""
    specs = []
    for path in _spec_files():
        spec = load_hw_file(path)
        if spec.id != path.stem:
            raise SimulatorError(f"{path}: id: {spec.id!r} must equal the file name {path.stem!r}")
        specs.append(spec)
    return specs


def load_hw(name: "str | Path | HardwareSpec", calibrated: bool = True) -> HardwareSpec:
    """A device by id (``h100-sxm5-80gb``), alias (``h100``) or path to a YAML spec.

    With ``calibrated`` (the default) a shipped device's fitted efficiencies from
    ``hwspecs/<id>/calibration.yaml`` replace the spec's defaults when that file exists.
    """
    if isinstance(name, HardwareSpec):
        if not calibrated and name.calibration is not None:
            return load_hw(name.id, calibrated=False)
        return name
    text = str(name)
    if looks_like_path(text):
        return load_hw_file(text)  # a user's own spec: no calibration is looked up
    key = text.strip().lower()
    folder = hwspecs_dir()
    found = _RESOLVED.get((str(folder), key, calibrated))
    if found is not None and _stamps(found[1]) == found[2]:
        return found[0]
    spec, direct = _resolve_hw(text, key, folder, calibrated)
    # what decided the answer: the folders (a file added or removed: an alias, a calibration
    # file) and the files read; any of them changed, the name is resolved again
    paths = [str(folder), str(direct), str(folder / spec.id)]
    sibling = spec.compute_calibration_from
    if calibrated and sibling is not None:
        paths.append(str(folder / sibling.device))
    if calibrated:
        paths += [p for p in (str(folder / spec.id / "calibration.yaml"),
                              str(folder / sibling.device / "calibration.yaml") if sibling is not None else None)
                  if p is not None]
    if len(_RESOLVED) > 256:
        _RESOLVED.clear()
    _RESOLVED[(str(folder), key, calibrated)] = (spec, tuple(paths), _stamps(tuple(paths)))
    return spec


# (hwspecs folder, name, calibrated) -> (spec, paths it depends on, their stamps): a name is
# resolved once per process while none of its files or folders changes (one os.stat each)
_RESOLVED: dict = {}


def _stamps(paths: tuple) -> tuple:
    out = []
    for path in paths:
        try:
            st = os.stat(path)
            out.append((st.st_mtime_ns, st.st_size))
        except OSError:
            out.append(None)
    return tuple(out)


def _resolve_hw(text: str, key: str, folder: Path, calibrated: bool) -> tuple[HardwareSpec, Path]:
    """load_hw of a name: the spec and the file it was read from."""
    direct = folder / f"{key}.yaml"
    if not direct.is_file():
        index = _alias_index(folder, folder.stat().st_mtime_ns)
        if key in index:
            direct = folder / f"{index[key]}.yaml"
    if direct.is_file():
        spec = load_hw_file(direct)
        if not calibrated:
            return spec, direct
        # Layers, applied in order: a same-silicon sibling's compute side, then the device's own
        # fit (which wins where it pinned a parameter, and leaves the sibling's where it did not).
        layers = []
        sibling = spec.compute_calibration_from
        if sibling is not None and (folder / sibling.device / "calibration.yaml").is_file():
            layers.append((folder / sibling.device / "calibration.yaml", True))
        if (folder / spec.id / "calibration.yaml").is_file():
            layers.append((folder / spec.id / "calibration.yaml", False))
        if layers:
            return _calibrated(direct, direct.stat().st_mtime,
                               tuple((path, path.stat().st_mtime, compute_only) for path, compute_only in layers)), direct
        return spec, direct
    index = _alias_index(folder, folder.stat().st_mtime_ns)
    known = ", ".join(p.stem for p in _spec_files())
    aliases = ", ".join(sorted(index))
    raise SimulatorError(f"unknown device {text!r}; known: {known} (aliases: {aliases})")


@functools.lru_cache(maxsize=32)
def _calibrated(spec_path: Path, spec_mtime: float, layers: tuple) -> HardwareSpec:
    """The spec with each (calibration file, mtime, compute_only) layer applied in order."""
    from simulator.hardware.calibration_file import apply

    spec = _load_file(spec_path, spec_mtime)
    for path, _mtime, compute_only in layers:
        spec = _apply_layer(spec, path, compute_only, apply)
    return spec


def _apply_layer(spec: HardwareSpec, path: Path, compute_only: bool, apply) -> HardwareSpec:
    try:
        data = parse_yaml(path.read_text())
        return apply(spec, data, compute_only=compute_only, path=path,
                     uncalibrated=lambda device: load_hw(device, calibrated=False))
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        raise SimulatorError(f"{path}: not a calibration file sparsim wrote ({exc!r}); "
                             "refit with `sparsim calibrate`") from None


@functools.lru_cache(maxsize=8)
def _alias_index(folder: Path, folder_mtime_ns: int) -> dict[str, str]:
    """alias -> id, from the same one-pass read as the kinds (no spec is parsed twice).
    (Aliases live in the files; editing one in place needs a new process or a file rename.)"""
    paths = sorted(folder.glob("*.yaml"))
    headers = _raw_headers(folder, tuple((p.name, p.stat().st_mtime) for p in paths))
    index = {}
    for path in _spec_files():
        for alias in headers.get(path.stem, (None, ()))[1]:
            index[alias] = path.stem
    return index

"""EIE (Han et al., ISCA 2016): the sparse PE-array accelerator, modelled from its architecture.

EIE computes one fully connected layer b = f(W a), W of rows x cols (outputs x inputs), on N
processing elements (PEs):

- **Storage.** Row i of W lives on PE i mod N. Each PE keeps its slice of every column in a
  relative-indexed CSC: one 8-bit entry per non-zero (4-bit codebook index + 4-bit count of the
  zeros before it), plus a filler zero entry wherever more than 15 zeros separate two non-zeros
  of the slice. Columns are pointed to by 16-bit pointers. Output rows are accumulated in 64
  registers per PE, so layers with more than 64 x N outputs run in output batches, each of which
  broadcasts the input activations again.
- **Execution.** The central unit scans a for non-zeros (leading non-zero detection) and
  broadcasts one per cycle into every PE's activation queue (depth 8); broadcasting stops while
  any queue is full. A PE takes the activation at the head of its queue and processes its entries
  of that column, one per cycle (at least ``min_cycles_per_column``: the pointer read).

The simulator counts every PE's entries per broadcast column with numpy (bincount over the
non-zeros), then runs the queue recurrence exactly, vectorized over PEs and over blocks of
``depth`` columns (see ``queue_cycles``). Energy counts events (64-bit SpMat reads, entries,
pointer reads, queue operations, stalled PE-cycles, LNZD-cycles) at per-event energies derived
from the paper's per-PE power breakdown (``EIESpec.event_energies_J``). Units inside: seconds,
joules, bytes, cycles. The paper's per-layer results (Table IV) are never read by the model;
``comparison_table`` shows them next to ours.

Over 600 lines: the EIE PE-array simulator is one model (layers, cycles, energy, the comparison tables) over one spec schema.
"""

from __future__ import annotations

import functools
import math
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from simulator.core.datafiles import Strict, check_citations, check_file, load_yaml, looks_like_path, read_yaml, validate
from simulator.core.errors import SimulatorError
from simulator.core.paths import data_root

DEFAULT_SPEC = "eie-64pe"
MAX_PES = 65535  # PE ids are sorted as uint16 (numpy's radix sort); far beyond any EIE design
SCALING_PES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# The simulator holds (PE x output batch x column) counts and a (broadcast x PE) service matrix:
# ~50 ns per slot on a laptop core. One command simulates at most this many slots (~10 s), so a
# study like 1:65535:+1 is refused up front instead of running for an hour.
MAX_SIMULATED_SLOTS = 100_000_000
_SENTINEL = -(1 << 60)  # "minus infinity" for integer cycle arithmetic


# ---- spec schema -------------------------------------------------------------------------------

class ArraySpec(Strict):
    pes: int = Field(ge=1, le=MAX_PES)
    clock_MHz: float = Field(gt=0)
    source: str = Field(min_length=3)


class SramSpec(Strict):
    spmat_KiB: float = Field(gt=0)
    pointer_KiB: float = Field(gt=0)
    activation_KiB: float = Field(gt=0)
    spmat_width_bits: int = Field(gt=0)
    source: str = Field(min_length=3)


class EncodingSpec(Strict):
    weight_index_bits: int = Field(ge=1, le=16)
    codebook_entries: int = Field(ge=2)
    codebook_value_bits: int = Field(ge=1)
    relative_index_bits: int = Field(ge=1, le=16)
    pointer_bits: int = Field(ge=1)
    source: str = Field(min_length=3)

    @model_validator(mode="after")
    def _codebook(self):
        if self.codebook_entries > 2 ** self.weight_index_bits:
            raise ValueError(f"codebook_entries {self.codebook_entries} cannot be addressed by "
                             f"{self.weight_index_bits}-bit weight indices")
        return self

    @property
    def entry_bits(self) -> int:
        return self.weight_index_bits + self.relative_index_bits


class PipelineSpec(Strict):
    activation_queue_depth: int = Field(ge=1)
    accumulators_per_pe: int = Field(ge=1)
    min_cycles_per_column: int = Field(ge=0)
    pipeline_stages: int = Field(ge=1)
    source: str = Field(min_length=3)


class PowerSpec(Strict):
    measured_at_clock_MHz: float = Field(gt=0)
    per_pe_total_mW: float = Field(gt=0)
    spmat_read_mW: float = Field(ge=0)
    pointer_read_mW: float = Field(ge=0)
    arithmetic_mW: float = Field(ge=0)
    activation_rw_mW: float = Field(ge=0)
    activation_queue_mW: float = Field(ge=0)
    clock_network_mW: float = Field(ge=0)
    lnzd_unit_mW: float = Field(ge=0)
    chip_W: float = Field(gt=0)
    source: str = Field(min_length=3)

    @model_validator(mode="after")
    def _modules_add_up(self):
        modules = (self.spmat_read_mW + self.pointer_read_mW + self.arithmetic_mW
                   + self.activation_rw_mW + self.activation_queue_mW)
        if abs(modules - self.per_pe_total_mW) > 0.01 * self.per_pe_total_mW:
            raise ValueError(f"the module powers add up to {modules:.4g} mW, not per_pe_total_mW "
                             f"{self.per_pe_total_mW:.4g} (Table II's by-module rows sum to the total)")
        if self.clock_network_mW > self.per_pe_total_mW:
            raise ValueError("clock_network_mW cannot exceed per_pe_total_mW")
        return self


class OperatingPointSpec(Strict):
    entries_per_cycle: float = Field(gt=0, le=1)
    spmat_reads_per_cycle: float = Field(gt=0, le=1)
    pointer_reads_per_cycle: float = Field(gt=0, le=1)
    queue_ops_per_cycle: float = Field(gt=0, le=1)
    source: str = Field(min_length=3)


class AreaSpec(Strict):
    pe_mm2: float = Field(gt=0)
    chip_mm2: float = Field(gt=0)
    lnzd_unit_um2: float = Field(gt=0)
    source: str = Field(min_length=3)


class ProjectionSpec(Strict):
    pes: int = Field(ge=1)
    clock_MHz: float = Field(gt=0)
    power_W: float = Field(gt=0)
    area_mm2: float = Field(gt=0)
    max_model_params: float = Field(gt=0)
    source: str = Field(min_length=3)


class EIESpec(Strict):
    """A PE-array accelerator spec (``hwspecs/eie-64pe.yaml``), strict and sourced."""

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    name: str = Field(min_length=1)
    kind: Literal["pe-array"]
    process: str = Field(min_length=1)
    notes: Optional[str] = None
    references: dict[str, str] = Field(min_length=1)
    array: ArraySpec
    sram: SramSpec
    encoding: EncodingSpec
    pipeline: PipelineSpec
    power: PowerSpec
    energy_operating_point: OperatingPointSpec
    area: AreaSpec
    projection_28nm_256pe: Optional[ProjectionSpec] = None

    @model_validator(mode="after")
    def _cited(self):
        check_citations(self, self.references)
        return self

    # ---- SI accessors ---------------------------------------------------------------------
    @property
    def pes(self) -> int:
        return self.array.pes

    @property
    def clock_hz(self) -> float:
        return self.array.clock_MHz * 1e6

    @property
    def spmat_bytes_per_pe(self) -> float:
        return self.sram.spmat_KiB * 1024

    @property
    def pointer_bytes_per_pe(self) -> float:
        return self.sram.pointer_KiB * 1024

    @property
    def activation_bytes_per_pe(self) -> float:
        return self.sram.activation_KiB * 1024

    @property
    def entries_per_spmat_read(self) -> int:
        return max(1, self.sram.spmat_width_bits // self.encoding.entry_bits)

    @property
    def event_energies_J(self) -> dict[str, float]:
        """Energy per event, derived from Table II's per-PE powers at the measurement clock.

        energy per event = module power / measurement clock / events per cycle at the operating
        point (a busy PE: one entry per cycle, one 64-bit SpMat read, one pointer-pair read and
        one queue operation per 8 cycles). A stalled PE-cycle costs the clock network's share.
        """
        p, op = self.power, self.energy_operating_point
        per_cycle = 1e-3 / (p.measured_at_clock_MHz * 1e6)  # mW -> J per cycle
        return {
            "spmat_read": p.spmat_read_mW * per_cycle / op.spmat_reads_per_cycle,
            "arithmetic": p.arithmetic_mW * per_cycle / op.entries_per_cycle,
            "activation_rw": p.activation_rw_mW * per_cycle / op.entries_per_cycle,
            "pointer_read": p.pointer_read_mW * per_cycle / op.pointer_reads_per_cycle,
            "queue_op": p.activation_queue_mW * per_cycle / op.queue_ops_per_cycle,
            "idle_pe_cycle": p.clock_network_mW * per_cycle,
            "lnzd_unit_cycle": p.lnzd_unit_mW * per_cycle,
        }

    def lnzd_units(self) -> int:
        """Leading-non-zero-detect units of the quadtree: 16 + 4 + 1 = 21 for 64 PEs ([EIE] §VI)."""
        units, level = 0, self.pes
        while True:
            level = -(-level // 4)
            units += level
            if level == 1:
                return units


# ---- loading -----------------------------------------------------------------------------------

def _root() -> Path:
    return data_root()


@functools.lru_cache(maxsize=16)
def _load_spec_file(path: Path, mtime: float) -> EIESpec:
    raw = read_yaml(path)
    if isinstance(raw, dict) and raw.get("kind") != "pe-array":
        raise SimulatorError(f"{path}: kind: {raw.get('kind')!r} is not a PE-array spec (kind: pe-array); "
                             "GPU and CPU specs are read by load_hw")
    return validate(path, raw, EIESpec)


def _check_int(name: str, value, low: int, high: Optional[int] = None) -> int:
    try:
        whole = isinstance(value, (int, np.integer)) or float(value).is_integer()
    except (TypeError, ValueError, OverflowError):
        whole = False
    if isinstance(value, bool) or not whole or value < low or (high and value > high):
        limit = f"between {low} and {high}" if high else f">= {low}"
        raise SimulatorError(f"{name}: must be a whole number {limit}, got {value}")
    return int(value)


def load_eie(name_or_path: Union[str, Path, EIESpec] = DEFAULT_SPEC, pes: Optional[int] = None,
             clock_mhz: Optional[float] = None, queue_depth: Optional[int] = None,
             accumulators_per_pe: Optional[int] = None) -> EIESpec:
    """An EIE spec by id (``eie-64pe``) or YAML path, with optional overrides.

    ``pes`` (1 to 65535; the paper built 64 and projected 256), ``clock_mhz`` (> 0),
    ``queue_depth`` (>= 1) and ``accumulators_per_pe`` (>= 1; output rows per PE per batch)
    replace the spec's values; per-event energies stay those derived at the measured clock.
    """
    if isinstance(name_or_path, EIESpec):
        spec = name_or_path
    else:
        text = str(name_or_path)
        if looks_like_path(text):
            check_file(text, "--spec: PE-array spec file")
        path = Path(text) if looks_like_path(text) else _root() / "hwspecs" / f"{text.strip().lower()}.yaml"
        if not path.is_file():
            folder = _root() / "hwspecs"
            known = [p.stem for p in sorted(folder.glob("*.yaml"))
                     if "kind: pe-array" in p.read_text()]
            raise SimulatorError(f"unknown PE-array spec {text!r}; known: {', '.join(known) or 'none'}")
        spec = _load_spec_file(path.resolve(), path.stat().st_mtime)
    array, pipeline = {}, {}
    if pes is not None:
        array["pes"] = _check_int("pes", pes, 1, MAX_PES)
    if clock_mhz is not None:
        if not (isinstance(clock_mhz, (int, float)) and math.isfinite(clock_mhz) and clock_mhz > 0):
            raise SimulatorError(f"clock_mhz: must be a positive number of MHz, got {clock_mhz}")
        array["clock_MHz"] = float(clock_mhz)
    if queue_depth is not None:
        pipeline["activation_queue_depth"] = _check_int("queue_depth", queue_depth, 1, 1 << 20)
    if accumulators_per_pe is not None:
        pipeline["accumulators_per_pe"] = _check_int("accumulators_per_pe", accumulators_per_pe, 1, 1 << 30)
    if array or pipeline:
        spec = spec.model_copy(update={"array": spec.array.model_copy(update=array),
                                       "pipeline": spec.pipeline.model_copy(update=pipeline)})
    return spec


# ---- layers ------------------------------------------------------------------------------------

class ReportedUs(Strict):
    cpu_dense: float = Field(gt=0)
    cpu_sparse: float = Field(gt=0)
    gpu_dense: float = Field(gt=0)
    gpu_sparse: float = Field(gt=0)
    mgpu_dense: float = Field(gt=0)
    mgpu_sparse: float = Field(gt=0)
    eie_theoretical: float = Field(gt=0)
    eie_actual: float = Field(gt=0)


class EIELayer(Strict):
    """One FC layer b = W a: W has ``output_size`` rows and ``input_size`` columns."""

    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    name: str = Field(min_length=1)
    network: str = ""
    input_size: int = Field(ge=1)
    output_size: int = Field(ge=1)
    weight_density: float = Field(gt=0, le=1)
    activation_density: float = Field(gt=0, le=1)
    flop_percent: Optional[float] = None
    source: str = Field(min_length=3)
    reported_us: Optional[ReportedUs] = None

    @property
    def rows(self) -> int:
        return self.output_size

    @property
    def cols(self) -> int:
        return self.input_size


class LayersFile(Strict):
    references: dict[str, str] = Field(min_length=1)
    reported_source: str = Field(min_length=3)
    layers: list[EIELayer] = Field(min_length=1)


class Baseline(Strict):
    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    label: str
    hw: str
    era: str
    dtype: str
    sparse_formats: list[Literal["csr", "bitmap", "masked"]] = Field(min_length=1)
    power_basis: Literal["measured", "tdp"]
    power_W: Optional[float] = Field(default=None, gt=0)
    kernels: str
    source: str = Field(min_length=3)

    @model_validator(mode="after")
    def _power(self):
        if (self.power_basis == "measured") != (self.power_W is not None):
            raise ValueError("power_W is given exactly when power_basis is 'measured'")
        return self


class BaselinesFile(Strict):
    references: dict[str, str] = Field(min_length=1)
    baselines: list[Baseline] = Field(min_length=1)


def _workload(name: str, model):
    path = _root() / "workloads" / "eie" / name
    if not path.is_file():
        raise SimulatorError(f"{path}: no such workload file")
    return load_yaml(path, model)


def load_layers() -> dict[str, EIELayer]:
    """EIE's nine benchmark layers ([EIE] Table III) by id, from ``workloads/eie/layers.yaml``."""
    return {layer.id: layer for layer in _workload("layers.yaml", LayersFile).layers}


def load_baselines() -> dict[str, Baseline]:
    return {b.id: b for b in _workload("baselines.yaml", BaselinesFile).baselines}


def get_layer(name: Union[str, EIELayer], weight_density: Optional[float] = None,
              activation_density: Optional[float] = None) -> EIELayer:
    """A named layer (``alex-6`` ...), optionally with its densities replaced."""
    if isinstance(name, EIELayer):
        layer = name
    else:
        layers = load_layers()
        key = str(name).strip().lower()
        if key not in layers:
            raise SimulatorError(f"unknown EIE layer {name!r}; known: {', '.join(layers)}")
        layer = layers[key]
    update = {}
    for field, value in (("weight_density", weight_density), ("activation_density", activation_density)):
        if value is not None:
            update[field] = _check_density(field, value)
    return layer.model_copy(update=update) if update else layer


def _check_density(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise SimulatorError(f"{name}: must be a number in (0, 1], got {value!r}") from None
    if not (math.isfinite(value) and 0.0 < value <= 1.0):
        raise SimulatorError(f"{name}: must lie in (0, 1] (a fraction of non-zeros), got {value:g}")
    return value


# ---- matrices ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=4)
def _synthetic_nonzeros(rows: int, cols: int, density: float, seed: int):
    """(row, col) of an i.i.d. Bernoulli(density) rows x cols matrix, column-major order.

    The gaps between consecutive non-zeros of the column-major stream are geometric:
    P(gap >= k) = (1 - d)^k = exp(-k rate), so gap = floor(Exp(1) / rate) + 1. Drawn in chunks
    of 2^19 so that the temporaries are reused rather than page-faulted in afresh.
    """
    total = rows * cols
    if density >= 1.0:
        col, row = np.divmod(np.arange(total, dtype=np.int64), rows)
        row, col = row.astype(np.int32), col.astype(np.int32)
    else:
        rng = np.random.default_rng((seed, 1))
        scale = 1.0 / -math.log1p(-density)
        expected = total * density
        capacity = int(expected + 8.0 * math.sqrt(expected + 1.0) + 64)
        row = np.empty(capacity, dtype=np.int32)
        col = np.empty(capacity, dtype=np.int32)
        filled, position, chunk = 0, -1, 1 << 19
        while True:
            gaps = rng.standard_exponential(chunk)
            gaps *= scale
            linear = gaps.astype(np.int64)  # floor: the draws are positive
            linear += 1
            np.cumsum(linear, out=linear)
            linear += position
            n = int(np.searchsorted(linear, total))
            if filled + n > capacity:  # beyond 8 sigma: grow (practically never)
                capacity = 2 * (filled + n)
                row, col = np.resize(row, capacity), np.resize(col, capacity)
            c, r = np.divmod(linear[:n], rows)
            row[filled:filled + n] = r
            col[filled:filled + n] = c
            filled += n
            if n < chunk:
                break
            position = int(linear[-1])
        row, col = row[:filled].copy(), col[:filled].copy()
    row.flags.writeable = False
    col.flags.writeable = False
    return row, col


def synthetic_matrix(rows: int, cols: int, density: float, seed: int = 0):
    """A seeded random sparse W (scipy CSC, rows x cols) with i.i.d. non-zeros at ``density``.

    Values are drawn from a 16-entry codebook (EIE's 4-bit weight sharing); only the positions
    matter for time and energy.
    """
    import scipy.sparse as sp

    row, col = _synthetic_nonzeros(int(rows), int(cols), _check_density("weight_density", density), int(seed))
    values = np.random.default_rng((seed, 3)).integers(1, 16, size=row.size).astype(np.float32) / 16
    return sp.csc_matrix((values, (row, col)), shape=(rows, cols))


def _matrix_nonzeros(matrix):
    """(rows, cols, row_idx, col_idx) of a dense or scipy.sparse matrix, column-major order."""
    import scipy.sparse as sp

    if sp.issparse(matrix):
        if matrix.ndim != 2:
            raise SimulatorError("matrix: must be 2-D (outputs x inputs)")
        csc = sp.csc_matrix(matrix)
        csc.sum_duplicates()
        csc.eliminate_zeros()
        csc.sort_indices()
        if csc.data.size and not np.all(np.isfinite(csc.data)):
            raise SimulatorError("matrix: contains NaN or infinite values")
        rows, cols = csc.shape
        col_idx = np.repeat(np.arange(cols, dtype=np.int32), np.diff(csc.indptr))
        return rows, cols, csc.indices.astype(np.int32), col_idx
    arr = np.asarray(matrix)
    if arr.ndim != 2 or arr.size == 0:
        raise SimulatorError(f"matrix: must be a non-empty 2-D array (outputs x inputs), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != bool:
        raise SimulatorError(f"matrix: must be numeric, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise SimulatorError("matrix: contains NaN or infinite values")
    col_idx, row_idx = np.nonzero(arr.T)  # column-major, rows ascending within a column
    return arr.shape[0], arr.shape[1], row_idx.astype(np.int32), col_idx.astype(np.int32)


def _active_columns(cols: int, activations, density: float, seed: int) -> np.ndarray:
    """Indices of the non-zero input activations, ascending (the order the LNZD finds them)."""
    if activations is None:
        count = max(1, int(round(density * cols)))
        # A prefix of one permutation: a higher density keeps every column a lower one had.
        perm = np.random.default_rng((seed, 2)).permutation(cols)
        return np.sort(perm[:count]).astype(np.int64)
    import scipy.sparse as sp

    a = activations.toarray().ravel() if sp.issparse(activations) else np.asarray(activations).ravel()
    if a.size != cols:
        raise SimulatorError(f"activations: need {cols} values (one per input / column of W), got {a.size}")
    if not np.all(np.isfinite(a.astype(float))):
        raise SimulatorError("activations: contain NaN or infinite values")
    return np.flatnonzero(a).astype(np.int64)


# ---- the model ---------------------------------------------------------------------------------

def entry_counts(row_idx, col_idx, rows: int, cols: int, pes: int, accumulators_per_pe: int,
                 relative_index_bits: int, chunk_nonzeros: int = 1 << 17):
    """Stored entries (non-zeros + filler zeros) and non-zeros per (PE, output batch, column).

    ``row_idx``/``col_idx`` list the non-zeros of W in column-major order (rows ascending within a
    column). PE p holds rows p, p + N, ...; its local row r = row // N falls in output batch
    r // accumulators_per_pe. Within a batch's slice of a column, an entry after g zeros (counted
    from the slice's first row, or from the previous non-zero) needs g // 2^bits fillers before it
    ([EIE] §III-B: 15 zeros fit a 4-bit index, a 16th needs a filler entry).

    Slices never cross columns, so the work goes in chunks of whole columns (about
    ``chunk_nonzeros`` non-zeros each, small enough to stay in cache). In a chunk one stable radix
    sort by (PE, batch) puts every slice's non-zeros next to each other in row order; the gaps
    are differences of neighbours, and two bincounts give the counts.
    Returns (entries, nonzeros), int64 arrays of shape [pes, batches, cols].
    """
    row_idx = np.asarray(row_idx, dtype=np.int32)
    col_idx = np.asarray(col_idx, dtype=np.int32)
    local_rows = -(-rows // pes)
    batches = -(-local_rows // accumulators_per_pe)
    groups = pes * batches
    entries = np.zeros((groups, cols), dtype=np.int64)
    nonzeros = np.zeros((groups, cols), dtype=np.int64)
    col_start = np.searchsorted(col_idx, np.arange(cols + 1))
    cuts = np.searchsorted(col_start, np.arange(chunk_nonzeros, row_idx.size, chunk_nonzeros))
    cuts = np.unique(np.concatenate([[0], cuts[(cuts > 0) & (cuts < cols)], [cols]]))
    radix = groups < 65536
    for c0, c1 in zip(cuts[:-1].tolist(), cuts[1:].tolist()):
        s0, s1 = int(col_start[c0]), int(col_start[c1])
        if s1 == s0:
            continue
        row = row_idx[s0:s1]
        width = c1 - c0
        pe = row % pes
        local = row // pes
        group = pe * batches + local // accumulators_per_pe if batches > 1 else pe
        order = np.argsort(group.astype(np.uint16) if radix else group, kind="stable")
        group, local = group[order], local[order]
        flat = group.astype(np.int64) * width + (col_idx[s0:s1][order] - c0)
        within = local - (group % batches) * accumulators_per_pe if batches > 1 else local
        gap = np.empty_like(local)
        gap[0] = within[0]
        np.subtract(local[1:], local[:-1], out=gap[1:])
        gap[1:] -= 1
        new_slice = np.empty(flat.size, dtype=bool)
        new_slice[0] = True
        np.not_equal(flat[1:], flat[:-1], out=new_slice[1:])
        np.copyto(gap, within, where=new_slice)
        fillers = gap >> relative_index_bits
        counted = np.bincount(flat, minlength=groups * width)
        padded = fillers > 0
        extra = np.bincount(flat[padded], weights=fillers[padded], minlength=groups * width)
        nonzeros[:, c0:c1] = counted.reshape(groups, width)
        entries[:, c0:c1] = (counted + extra.astype(np.int64)).reshape(groups, width)
    shape = (pes, batches, cols)
    return entries.reshape(shape), nonzeros.reshape(shape)


def queue_cycles(service, depth: int) -> tuple[int, np.ndarray]:
    """Exact cycles of the broadcast + activation-queue pipeline for service times [T, N].

    Activation t is broadcast at b_t into every PE's queue (capacity ``depth``, the activation in
    process included); at most one broadcast per cycle, and none while any queue is full:

        b_t = max(b_{t-1} + 1, max_p f[p, t - depth])
        f[p, t] = max(b_t, f[p, t-1]) + s[p, t]

    Within a block of ``depth`` consecutive activations the broadcast times depend only on the
    previous block, so each block is two cumulative maxima (vectorized over PEs and the block):
    b_t - t = max(b_{t0-1} - (t0-1), cummax_i(g_i - i)) with g_i = max_p f[p, i - depth], and
    f[p, t] = S_t + max(f[p, t0-1], cummax_i(b_i - S_{i-1})) with S the in-block cumsum of s.
    Returns (total cycles = max(last finish, last broadcast + 1), broadcast times).
    """
    s = np.asarray(service, dtype=np.int64)
    steps, pes = s.shape
    if steps == 0:
        return 0, np.zeros(0, dtype=np.int64)
    depth = int(depth)
    finish_max = np.empty(steps, dtype=np.int64)  # max over PEs of f[:, t]
    broadcast = np.empty(steps, dtype=np.int64)
    f_prev = np.zeros(pes, dtype=np.int64)
    b_prev = -1
    for t0 in range(0, steps, depth):
        block = s[t0:t0 + depth]
        size = block.shape[0]
        idx = np.arange(t0, t0 + size, dtype=np.int64)
        if t0 >= depth:
            g = finish_max[t0 - depth:t0 - depth + size]
            b = idx + np.maximum(b_prev - (t0 - 1), np.maximum.accumulate(g - idx))
        else:
            b = idx + (b_prev - (t0 - 1))
        cum = np.cumsum(block, axis=0)
        reach = np.maximum.accumulate(b[:, None] - (cum - block), axis=0)
        f = cum + np.maximum(f_prev[None, :], reach)
        finish_max[t0:t0 + size] = f.max(axis=1)
        broadcast[t0:t0 + size] = b
        f_prev, b_prev = f[-1], int(b[-1])
    return int(max(finish_max.max(), b_prev + 1)), broadcast


def _layer_shape(layer_or_matrix) -> tuple[int, int]:
    """(rows, cols) of a named layer or a given W, without building its non-zeros."""
    if isinstance(layer_or_matrix, (str, EIELayer)):
        layer = get_layer(layer_or_matrix)
        return layer.rows, layer.cols
    shape = getattr(layer_or_matrix, "shape", None)
    if shape is None or len(shape) != 2:
        raise SimulatorError("matrix: W must be 2-D (outputs x inputs)")
    return int(shape[0]), int(shape[1])


def simulated_slots(rows: int, cols: int, pes: int, accumulators_per_pe: int) -> int:
    """(PE x output batch x column) slots one simulation of a rows x cols layer holds."""
    batches = -(-(-(-rows // pes)) // accumulators_per_pe)
    return pes * batches * cols


def check_simulation_budget(jobs, what: str) -> None:
    """Refuse, before any work, a set of simulations ((rows, cols, pes, accumulators) each) that
    would hold more than MAX_SIMULATED_SLOTS slots in all."""
    total = sum(simulated_slots(*job) for job in jobs)
    if total > MAX_SIMULATED_SLOTS:
        raise SimulatorError(f"{what}: {len(jobs):,} simulation(s) holding {total:.3g} PE x batch x column slots, "
                             f"more than the {MAX_SIMULATED_SLOTS:.2g} one command simulates (~10 s); use fewer or "
                             "smaller PE counts (e.g. 1:512:x2), or one --layer")


def _layer_inputs(layer_or_matrix, weight_density, activation_density, seed):
    """(label, rows, cols, row_idx, col_idx, activation density for synthetic a, layer or None)."""
    if isinstance(layer_or_matrix, (str, EIELayer)):
        layer = get_layer(layer_or_matrix, weight_density, activation_density)
        row, col = _synthetic_nonzeros(layer.rows, layer.cols, layer.weight_density, int(seed))
        return layer.id, layer.rows, layer.cols, row, col, layer.activation_density, layer
    if weight_density is not None:
        raise SimulatorError("weight_density: applies to named layers; a given matrix has its own density")
    rows, cols, row, col = _matrix_nonzeros(layer_or_matrix)
    act = _check_density("activation_density", activation_density) if activation_density is not None else 1.0
    return "matrix", rows, cols, row, col, act, None


def simulate_layer(spec: Union[str, EIESpec] = DEFAULT_SPEC, layer_or_matrix: Union[str, EIELayer, object] = "alex-7",
                   activations=None, seed: int = 0, weight_density: Optional[float] = None,
                   activation_density: Optional[float] = None, allow_spill: bool = True) -> dict:
    """Simulate one layer on an EIE spec; returns one record (a dict of numbers, SI units).

    ``layer_or_matrix``: a layer id from ``workloads/eie/layers.yaml`` (a seeded synthetic W with
    the layer's size and weight density is generated), or W itself (numpy or scipy.sparse,
    outputs x inputs). ``activations``: the input vector a (its non-zeros are broadcast); when
    None, a seeded random vector with ``activation_density`` (the layer's, or 1.0 for a matrix).
    ``allow_spill=False`` turns a layer that does not fit the on-chip SRAM into a SimulatorError;
    by default it is simulated as if resident and flagged ``fits_on_chip=False`` with the shortfall.
    """
    spec = load_eie(spec)
    seed = _check_int("seed", seed, 0)
    label, rows, cols, row_idx, col_idx, act_density, layer = _layer_inputs(
        layer_or_matrix, weight_density, activation_density, seed)
    active = _active_columns(cols, activations, act_density, seed)
    pes, pipe, enc = spec.pes, spec.pipeline, spec.encoding
    check_simulation_budget([(rows, cols, pes, pipe.accumulators_per_pe)], f"{label} at {pes} PEs")

    entries, nonzeros = entry_counts(row_idx, col_idx, rows, cols, pes, pipe.accumulators_per_pe,
                                     enc.relative_index_bits)
    batches = entries.shape[1]
    entries_per_pe = entries.sum(axis=(1, 2))
    # Broadcast order: output batch, then active column; one row per broadcast, one column per PE.
    active_entries = entries[:, :, active].reshape(pes, -1).T
    active_nonzeros = int(nonzeros[:, :, active].sum())
    service = np.maximum(active_entries, pipe.min_cycles_per_column)
    busy_cycles, _ = queue_cycles(service, pipe.activation_queue_depth)
    cycles = busy_cycles + (pipe.pipeline_stages - 1 if busy_cycles else 0)
    total_active = int(active_entries.sum())
    cycles_ideal = total_active / pes
    load_balance = cycles_ideal / cycles if cycles else 1.0

    # SRAM per PE: 8-bit entries; one pointer per column (+1) per output batch; source and
    # destination activations as 16-bit values.
    spmat_need = float(entries_per_pe.max()) * enc.entry_bits / 8
    pointer_need = batches * (cols + 1) * enc.pointer_bits / 8
    act_need = (-(-cols // pes) + -(-rows // pes)) * enc.codebook_value_bits / 8
    banks = {"spmat": (spmat_need, spec.spmat_bytes_per_pe), "pointer": (pointer_need, spec.pointer_bytes_per_pe),
             "activation": (act_need, spec.activation_bytes_per_pe)}
    shortfall = {k: max(0.0, need - have) for k, (need, have) in banks.items()}
    fits = all(v == 0 for v in shortfall.values())
    if not fits and not allow_spill:
        over = "; ".join(f"{k} SRAM needs {banks[k][0] / 1024:.1f} KiB of {banks[k][1] / 1024:.0f} KiB"
                         for k, v in shortfall.items() if v > 0)
        raise SimulatorError(f"{label} does not fit on chip at {pes} PEs ({over} per PE) and spilling is "
                             "forbidden; use more PEs, a sparser layer, or allow spilling")

    e = spec.event_energies_J
    steps = active_entries.shape[0]
    spmat_reads = int(np.ceil(active_entries / spec.entries_per_spmat_read).sum())
    idle_pe_cycles = pes * cycles - int(service.sum())
    lnzd_units = spec.lnzd_units()
    energy = {
        "energy_spmat_j": spmat_reads * e["spmat_read"],
        "energy_arithmetic_j": total_active * e["arithmetic"],
        "energy_activation_rw_j": total_active * e["activation_rw"],
        "energy_pointer_j": steps * pes * e["pointer_read"],
        "energy_queue_j": steps * pes * e["queue_op"],
        "energy_idle_j": idle_pe_cycles * e["idle_pe_cycle"],
        "energy_lnzd_j": cycles * lnzd_units * e["lnzd_unit_cycle"],
    }
    energy_j = float(sum(energy.values()))
    time_s = cycles / spec.clock_hz
    # The paper's method ([EIE] §VI-B): time x total power (Table II per PE x PEs + LNZD units),
    # the power scaled with the clock (a fixed energy per cycle, like the per-event energies).
    chip_power_w = ((spec.power.per_pe_total_mW * pes + spec.power.lnzd_unit_mW * lnzd_units) * 1e-3
                    * spec.array.clock_MHz / spec.power.measured_at_clock_MHz)
    nnz = int(row_idx.size)
    return {
        "layer": label, "spec": spec.id, "pes": pes, "clock_mhz": spec.array.clock_MHz,
        "queue_depth": pipe.activation_queue_depth, "seed": seed,
        "rows": rows, "cols": cols,
        "weight_density": nnz / (rows * cols),
        "activation_density": active.size / cols,
        "nonzeros": nnz, "entries": int(entries_per_pe.sum()),
        "padding_fraction": 1.0 - nnz / entries_per_pe.sum() if nnz else 0.0,
        "active_columns": int(active.size), "output_batches": batches, "broadcasts": steps,
        "macs": active_nonzeros, "entries_processed": total_active,
        "real_work_fraction": active_nonzeros / total_active if total_active else 1.0,
        "cycles_ideal": cycles_ideal, "cycles": cycles, "load_balance": load_balance,
        "time_s_ideal": cycles_ideal / spec.clock_hz, "time_s": time_s,
        "energy_j": energy_j, **energy,
        "power_w": energy_j / time_s if time_s else 0.0,
        "chip_power_w": chip_power_w, "energy_j_chip_power": time_s * chip_power_w,
        "spmat_reads": spmat_reads, "idle_pe_cycles": idle_pe_cycles,
        "dense_equivalent_flops": 2.0 * rows * cols,
        "gop_per_s_effective": 2.0 * active_nonzeros / time_s / 1e9 if time_s else 0.0,
        "spmat_bytes_per_pe": spmat_need, "pointer_bytes_per_pe": pointer_need,
        "activation_bytes_per_pe": act_need,
        "sram_bytes_per_pe_needed": spmat_need + pointer_need + act_need,
        "sram_bytes_per_pe": spec.spmat_bytes_per_pe + spec.pointer_bytes_per_pe + spec.activation_bytes_per_pe,
        "spmat_fits": shortfall["spmat"] == 0, "pointer_fits": shortfall["pointer"] == 0,
        "activation_fits": shortfall["activation"] == 0,
        "fits_on_chip": fits, "sram_shortfall_bytes": float(sum(shortfall.values())),
        "paper_time_s_theoretical": layer.reported_us.eie_theoretical * 1e-6 if layer and layer.reported_us else np.nan,
        "paper_time_s": layer.reported_us.eie_actual * 1e-6 if layer and layer.reported_us else np.nan,
    }


def simulate_layers(spec: Union[str, EIESpec] = DEFAULT_SPEC, layers=None, seed: int = 0, **kwargs) -> pd.DataFrame:
    """``simulate_layer`` over named layers (default: the nine of Table III), one row each."""
    names = list(load_layers()) if layers is None else list(layers)
    return pd.DataFrame([simulate_layer(spec, name, seed=seed, **kwargs) for name in names])


def scaling_study(layer_or_matrix="alex-7", pes=SCALING_PES, spec: Union[str, EIESpec] = DEFAULT_SPEC,
                  activations=None, seed: int = 0, **kwargs) -> pd.DataFrame:
    """The same layer (same W and a) on each PE count: speed-up over the first count, load balance.

    ``speedup`` = cycles at pes[0] / cycles; ``ideal_speedup`` is the same for perfect balance
    (it falls below pes / pes[0] only through filler zeros, which shrink as slices get shorter).
    """
    base = load_eie(spec)
    counts = [_check_int("pes", p, 1, MAX_PES) for p in pes]
    if not counts:
        raise SimulatorError("pes: needs at least one PE count")
    rows, cols = _layer_shape(layer_or_matrix)
    check_simulation_budget([(rows, cols, p, base.pipeline.accumulators_per_pe) for p in counts],
                            f"scaling study over {len(counts):,} PE counts")
    rows = [simulate_layer(load_eie(base, pes=p), layer_or_matrix, activations, seed, **kwargs) for p in counts]
    df = pd.DataFrame(rows)
    df["speedup"] = df["cycles"].iloc[0] / df["cycles"]
    df["ideal_speedup"] = df["cycles_ideal"].iloc[0] / df["cycles_ideal"]
    return df


# ---- baselines and the comparison --------------------------------------------------------------

def baseline_table(layers=None, baselines=None) -> pd.DataFrame:
    """Batch-1 GEMV of each layer on each baseline, dense and sparse, from ``estimate_gemm``.

    EIE's b = W a with W outputs x inputs is sparsim's y = x.W^T with N = outputs, K = inputs.
    The sparse row takes the fastest of the baseline's formats. Energy = time x power.
    """
    from simulator.kernels.gemm import estimate_gemm
    from simulator.hardware.spec import load_hw

    known = load_layers()
    names = list(known) if layers is None else list(layers)
    chosen = load_baselines()
    if baselines is not None:
        unknown = [b for b in baselines if b not in chosen]
        if unknown:
            raise SimulatorError(f"unknown baseline {unknown[0]!r}; known: {', '.join(chosen)}")
        chosen = {b: chosen[b] for b in baselines}
    rows = []
    for b in chosen.values():
        hw = load_hw(b.hw)
        power = b.power_W if b.power_basis == "measured" else hw.power.tdp_W
        layer_objs = [get_layer(n) for n in names]
        n = np.array([layer.output_size for layer in layer_objs])
        k = np.array([layer.input_size for layer in layer_objs])
        dense = estimate_gemm(hw, 1, n, k, b.dtype, "dense")
        candidates = []
        for fmt in b.sparse_formats:
            strings = [f"unstructured:{1.0 - layer.weight_density:.6g}:{fmt}" for layer in layer_objs]
            per_layer = [estimate_gemm(hw, 1, int(layer.output_size), int(layer.input_size), b.dtype, s).iloc[0]
                         for layer, s in zip(layer_objs, strings)]
            frame = pd.DataFrame(per_layer).reset_index(drop=True)
            frame["sparsity"] = strings
            candidates.append(frame)
        dense = dense.assign(sparsity="dense")
        for i, layer in enumerate(layer_objs):
            best = min((c.iloc[i] for c in candidates), key=lambda r: r["time_s"])
            reported = layer.reported_us
            for model, row in (("dense", dense.iloc[i]), ("sparse", best)):
                paper = getattr(reported, f"{b.id}_{model}", None) if reported else None
                rows.append({
                    "layer": layer.id, "platform": b.id, "label": b.label, "device": hw.id, "era": b.era,
                    "model": model, "kernel": str(row["kernel"]), "sparsity": row["sparsity"],
                    "dtype": b.dtype, "time_s": float(row["time_s"]), "bound": str(row["bound"]),
                    "power_w": float(power), "power_basis": b.power_basis,
                    "energy_j": float(row["time_s"]) * power,
                    "paper_time_s": paper * 1e-6 if paper else np.nan,
                })
    return pd.DataFrame(rows)


def comparison_table(spec: Union[str, EIESpec] = DEFAULT_SPEC, layers=None, baselines=None,
                     seed: int = 0) -> pd.DataFrame:
    """Every baseline row of ``baseline_table`` with EIE's simulated time and energy beside it.

    ``speedup`` = baseline time / EIE time; ``energy_gain`` = baseline energy / EIE energy; the
    ``paper_*`` columns are [EIE] Table IV's times (and the EIE gains they imply) for comparison.
    """
    eie = simulate_layers(spec, layers, seed=seed).set_index("layer")
    df = baseline_table(layers, baselines)
    df["eie_time_s"] = df["layer"].map(eie["time_s"])
    df["eie_energy_j"] = df["layer"].map(eie["energy_j"])
    df["speedup"] = df["time_s"] / df["eie_time_s"]
    df["energy_gain"] = df["energy_j"] / df["eie_energy_j"]
    df["energy_gain_chip_power"] = df["energy_j"] / df["layer"].map(eie["energy_j_chip_power"])
    paper_eie = df["layer"].map(eie["paper_time_s"])
    df["paper_eie_time_s"] = paper_eie
    df["paper_speedup"] = df["paper_time_s"] / paper_eie
    # The paper's energy = time x measured power, EIE's at its 0.59 W chip power ([EIE] §VI-B).
    chip_w = load_eie(spec).power.chip_W
    df["paper_energy_gain"] = (df["paper_time_s"] * df["power_w"]) / (paper_eie * chip_w)
    return df


def _geomean(values) -> float:
    values = np.asarray(values, dtype=float)
    values = values[np.isfinite(values)]
    return float(np.exp(np.log(values).mean())) if values.size else float("nan")


def headline_gains(comparison: Optional[pd.DataFrame] = None) -> pd.DataFrame:
    """Geometric means over the layers (as [EIE] Fig. 6-7 do), per platform and model."""
    df = comparison_table() if comparison is None else comparison
    rows = []
    for (platform, model), g in df.groupby(["platform", "model"], sort=False):
        rows.append({"platform": platform, "label": g["label"].iloc[0], "model": model,
                     "speedup": _geomean(g["speedup"]), "energy_gain": _geomean(g["energy_gain"]),
                     "energy_gain_chip_power": _geomean(g["energy_gain_chip_power"]),
                     "paper_speedup": _geomean(g["paper_speedup"]),
                     "paper_energy_gain": _geomean(g["paper_energy_gain"])})
    return pd.DataFrame(rows)


# The abstract's headline numbers ([EIE] abstract, §VI-A/B): all against the DENSE (uncompressed)
# baselines - Fig. 6/7 captions normalise to "CPU running uncompressed DNN model", and the
# geometric-mean bars give EIE 189x over CPU-dense, 189/15 = 13x over GPU-dense.
PAPER_HEADLINE = {("cpu", "dense"): (189.0, 24000.0), ("gpu", "dense"): (13.0, 3400.0),
                  ("mgpu", "dense"): (307.0, 2700.0)}

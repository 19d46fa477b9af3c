"""Sparsity formats: how dense a weight is, how it is stored, and which kernel family runs it.

STYLE.md's three-part split, one class per format:
- *density* (workload): the fraction of weights kept, ``density`` in (0, 1];
- *storage* (format): the bytes of values and of metadata (indices, bitmaps, 2:4 selectors);
- *kernel* (hardware): the family that executes it, named in ``kernel`` and costed in gemm.py.

Formats are parsed from the CLI's strings with ``parse_sparsity``:
``dense``, ``2:4``, ``N:M``, ``unstructured:0.9[:csr|bitmap|tiled-csl|masked]``, ``block:32:0.9``,
``structured:0.36[:n|k]``. Numeric parameters may be numpy arrays (for sweeps); they broadcast
against the GEMM shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from simulator.core.dtypes import BYTES_PER_ELEMENT, SCALE_BYTES_PER_ELEMENT
from simulator.core.errors import SimulatorError
from simulator.core.registry import Registry

INDEX_BYTES = 4.0  # int32 column indices and row pointers (cuSPARSE / torch CSR and BSR default)


def _check_unit_interval(value, what: str) -> None:
    """Every fraction a format takes lies in [0, 1): 1 would mean an empty weight."""
    arr = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(arr)) or np.any(arr < 0) or np.any(arr >= 1):
        raise SimulatorError(f"sparsity: {what} must lie in [0, 1), got {value}")


def _dense_weight_bytes(n, k, dtype: str):
    return n * k * (BYTES_PER_ELEMENT[dtype] + SCALE_BYTES_PER_ELEMENT.get(dtype, 0.0))


@dataclass(frozen=True)
class SparsityFormat:
    """Base class. Subclasses set ``family`` and implement the storage count."""

    family: ClassVar[str] = ""

    @property
    def density(self):
        return 1.0

    @property
    def kernel(self) -> str:
        raise NotImplementedError

    @property
    def label(self) -> str:
        raise NotImplementedError

    def weight_bytes(self, n, k, dtype: str, density):
        """(value bytes, metadata bytes) of an N x K weight stored in this format.

        ``density`` is this format's density already broadcast against ``n`` and ``k``
        (gemm.py does the broadcasting once for every per-row quantity).
        """
        raise NotImplementedError

    def effective_shape(self, n, k, density):
        """The dense GEMM dims a kernel sees (only structured pruning changes them)."""
        return n, k


@dataclass(frozen=True)
class Dense(SparsityFormat):
    family: ClassVar[str] = "dense"

    @property
    def kernel(self) -> str:
        return "dense"

    @property
    def label(self) -> str:
        return "dense"

    def weight_bytes(self, n, k, dtype, density):
        return _dense_weight_bytes(n, k, dtype), np.zeros_like(np.asarray(n * k, dtype=float))


@dataclass(frozen=True)
class NM(SparsityFormat):
    """N:M semi-structured: N non-zeros kept in every group of M consecutive K elements.

    Storage follows the PTX sparse-operand format (ISA 9.1 §9.7.14.6.1): the N kept values plus
    ``ceil(log2 M)`` bits of position per kept value. For 2:4 that is 2 x 2 = 4 bits per group
    of 4, so fp16 stores 50% + 6.25% = 56.25% of dense bytes and int8/fp8 50% + 12.5% = 62.5%.
    4:8 pair-wise (int4/fp4) keeps 2 of 4 pairs with 2 x 2 bits per 8 elements; tf32 1:2 uses a
    4-bit selector per pair (only 0b1110 and 0b0100 are valid), so it also stores 56.25%.
    """

    family: ClassVar[str] = "nm"
    n: int = 2
    m: int = 4
    pairwise: bool = False

    def __post_init__(self):
        if not (isinstance(self.n, int) and isinstance(self.m, int)) or self.m < 2 or not (
            1 <= self.n < self.m
        ):
            raise SimulatorError(
                f"sparsity: N:M needs whole numbers 1 <= N < M with M >= 2, got {self.n}:{self.m}"
            )
        if self.pairwise and (self.n % 2 or self.m % 2):
            raise SimulatorError(f"sparsity: pair-wise N:M needs even N and M, got {self.n}:{self.m}")

    @property
    def density(self):
        return self.n / self.m

    @property
    def kernel(self) -> str:
        return "sparse-tc"  # gemm.py downgrades to "nm-whatif" where the hardware lacks the pattern

    @property
    def label(self) -> str:
        return f"{self.n}:{self.m}" + ("-pairwise" if self.pairwise else "")

    @property
    def metadata_bits_per_group(self) -> int:
        if (self.n, self.m) == (1, 2):  # tf32 1:2: PTX still spends a 4-bit selector per pair
            return 4
        if self.pairwise:  # positions of kept pairs among M/2 pairs
            return (self.n // 2) * math.ceil(math.log2(self.m // 2))
        return self.n * math.ceil(math.log2(self.m))

    def weight_bytes(self, n, k, dtype, density):
        values = _dense_weight_bytes(n, k, dtype) * density
        metadata = n * k / self.m * self.metadata_bits_per_group / 8.0
        return values, metadata


UNSTRUCTURED_STORAGES = ("csr", "bitmap", "tiled-csl", "masked")

# Flash-LLM's Tiled-CSL (AlibabaResearch/flash-llm csrc/SpMM_API.cu, InitSparseMatrixA_API): the
# weight is cut into 128 x 64 tiles (TILE_M = 128; TILE_K = 64 in csrc/TilingConfig.h); each
# non-zero is one 32-bit word, the fp16 value and a 16-bit position inside its tile, and an int32
# offset per tile says where its words start. Tiles are padded to a multiple of 4 words (at most
# 3 per 8192-element tile; not counted here).
TILED_CSL_TILE = (128, 64)
TILED_CSL_POSITION_BYTES = 2.0
TILED_CSL_OFFSET_BYTES = 4.0


@dataclass(frozen=True)
class Unstructured(SparsityFormat):
    """Unstructured sparsity ``sparsity`` (fraction of zeros) stored one of three ways.

    - ``masked``: zeros stored in a dense tensor; a dense kernel runs it (nothing skipped).
    - ``csr``: values + int32 column index per non-zero + int32 row pointers (cuSPARSE, torch).
    - ``bitmap``: values + one bit per element (SpInfer-style), loaded compressed and expanded
      to dense tiles for the tensor cores.
    - ``tiled-csl``: Flash-LLM's format (values + a 16-bit in-tile position per non-zero + an
      int32 offset per 128 x 64 tile), run by the same load-as-sparse, compute-as-dense kernel
      family as the bitmap; more metadata than a bitmap below ~94% sparsity (2 B per non-zero
      against 1/8 B per element).
    """

    family: ClassVar[str] = "unstructured"
    sparsity: object = 0.5
    storage: str = "csr"

    def __post_init__(self):
        _check_unit_interval(self.sparsity, "unstructured sparsity")
        if self.storage not in UNSTRUCTURED_STORAGES:
            raise SimulatorError(
                f"sparsity: unstructured storage {self.storage!r} unknown; "
                f"allowed: {', '.join(UNSTRUCTURED_STORAGES)}"
            )

    @property
    def density(self):
        return 1.0 - np.asarray(self.sparsity, dtype=float)

    @property
    def kernel(self) -> str:
        return {"csr": "csr-spmm", "bitmap": "bitmap-tc", "tiled-csl": "tiled-csl-tc",
                "masked": "masked-dense"}[self.storage]

    @property
    def label(self) -> str:
        return f"unstructured-{self.storage}"

    def weight_bytes(self, n, k, dtype, density):
        dense = _dense_weight_bytes(n, k, dtype)
        if self.storage == "masked":
            return dense, np.zeros_like(np.asarray(dense, dtype=float))
        nnz = n * k * density
        values = dense * density
        if self.storage == "csr":
            return values, nnz * INDEX_BYTES + (n + 1) * INDEX_BYTES
        if self.storage == "tiled-csl":
            tiles = np.ceil(n / TILED_CSL_TILE[0]) * np.ceil(k / TILED_CSL_TILE[1])
            return values, nnz * TILED_CSL_POSITION_BYTES + tiles * TILED_CSL_OFFSET_BYTES
        return values, n * k / 8.0


@dataclass(frozen=True)
class Block(SparsityFormat):
    """Block-sparse (BSR): b x b blocks, a fraction ``sparsity`` of them zero and not stored."""

    family: ClassVar[str] = "block"
    block: int = 32
    sparsity: object = 0.5

    def __post_init__(self):
        if not isinstance(self.block, (int, np.integer)) or self.block < 1:
            raise SimulatorError(f"sparsity: block size must be a whole number >= 1, got {self.block}")
        _check_unit_interval(self.sparsity, "block sparsity")

    @property
    def density(self):
        return 1.0 - np.asarray(self.sparsity, dtype=float)

    @property
    def kernel(self) -> str:
        return "bsr-tc"

    @property
    def label(self) -> str:
        return f"block{self.block}"

    def weight_bytes(self, n, k, dtype, density):
        values = _dense_weight_bytes(n, k, dtype) * density
        blocks = n * k / self.block**2 * density
        return values, blocks * INDEX_BYTES + (n / self.block + 1) * INDEX_BYTES


@dataclass(frozen=True)
class Structured(SparsityFormat):
    """Structured pruning: a fraction of output channels (axis n) or input channels (axis k) is
    removed, leaving a smaller dense GEMM. Kept dims are rounded to whole channels."""

    family: ClassVar[str] = "structured"
    fraction: object = 0.25
    axis: str = "n"

    def __post_init__(self):
        _check_unit_interval(self.fraction, "structured fraction")
        if self.axis not in ("n", "k"):
            raise SimulatorError(f"sparsity: structured axis must be 'n' or 'k', got {self.axis!r}")

    @property
    def density(self):
        return 1.0 - np.asarray(self.fraction, dtype=float)

    @property
    def kernel(self) -> str:
        return "dense"

    @property
    def label(self) -> str:
        return f"structured-{self.axis}"

    def effective_shape(self, n, k, density):
        kept = lambda dim: np.maximum(1, np.round(dim * density))  # noqa: E731
        return (kept(n), k) if self.axis == "n" else (n, kept(k))

    def weight_bytes(self, n, k, dtype, density):
        n_eff, k_eff = self.effective_shape(n, k, density)
        return _dense_weight_bytes(n_eff, k_eff, dtype), np.zeros_like(np.asarray(n_eff * k_eff, dtype=float))


def _dense_from(args, spec):
    return Dense() if not args else None


def _nm_from(args, spec):  # written N:M (the family name is not written)
    if len(args) == 2 and args[0].isdigit() and args[1].removesuffix("-pairwise").isdigit():
        return NM(n=int(args[0]), m=int(args[1].removesuffix("-pairwise")), pairwise=args[1].endswith("-pairwise"))
    return None


def _unstructured_from(args, spec):
    if len(args) in (1, 2):
        return Unstructured(sparsity=_fraction(args[0], "sparsity", spec), storage=args[1] if len(args) == 2 else "csr")
    return None


def _block_from(args, spec):
    if len(args) == 2:
        if not args[0].isdigit() or int(args[0]) < 1:
            raise SimulatorError(f"sparsity {spec!r}: block size {args[0]!r} must be a whole number >= 1")
        return Block(block=int(args[0]), sparsity=_fraction(args[1], "sparsity", spec))
    return None


def _structured_from(args, spec):
    if len(args) in (1, 2):
        return Structured(fraction=_fraction(args[0], "fraction", spec), axis=args[1] if len(args) == 2 else "n")
    return None


# The format axis (simulator/core/registry.py): family -> class; each class's ``from_spec`` reads the
# colon-separated arguments after its family's word (N:M has no word: its two numbers are the spec)
# and returns None where they are not its form.
FORMATS = Registry("format", "--sparsity")
for _cls, _reader in ((Dense, _dense_from), (NM, _nm_from), (Unstructured, _unstructured_from),
                      (Block, _block_from), (Structured, _structured_from)):
    _cls.from_spec = staticmethod(_reader)
    FORMATS.register(_cls, name=_cls.family)

SPEC_HELP = "dense, 2:4, N:M, unstructured:S[:csr|bitmap|tiled-csl|masked], block:B:S, structured:F[:n|k]"


def parse_fraction(text: str, what: str, where: str) -> float:
    """A fraction in [0, 1) from a spec string; ``where`` names the flag or spec in the error."""
    try:
        value = float(text)
    except ValueError:
        raise SimulatorError(f"{where}: {what} {text!r} is not a number") from None
    if not 0.0 <= value < 1.0:
        raise SimulatorError(f"{where}: {what} must lie in [0, 1), got {value}")
    return value


def _fraction(text: str, what: str, spec: str) -> float:
    return parse_fraction(text, what, f"sparsity {spec!r}")


def parse_sparsity(spec: "str | SparsityFormat") -> SparsityFormat:
    """Parse a sparsity string (see module docstring) into a format object."""
    if isinstance(spec, SparsityFormat):
        return spec
    text = str(spec).strip().lower()
    parts = text.split(":")
    try:
        fmt = (FORMATS[parts[0]].from_spec(parts[1:], spec) if parts[0] in FORMATS and parts[0] != "nm"
               else FORMATS["nm"].from_spec(parts, spec))
        if fmt is not None:
            return fmt
    except SimulatorError as err:
        if str(err).startswith("sparsity "):
            raise
        raise SimulatorError(f"sparsity {spec!r}: {str(err).removeprefix('sparsity: ')}") from None
    raise SimulatorError(f"sparsity {spec!r} not understood; allowed forms: {SPEC_HELP}")

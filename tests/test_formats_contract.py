"""One contract over every registered sparsity format (STYLE.md: scikit-learn's
parametrize_with_checks is the model): it parses from its string, at zero sparsity it stores
exactly the dense values, more sparsity never adds bytes, and its byte count matches a hand count."""

import numpy as np
import pytest

from simulator.kernels.gemm import estimate_gemm
from simulator.formats.sparsity import FORMATS, Block, Dense, NM, Structured, Unstructured, parse_sparsity

# One instance per family at zero sparsity (NM has none: its density is fixed by N:M),
# and the string that parses to the same format.
ZERO = {
    "dense": [(Dense(), "dense")],
    "unstructured": [(Unstructured(0.0, s), f"unstructured:0.0:{s}") for s in ("csr", "bitmap", "tiled-csl", "masked")],
    "block": [(Block(32, 0.0), "block:32:0.0")],
    "structured": [(Structured(0.0, "n"), "structured:0.0:n"), (Structured(0.0, "k"), "structured:0.0:k")],
    "nm": [(NM(2, 4), "2:4"), (NM(4, 8, pairwise=True), "4:8-pairwise"), (NM(1, 4), "1:4")],
}


def test_every_family_is_covered():
    assert set(ZERO) == set(FORMATS)


CASES = [case for cases in ZERO.values() for case in cases]


@pytest.mark.parametrize("fmt, text", CASES, ids=[text for _, text in CASES])
def test_parses_to_the_same_format(fmt, text):
    assert parse_sparsity(text) == fmt
    assert parse_sparsity(text).label == fmt.label


@pytest.mark.parametrize("fmt, text", [c for c in CASES if c[0].family != "nm"], ids=lambda x: str(x))
def test_zero_sparsity_stores_the_dense_values(fmt, text):
    n, k = np.array([4096.0]), np.array([1024.0])
    values, _meta = fmt.weight_bytes(n, k, "bf16", np.asarray(fmt.density, dtype=float))
    assert values[0] == 4096 * 1024 * 2


@pytest.mark.parametrize("family, make", [
    ("unstructured-csr", lambda s: Unstructured(s, "csr")),
    ("unstructured-bitmap", lambda s: Unstructured(s, "bitmap")),
    ("unstructured-tiled-csl", lambda s: Unstructured(s, "tiled-csl")),
    ("unstructured-masked", lambda s: Unstructured(s, "masked")),
    ("block", lambda s: Block(16, s)),
    ("structured-n", lambda s: Structured(s, "n")),
    ("structured-k", lambda s: Structured(s, "k")),
])
def test_bytes_never_grow_with_sparsity(family, make):
    grid = np.linspace(0.0, 0.99, 100)
    df = estimate_gemm("h100", 64, 4096, 4096, "bf16", make(grid))
    assert np.all(np.diff(df.bytes.to_numpy()) <= 0), family


@pytest.mark.parametrize("fmt, weight_and_metadata_bytes", [
    # 1024 x 1024 fp16 = 1,048,576 elements, 2 B each when dense (2,097,152 B)
    (Dense(), 2_097_152),
    (Unstructured(0.75, "masked"), 2_097_152),                 # zeros stored
    (Unstructured(0.75, "csr"), 262_144 * 2 + 262_144 * 4 + 1025 * 4),  # nnz = 262,144
    (Unstructured(0.75, "bitmap"), 262_144 * 2 + 1_048_576 // 8),
    # Flash-LLM Tiled-CSL: a 16-bit position per non-zero + an int32 offset per 128 x 64 tile
    # (1024/128 x 1024/64 = 128 tiles)
    (Unstructured(0.75, "tiled-csl"), 262_144 * 2 + 262_144 * 2 + 128 * 4),
    (Block(32, 0.75), 262_144 * 2 + 256 * 4 + 33 * 4),          # 1024 blocks, 256 kept; 32 block rows
    (Structured(0.25, "n"), 768 * 1024 * 2),
    (NM(2, 4), 524_288 * 2 + 262_144 * 4 // 8),                 # 262,144 groups x 4 bits
    (NM(1, 4), 262_144 * 2 + 262_144 * 2 // 8),                # 1 x 2 bits per group of 4
])
def test_hand_counted_bytes(fmt, weight_and_metadata_bytes):
    row = estimate_gemm("h100", 1, 1024, 1024, "fp16", fmt).iloc[0]
    assert row.bytes_weight + row.bytes_metadata == weight_and_metadata_bytes

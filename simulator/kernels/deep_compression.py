"""Deep Compression storage (Han, Mao, Dally, ICLR 2016): pruning + weight sharing + Huffman.

Bytes of a layer at each stage, from its size, pruning density and bit widths
(``workloads/eie/deep-compression.yaml`` holds AlexNet and VGG-16 from the paper's Tables 4-5):

- dense:   ``weights x 4`` bytes (fp32).
- P:       pruned, stored as fp32 values + a relative sparse index per entry.
- P+Q:     each value replaced by a ``weight_bits`` index into a per-layer codebook of
           ``2**weight_bits`` fp32 centroids (k-means weight sharing), + the relative index.
- P+Q+H:   Huffman-coded weight indices and relative indices (average code lengths per entry).

Relative indexing ([DC] §2, Fig. 2; the same scheme as EIE's CSC): each stored entry carries the
number of zeros before it in ``index_bits`` bits; a gap of more zeros than that can say is
bridged with filler zero entries. With the pruned positions independent at density ``d`` the gap
before a non-zero is geometric, and a gap ``g`` needs ``g // 2**b`` fillers, so the expected
fillers per non-zero are ``sum_k P(g >= k 2**b) = q / (1 - q)`` with ``q = (1 - d) ** 2**b``.
Real pruned layers cluster less than that (the paper's own fc6/fc7 rates imply ~19% fillers
where the random model gives 28%); docs/eie.md states the effect on the totals.

Huffman: ``huffman="measured"`` uses the paper's measured average code lengths per layer
(Tables 4-5, columns "(P+Q+H)"). ``huffman="index-entropy"`` replaces the index code length with
the Shannon entropy of the relative-index symbols under the random-gap model above (a lower bound
on any prefix code; Huffman is within one bit of it) and keeps the measured weight code lengths,
because the weight distribution (bimodal, Fig. 5 of [DC]) is not a model we have.

Bytes are decimal (MB = 1e6 B), as the paper's 240 MB / 6.9 MB are. Sparse pointers (one per
column, a few kB per layer) are not counted; the paper's rates "include the overhead of the
codebook and sparse indexes".
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import numpy as np
import pandas as pd
from pydantic import Field

from simulator.core.datafiles import Strict, load_yaml
from simulator.core.errors import SimulatorError
from simulator.core.paths import workloads_path

FP32_BYTES = 4.0
HUFFMAN_MODES = ("measured", "index-entropy")


class DCLayer(Strict):
    name: str = Field(min_length=1)
    weights: int = Field(gt=0)
    weight_density: float = Field(gt=0, le=1)
    weight_bits: int = Field(ge=1, le=16)
    weight_bits_huffman: float = Field(gt=0)
    index_bits: int = Field(ge=1, le=16)
    index_bits_huffman: float = Field(gt=0)
    reported_percent_pq: Optional[float] = Field(default=None, gt=0)
    reported_percent_pqh: Optional[float] = Field(default=None, gt=0)


class DCReported(Strict):
    dense_MB: float = Field(gt=0)
    compressed_MB: float = Field(gt=0)
    ratio: float = Field(gt=0)
    ratio_pq: float = Field(gt=0)
    weight_density: float = Field(gt=0, le=1)


class DCNetwork(Strict):
    id: str = Field(pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    name: str
    source: str = Field(min_length=3)
    reported: DCReported
    layers: list[DCLayer] = Field(min_length=1)


class DCFile(Strict):
    references: dict[str, str] = Field(min_length=1)
    networks: list[DCNetwork] = Field(min_length=1)


def _data_path() -> Path:
    return workloads_path("eie", "deep-compression.yaml")


def load_networks() -> dict[str, DCNetwork]:
    """The networks of ``workloads/eie/deep-compression.yaml`` by id."""
    path = _data_path()
    if not path.is_file():
        raise SimulatorError(f"{path}: no such workload file")
    return {n.id: n for n in load_yaml(path, DCFile).networks}


def fillers_per_nonzero(density, index_bits) -> np.ndarray:
    """Expected filler (padding) entries per non-zero for a relative index of ``index_bits``.

    Random (independent) pruning at ``density``: q = (1 - d)^(2^b), fillers = q / (1 - q).
    """
    d = np.asarray(density, dtype=float)
    q = (1.0 - d) ** (2.0 ** np.asarray(index_bits, dtype=float))
    return q / (1.0 - q)


def index_entropy_bits(density, index_bits) -> np.ndarray:
    """Shannon entropy (bits per stored entry) of the relative-index symbol, random pruning.

    A real entry after a gap g stores z = g mod 2^b (P = d (1-d)^z per entry); fillers store
    2^b - 1, with probability q = (1-d)^(2^b) per entry, so p_z = d (1-d)^z + q [z = 2^b - 1].
    """
    d = np.atleast_1d(np.asarray(density, dtype=float))
    b = np.broadcast_to(np.asarray(index_bits, dtype=int), d.shape)
    out = np.empty(d.shape)
    for i, (di, bi) in enumerate(zip(d.ravel(), b.ravel())):
        z = np.arange(2 ** int(bi))
        p = di * (1.0 - di) ** z
        p[-1] += (1.0 - di) ** (2 ** int(bi))
        p = p[p > 0]
        out.flat[i] = float(-(p * np.log2(p)).sum())
    return out.reshape(np.shape(density)) if np.ndim(density) else out[0]


def compress(weights, density, weight_bits, index_bits, weight_bits_huffman,
             index_bits_huffman) -> dict[str, np.ndarray]:
    """Bytes of layers at each Deep Compression stage (arrays broadcast; decimal bytes)."""
    w, d, wb, ib, wbh, ibh = (np.asarray(a, dtype=float) for a in
                              (weights, density, weight_bits, index_bits, weight_bits_huffman,
                               index_bits_huffman))
    if np.any(d <= 0) or np.any(d > 1):
        raise SimulatorError(f"weight_density must lie in (0, 1], got {density}")
    nonzeros = w * d
    entries = nonzeros * (1.0 + fillers_per_nonzero(d, ib))
    codebook = 2.0 ** wb * FP32_BYTES
    dense = w * FP32_BYTES
    pruned = entries * (32.0 + ib) / 8.0
    pq = entries * (wb + ib) / 8.0 + codebook
    pqh = entries * (wbh + ibh) / 8.0 + codebook
    return {"bytes_dense": dense, "nonzeros": nonzeros, "entries": entries,
            "bytes_pruned": pruned, "bytes_pq": pq, "bytes_pqh": pqh}


def compression_table(network: str = "alexnet", huffman: Literal["measured", "index-entropy"] = "measured"
                      ) -> pd.DataFrame:
    """One row per layer of ``network``: bytes and compression ratio after P, P+Q and P+Q+H."""
    networks = load_networks()
    if network not in networks:
        raise SimulatorError(f"unknown network {network!r}; known: {', '.join(networks)}")
    if huffman not in HUFFMAN_MODES:
        raise SimulatorError(f"huffman must be one of {', '.join(HUFFMAN_MODES)}, got {huffman!r}")
    layers = networks[network].layers
    col = {f: np.array([getattr(layer, f) for layer in layers], dtype=float)
           for f in ("weights", "weight_density", "weight_bits", "index_bits", "weight_bits_huffman",
                     "index_bits_huffman")}
    entropy = index_entropy_bits(col["weight_density"], col["index_bits"].astype(int))
    index_h = entropy if huffman == "index-entropy" else col["index_bits_huffman"]
    out = compress(col["weights"], col["weight_density"], col["weight_bits"], col["index_bits"],
                   col["weight_bits_huffman"], index_h)
    df = pd.DataFrame({"network": network, "layer": [layer.name for layer in layers], **col,
                       "index_bits_entropy_model": entropy, "index_bits_huffman_used": index_h, **out})
    df["fillers_per_nonzero"] = out["entries"] / out["nonzeros"] - 1.0
    for stage in ("pruned", "pq", "pqh"):
        df[f"ratio_{stage}"] = df["bytes_dense"] / df[f"bytes_{stage}"]
    df["reported_percent_pq"] = [layer.reported_percent_pq for layer in layers]
    df["reported_percent_pqh"] = [layer.reported_percent_pqh for layer in layers]
    return df


def network_summary(huffman: Literal["measured", "index-entropy"] = "measured") -> pd.DataFrame:
    """One row per network: total bytes per stage, compression ratios, and the paper's totals."""
    rows = []
    for net_id, net in load_networks().items():
        df = compression_table(net_id, huffman)
        total = {k: float(df[k].sum()) for k in ("weights", "nonzeros", "entries", "bytes_dense",
                                                  "bytes_pruned", "bytes_pq", "bytes_pqh")}
        rows.append({
            "network": net_id, **total,
            "weight_density": total["nonzeros"] / total["weights"],
            "ratio_pruned": total["bytes_dense"] / total["bytes_pruned"],
            "ratio_pq": total["bytes_dense"] / total["bytes_pq"],
            "ratio_pqh": total["bytes_dense"] / total["bytes_pqh"],
            "reported_dense_bytes": net.reported.dense_MB * 1e6,
            "reported_compressed_bytes": net.reported.compressed_MB * 1e6,
            "reported_ratio": net.reported.ratio,
            "reported_ratio_pq": net.reported.ratio_pq,
        })
    return pd.DataFrame(rows)

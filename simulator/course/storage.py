"""Course claims about weight storage and EIE (areas ``storage`` and ``eie``).

Bytes come from the sparsity formats' own storage counts (simulator/formats/sparsity.py), from
``estimate_gemm``'s byte columns, from Deep Compression's stage model (simulator/kernels/deep_compression.py)
and from ``estimate_model``'s memory per GPU; EIE's speed-up and energy gains are the geometric
means of ``sparsim eie --compare`` (simulator/kernels/eie.py). Shapes that the claims leave open use the
course's own example, a 4096 x 4096 weight (slide D.3), or a batch-1 decode GEMV of it.
"""

from __future__ import annotations

import functools
import math

from simulator.course import Check, Claim, evaluates
from simulator.core.errors import SimulatorError
from simulator.formats.sparsity import NM, Dense, Unstructured, parse_sparsity

ROWS = COLS = 4096  # the course's example weight (slide D.3: R x C = 4096 x 4096)
GEMV_HW = "a100"    # a device with 2:4 sparse tensor cores, for "what a GEMV reads" claims


# ---- helpers -----------------------------------------------------------------------------------

def _pattern(claim: Claim, spec: "str | None" = None):
    return parse_sparsity(spec or claim.setup["pattern"])


def _dtype(claim: Claim) -> str:
    return (claim.setup or {}).get("dtype", "fp16")


def _storage(spec, dtype: str, rows: int = ROWS, cols: int = COLS) -> tuple[float, float, float]:
    """(value bytes, metadata bytes, dense bytes) of a rows x cols weight in format ``spec``."""
    fmt = parse_sparsity(spec)
    values, meta = fmt.weight_bytes(rows, cols, dtype, fmt.density)
    dense, _ = Dense().weight_bytes(rows, cols, dtype, 1.0)
    return float(values), float(meta), float(dense)


@functools.lru_cache(maxsize=8)
def _gemv_read_fraction(spec: str, dtype: str) -> tuple[float, str]:
    """Weight + metadata bytes a batch-1 GEMV reads in ``spec``, over the dense GEMV's weight bytes."""
    from simulator.kernels.gemm import estimate_gemm

    sparse = estimate_gemm(GEMV_HW, 1, ROWS, COLS, dtype, spec).iloc[0]
    dense = estimate_gemm(GEMV_HW, 1, ROWS, COLS, dtype, "dense").iloc[0]
    fraction = (float(sparse.bytes_weight) + float(sparse.bytes_metadata)) / float(dense.bytes_weight)
    what = (f"estimate_gemm({GEMV_HW}, M=1, N=K={ROWS}, {dtype}, {spec!r}, kernel {sparse.kernel}): "
            f"(bytes_weight {sparse.bytes_weight:,.0f} + bytes_metadata {sparse.bytes_metadata:,.0f}) "
            f"/ dense {dense.bytes_weight:,.0f}")
    return fraction, what


# ---- formats: sparsity, patterns, metadata -----------------------------------------------------

@evaluates("l1-d1-24-pattern-count", "l1-d2-14-pattern-count")
def nm_pattern_count(claim: Claim) -> Check:
    fmt = _pattern(claim)
    if not isinstance(fmt, NM) or fmt.pairwise:
        return Check(None, f"not modelled: {fmt.label} is not an element-wise N:M format")
    return Check(float(math.comb(fmt.m, fmt.n)),
                 f"parse_sparsity({fmt.label!r}) -> N:M n={fmt.n}, m={fmt.m}; legal patterns = math.comb(m, n) "
                 f"= C({fmt.m},{fmt.n}) = {math.comb(fmt.m, fmt.n)} (combinatorial identity on the format's n, m)")


@evaluates("l1-d2-24-sparsity", "l1-d2-14-28-sparsity")
def nm_sparsity(claim: Claim) -> Check:
    patterns = claim.setup["pattern"]
    patterns = patterns if isinstance(patterns, list) else [patterns]
    sparsity = {p: 1.0 - float(parse_sparsity(p).density) for p in patterns}
    # several patterns: report the one farthest from the slide's value (all must hold)
    worst = max(sparsity, key=lambda p: abs(sparsity[p] - float(claim.value)))
    listed = ", ".join(f"{p}: 1 - {parse_sparsity(p).n}/{parse_sparsity(p).m} = {s:g}" for p, s in sparsity.items())
    return Check(sparsity[worst], f"1 - parse_sparsity(pattern).density per pattern ({listed})"
                 + ("; value = the one farthest from the slide" if len(patterns) > 1 else ""))


@evaluates("l1-d2-24-metadata-overhead")
def nm_metadata_overhead(claim: Claim) -> Check:
    fmt, dtype = _pattern(claim), _dtype(claim)
    _, meta, dense = _storage(fmt, dtype)
    return Check(meta / dense, arithmetic=f"{fmt.metadata_bits_per_group} bit per group of {fmt.m} / ({fmt.m} x "
                 f"{dense * 8 / (ROWS * COLS):g} bit) = {meta / dense:.4g}", basis=
                 f"NM({fmt.label}).weight_bytes({ROWS}x{COLS}, {dtype}): metadata {meta:,.0f} B "
                 f"({fmt.metadata_bits_per_group} bits per group of {fmt.m}) / dense {dense:,.0f} B")


@evaluates("l1-d3-metadata-size-4096")
def nm_metadata_bytes(claim: Claim) -> Check:
    fmt, dtype = _pattern(claim), _dtype(claim)
    rows, cols = int(claim.setup["rows"]), int(claim.setup["cols"])
    values, meta, dense = _storage(fmt, dtype, rows, cols)
    return Check(meta, arithmetic=f"{rows} x {cols} / {fmt.m} groups x {fmt.metadata_bits_per_group} bit / 8 = "
                 f"{meta:,.0f} B = {meta / 2**20:g} MiB", basis=f"NM({fmt.label}).weight_bytes({rows}x{cols}, {dtype}): metadata = {rows}x{cols}/{fmt.m} "
                       f"groups x {fmt.metadata_bits_per_group} bit / 8 = {meta:,.0f} B (values {values:,.0f} B)")


@evaluates("l1-d3-24-total-storage", "l1-d3-24-l2-working-set-halved")
def nm_total_storage(claim: Claim) -> Check:
    fmt, dtype = _pattern(claim), _dtype(claim)
    values, meta, dense = _storage(fmt, dtype)
    return Check((values + meta) / dense, arithmetic=f"values {values / dense:.4g} + metadata {meta / dense:.4g} = "
                 f"{(values + meta) / dense:.4g} of dense ({values:,.0f} + {meta:,.0f} B of {dense:,.0f} B)", basis=
                 f"NM({fmt.label}).weight_bytes({ROWS}x{COLS}, {dtype}): (values {values / dense:.4g} + "
                 f"metadata {meta / dense:.4g}) of dense bytes")


@evaluates("l1-d3-24-near-2to1")
def nm_compression_ratio(claim: Claim) -> Check:
    fmt, dtype = _pattern(claim), _dtype(claim)
    values, meta, dense = _storage(fmt, dtype)
    return Check(dense / (values + meta), arithmetic=f"{dense:,.0f} / ({values:,.0f} + {meta:,.0f}) = "
                 f"{dense / (values + meta):.4g}", basis=
                 f"NM({fmt.label}).weight_bytes({ROWS}x{COLS}, {dtype}): dense {dense:,.0f} B / "
                 f"(values {values:,.0f} + metadata {meta:,.0f}) B")


@evaluates("l1-c5-24-bandwidth-halved", "l1-d3-dram-read-fraction", "l2-intro-24-dram-bandwidth-halved")
def nm_gemv_read_fraction(claim: Claim) -> Check:
    fraction, what = _gemv_read_fraction(_pattern(claim).label, _dtype(claim))
    return Check(fraction, what, arithmetic=f"(weight + metadata bytes) / dense weight bytes = {fraction:.4g}")


@evaluates("l1-d3-bandwidth-saving-47pct")
def nm_gemv_read_saving(claim: Claim) -> Check:
    fraction, what = _gemv_read_fraction(_pattern(claim).label, _dtype(claim))
    return Check(1.0 - fraction, "1 - " + what, arithmetic=f"1 - {fraction:.4g} = {1 - fraction:.4g}")


@evaluates("l1-c3-naive-50pct-halves-bytes")
def unstructured_bytes_fraction(claim: Claim) -> Check:
    # sparsim's default unstructured storage (what 'unstructured:0.5' parses to): CSR, int32 indices
    dtype = _dtype(claim)
    spec = f"unstructured:{float(claim.setup['sparsity']):g}"
    fmt = parse_sparsity(spec)
    values, meta, dense = _storage(fmt, dtype)
    bitmap = _storage(Unstructured(sparsity=fmt.sparsity, storage="bitmap"), dtype)
    return Check((values + meta) / dense, arithmetic=f"({values:,.0f} B values + {meta:,.0f} B index) / {dense:,.0f} B "
                 f"= {(values + meta) / dense:.4g}", basis=
                 f"{spec} (default {fmt.storage}) {ROWS}x{COLS} {dtype}: (values + index) / dense "
                 f"= {(values + meta) / dense:.4g}; bitmap would be {sum(bitmap[:2]) / bitmap[2]:.4g}")


@evaluates("l1-c4-sparse-index-bits")
def unstructured_index_bytes(claim: Claim) -> Check:
    from simulator.kernels.eie import load_eie

    from simulator.formats.sparsity import INDEX_BYTES

    # The slide's quantity is the position index each stored element carries: CSR's column index.
    # The row pointers are per row, not per element (the basis gives their share).
    fmt = parse_sparsity("unstructured:0.5:csr")
    values, meta, _ = _storage(fmt, "fp16")
    nnz = ROWS * COLS * float(fmt.density)
    eie_bits = load_eie().encoding.relative_index_bits
    return Check(INDEX_BYTES,
                 f"CSR (sparsim's unstructured default): {INDEX_BYTES:g} B column index per non-zero; with the row "
                 f"pointers {meta / nnz:.5g} B per non-zero ({ROWS}x{COLS} at 50%); EIE's relative index is "
                 f"{eie_bits} bit = {eie_bits / 8:g} B")


# ---- Deep Compression --------------------------------------------------------------------------

@evaluates("l1-b2-deepcompression-32to5bit")
def dc_weight_bits_ratio(claim: Claim) -> Check:
    from simulator.kernels.deep_compression import FP32_BYTES, load_networks

    net = load_networks()[claim.setup["model"]]
    prefix = claim.setup.get("layers", "fc")
    bits = {layer.name: layer.weight_bits for layer in net.layers if layer.name.startswith(prefix)}
    if len(set(bits.values())) != 1:
        return Check(None, f"not modelled: {net.id} {prefix} layers use different bit widths {bits}")
    wbits = next(iter(bits.values()))
    return Check(FP32_BYTES * 8 / wbits,
                 f"deep-compression.yaml {net.id} {'/'.join(bits)} weight_bits = {wbits} vs fp32 "
                 f"({FP32_BYTES:g} B = {FP32_BYTES * 8:g} bit): ratio on the values, before index and codebook")


@functools.lru_cache(maxsize=1)
def _dc_summary():
    from simulator.kernels.deep_compression import network_summary

    return network_summary("measured").set_index("network")


@evaluates("l1-b2-deepcompression-alexnet-35x", "l1-b2-deepcompression-vgg16-49x")
def dc_network_ratio(claim: Claim) -> Check:
    r = _dc_summary().loc[claim.setup["model"]]
    return Check(float(r["ratio_pqh"]),
                 f"deep_compression.network_summary('measured') {r.name}: {r['bytes_dense'] / 1e6:.0f} MB fp32 -> "
                 f"P+Q+H {r['bytes_pqh'] / 1e6:.2f} MB (P+Q alone {r['ratio_pq']:.1f}x; Huffman code lengths "
                 f"are the paper's, an input)")


# ---- LLM weight storage ------------------------------------------------------------------------

LLM_MODEL = "llama-2-7b"  # LLaMA-7B and LLaMA-2-7B share the architecture (6.74e9 parameters)


def _weight_bytes(model: str, **kw) -> float:
    from simulator.model.llm import estimate_model

    return estimate_model(model, "h100", "decode", 1, 1024, dtype="fp16", with_ops=False,
                          **kw).summary["weight_bytes_per_gpu"]


@functools.lru_cache(maxsize=1)
def _two_bit_bytes() -> tuple[float, float, float]:
    """(fp16 bytes, int4:g128 bytes, 2-bit bytes) of LLaMA-7B's weights.

    sparsim has no 2-bit dtype: the 2-bit size is the int4:g128 estimate with every linear
    weight's value bytes halved (4 -> 2 bit) and its g128 scale/zero bytes kept."""
    from simulator.model.llm import estimate_model

    est = estimate_model(LLM_MODEL, "h100", "decode", 1, 1024, dtype="fp16", weights="int4:g128")
    gemms = est.ops[est.ops["kind"] == "gemm"]
    linear_values = float((gemms["bytes_weight"] * gemms["count"]).sum())
    int4 = est.summary["weight_bytes_per_gpu"]
    return _weight_bytes(LLM_MODEL), int4, int4 - linear_values / 2.0


@evaluates("l2-d1-2bit-6x-memory")
def two_bit_memory_ratio(claim: Claim) -> Check:
    fp16, int4, two = _two_bit_bytes()
    return Check(fp16 / two,
                 f"{LLM_MODEL} weights fp16 {fp16 / 1e9:.2f} GB / 2-bit {two / 1e9:.2f} GB = estimate_model "
                 f"int4:g128 ({int4 / 1e9:.2f} GB) with linear values halved, g128 scales kept, lm_head too, "
                 f"embedding fp16")


@evaluates("l2-d1-sparsegpt24-gptq4-5.6x")
def sparse_quant_ratio(claim: Claim) -> Check:
    pattern, bits = claim.setup["pattern"], int(claim.setup["weight_bits"])
    weights = f"int{bits}"  # GPTQ's default per-channel (per output row) fp16 scales
    fp16 = _weight_bytes(LLM_MODEL)
    both = _weight_bytes(LLM_MODEL, weights=weights, recipe=f"sparsegpt-{pattern}")
    return Check(fp16 / both,
                 f"estimate_model {LLM_MODEL} weight bytes: fp16 {fp16 / 1e9:.2f} GB / (recipe sparsegpt-{pattern}, "
                 f"--weights {weights} per-channel) {both / 1e9:.2f} GB; embedding fp16, lm_head {weights} dense")


@evaluates("l2-d1-slim-outlier-bits")
def outlier_mixed_bits(claim: Claim) -> Check:
    """Average stored bits per weight when weights beyond ``outlier_sigma`` standard deviations of a
    Gaussian keep ``outlier_bits`` (with an ``index_bits`` position each) and the rest ``bits``, plus
    one fp16 scale and zero (``scale_bits``) per ``group_size`` weights."""
    s = claim.setup
    sigma = float(s["outlier_sigma"])
    tail = math.erfc(sigma / math.sqrt(2.0))  # two-sided Gaussian tail beyond sigma: P(|x| > 3) = 0.0027
    values = tail * s["outlier_bits"] + (1.0 - tail) * s["bits"]
    index = tail * s["index_bits"]
    scales = s["scale_bits"] / s["group_size"]
    total = values + index + scales
    return Check(total, f"Gaussian weights: {tail:.2%} beyond {sigma:g} sigma at {s['outlier_bits']} bits with "
                        f"{s['index_bits']}-bit positions, the rest {s['bits']} bits, scale+zero per {s['group_size']}",
                 arithmetic=f"{tail:.4f} x {s['outlier_bits']} + {1 - tail:.4f} x {s['bits']} = {values:.3f} bits; "
                            f"+ {tail:.4f} x {s['index_bits']} = {index:.3f} (positions); + {s['scale_bits']} / "
                            f"{s['group_size']} = {scales:.3f} (scales) = {total:.3f} bits per weight")


@evaluates("l3-a5-flash-8gb-7b")
def flash_memory(claim: Claim) -> Check:
    from simulator.model.llm import estimate_model

    from simulator.methods.dynamic import parse_dynamic

    # context 512: the LLM-in-a-Flash setup of docs/dynamic.md; the device only prices time, not memory
    model, dtype, context, method = claim.setup["model"], claim.setup["dtype"], 512, parse_dynamic("flash")
    s = estimate_model(model, "rtx-4090", "decode", 1, context, dtype=dtype, with_ops=False,
                       dynamic=method).summary
    return Check(s["memory_bytes_per_gpu"],
                 f"estimate_model {model} {dtype} decode b1 ctx {context}, dynamic flash defaults "
                 f"(a={method.activation:g}, window {method.window}): weights in DRAM "
                 f"{s['weight_bytes_per_gpu'] / 1e9:.2f} GB + KV + act (no iPhone spec; memory is device-independent)")


# ---- EIE ---------------------------------------------------------------------------------------

def _eie_spec():
    from simulator.kernels.eie import load_eie

    return load_eie()  # eie-64pe: the built 45 nm, 800 MHz design the slide's results are for


@evaluates("l1-b3-eie-pe-count")
def eie_pe_count(claim: Claim) -> Check:
    spec = _eie_spec()
    proj = spec.projection_28nm_256pe
    return Check(float(spec.pes), f"hwspecs/{spec.id}.yaml array.pes = {spec.pes} (built 45 nm design, rows of W "
                                  f"interleaved over PEs, 1-D); {proj.pes if proj else '-'} PEs only in the 28 nm "
                                  f"projection")


@evaluates("l1-b3-eie-codebook-bits")
def eie_codebook_bits(claim: Claim) -> Check:
    enc = _eie_spec().encoding
    return Check(float(enc.weight_index_bits),
                 f"eie-64pe encoding: {enc.weight_index_bits}-bit weight index into a {enc.codebook_entries}-entry "
                 f"codebook ({enc.codebook_value_bits}-bit values) + {enc.relative_index_bits}-bit relative index")


@functools.lru_cache(maxsize=4)
def _eie_gains(layers: tuple, baselines: tuple):
    from simulator.kernels.eie import comparison_table, headline_gains

    return headline_gains(comparison_table(layers=list(layers), baselines=list(baselines), seed=0))


def _eie_row(claim: Claim):
    from simulator.kernels.eie import load_baselines

    setup = claim.setup
    hw = str(setup["baseline_hw"])
    matches = [b for b in load_baselines().values() if b.hw == hw]
    if len(matches) != 1:
        raise SimulatorError(f"{claim.id}: baseline_hw {hw!r} matches {len(matches)} baselines in baselines.yaml")
    base = matches[0]
    model = "dense"  # every headline gain is against the uncompressed model ([EIE] abstract, Fig. 6/7)
    both = tuple(sorted({"cpu", "gpu", base.id}))  # one cached comparison serves all four claims
    gains = _eie_gains(tuple(setup["layers"]), both).set_index(["platform", "model"])
    return base, gains.loc[(base.id, model)], len(setup["layers"])


@evaluates("l1-b3-eie-speedup-vs-cpu", "l1-b3-eie-speedup-vs-gpu")
def eie_speedup(claim: Claim) -> Check:
    base, r, n = _eie_row(claim)
    return Check(float(r["speedup"]),
                 f"sparsim eie --compare: geomean over {n} layers of {base.hw} dense {base.dtype} GEMV time "
                 f"(estimate_gemm) / EIE 64-PE simulated time; from Table IV times: {r['paper_speedup']:.3g}x")


@evaluates("l1-b3-eie-energy-vs-cpu", "l1-b3-eie-energy-vs-gpu")
def eie_energy(claim: Claim) -> Check:
    # The paper's energy efficiency is (baseline time x baseline power) / (EIE time x EIE chip
    # power) ([EIE] Sec. VI): the same definition here, with sparsim's simulated times. sparsim's
    # own event-by-event EIE energy (what `sparsim eie --compare` prints) is in the basis.
    base, r, n = _eie_row(claim)
    return Check(float(r["energy_gain_chip_power"]),
                 f"geomean over {n} layers: {base.hw} dense time x {base.power_W:g} W / (EIE 64-PE time x "
                 f"{_eie_spec().power.chip_W:g} W chip power), the paper's definition; with sparsim's event-level "
                 f"EIE energy {r['energy_gain']:,.0f}x; the paper's own times give {r['paper_energy_gain']:,.0f}x")

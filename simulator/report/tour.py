"""``sparsim tour``: the course's headline claims, recomputed from specs and cost models."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from simulator.kernels.gemm import crossover_sparsity, estimate_gemm
from simulator.hardware.spec import load_hw
from simulator.report.text import fmt_bytes, fmt_time
from simulator.truth.workloads import anchor_table, load_layerset


def _layerset_time(hw, layers, m, dtype, sparsity):
    table = layers.table()
    df = estimate_gemm(hw, m, table["n"].to_numpy(), table["k"].to_numpy(), dtype, sparsity)
    count = table["count"].to_numpy()
    return (df["time_s"] * count).sum(), (df["memory_floor_s"] * count).sum(), (df["bytes"] * count).sum()


def section_decode_floor() -> str:
    hw = load_hw("h100")
    llama = load_layerset("llama-2-70b")
    weights = llama.parameters * 2
    floor = weights / hw.memory_bandwidth_bytes_per_s
    time, gemm_floor, gemm_bytes = _layerset_time(hw, llama, 1, "fp16", "dense")
    t24, _, b24 = _layerset_time(hw, llama, 1, "fp16", "2:4")
    return "\n".join([
        "1. Decode is memory-bound (course Part C.1): LLaMA-2-70B, fp16, batch 1, one H100 SXM",
        f"   weights {fmt_bytes(weights)} ({llama.parameters / 1e9:.2f} B params x 2 B) vs "
        f"{hw.memory.capacity_GiB:g} GiB ({fmt_bytes(hw.memory_capacity_bytes)}) of HBM: does not fit one GPU "
        f"(needs {weights / hw.memory_capacity_bytes:.2f}x its memory)",
        f"   bandwidth floor {fmt_bytes(weights)} / {hw.memory.bandwidth_GBps / 1000:.3g} TB/s = "
        f"{fmt_time(floor)} per token = {1 / floor:.1f} tok/s upper bound (slide: 140 GB / 3.35 TB/s ~ 42 ms, 24 tok/s)",
        f"   linear layers through the GEMM model: {fmt_time(time)} per token ({1 / time:.1f} tok/s) at "
        f"{hw.efficiency.hbm.value:.0%} achievable bandwidth + launches (attention and KV not included)",
        f"   with 2:4 weights: {fmt_bytes(b24)} moved ({b24 / gemm_bytes:.1%} of dense), {fmt_time(t24)} per "
        f"token: {time / t24:.2f}x faster (slide: 2:4 saves ~45% bandwidth in decode)",
    ])


def section_24_vs_m() -> str:
    hw = load_hw("h100")
    m = np.array([1, 16, 128, 1024, 8192])
    dense = estimate_gemm(hw, m, 28672, 8192, "bf16", "dense")
    sparse = estimate_gemm(hw, m, 28672, 8192, "bf16", "2:4")
    lines = ["2. What 2:4 buys depends on M (course Part D.4): LLaMA-70B up_proj 28672x8192, bf16, H100",
             "      M     dense      2:4   speedup  bound(dense/2:4)"]
    for i, tokens in enumerate(m):
        d, s = dense.iloc[i], sparse.iloc[i]
        lines.append(f"   {tokens:>5} {fmt_time(d.time_s):>9} {fmt_time(s.time_s):>9} {d.time_s / s.time_s:>8.2f}x  "
                     f"{d.bound}/{s.bound}")
    lines.append("   bytes: 2:4 bf16 weights are 56.25% of dense (50% values + 6.25% metadata), so decode gains "
                 "<= 1.78x; math gains <= 2x and real kernels reach ~1.5x")
    return "\n".join(lines)


def section_unstructured() -> str:
    hw = load_hw("a100")
    lines = ["3. 50% unstructured sparsity buys nothing on a GPU (course Part C): 4096x4096 fp16, batch 1, A100",
             "   kernel         time      vs dense"]
    dense = estimate_gemm(hw, 1, 4096, 4096, "fp16", "dense").iloc[0]
    lines.append(f"   {'dense':<10} {fmt_time(dense.time_s):>9}  {1.0:>7.2f}x")
    for storage in ("masked", "csr", "bitmap", "tiled-csl"):
        row = estimate_gemm(hw, 1, 4096, 4096, "fp16", f"unstructured:0.5:{storage}").iloc[0]
        lines.append(f"   {storage:<10} {fmt_time(row.time_s):>9}  {dense.time_s / row.time_s:>7.2f}x")
    for storage in ("csr", "bitmap", "tiled-csl"):
        cross = crossover_sparsity(hw, [1, 16, 4096], 4096, 4096, "fp16", storage)
        parts = [f"M={int(r.m)}: " + (f"{r.crossover_sparsity:.0%}" if r.beats_dense else "never")
                 for r in cross.itertuples()]
        lines.append(f"   {storage} beats dense from sparsity  " + ", ".join(parts))
    return "\n".join(lines)


def section_structured() -> str:
    hw = load_hw("h100")
    m = 2048
    full = estimate_gemm(hw, m, 14336, 4096, "bf16", "dense").iloc[0]
    pruned = estimate_gemm(hw, m, 9216, 4096, "bf16", "dense").iloc[0]
    kept = 9216 / 14336
    return "\n".join([
        "4. Structured pruning is a smaller dense GEMM, in whole tiles and waves: FFN 14336 -> 9216, "
        f"K 4096, M {m}, bf16, H100",
        f"   14336: {fmt_time(full.time_s)} ({int(full.tiles)} tiles, {int(full.waves)} waves)   "
        f"9216: {fmt_time(pruned.time_s)} ({int(pruned.tiles)} tiles, {int(pruned.waves)} waves)",
        f"   weights drop {1 - kept:.0%}, time drops {1 - pruned.time_s / full.time_s:.0%}: wave quantization "
        "rounds the saving (see notebooks for the full staircase)",
    ])


def section_anchors() -> str:
    table = anchor_table()
    state = ", ".join(sorted(set(table["calibration"])))
    lines = [f"5. Published measurements ({state}): PyTorch 2:4 tutorial, A100 80GB, fp16 3072x3072x10240"]
    for r in table.itertuples():
        lines.append(f"   {r.sparsity:<6} published {fmt_time(r.published_time_s):>9}  model "
                     f"{fmt_time(r.model_time_s):>9}  error {r.error:+.1%}")
    return "\n".join(lines)


def section_capacity() -> str:
    from simulator.model.llm import estimate_model

    lines = ["6. Capacity planning: does LLaMA-3.1-70B fit one H200 at 32k context, and how fast does it decode?",
             "   batch  recipe             weights        memory/GPU        fits   decode tok/s"]
    for batch in (1, 8):
        for recipe, weights, kv in (("dense", None, None), ("2:4", None, None), ("2:4", None, "h2o"),
                                    ("2:4", "int4:g128", None)):
            s = estimate_model("llama-3.1-70b", "h200", "decode", batch, 32768, 1, "bf16", weights, recipe,
                               kv_method=kv, with_ops=False).summary
            verdict = "yes" if s["fits"] else f"no (-{fmt_bytes(s['shortfall_bytes'])})"
            label = recipe + (f" + {kv}" if kv else "")
            speed = f"{s['tokens_per_s']:>8.1f}" if s["fits"] else f"{'-':>8}"  # no speed for what cannot run
            lines.append(f"   {batch:>5}  {label:<17}  {s['weights']:<13}  {fmt_bytes(s['memory_bytes_per_gpu']):>9}  "
                         f"{verdict:>16}   {speed}")
    lines.append("   (h2o at its paper's default budget; other KV methods: sparsim model --kv-method, docs/kv.md;"
                 " LLaMA-3.1 holds 128k positions, LLaMA-2 4k)")
    return "\n".join(lines)


def section_eie() -> str:
    from simulator.kernels.eie import headline_gains

    gains = headline_gains()
    lines = ["7. EIE (course Part B): the 64-PE accelerator, simulated from its architecture, vs batch-1 GEMV",
             "   vs                       speed-up (paper)    energy gain: events / time x power (paper)"]
    for row in gains[gains["model"] == "dense"].itertuples():
        paper_speed = f"{row.paper_speedup:.0f}x" if row.paper_speedup == row.paper_speedup else "-"
        paper_energy = f"{row.paper_energy_gain:,.0f}x" if row.paper_energy_gain == row.paper_energy_gain else "-"
        lines.append(f"   {row.label:<24} {row.speedup:>7.1f}x ({paper_speed:>5})   {row.energy_gain:>7,.0f}x / "
                     f"{row.energy_gain_chip_power:>7,.0f}x ({paper_energy:>7})")
    lines.append("   paper columns: geometric means of its own Table IV times, energy as time x 0.59 W (the paper's "
                 "method); docs/eie.md explains the CPU gap")
    return "\n".join(lines)


def section_measured() -> str:
    """Which devices have measured traces, and the held-out error the model reaches on them."""
    from simulator.hardware.spec import hwspecs_dir, list_hw
    from simulator.truth.validation import validate

    traced = [s for s in list_hw() if any((hwspecs_dir() / s.id / "traces").glob("*.csv"))]
    lines = ["8. Measured truth: held-out error of the calibrated model against torch kernel traces "
             "(sparsim validate; docs/validation.md)"]
    for spec in traced:
        result = validate(spec.id)  # by id: the spec with its calibration applied
        errors = ", ".join(f"{c['class']} {c['median_ape']:.1%}" for c in result["classes"] if c["modelled"])
        state = result["calibration_state"]
        lines.append(f"   {spec.id:<20} ({state}) median APE by class: {errors}")
        # a pooled class can hide a weak part: weight-only's int8 rows against its int4 rows
        parts = [c for c in result["subclasses"] if c["modelled"] and c["n"]]
        if parts:
            lines.append("   " + " " * 20 + "  by class/dtype (rows): " + ", ".join(
                f"{c['class']} {c['median_ape']:.1%} ({c['n']})" for c in parts))
    if not any(s.kind == "gpu" for s in traced):
        lines.append("   GPUs: no traces yet; `bash scripts/gpu_capture.sh` on an H200 captures them (docs/traces.md)")
    return "\n".join(lines)


def section_course(table) -> str:
    """Every checkable number of the course text against sparsim, counted by area and verdict."""
    from simulator.course import VERDICTS, summary_line

    lines = ["9. Every checkable number of the course text, recomputed (sparsim course; docs/course.md)",
             f"   {'area':<10}" + "".join(f"{v:>14}" for v in VERDICTS)]
    for area, group in table.groupby("area", sort=False):
        lines.append(f"   {area:<10}" + "".join(f"{(group['verdict'] == v).sum():>14}" for v in VERDICTS))
    lines.append("   " + summary_line(table))
    lines.append("   `sparsim course --verdict differs` lists the others, each with what sparsim computed; "
                 "docs/course.md says why")
    return "\n".join(lines)


def run_tour(plots_dir: "str | None" = None) -> str:
    from simulator.course import ledger

    course = ledger()
    sections = [section_decode_floor(), section_24_vs_m(), section_unstructured(), section_structured(),
                section_anchors(), section_capacity(), section_eie(), section_measured(), section_course(course)]
    if plots_dir:
        from simulator.report.figures import FIGURES, write_figures

        written = write_figures(plots_dir, flag="--plots")
        sections.append("figures (sparsim figures; captions in <name>.txt):\n" + "\n".join(
            f"   {f.name:<20} {f.what}" for f in FIGURES) + f"\nwrote {len(written)} files into {plots_dir}")
    header = "sparsim tour: the course's claims, recomputed (specs in hwspecs/, sources inside each file)"
    return "\n\n".join([header] + sections)

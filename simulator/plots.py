"""Figures. Imported only when a plot is asked for, so ``import simulator`` stays light."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from simulator.hardware import load_hw

KERNEL_COLORS = {
    "dense": "tab:blue", "masked-dense": "tab:gray", "sparse-tc": "tab:red", "nm-whatif": "tab:pink",
    "csr-spmm": "tab:orange", "bitmap-tc": "tab:green", "tiled-csl-tc": "tab:olive", "bsr-tc": "tab:purple",
}


def roofline_figure(hw, df=None, dtype: str = "bf16"):
    """Log-log roofline of ``hw`` for ``dtype``: HBM (and L2 where known) slopes, dense and
    sparse compute ceilings, and the rows of a GEMM DataFrame as points (effective FLOP/s of
    dense-equivalent work against FLOP per byte)."""
    hw = load_hw(hw)
    fig, ax = plt.subplots(figsize=(7.5, 5))
    x = np.logspace(-1, 4.5, 400)
    bw = hw.memory_bandwidth_bytes_per_s
    ceilings = []
    dense_peak = hw.matrix_peak_flop_per_s(dtype) or hw.vector_peak_flop_per_s(dtype)
    if dense_peak:
        ceilings.append((dense_peak, f"{dtype} dense peak {dense_peak / 1e12:.4g} TFLOP/s", "-"))
    sparse_peak = hw.matrix_peak_flop_per_s(dtype, sparse=True)
    if sparse_peak:
        ceilings.append((sparse_peak, f"{dtype} {hw.sparse_pattern(dtype)} sparse peak "
                         f"{sparse_peak / 1e12:.4g} TFLOP/s (dense-equivalent)", "--"))
    vector_peak = hw.vector_peak_flop_per_s("fp32")
    if vector_peak and vector_peak != dense_peak:
        ceilings.append((vector_peak, f"fp32 vector peak {vector_peak / 1e12:.3g} TFLOP/s", ":"))
    top = max(c[0] for c in ceilings)
    slope = x[x <= top / bw]
    ax.plot(slope, slope * bw, color="black", lw=1.5,
            label=f"{hw.memory.type} {hw.memory.bandwidth_GBps / 1000:.3g} TB/s")
    if hw.l2_bandwidth_bytes_per_s:
        l2 = hw.l2_bandwidth_bytes_per_s
        l2_slope = x[x <= top / l2]
        ax.plot(l2_slope, l2_slope * l2, color="gray", lw=1, ls="-.",
                label=f"L2 {l2 / 1e12:.3g} TB/s")
    for (peak, label, style), color in zip(ceilings, ("tab:blue", "tab:red", "tab:olive")):
        ridge = x[x >= peak / bw]
        ax.plot(ridge, np.full_like(ridge, peak), color=color, lw=1.5, ls=style,
                label=f"{label}; ridge {peak / bw:.0f} FLOP/B")
    if df is not None and len(df):
        for kernel, group in df.groupby("kernel", observed=True):
            ax.scatter(group["arithmetic_intensity_flop_per_byte"], group["flop_per_s"], s=28, zorder=3,
                       color=KERNEL_COLORS.get(kernel, "tab:brown"), label=f"{kernel} (model)")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP per DRAM byte, dense-equivalent work)")
    ax.set_ylabel("FLOP/s (dense-equivalent)")
    ax.set_title(f"Roofline: {hw.name}")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=7, loc="lower right")
    return fig


VERDICT_COLOURS = {"agrees": "tab:green", "near": "tab:orange", "differs": "tab:red"}


def course_figure(table):
    """The course ledger as one chart for a slide: sparsim's value over what each slide claims
    (log scale; 1 = the slide's number, or inside its range or bound), one row per claim, the
    agree and near bands shaded. Claims sparsim does not model are left out and counted."""
    from simulator.course import AGREES, NEAR

    def reference(r):
        # the point of the slide's allowance nearest to sparsim's value (the value itself if inside)
        if r.compare == "range":
            low, high = r.slide
            return min(max(r.sparsim, low), high)
        if r.compare == "at_most":
            return min(r.sparsim, r.slide)
        if r.compare == "at_least":
            return max(r.sparsim, r.slide)
        return r.slide

    rows = [r for r in table.itertuples() if r.verdict in VERDICT_COLOURS]
    if not rows:
        from simulator.errors import SimulatorError

        raise SimulatorError("--plot: nothing to plot (no claim in this selection has a value sparsim computes)")
    rows.sort(key=lambda r: (r.lecture, r.line))
    ratio = np.array([r.sparsim / reference(r) if reference(r) > 0 else np.nan for r in rows])
    ratio = np.clip(np.nan_to_num(ratio, nan=1.0), 1e-2, 1e2)
    fig, ax = plt.subplots(figsize=(8, 0.16 * len(rows) + 1.5))
    y = np.arange(len(rows))[::-1]
    ax.axvspan(1 - NEAR, 1 + NEAR, color="0.93")
    ax.axvspan(1 - AGREES, 1 + AGREES, color="0.82")
    ax.axvline(1.0, color="0.4", lw=0.8)
    ax.scatter(ratio, y, c=[VERDICT_COLOURS[r.verdict] for r in rows], s=18, zorder=3)
    ax.set_yticks(y, [f"{r.id} (L{r.line})" for r in rows], fontsize=6)
    ax.set_xscale("log")
    span = max(2.0, float(np.max(np.maximum(ratio, 1 / ratio))) * 1.2)
    ax.set_xlim(1 / span, span)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if 1 / span <= t <= span]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_ylim(-1, len(rows))
    ax.set_xlabel("sparsim / slide (1 = the slide's number, or inside its range or bound)")
    skipped = len(table) - len(rows)
    counts = {v: sum(r.verdict == v for r in rows) for v in VERDICT_COLOURS}
    ax.set_title("The course's numbers, recomputed by sparsim: "
                 + ", ".join(f"{v} {n}" for v, n in counts.items())
                 + (f", not modelled {skipped}" if skipped else ""), fontsize=9)
    for verdict, colour in VERDICT_COLOURS.items():
        ax.scatter([], [], c=colour, s=18, label=verdict)
    ax.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    return fig


def plan_figure(curves, title: str, max_tpot_s=None, most: int = 8):
    """Tokens/s per GPU against time per output token, one curve per deployment (batch grows
    along it), for the ``most`` deployments with the highest peak tokens/s per GPU."""
    keys = ["hw", "tp", "recipe", "weights", "kv_method"]
    peaks = curves.groupby(keys, sort=False)["tokens_per_s_per_gpu"].max().sort_values(ascending=False)
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for key in peaks.index[:most]:
        hw, tp, recipe, weights, kv = key
        c = curves[(curves[keys] == pd.Series(dict(zip(keys, key)))).all(axis=1)]
        ax.plot(c["tpot_s"] * 1e3, c["tokens_per_s_per_gpu"], marker="o", ms=3,
                label=f"{tp} x {hw.split('-')[0]} {recipe} {weights} KV {kv}")
    if max_tpot_s:
        ax.axvline(max_tpot_s * 1e3, color="0.4", ls="--", lw=1, label=f"target {max_tpot_s * 1e3:g} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = plt.FuncFormatter(lambda value, _: f"{value:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    ax.tick_params(which="minor", labelsize=7)
    ax.set_xlabel("time per output token (ms); batch grows along each curve")
    ax.set_ylabel("decode tokens/s per GPU")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig

"""Figures. Imported only when a plot is asked for, so ``import simulator`` stays light."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from simulator.hardware.spec import load_hw



def roofline_figure(hw, df=None, dtype: str = "bf16", lang: str = "en"):
    """Log-log roofline of ``hw`` for ``dtype`` in the course style (simulator.report.figures): the HBM
    slope, the dense peak and, when a point runs on sparse tensor cores, the 2:4 peak; the rows of
    a GEMM DataFrame as points labelled with their M (dense-equivalent FLOP/s against FLOP per
    DRAM byte). Only the roofs the points can meet are drawn."""
    from simulator.report.figures import _figure, figure_style, roofline_axes

    hw = load_hw(hw)
    with figure_style(lang):
        fig, ax = _figure()
        roofline_axes(ax, hw, df, dtype, lang)
        ax.set_title(f"Roofline: {hw.name}, {dtype}")
    return fig


VERDICT_COLOURS = {"agrees": "#009E73", "near": "#E69F00", "differs": "#D55E00"}  # Okabe-Ito
VERDICT_MARKERS = {"agrees": "o", "near": "s", "differs": "X"}  # never colour alone


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

    rows = [r for r in table.itertuples() if getattr(r, "sparsim_verdict", r.verdict) in VERDICT_COLOURS]
    if not rows:
        from simulator.core.errors import SimulatorError

        raise SimulatorError("--plot: nothing to plot (no claim in this selection has a value sparsim computes)")
    rows.sort(key=lambda r: (r.lecture, r.line))
    ratio = np.array([r.sparsim / reference(r) if reference(r) > 0 else np.nan for r in rows])
    ratio = np.clip(np.nan_to_num(ratio, nan=1.0), 1e-2, 1e2)
    fig, ax = plt.subplots(figsize=(12.8, 0.24 * len(rows) + 2))
    y = np.arange(len(rows))[::-1]
    ax.axvspan(1 - NEAR, 1 + NEAR, color="0.93")
    ax.axvspan(1 - AGREES, 1 + AGREES, color="0.82")
    ax.axvline(1.0, color="0.4", lw=0.8)
    # the x position is sparsim's value over the slide's, so the marker is sparsim's own verdict; a
    # quoted paper result is judged on the quote, which its label states ("[quote agrees]")
    own = [getattr(r, "sparsim_verdict", r.verdict) for r in rows]
    for verdict in VERDICT_COLOURS:
        pick = np.array([v == verdict for v in own])
        if pick.any():
            ax.scatter(ratio[pick], y[pick], c=VERDICT_COLOURS[verdict], marker=VERDICT_MARKERS[verdict], s=70,
                       zorder=3, label=verdict)
    quoted = [getattr(r, "judged", "sparsim") == "quote" for r in rows]
    ax.set_yticks(y, [f"{r.id} (L{r.line})" + (f" [quote {r.verdict}]" if q else "") for r, q in zip(rows, quoted)],
                  fontsize=9)
    ax.set_xscale("log")
    span = max(2.0, float(np.max(np.maximum(ratio, 1 / ratio))) * 1.2)
    ax.set_xlim(1 / span, span)
    ticks = [t for t in (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100) if 1 / span <= t <= span]
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.xaxis.set_minor_formatter(plt.NullFormatter())
    ax.set_ylim(-1, len(rows))
    ax.set_xlabel("sparsim / slide (1 = the slide's number, or inside its range or bound)")
    skipped = len(table) - len(rows)
    counts = {v: sum(o == v for o in own) for v in VERDICT_COLOURS}
    ax.set_title("The course's numbers, recomputed by sparsim\nmarkers are sparsim's own verdicts: "
                 + ", ".join(f"{v} {n}" for v, n in counts.items())
                 + (f", not modelled {skipped}" if skipped else "")
                 + (f"; {sum(quoted)} quoted results are judged on the quote, as labelled" if any(quoted) else ""),
                 fontsize=14)
    ax.xaxis.label.set_size(15)
    ax.tick_params(axis="x", labelsize=14)
    ax.legend(loc="lower right", fontsize=14)
    fig.tight_layout()
    return fig


def plan_figure(curves, title: str, max_tpot_s=None, most: int = 8):
    """Tokens/s per GPU against time per output token, one curve per deployment (batch grows
    along it), for the ``most`` deployments with the highest peak tokens/s per GPU."""
    keys = ["hw", "tp", "recipe", "weights", "kv_method"]
    peaks = curves.groupby(keys, sort=False)["tokens_per_s_per_gpu"].max().sort_values(ascending=False)
    fig, ax = plt.subplots(figsize=(12.8, 7.2))
    colours = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#999999")
    looks = [(colours[i % 8], "osD^vP*X"[i % 8], ("-", "--", "-.", ":")[i % 4]) for i in range(most)]
    for (colour, marker, style), key in zip(looks, peaks.index[:most]):
        hw, tp, recipe, weights, kv = key
        c = curves[(curves[keys] == pd.Series(dict(zip(keys, key)))).all(axis=1)]
        ax.plot(c["tpot_s"] * 1e3, c["tokens_per_s_per_gpu"], marker=marker, ms=7, ls=style, color=colour, lw=2,
                label=f"{tp} x {hw.split('-')[0]} {recipe} {weights} KV {kv}")
    if max_tpot_s:
        ax.axvline(max_tpot_s * 1e3, color="0.4", ls="--", lw=1, label=f"target {max_tpot_s * 1e3:g} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = plt.FuncFormatter(lambda value, _: f"{value:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
        axis.set_minor_formatter(plain)
    ax.tick_params(which="major", labelsize=14)
    ax.tick_params(which="minor", labelsize=12)
    ax.set_xlabel("time per output token (ms); batch grows along each curve", fontsize=16)
    ax.set_ylabel("decode tokens/s per GPU", fontsize=16)
    ax.set_title(title, fontsize=14)
    ax.legend(fontsize=13)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig


def pareto_front(x, y) -> np.ndarray:
    """Indices of the points no other point beats on both x and y (higher is better), by x."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    order = np.lexsort((-y, -x))
    front, best = [], -np.inf
    for i in order:
        if y[i] > best:
            front.append(i)
            best = y[i]
    return np.array(front[::-1], dtype=int)


def serving_figure(candidates, best, title: str, most: int = 8):
    """The serving plan's Pareto front: output tokens/s per GPU against tokens/s per user (1 / TPOT)
    over every candidate batch of every deployment that fits, the ``most`` deployments with the
    highest throughput as faint curves, the front as a line and the recommendation (a plan row) marked."""
    keys = ["hw", "tp", "recipe", "weights", "kv_method"]
    c = candidates[candidates["fits"].astype(bool)].copy()
    c["weights"] = c["weights"].fillna("default")
    c["kv_method"] = c["kv_method"].fillna("none")
    c["per_user"] = 1.0 / c["tpot_s"]
    fig, ax = plt.subplots(figsize=(12.8, 7.2))
    colours = ("#000000", "#E69F00", "#56B4E9", "#009E73", "#0072B2", "#D55E00", "#CC79A7", "#999999")
    peaks = c.groupby(keys, sort=False)["output_tokens_per_s_per_gpu"].max().sort_values(ascending=False)
    for i, key in enumerate(peaks.index[:most]):
        hw, tp, recipe, weights, kv = key
        g = c[(c[keys] == pd.Series(dict(zip(keys, key)))).all(axis=1)].sort_values("batch")
        ax.plot(g["per_user"], g["output_tokens_per_s_per_gpu"], color=colours[i % 8], marker="osD^vP*X"[i % 8],
                ms=4, lw=1, alpha=0.6, label=f"{tp} x {hw.split('-')[0]} {recipe} {weights} KV {kv}")
    front = c.iloc[pareto_front(c["per_user"], c["output_tokens_per_s_per_gpu"])]
    ax.plot(front["per_user"], front["output_tokens_per_s_per_gpu"], color="#D55E00", lw=3, label="Pareto front")
    if best is not None:
        ax.plot([1.0 / best["tpot_s"]], [best["output_tokens_per_s_per_gpu"]], marker="*", ms=22, color="#CC79A7",
                markeredgecolor="black", ls="none",
                label=f"recommended: {best['gpus_per_replica']} x {best['hw'].split('-')[0]} {best['recipe']}, "
                      f"batch {best['batch']}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    plain = plt.FuncFormatter(lambda value, _: f"{value:g}")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(plain)
    ax.tick_params(which="major", labelsize=14)
    ax.set_xlabel("tokens/s per user (1 / TPOT); batch grows to the left", fontsize=16)
    ax.set_ylabel("sustained output tokens/s per GPU", fontsize=16)
    ax.set_title(title, fontsize=14)
    ax.legend(fontsize=11)
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    return fig

"""``sparsim figures``: every quantitative figure of the pruning course, computed from the models.

One style for all of them: 16:9 at slide size (1280 x 720 px), fonts of 14 pt and more, the
Okabe-Ito colours (safe for colour-blind readers) and never colour alone (each series also has
its own marker, line style or hatch). Each figure is written with a one-line caption beside it
(``<name>.txt``) saying what was computed, on which specs, and where the result rests on an
efficiency that no measurement has calibrated yet.

``--lang zh`` labels in Chinese with the course's own terms and needs a CJK font (Debian's
``fonts-noto-cjk``); without one it fails with one line saying so, and it checks that the font
covers every character it will draw (no tofu boxes). Imported only when figures are asked for.

Over 600 lines: one self-contained function per course figure (about fifteen), sharing only the styling at the top.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import matplotlib

import matplotlib.ticker
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from simulator.core.errors import SimulatorError
from simulator.hardware.spec import load_hw

WIDTH_PX, HEIGHT_PX, DPI = 1280, 720, 100
FIGSIZE = (WIDTH_PX / DPI, HEIGHT_PX / DPI)  # 12.8 x 7.2 in: 14 pt is 19 px at 100 dpi
FORMATS = ("png", "svg", "pdf")
LANGS = ("en", "zh")
MIN_FONT_PT = 14

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky": "#56B4E9", "green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "purple": "#CC79A7"}
# one look per series kind, used by every figure: (colour, marker, line style, hatch)
SERIES = {
    "dense": (OKABE_ITO["black"], "o", "-", ""),
    "2:4": (OKABE_ITO["vermillion"], "^", "--", "//"),
    "masked": (OKABE_ITO["purple"], "x", ":", "xx"),
    "csr": (OKABE_ITO["orange"], "s", "-.", "\\\\"),
    "bitmap": (OKABE_ITO["blue"], "D", "--", ".."),
    "tiled-csl": (OKABE_ITO["green"], "v", (0, (5, 1, 1, 1)), "--"),
    "block": (OKABE_ITO["sky"], "P", (0, (3, 1)), "++"),
    "structured": (OKABE_ITO["yellow"], "*", "-", "oo"),
}
DEVICE_LOOK = {"a100": (OKABE_ITO["orange"], "s", "-."), "h100": (OKABE_ITO["blue"], "o", "-"),
               "h200": (OKABE_ITO["green"], "D", "--"), "b200": (OKABE_ITO["vermillion"], "^", ":")}
VERDICT_LOOK = {"agrees": (OKABE_ITO["green"], ""), "near": (OKABE_ITO["orange"], "//"),
                "differs": (OKABE_ITO["vermillion"], "xx"), "not modelled": ("#BBBBBB", "..")}

STYLE = {
    "font.size": 16, "axes.titlesize": 19, "axes.labelsize": 17, "xtick.labelsize": 15, "ytick.labelsize": 15,
    "legend.fontsize": 14, "legend.title_fontsize": 14, "lines.linewidth": 2.6, "lines.markersize": 9,
    "axes.grid": True, "grid.alpha": 0.3, "axes.spines.top": False, "axes.spines.right": False,
    "figure.dpi": DPI, "savefig.dpi": DPI, "svg.fonttype": "path", "pdf.fonttype": 42,
    "hatch.linewidth": 1.2, "figure.constrained_layout.use": True,
}

# The course's own terms (seed text: 非结构化, 半结构化, 结构化剪枝, 稀疏度, 加速, 带宽, 算术强度 ...) and
# the rest of the labels. Keys are the English labels; what is missing here stays English.
ZH = {
    "dense": "稠密", "2:4 sparse": "2:4 半结构化稀疏", "masked dense": "掩码稠密 (masked)",
    "CSR": "CSR (非结构化)", "bitmap": "bitmap (非结构化)", "Tiled-CSL": "Tiled-CSL (非结构化)",
    "unstructured sparsity": "非结构化稀疏度", "latency (us)": "延迟 (µs)", "speed-up over dense": "相对稠密的加速比",
    "break-even": "盈亏平衡点", "never beats dense": "始终不如稠密",
    "decode": "Decode", "prefill": "Prefill", "arithmetic intensity (FLOP per DRAM byte)": "算术强度 (FLOP/字节, 显存)",
    "throughput (TFLOP/s, dense-equivalent)": "吞吐 (TFLOP/s, 等效稠密)", "Roofline": "Roofline 模型",
    "HBM": "HBM 带宽", "dense peak": "稠密峰值", "2:4 sparse peak": "2:4 稀疏峰值", "ridge": "拐点",
    "M (tokens in the GEMM)": "M (GEMM 中的 token 数)", "K (reduction dimension)": "K (归约维度)",
    "2:4 speed-up over dense": "2:4 相对稠密的加速比", "2x math ceiling": "2× 算力上限",
    "byte ceiling": "字节上限", "values": "数值", "metadata": "元数据 (位置索引)",
    "bytes stored (% of dense, same dtype)": "存储字节 (占同精度稠密的 %)",
    "sparsity": "稀疏度", "N:M pattern": "N:M 模式", "bytes stored (% of dense)": "存储字节 (占稠密的 %)",
    "native on the GPU": "GPU 原生支持", "what-if (no native kernel)": "假设 (无原生内核)",
    "speed-up over dense (decode, M=1)": "相对稠密的加速比 (Decode, M=1)",
    "speed-up over dense (prefill, M=4096)": "相对稠密的加速比 (Prefill, M=4096)",
    "EIE speed-up (log scale)": "EIE 加速比 (对数坐标)", "EIE energy gain (log scale)": "EIE 能效提升 (对数坐标)",
    "geo. mean": "几何平均", "layer": "层",
    "context (tokens)": "上下文长度 (token)", "KV cache (GB)": "KV Cache (GB)",
    "MHA (no GQA, 64 KV heads)": "MHA (无 GQA, 64 个 KV 头)", "GQA (8 KV heads)": "GQA (8 个 KV 头)",
    "GQA + KIVI 2-bit": "GQA + KIVI 2-bit 量化", "GQA + H2O": "GQA + H2O 淘汰",
    "fp16 weights": "fp16 权重", "memory": "显存",
    "decode time per token (ms)": "每 token 的 Decode 时间 (ms)", "weights": "权重读取", "KV cache": "KV Cache 读取",
    "other (launches, norms)": "其他 (启动, 归一化)",
    "width (FFN channels)": "宽度 (FFN 通道)", "heads (attention heads)": "注意力头",
    "hidden (embedding dim)": "隐藏维度", "depth (whole layers)": "深度 (整层)",
    "decode speed-up": "Decode 加速比", "prefill speed-up": "Prefill 加速比", "weight memory saved": "权重显存节省",
    "gain (x)": "收益 (×)", "fraction of the axis removed": "该维度剪掉的比例",
    "structured": "结构化剪枝 (宽度)", "block 32x32": "块稀疏 32×32", "unstructured (best kernel)": "非结构化 (最优内核)",
    "claims": "论断数", "lecture": "讲", "area": "领域", "agrees": "一致", "near": "接近", "differs": "不一致",
    "not modelled": "未建模", "claim": "论断", "slide": "课件", "sparsim": "sparsim", "verdict": "结论",
    "line": "行", "quote": "引文",
}


def _t(text: str, lang: str) -> str:
    return ZH.get(text, text) if lang == "zh" else text


# ---------------------------------------------------------------------------------------- fonts

CJK_FAMILIES = ("Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "Noto Sans CJK JP", "Source Han Sans",
                "WenQuanYi Zen Hei", "WenQuanYi Micro Hei")
CJK_FILE_HINTS = ("NotoSansCJK", "NotoSansSC", "SourceHanSans", "wqy-zenhei", "wqy-microhei")
CJK_INSTALL = ("install a CJK font: Debian/Ubuntu `apt-get install fonts-noto-cjk` (or drop NotoSansCJK-Regular.ttc "
               "into ~/.fonts); then run again")


def cjk_font() -> "tuple[str, str] | None":
    """(family name, file) of an installed CJK font matplotlib can use, or None. Fonts installed
    after matplotlib built its cache are found by their file names and added."""
    from matplotlib import font_manager

    for family in CJK_FAMILIES:
        for entry in font_manager.fontManager.ttflist:
            if entry.name == family:
                return entry.name, entry.fname
    for path in font_manager.findSystemFonts():
        if any(hint.lower() in Path(path).name.lower() for hint in CJK_FILE_HINTS) and "Bold" not in Path(path).name:
            font_manager.fontManager.addfont(path)
            name = font_manager.FontProperties(fname=path).get_name()
            return name, path
    return None


def missing_glyphs(font_file: str, text: str) -> str:
    """The characters of ``text`` that ``font_file`` has no glyph for (would be drawn as boxes)."""
    from matplotlib.ft2font import FT2Font

    charmap = FT2Font(font_file).get_charmap()
    return "".join(sorted({ch for ch in text if not ch.isspace() and ord(ch) not in charmap}))


def _zh_font() -> str:
    found = cjk_font()
    if found is None:
        raise SimulatorError(f"--lang zh: no CJK font found; {CJK_INSTALL}")
    name, path = found
    missing = missing_glyphs(path, "".join(ZH.values()))
    if missing:
        raise SimulatorError(f"--lang zh: font {name} ({path}) lacks {len(missing)} character(s) "
                             f"({missing[:20]}); {CJK_INSTALL}")
    return name


@contextlib.contextmanager
def figure_style(lang: str = "en"):
    """The course style (and a CJK font for ``lang='zh'``) for the figures drawn inside."""
    if lang not in LANGS:
        raise SimulatorError(f"--lang {lang!r}: allowed: {', '.join(LANGS)}")
    style = dict(STYLE)
    if lang == "zh":
        style["font.family"] = [_zh_font(), "DejaVu Sans"]
        style["axes.unicode_minus"] = False
    with matplotlib.rc_context(style):
        yield


def _figure(ncols: int = 1, **kwargs):
    return plt.subplots(1, ncols, figsize=FIGSIZE, **kwargs)


def _uncalibrated(hw, *fields) -> str:
    """A caption clause when an efficiency the figure rests on is a spec default, not a fit."""
    hw = load_hw(hw)
    weak = [f for f in fields if (getattr(hw.efficiency, f, None) is not None
                                  and any(w in getattr(hw.efficiency, f).source for w in ("JUDGEMENT", "DERIVED", "pending")))]
    return (f"; rests on uncalibrated efficiencies of {hw.id} ({', '.join(weak)}: spec defaults, no GPU traces fitted)"
            if weak else "")


def _plain_log(axis):
    axis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_formatter(plt.NullFormatter())


def _tokens(v, _=None) -> str:
    return f"{v / 1024:g}k" if v >= 1024 else f"{v:g}"


# ---------------------------------------------------------------------------------------- roofline

ROOFLINE_SHAPE = (28672, 8192)  # LLaMA-70B up_proj, N x K (course Part C.1/D.4)


def roofline_axes(ax, hw, df=None, dtype: str = "bf16", lang: str = "en", sparse_roof=None, label_points=True):
    """A log-log roofline on ``ax``: the DRAM slope, the dense peak and (when asked, or when a
    point runs on sparse tensor cores) the 2:4 peak, with the rows of a GEMM DataFrame as points
    (dense-equivalent FLOP/s against FLOP per DRAM byte). Points are labelled with their M."""
    hw = load_hw(hw)
    bw = hw.memory_bandwidth_bytes_per_s
    dense_peak = hw.matrix_peak_flop_per_s(dtype) or hw.vector_peak_flop_per_s(dtype)
    if not dense_peak:
        raise SimulatorError(f"roofline: {hw.id} has no {dtype} peak")
    sparse_peak = hw.matrix_peak_flop_per_s(dtype, sparse=True)
    if sparse_roof is None:
        sparse_roof = df is not None and len(df) and (df["kernel"] == "sparse-tc").any()  # native 2:4 only
    roofs = [(dense_peak, f"{_t('dense peak', lang)} {dense_peak / 1e12:.4g} TFLOP/s", "-", OKABE_ITO["black"])]
    if sparse_roof and sparse_peak:
        roofs.append((sparse_peak, f"{_t('2:4 sparse peak', lang)} {sparse_peak / 1e12:.4g} TFLOP/s", "--",
                      OKABE_ITO["vermillion"]))
    lo = 0.3
    hi = 3e4
    if df is not None and len(df):
        ai = df["arithmetic_intensity_flop_per_byte"].to_numpy(dtype=float)
        lo, hi = min(lo, ai.min() / 2), max(hi, ai.max() * 3)
    x = np.logspace(np.log10(lo), np.log10(hi), 400)
    top = max(r[0] for r in roofs)
    ax.plot(x[x <= top / bw], x[x <= top / bw] * bw / 1e12, color=OKABE_ITO["blue"], ls="-.",
            label=f"{_t('HBM', lang)} {hw.memory.bandwidth_GBps / 1000:.3g} TB/s")
    for peak, label, style, colour in roofs:
        ridge = x[x >= peak / bw]
        ax.plot(ridge, np.full_like(ridge, peak / 1e12), color=colour, ls=style,
                label=f"{label}; {_t('ridge', lang)} {peak / bw:.0f} FLOP/B")
    if df is not None and len(df):
        from simulator.kernels.families import KERNEL_FAMILIES

        for kernel, group in df.groupby("kernel", observed=True, sort=False):
            family = KERNEL_FAMILIES.get(kernel)
            colour, marker, _, _ = SERIES[family.series if family else "dense"]
            name = _t(family.label, lang) if family and family.label else kernel
            ax.scatter(group["arithmetic_intensity_flop_per_byte"], group["flop_per_s"] / 1e12, s=110, zorder=4,
                       color=colour, marker=marker, edgecolor="white", linewidth=0.8,
                       label=f"{name} (model)")
            if label_points and len(df) <= 16:
                for r in group.itertuples():
                    phase = _t("decode", lang) if r.m <= 64 else _t("prefill", lang)
                    ax.annotate(f"{phase} M={int(r.m)}", (r.arithmetic_intensity_flop_per_byte, r.flop_per_s / 1e12),
                                textcoords="offset points", xytext=(8, -18 if kernel == "dense" else 8),
                                fontsize=MIN_FONT_PT, color=colour)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel(_t("arithmetic intensity (FLOP per DRAM byte)", lang))
    ax.set_ylabel(_t("throughput (TFLOP/s, dense-equivalent)", lang))
    ax.legend(loc="lower right")
    return ax


def roofline(lang="en"):
    hw = load_hw("h100")
    from simulator.kernels.gemm import estimate_gemm

    m = np.array([1, 16, 4096])
    n, k = ROOFLINE_SHAPE
    df = pd.concat([estimate_gemm(hw, m, n, k, "bf16", fmt) for fmt in ("dense", "2:4")], ignore_index=True)
    fig, ax = _figure()
    roofline_axes(ax, hw, df, "bf16", lang, sparse_roof=True)
    ax.set_title(f"{_t('Roofline', lang)}: {hw.name}, bf16, W {n}x{k}")
    caption = (f"Roofline of {hw.name} (bf16 dense and 2:4 peaks, HBM bandwidth from hwspecs/{hw.id}.yaml) with the "
               f"LLaMA-70B up_proj GEMM ({n}x{k}) at decode M=1, 16 and prefill M=4096, dense and 2:4, from the GEMM "
               "cost model" + _uncalibrated(hw, "sparse_matrix"))
    return fig, caption


# ---------------------------------------------------------------------------------------- unstructured

UNSTRUCTURED_SHAPE = (4096, 4096)


def unstructured(device: str, lang="en"):
    from simulator.kernels.gemm import crossover_sparsity, estimate_gemm
    from simulator.formats.sparsity import Unstructured

    hw = load_hw(device)
    n, k = UNSTRUCTURED_SHAPE
    sparsity = np.linspace(0.0, 0.98, 50)
    fig, axes = _figure(2)
    names = {"masked": "masked dense", "csr": "CSR", "bitmap": "bitmap", "tiled-csl": "Tiled-CSL"}
    notes = []
    for ax, m in zip(axes, (1, 4096)):
        dense = estimate_gemm(hw, m, n, k, "fp16").time_s.iloc[0]
        ax.plot(sparsity, np.full_like(sparsity, dense * 1e6), color=SERIES["dense"][0], ls="-", lw=3.2,
                label=_t("dense", lang), zorder=2)
        cross = {}
        for j, storage in enumerate(("masked", "csr", "bitmap", "tiled-csl")):
            colour, marker, ls, _ = SERIES[storage]
            df = estimate_gemm(hw, m, n, k, "fp16", Unstructured(sparsity=sparsity, storage=storage))
            # masked dense sits exactly on dense: drawn thinner on top with markers so both show
            # markers offset per series: where bitmap and Tiled-CSL coincide (prefill) both stay visible
            ax.plot(sparsity, df.time_s * 1e6, color=colour, ls=ls, marker=marker, markevery=(2 * j, 8),
                    lw=1.8 if storage == "masked" else 2.6, label=_t(names[storage], lang), zorder=3)
            if storage != "masked":
                c = crossover_sparsity(hw, [m], n, k, "fp16", storage).iloc[0]
                cross[storage] = c.crossover_sparsity if c.beats_dense else None
        for i, (storage, s) in enumerate(cross.items()):
            colour = SERIES[storage][0]
            if s is None:
                notes.append(f"M={m} {names[storage]} never")
                continue
            notes.append(f"M={m} {names[storage]} {s:.0%}")
            ax.axvline(s, color=colour, lw=1.2, ls=":")
            ax.plot([s], [dense * 1e6], marker="o", ms=13, mfc="none", mec=colour, mew=2.5, zorder=5)
            left = s < 0.35  # a label left of an early break-even would leave the axes
            ax.annotate(f"{_t('break-even', lang)} {s:.0%}", (s, dense * 1e6), textcoords="offset points",
                        xytext=(10 if left else -10, 14 + 22 * i), ha="left" if left else "right",
                        fontsize=MIN_FONT_PT, color=colour,
                        bbox={"facecolor": "white", "edgecolor": "none", "pad": 1, "alpha": 0.85})
        ax.set_yscale("log")
        _plain_log(ax.yaxis)
        phase = _t("decode", lang) if m == 1 else _t("prefill", lang)
        ax.set_title(f"{phase} M={m}")
        ax.set_xlabel(_t("unstructured sparsity", lang))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
        ax.set_ylabel(_t("latency (us)", lang))
    axes[0].legend(loc="lower left")
    fig.suptitle(f"{hw.name}: W {n}x{k} fp16", fontsize=STYLE["axes.titlesize"])
    caption = (f"Latency of y = x.W^T, W {n}x{k} fp16 on {hw.name}, at M=1 and M=4096, for unstructured sparsity 0-98% "
               f"stored masked dense, CSR (CUDA cores), bitmap and Tiled-CSL (tensor cores), against dense; circles: "
               f"break-even sparsity ({'; '.join(notes)})"
               + _uncalibrated(hw, "csr_compute", "csr_memory", "bitmap_compute", "bitmap_memory"))
    return fig, caption


# ---------------------------------------------------------------------------------------- 2:4

SPEEDUP_DEVICES = ("a100", "h100", "h200", "b200")


def speedup_24(lang="en"):
    from simulator.kernels.gemm import estimate_gemm

    fig, axes = _figure(2, sharey=True)
    m = np.unique(np.logspace(0, 14, 43, base=2).astype(int))
    k = np.unique((np.logspace(9, 15, 31, base=2) / 64).astype(int) * 64)  # whole 2:4 groups
    weak = []
    for device in SPEEDUP_DEVICES:
        hw = load_hw(device)
        colour, marker, ls = DEVICE_LOOK[device]
        d = estimate_gemm(hw, m, 28672, 8192, "fp16", "dense")
        s = estimate_gemm(hw, m, 28672, 8192, "fp16", "2:4")
        axes[0].plot(m, d.time_s / s.time_s, color=colour, marker=marker, ls=ls, markevery=4, label=hw.name)
        d = estimate_gemm(hw, 4096, 4096, k, "fp16", "dense")
        s = estimate_gemm(hw, 4096, 4096, k, "fp16", "2:4")
        axes[1].plot(k, d.time_s / s.time_s, color=colour, marker=marker, ls=ls, markevery=3, label=hw.name)
        if _uncalibrated(hw, "sparse_matrix"):
            weak.append(hw.id)
    for ax in axes:
        ax.axhline(2.0, color="0.35", ls=(0, (8, 4)), lw=2)
        ax.axhline(1 / 0.5625, color="0.35", ls=":", lw=2)
        # named on the lines themselves: two grey lines told apart only in a legend are easy to swap
        ax.annotate(_t("2x math ceiling", lang), (0.01, 2.0), xycoords=("axes fraction", "data"), va="bottom",
                    textcoords="offset points", xytext=(0, 3), fontsize=MIN_FONT_PT, color="0.25")
        ax.annotate(f"{_t('byte ceiling', lang)} 1.78x (1/0.5625)", (0.01, 1 / 0.5625),
                    xycoords=("axes fraction", "data"), va="bottom", textcoords="offset points", xytext=(0, 3),
                    fontsize=MIN_FONT_PT, color="0.25")
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter(plt.FuncFormatter(_tokens))
    axes[0].set_xlabel(_t("M (tokens in the GEMM)", lang))
    axes[0].set_title("N=28672, K=8192")
    axes[1].set_xlabel(_t("K (reduction dimension)", lang))
    axes[1].set_title("M=N=4096")
    axes[0].set_ylabel(_t("2:4 speed-up over dense", lang))
    axes[0].set_ylim(0.8, 2.15)
    axes[1].legend(loc="lower right")
    fig.suptitle("2:4 fp16", fontsize=STYLE["axes.titlesize"])
    caption = ("2:4 over dense fp16 GEMM time from the GEMM cost model on " + ", ".join(load_hw(d).name for d in SPEEDUP_DEVICES)
               + ": left against M (N=28672, K=8192, LLaMA-70B up_proj), right against K (M=N=4096); the 2x ceiling is the "
               "peak ratio, 1.78x the byte ratio (56.25%)"
               + (f"; rests on the uncalibrated sparse_matrix efficiency (spec default) of {', '.join(weak)}" if weak else ""))
    return fig, caption


def storage_24(lang="en"):
    from simulator.formats.sparsity import NM, Dense

    fig, ax = _figure()
    n = k = 4096.0
    bars = []
    for dtype in ("fp16", "int8"):
        dv, _ = Dense().weight_bytes(n, k, dtype, 1.0)
        for fmt, name in ((Dense(), "dense"), (NM(2, 4), "2:4 sparse")):
            v, meta = fmt.weight_bytes(n, k, dtype, fmt.density)
            bars.append((f"{_t(name, lang)}\n{dtype}", float(v) / dv * 100, float(meta) / dv * 100))
    x = np.arange(len(bars))
    values = np.array([b[1] for b in bars])
    meta = np.array([b[2] for b in bars])
    ax.bar(x, values, 0.6, color=OKABE_ITO["blue"], edgecolor="black", label=_t("values", lang))
    ax.bar(x, meta, 0.6, bottom=values, color=OKABE_ITO["orange"], hatch="//", edgecolor="black",
           label=_t("metadata", lang))
    for xi, v, mt in zip(x, values, meta):
        ax.annotate(f"{v + mt:.2f}%" + (f"\n({v:.0f}% + {mt:.2f}%)" if mt else ""), (xi, v + mt), ha="center",
                    va="bottom", textcoords="offset points", xytext=(0, 4), fontsize=MIN_FONT_PT + 1)
    ax.set_xticks(x, [b[0] for b in bars])
    ax.set_ylim(0, 125)
    ax.set_ylabel(_t("bytes stored (% of dense, same dtype)", lang))
    ax.set_title("2:4: " + _t("values", lang) + " + " + _t("metadata", lang))
    ax.legend(loc="upper right")
    caption = ("Bytes of a 2:4 weight as a share of the dense weight of the same dtype (PTX sparse-operand format: "
               "2 bits of position per kept value): fp16 50% + 6.25% = 56.25%, int8 50% + 12.5% = 62.5% "
               "(simulator.formats.sparsity.NM, exact arithmetic)")
    return fig, caption


NM_PATTERNS = ((1, 2), (2, 4), (4, 8), (1, 4), (2, 8), (1, 8))


def nm_tradeoff(lang="en"):
    from simulator.kernels.gemm import estimate_gemm
    from simulator.formats.sparsity import NM

    hw = load_hw("h100")
    fig, axes = _figure(2)
    points = {}
    for n_keep, m in NM_PATTERNS:
        fmt = NM(n_keep, m)
        v, meta = fmt.weight_bytes(4096.0, 4096.0, "fp16", fmt.density)
        stored = (float(v) + float(meta)) / (4096.0 * 4096.0 * 2) * 100
        sparsity = 1 - n_keep / m
        native = (n_keep, m) == (2, 4)
        look = SERIES["2:4"] if native else SERIES["block"]
        axes[0].bar(f"{n_keep}:{m}", float(v) / (4096 * 4096 * 2) * 100, color=OKABE_ITO["blue"], edgecolor="black")
        axes[0].bar(f"{n_keep}:{m}", float(meta) / (4096 * 4096 * 2) * 100, bottom=float(v) / (4096 * 4096 * 2) * 100,
                    color=OKABE_ITO["orange"], hatch="//", edgecolor="black")
        axes[0].annotate(f"{stored:.1f}%", (f"{n_keep}:{m}", stored), ha="center", va="bottom",
                         textcoords="offset points", xytext=(0, 3), fontsize=MIN_FONT_PT)
        for mm, fill in ((1, "full"), (4096, "none")):
            d = estimate_gemm(hw, mm, 4096, 4096, "fp16").time_s.iloc[0]
            s = estimate_gemm(hw, mm, 4096, 4096, "fp16", fmt).time_s.iloc[0]
            axes[1].plot([sparsity], [d / s], marker="o" if mm == 1 else "s", ms=13, fillstyle=fill, ls="none",
                         color=look[0], mew=2)
            points.setdefault((sparsity, mm), []).append((d / s, f"{n_keep}:{m}" + ("*" if native else "")))
    # patterns at the same sparsity land within a few % of each other: one label per group, listed
    # top to bottom with their values, instead of labels printed over each other
    for (sparsity, mm), group in points.items():
        group.sort(reverse=True)
        text = "\n".join(f"{name} {v:.2f}x" for v, name in group)
        axes[1].annotate(text, (sparsity, group[0][0] if mm == 4096 else np.mean([v for v, _ in group])),
                         textcoords="offset points", xytext=(14, 6 if mm == 4096 else 0),
                         va="bottom" if mm == 4096 else "center",
                         fontsize=MIN_FONT_PT, linespacing=1.1)
    axes[1].set_xlim(0.45, 0.97)
    axes[1].set_ylim(0.95, None)
    axes[0].set_ylabel(_t("bytes stored (% of dense)", lang))
    axes[0].set_xlabel(_t("N:M pattern", lang) + " (fp16)")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    axes[0].legend(handles=[Patch(facecolor=OKABE_ITO["blue"], edgecolor="black", label=_t("values", lang)),
                            Patch(facecolor=OKABE_ITO["orange"], hatch="//", edgecolor="black",
                                  label=_t("metadata", lang))], loc="upper right")

    handles = [Line2D([], [], marker="o", ls="none", color="0.3", ms=12, label=f"{_t('decode', lang)} M=1"),
               Line2D([], [], marker="s", ls="none", color="0.3", ms=12, fillstyle="none", mew=2,
                      label=f"{_t('prefill', lang)} M=4096"),
               Line2D([], [], marker="s", ls="none", color=SERIES["2:4"][0], ms=12, label="* " + _t("native on the GPU", lang)),
               Line2D([], [], marker="s", ls="none", color=SERIES["block"][0], ms=12,
                      label=_t("what-if (no native kernel)", lang))]
    axes[1].legend(handles=handles, loc="upper left")
    axes[1].set_xlabel(_t("sparsity", lang))
    axes[1].xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
    axes[1].set_ylabel(_t("speed-up over dense", lang))
    fig.suptitle(f"N:M, {hw.name}, W 4096x4096 fp16", fontsize=STYLE["axes.titlesize"])
    caption = (f"N:M patterns: bytes stored (kept values + ceil(log2 M) bits per kept value) and the modelled speed-up "
               f"over dense on {hw.name} (W 4096x4096 fp16, M=1 and 4096); only 2:4 runs on sparse tensor cores, the "
               "others are what-ifs priced as a tensor-core kernel at the pattern's density" + _uncalibrated(hw, "sparse_matrix"))
    return fig, caption


# ---------------------------------------------------------------------------------------- EIE

def eie_axes(axes, df, lang="en", means_in_legend=False):
    """Log-scale bars of EIE's speed-up and energy gain per layer and their geometric mean,
    one hatch and colour per platform (the dense/uncompressed baselines and the compressed ones)."""
    from simulator.kernels.eie import _geomean

    layers = list(dict.fromkeys(df["layer"])) + [_t("geo. mean", lang)]
    series = list(dict.fromkeys(zip(df["platform"], df["model"])))
    colours = [OKABE_ITO[c] for c in ("black", "orange", "sky", "green", "blue", "vermillion", "purple", "yellow")]
    hatches = ["", "//", "\\\\", "xx", "..", "++", "oo", "--", "||", "**"]  # 10 against 8 colours: pairs stay unique
    width = 0.84 / len(series)
    x = np.arange(len(layers), dtype=float)
    x[-1] += 0.5  # the mean stands apart
    for ax, column, label in ((axes[0], "speedup", "EIE speed-up (log scale)"),
                              (axes[1], "energy_gain", "EIE energy gain (log scale)")):
        for i, (platform, model) in enumerate(series):
            g = df[(df["platform"] == platform) & (df["model"] == model)].set_index("layer").reindex(layers[:-1])
            values = np.append(g[column].to_numpy(dtype=float), _geomean(g[column]))
            ax.bar(x + (i - len(series) / 2 + 0.5) * width, values, width, color=colours[i % 8],
                   hatch=hatches[i % 10], edgecolor="0.6" if i % 8 == 0 else "black", linewidth=0.6,
                   label=(f"{g['label'].iloc[0]} {model}" if not means_in_legend or ax is not axes[0] else
                          f"{g['label'].iloc[0]}: {_geomean(g['speedup']):,.3g}x, {_geomean(g['energy_gain']):,.0f}x"))
            if len(series) <= 6 and not means_in_legend:  # more labels than that overlap; the CLI text lists the means
                ax.annotate(f"{values[-1]:,.0f}x" if values[-1] >= 10 else f"{values[-1]:.2g}x",
                            (x[-1] + (i - len(series) / 2 + 0.5) * width, values[-1]), ha="center", va="bottom",
                            rotation=90, fontsize=MIN_FONT_PT, textcoords="offset points", xytext=(0, 3))
        ax.axhline(1.0, color="black", lw=1)
        ax.set_yscale("log")
        ax.set_ylabel(_t(label, lang), fontsize=MIN_FONT_PT + 1)
        ax.grid(True, axis="y", which="major", alpha=0.3)
        ax.grid(False, axis="x")
        top = np.nanmax(df[column].to_numpy(dtype=float))
        ax.set_ylim(top=top * (400 if not means_in_legend else 3e3 if ax is axes[0] else 5))
    axes[1].set_xticks(x, layers)
    axes[0].tick_params(labelbottom=False)
    return axes


def eie(lang="en"):
    from simulator.kernels.eie import comparison_table, load_eie

    spec = load_eie()
    df = comparison_table(spec)
    df = df[df["model"] == "dense"]  # the course's headline numbers are against the uncompressed baselines
    fig, axes = plt.subplots(2, 1, figsize=FIGSIZE, sharex=True)
    eie_axes(axes, df, lang, means_in_legend=True)
    handles, labels = axes[0].get_legend_handles_labels()
    axes[0].legend(handles, labels, ncol=2, loc="upper left", fontsize=MIN_FONT_PT,
                   title=_t("dense baseline: geo. mean speed-up, energy gain", lang))
    axes[0].set_title(f"EIE ({spec.pes} PEs, {spec.array.clock_MHz:g} MHz) vs batch-1 GEMV (>1: EIE wins)")
    caption = (f"EIE ({spec.id}: {spec.pes} PEs simulated cycle by cycle) against batch-1 GEMV on each platform "
               "(sparsim's GEMM model on each spec, dense and CSR), speed-up and energy gain (time x power) per "
               "benchmark layer of [EIE] Table III and their geometric mean; the baselines' kernel efficiencies are "
               "spec defaults (uncalibrated); dense (uncompressed) baselines, as the paper's headline numbers")
    return fig, caption


# ---------------------------------------------------------------------------------------- LLM

KV_CONTEXTS = np.unique(np.logspace(10, 17, 29, base=2).astype(int))  # 1k .. 128k


def kv_size(lang="en"):
    from simulator.model.llm import estimate_model
    from simulator.formats.models import load_model

    model = load_model("llama-3.1-70b")
    ctx = KV_CONTEXTS
    fig, ax = _figure()
    per_token_head = 2 * model.layers * model.head_dim * 2  # K and V, fp16 bytes, per KV head per token
    curves = [("MHA (no GQA, 64 KV heads)", per_token_head * model.heads * ctx, SERIES["csr"]),
              ("GQA (8 KV heads)", per_token_head * model.kv_heads * ctx, SERIES["dense"])]
    for method, look in (("kivi", SERIES["bitmap"]), ("h2o", SERIES["tiled-csl"])):
        # one estimate per context: the summary of a vectorized call describes one point
        kv = [estimate_model(model, "h100", "decode", 1, int(c), 1, "fp16", kv_method=method,
                             with_ops=False).summary["kv_cache_bytes"] for c in ctx]
        curves.append(({"kivi": "GQA + KIVI 2-bit", "h2o": "GQA + H2O"}[method], np.array(kv, dtype=float), look))
    for label, values, (colour, marker, ls, _) in curves:
        ax.plot(ctx, values / 1e9, color=colour, marker=marker, ls=ls, markevery=4, label=_t(label, lang))
    weights = estimate_model(model, "h100", "decode", 1, 1024, 1, "fp16", with_ops=False).summary["weight_bytes_per_gpu"]
    ax.axhline(weights / 1e9, color="0.4", ls=(0, (6, 3)), lw=2)
    ax.annotate(f"{_t('fp16 weights', lang)} {weights / 1e9:.0f} GB", (ctx[0], weights / 1e9), textcoords="offset points",
                xytext=(4, 6), fontsize=MIN_FONT_PT, color="0.3")
    cross = ctx[np.argmax(curves[0][1] > weights)] if (curves[0][1] > weights).any() else None
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(plt.FuncFormatter(_tokens))
    _plain_log(ax.yaxis)
    ax.set_xlabel(_t("context (tokens)", lang) + ", batch 1")
    ax.set_ylabel(_t("KV cache (GB)", lang) + ", 1 GB = 1e9 B")
    ax.set_title(f"{model.name}: KV Cache (fp16)")
    ax.legend(loc="lower right")
    caption = (f"KV-cache bytes of one {model.name} sequence (fp16, {model.layers} layers, head_dim {model.head_dim}) "
               f"against context: without GQA ({model.heads} KV heads, hypothetical), with GQA ({model.kv_heads}), and "
               "with KIVI 2-bit and H2O at their papers' defaults (sparsim's KV methods)"
               + (f"; without GQA the cache passes the weights at {cross:,} tokens" if cross is not None else ""))
    return fig, caption


def decode_split(lang="en"):
    from simulator.model.llm import estimate_model

    model, device, batch = "llama-3.1-8b", "h100", 16
    ctx = np.array([1024, 4096, 16384, 32768, 65536, 131072])
    # one estimate per context: the summary of a vectorized call describes one point
    splits = [estimate_model(model, device, "decode", batch, int(c), 1, "bf16", with_ops=False).summary
              for c in ctx]
    s = splits[0]
    weights = np.array([x["time_by_category_s"]["weights"] for x in splits])
    kv = np.array([x["time_by_category_s"]["kv"] for x in splits])
    other = np.array([sum(v for key, v in x["time_by_category_s"].items() if key not in ("weights", "kv"))
                      for x in splits])
    fig, ax = _figure()
    x = np.arange(len(ctx))
    bottom = np.zeros(len(ctx))
    for label, values, colour, hatch in (("weights", weights, OKABE_ITO["blue"], ""),
                                         ("KV cache", kv, OKABE_ITO["vermillion"], "//"),
                                         ("other (launches, norms)", other, OKABE_ITO["yellow"], "..")):
        ax.bar(x, values * 1e3, 0.65, bottom=bottom * 1e3, color=colour, hatch=hatch, edgecolor="black",
               label=_t(label, lang))
        bottom += values
    for xi, w, k_, total in zip(x, weights, kv, bottom):
        ax.annotate(f"KV {k_ / total:.0%}", (xi, total * 1e3), ha="center", va="bottom", textcoords="offset points",
                    xytext=(0, 3), fontsize=MIN_FONT_PT)
    ax.set_xticks(x, [_tokens(c) for c in ctx])
    ax.set_xlabel(_t("context (tokens)", lang) + f", batch {batch}")
    ax.set_ylabel(_t("decode time per token (ms)", lang))
    hw = load_hw(device)
    ax.set_title(f"{s['model'] if isinstance(s['model'], str) else model} on {hw.name}, bf16, batch {batch}")
    ax.legend(loc="upper left")
    caption = (f"Decode step time of {model} on {hw.name} (bf16, batch {batch}) split into reading the weights, reading "
               "the KV cache, and the rest (launches, norms), against context, from sparsim's whole-model estimate; "
               f"memory-bound terms use the spec's achievable HBM fraction ({hw.efficiency.hbm.value:.0%})")
    return fig, caption


def structured_axes(lang="en"):
    from simulator.model.llm import estimate_model

    model, device = "llama-3.1-8b", "h100"
    axes_names = (("width", "width (FFN channels)"), ("heads", "heads (attention heads)"),
                  ("hidden", "hidden (embedding dim)"), ("depth", "depth (whole layers)"))
    cut = 0.25

    def run(recipe, phase):
        batch, ctx = (1, 4096) if phase == "decode" else (1, 4096)
        return estimate_model(model, device, phase, batch, ctx, 1, "bf16", recipe=recipe, with_ops=False).summary

    base = {p: run("dense", p) for p in ("decode", "prefill")}
    rows = []
    for axis, label in axes_names:
        d, p = run(f"{axis}:{cut}", "decode"), run(f"{axis}:{cut}", "prefill")
        rows.append((label, base["decode"]["time_s"] / d["time_s"], base["prefill"]["time_s"] / p["time_s"],
                     base["decode"]["weight_bytes_per_gpu"] / d["weight_bytes_per_gpu"]))
    fig, ax = _figure()
    x = np.arange(len(rows))
    width = 0.26
    for i, (label, colour, hatch) in enumerate((("decode speed-up", OKABE_ITO["blue"], ""),
                                                ("prefill speed-up", OKABE_ITO["orange"], "//"),
                                                ("weight memory saved", OKABE_ITO["green"], ".."))):
        values = [r[i + 1] for r in rows]
        ax.bar(x + (i - 1) * width, values, width, color=colour, hatch=hatch, edgecolor="black", label=_t(label, lang))
        for xi, v in zip(x, values):
            ax.annotate(f"{v:.2f}x", (xi + (i - 1) * width, v), ha="center", va="bottom", textcoords="offset points",
                        xytext=(0, 3), fontsize=MIN_FONT_PT)
    ax.axhline(1 / (1 - cut), color="0.35", ls=":", lw=2, label=f"1/(1-{cut:g}) = {1 / (1 - cut):.2f}x")
    ax.axhline(1.0, color="black", lw=1)
    ax.set_xticks(x, [_t(r[0], lang) for r in rows])
    ax.set_ylim(0.9, max(max(r[1:]) for r in rows) * 1.15)
    ax.set_ylabel(_t("gain (x)", lang))
    ax.set_title(f"{model}, {load_hw(device).name}: {cut:.0%} " + ("剪掉 (结构化剪枝)" if lang == "zh" else "removed along each axis"))
    ax.legend(loc="upper left", ncol=2)
    caption = (f"Structured pruning of {model} on {load_hw(device).name} (bf16, batch 1, 4k context): {cut:.0%} of one "
               "axis removed (FFN width, attention heads in whole KV groups, hidden dimension, whole layers) and the "
               "modelled decode and prefill speed-ups and weight-memory ratio against the dense model (sparsim recipes "
               f"width:/heads:/hidden:/depth:{cut:g})")
    return fig, caption


def method_map(lang="en"):
    from simulator.model.llm import estimate_model

    model, device = "llama-2-7b", "a100"
    hw = load_hw(device)
    levels = np.array([0.5, 0.6, 0.7, 0.8, 0.9])
    fig, axes = _figure(2, sharey=False)
    specs = [("unstructured (best kernel)", "unstructured:{s}:{k}", SERIES["tiled-csl"]),
             ("CSR", "unstructured:{s}:csr", SERIES["csr"]),
             ("block 32x32", "block:32:{s}", SERIES["block"]),
             ("structured", "width:{s}", SERIES["structured"])]
    for ax, phase, ctx in ((axes[0], "decode", 2048), (axes[1], "prefill", 2048)):
        dense = estimate_model(model, hw, phase, 1, ctx, 1, "fp16", with_ops=False).summary["time_s"]
        for label, pattern, (colour, marker, ls, _) in specs:
            gains = []
            for s in levels:
                if "{k}" in pattern:
                    t = min(estimate_model(model, hw, phase, 1, ctx, 1, "fp16", recipe=pattern.format(s=s, k=k),
                                           with_ops=False).summary["time_s"] for k in ("bitmap", "tiled-csl"))
                else:
                    t = estimate_model(model, hw, phase, 1, ctx, 1, "fp16", recipe=pattern.format(s=s),
                                       with_ops=False).summary["time_s"]
                gains.append(dense / t)
            ax.plot(levels, gains, color=colour, marker=marker, ls=ls, label=_t(label, lang),
                    mec="black" if colour == OKABE_ITO["yellow"] else colour)
        t24 = estimate_model(model, hw, phase, 1, ctx, 1, "fp16", recipe="2:4", with_ops=False).summary["time_s"]
        colour, marker, _, _ = SERIES["2:4"]
        ax.plot([0.5], [dense / t24], marker=marker, ms=15, color=colour, ls="none", label=_t("2:4 sparse", lang))
        ax.annotate(f"2:4 {dense / t24:.2f}x", (0.5, dense / t24), textcoords="offset points", xytext=(12, 10),
                    fontsize=MIN_FONT_PT, color=colour,
                    bbox={"facecolor": "white", "edgecolor": colour, "pad": 2, "alpha": 0.9})
        ax.axhline(1.0, color="black", lw=1)
        ax.set_xlabel(_t("sparsity", lang) + " / " + _t("fraction of the axis removed", lang))
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
        ax.set_title(f"{_t(phase, lang)}, {ctx} tokens, batch 1")
        ax.set_yscale("log")
        # a span of less than a decade shows no major tick but "1" without the 2 and 5 ones
        ax.yaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5]))
        _plain_log(ax.yaxis)
    axes[0].set_ylabel(_t("speed-up over dense", lang))
    axes[0].legend(loc="upper left")
    fig.suptitle(f"{model}, {hw.name}, fp16", fontsize=STYLE["axes.titlesize"])
    caption = (f"Whole-model speed-up over dense for {model} on {hw.name} (fp16, batch 1, 2k context), decode and prefill, "
               "against sparsity: unstructured (best of bitmap/Tiled-CSL, and CSR), 32x32 blocks, structured FFN-width "
               "pruning (fraction removed) and 2:4 (sparsim model recipes)"
               + _uncalibrated(hw, "sparse_matrix", "csr_compute", "bitmap_compute", "bitmap_memory"))
    return fig, caption


# ---------------------------------------------------------------------------------------- ledger

_LEDGER = {}


def _ledger_table():
    """The ledger, computed once per process (the slide and the handout draw the same table)."""
    from simulator.course import ledger

    if "table" not in _LEDGER:
        _LEDGER["table"] = ledger()
    return _LEDGER["table"].copy()


def ledger_slide(lang="en", table=None):
    from simulator.course import VERDICTS, summary_counts

    table = _ledger_table() if table is None else table
    fig, axes = _figure(2, gridspec_kw={"width_ratios": [1, 1.25]})
    for ax, key, title in ((axes[0], "lecture", "lecture"), (axes[1], "area", "area")):
        counts = table.groupby([key, "verdict"]).size().unstack(fill_value=0).reindex(columns=list(VERDICTS), fill_value=0)
        if key == "area":
            from simulator.course import AREAS

            counts = counts.reindex([a for a in AREAS if a in counts.index])
        y = np.arange(len(counts))[::-1]
        left = np.zeros(len(counts))
        for verdict in VERDICTS:
            colour, hatch = VERDICT_LOOK[verdict]
            values = counts[verdict].to_numpy()
            ax.barh(y, values, left=left, color=colour, hatch=hatch, edgecolor="black", label=_t(verdict, lang))
            for yi, l_, v in zip(y, left, values):
                if v:
                    ax.text(l_ + v / 2, yi, str(v), ha="center", va="center", fontsize=MIN_FONT_PT,
                            bbox={"facecolor": "white", "edgecolor": "none", "pad": 1, "alpha": 0.8})
            left += values
        names = [(f"L{i}" if key == "lecture" else str(i)) for i in counts.index]
        ax.set_yticks(y, names)
        ax.set_xlabel(_t("claims", lang))
        ax.set_title(_t(title, lang))
        ax.grid(False, axis="y")
        ax.set_xlim(0, left.max() * 1.06)
    axes[0].legend(loc="lower right")  # L3's bar leaves room there; no bar is hidden
    summary = summary_counts(table)
    fig.suptitle(("课件中的数字, 由 sparsim 重算: " if lang == "zh" else "The course's numbers, recomputed by sparsim: ")
                 + ", ".join(f"{_t(v, lang)} {summary.get(v, 0)}" for v in VERDICTS), fontsize=STYLE["axes.titlesize"])
    caption = (f"The course ledger (sparsim course): {len(table)} checkable claims of the course text, counted by lecture "
               "and by area and coloured by verdict (" + ", ".join(f"{v} {summary.get(v, 0)}" for v in VERDICTS) + ")")
    return fig, caption


HANDOUT_ROWS = 16


def ledger_handout(lang="en", table=None):
    """Every claim, 16 to a page: id, slide line, the slide's value, sparsim's and the verdict."""
    from simulator.course import bound_text, format_value

    table = (_ledger_table() if table is None else table).sort_values(["lecture", "line"], kind="stable")
    pages = []
    n_pages = max(1, int(np.ceil(len(table) / HANDOUT_ROWS)))
    for p in range(n_pages):
        part = table.iloc[p * HANDOUT_ROWS:(p + 1) * HANDOUT_ROWS]
        fig = plt.figure(figsize=FIGSIZE, layout="none")
        ax = fig.add_axes([0.01, 0.01, 0.98, 0.9])
        ax.axis("off")
        cells = []
        colours = []
        for r in part.itertuples():
            slide = r.slide if not isinstance(r.slide, (list, tuple)) else tuple(r.slide)
            try:
                slide_text = bound_text(r.compare, slide, r.unit)  # "≥ 10×": a floor reads as a floor
            except (TypeError, ValueError):
                slide_text = str(slide)
            sparsim_text = "-" if r.sparsim is None or (isinstance(r.sparsim, float) and np.isnan(r.sparsim)) \
                else format_value(r.sparsim, r.unit)
            verdict_text = _t(r.verdict, lang)
            if r.judged == "quote":
                # the verdict is the quote's (does the paper say it?); sparsim's own judgement sits by its number
                verdict_text += " · " + _t("quote", lang)
                sparsim_text = f"{sparsim_text[:12]} · {_t(r.sparsim_verdict, lang)}"
            cells.append([r.id[:40], f"L{r.lecture} {r.part or ''} :{r.line}", slide_text[:18], sparsim_text[:24],
                          verdict_text])
            colours.append(["white"] * 4 + [VERDICT_LOOK.get(r.verdict, ("white", ""))[0]])
        header = [_t("claim", lang), _t("line", lang), _t("slide", lang), "sparsim", _t("verdict", lang)]
        tab = ax.table(cellText=cells, colLabels=header, cellColours=colours, loc="upper center", cellLoc="left",
                       colWidths=[0.36, 0.13, 0.13, 0.19, 0.19])
        tab.auto_set_font_size(False)
        tab.set_fontsize(MIN_FONT_PT)
        tab.scale(1, 1.55)
        fig.suptitle(("课件论断清单" if lang == "zh" else "Every claim of the course, recomputed")
                     + f" ({p + 1}/{n_pages})", fontsize=STYLE["axes.titlesize"])
        pages.append(fig)
    caption = (f"The whole course ledger as a handout: all {len(table)} claims ({HANDOUT_ROWS} per page, {n_pages} pages), "
               "each with its slide line, the slide's value, sparsim's value and the verdict (sparsim course); "
               "'· quote' marks a verdict on a quoted paper result (does the paper say it?), with sparsim's own "
               "verdict beside its number")
    return pages, caption


# ---------------------------------------------------------------------------------------- registry

@dataclass(frozen=True)
class FigureDef:
    name: str
    make: Callable
    what: str


FIGURES = (
    FigureDef("roofline-h100", roofline, "roofline, decode and prefill points, dense and 2:4 roofs (H100)"),
    FigureDef("unstructured-a100", lambda lang="en": unstructured("a100", lang), "latency vs unstructured sparsity (A100)"),
    FigureDef("unstructured-h100", lambda lang="en": unstructured("h100", lang), "latency vs unstructured sparsity (H100)"),
    FigureDef("speedup-2to4", speedup_24, "2:4 speed-up vs GEMM size and vs K (A100/H100/H200/B200)"),
    FigureDef("storage-2to4", storage_24, "2:4 storage: values and metadata, fp16 vs int8"),
    FigureDef("nm-tradeoff", nm_tradeoff, "N:M patterns: bytes and speed-up"),
    FigureDef("eie-vs-cpu-gpu", eie, "EIE vs CPU/GPU: speed-up and energy, log scale, geometric mean"),
    FigureDef("kv-cache-llama70b", kv_size, "KV-cache size vs context, LLaMA-70B: MHA, GQA, KIVI, H2O"),
    FigureDef("decode-split", decode_split, "decode time: weights vs KV vs context"),
    FigureDef("structured-axes", structured_axes, "the four structured-pruning axes on one model"),
    FigureDef("method-map", method_map, "speed-up vs sparsity by method"),
    FigureDef("ledger-slide", ledger_slide, "the course ledger by lecture/area and verdict"),
    FigureDef("ledger-handout", ledger_handout, "every claim of the ledger (pages)"),
)
FIGURE_NAMES = tuple(f.name for f in FIGURES)


def _formats(formats) -> list[str]:
    items = [f.strip().lower().lstrip(".") for f in (formats.split(",") if isinstance(formats, str) else formats)]
    bad = [f for f in items if f not in FORMATS]
    if bad or not items:
        raise SimulatorError(f"--format {','.join(items)!r}: allowed: {', '.join(FORMATS)} (comma-separated)")
    return list(dict.fromkeys(items))


def write_figures(out, lang: str = "en", formats="png", names=None, flag: str = "--out") -> list[Path]:
    """Draw the course figures (all, or ``names``) into ``out`` in every format asked; each with
    its caption in ``<name>.txt``. Returns the files written. ``flag`` names the option in errors."""
    formats = _formats(formats)
    wanted = list(FIGURE_NAMES) if not names else list(names)
    unknown = [n for n in wanted if n not in FIGURE_NAMES]
    if unknown:
        raise SimulatorError(f"--only {','.join(unknown)}: unknown figure; known: {', '.join(FIGURE_NAMES)}")
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SimulatorError(f"{flag} {str(out)!r}: exists and is not a folder; name a folder to write into")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SimulatorError(f"{flag} {str(out)!r}: cannot create the folder ({err.strerror or err})") from None
    written = []
    with figure_style(lang):
        for fdef in FIGURES:
            if fdef.name not in wanted:
                continue
            figs, caption = fdef.make(lang=lang)
            pages = figs if isinstance(figs, list) else [figs]
            try:
                for fmt in formats:
                    if fmt == "pdf" and len(pages) > 1:
                        from matplotlib.backends.backend_pdf import PdfPages

                        path = out / f"{fdef.name}.pdf"
                        with PdfPages(path) as pdf:
                            for page in pages:
                                pdf.savefig(page)
                        written.append(path)
                        continue
                    for i, page in enumerate(pages):
                        suffix = f"-p{i + 1}" if len(pages) > 1 else ""
                        path = out / f"{fdef.name}{suffix}.{fmt}"
                        page.savefig(path, dpi=DPI)  # no bbox 'tight': the size stays 1280 x 720
                        written.append(path)
                path = out / f"{fdef.name}.txt"
                path.write_text(caption.rstrip(".") + ".\n", encoding="utf-8")
                written.append(path)
            except OSError as err:
                raise SimulatorError(f"{flag} {str(out)!r}: cannot write ({err.strerror or err})") from None
            finally:
                for page in pages:
                    plt.close(page)
    return written


def draw(name: str, lang: str = "en"):
    """One course figure by name, in the course style: (figure or list of pages, caption). For
    notebooks: ``fig, caption = draw("roofline-h100"); print(caption)``."""
    found = {f.name: f for f in FIGURES}.get(name)
    if found is None:
        raise SimulatorError(f"figure {name!r} unknown; known: {', '.join(FIGURE_NAMES)}")
    with figure_style(lang):
        return found.make(lang=lang)

"""Decode time per token vs context (1k to 128k) for LLaMA-3.1-70B (bf16, batch 1) on H100, H200
and B200, without a KV method and with a few, the time split into weights / KV / the rest.

Each GPU gets the smallest tensor-parallel degree (tp) at which the dense 128k cache fits next to
the weights: H100 tp=4, H200 tp=2, B200 tp=1 (141.1 GB of weights + 42.9 GB of KV = 184 GB).
The figure is docs/figures/kv-decode-vs-context.png; regenerate it with

    python scripts/plot_kv_decode.py [--out docs/figures/kv-decode-vs-context.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.model.llm import estimate_model, sweep

MODEL = "llama-3.1-70b"  # 128k trained positions (LLaMA-2-70B has 4k)
GPUS = ("h100", "h200", "b200")
METHODS = ("none", "h2o", "streamingllm", "snapkv", "quest", "kivi")
CONTEXTS = np.unique(np.round(2.0 ** np.arange(10, 17.01, 1 / 3)).astype(int))  # 1024 ... 131072
OUT = Path(__file__).resolve().parent.parent / "docs" / "figures" / "kv-decode-vs-context.png"


def smallest_tp(hw: str, context: int = int(CONTEXTS.max())) -> int:
    for tp in (1, 2, 4, 8):
        if estimate_model(MODEL, hw, "decode", 1, context, tp, with_ops=False).summary["fits"]:
            return tp
    raise RuntimeError(f"{MODEL} does not fit 8 x {hw} at {context} tokens")


def decode_vs_context() -> pd.DataFrame:
    """One row per (GPU, method, context): sweep's summary columns (time_gemm_ops_s: the weight
    GEMMs; time_attention_ops_s: attention and the KV method's kernels) plus tp."""
    frames = []
    for hw in GPUS:
        tp = smallest_tp(hw)
        points = pd.DataFrame([(hw, tp, m, c) for m in METHODS for c in CONTEXTS],
                              columns=["hw", "tp", "kv_method", "context"])
        frames.append(points.assign(model=MODEL, phase="decode", batch=1))
    frame = sweep(pd.concat(frames, ignore_index=True))
    frame["method"] = frame["kv_method"]
    return frame


def main(out=OUT, frame: "pd.DataFrame | None" = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    frame = decode_vs_context() if frame is None else frame
    fig, axes = plt.subplots(2, len(GPUS), figsize=(15, 8.5), sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    colors = dict(zip(METHODS, ["black", "tab:red", "tab:blue", "tab:green", "tab:purple", "tab:orange"]))
    for column, hw in enumerate(GPUS):
        top, bottom = axes[0, column], axes[1, column]
        rows = frame[frame.hw == hw]
        dense = rows[rows.method == "none"].sort_values("context")
        x = dense["context"].to_numpy()
        ms = 1e3
        weights = dense["time_gemm_ops_s"].to_numpy() * ms
        kv = dense["time_attention_ops_s"].to_numpy() * ms
        other = dense["time_other_ops_s"].to_numpy() * ms
        top.fill_between(x, 0, weights, color="0.85", label="no method: GEMMs (weights)")
        top.fill_between(x, weights, weights + kv, color="0.6", label="no method: attention (KV)")
        top.fill_between(x, weights + kv, weights + kv + other, color="0.4",
                         label="no method: norms, all-reduces, rest")
        for method in METHODS:
            r = rows[rows.method == method].sort_values("context")
            style = dict(color=colors[method], lw=1.8)
            if method == "none":
                style = dict(color="black", lw=1.0, ls="--")
            elif method == "streamingllm":  # it lies on SnapKV's line: both hold ~2k tokens
                style = dict(color=colors[method], lw=2.6, ls=":")
            top.plot(r["context"], r["time_s"] * ms, label=f"{method}: total" if method != "none" else None, **style)
            bottom.plot(r["context"], r["time_attention_ops_s"] * ms, label=method, **style)
        tp = int(dense["tp"].iloc[0])
        top.set_title(f"{MODEL} decode, batch 1, bf16 on {tp} x {hw.upper()}")
        top.set_ylabel("time per token (ms)")
        bottom.set_ylabel("attention + method kernels (ms, all layers)")
        bottom.set_xlabel("context (tokens)")
        bottom.set_xscale("log", base=2)
        bottom.set_xticks([1024, 4096, 16384, 65536, 131072], ["1k", "4k", "16k", "64k", "128k"])
        top.set_ylim(0, None)
        bottom.set_yscale("log")
        plain = plt.FuncFormatter(lambda value, _: f"{value:g}")  # 0.4, 1, 2 rather than 4 x 10^-1
        bottom.yaxis.set_major_formatter(plain)
        bottom.yaxis.set_minor_formatter(plain)
        bottom.tick_params(axis="y", which="minor", labelsize=7)
        top.grid(alpha=0.3)
        bottom.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8, loc="lower left")
    axes[1, 0].legend(fontsize=8, loc="upper left", ncol=2)
    fig.suptitle("KV-cache methods vs context: the weights are a floor; the KV part is what the methods cut "
                 "(sparsim, spec defaults, uncalibrated)", fontsize=11)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(OUT))
    print(f"wrote {main(parser.parse_args().out)}")

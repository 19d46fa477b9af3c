"""Course claims about the KV cache and the KV-cache methods (area ``kv``, plus LazyLLM's prefill).

Every number comes from ``simulator.model.llm.estimate_model`` (the ``sparsim model`` command) or from
``simulator.methods.kvcache``: the published-anchor points of ``workloads/anchors/kv.yaml`` (the table
"model at the paper's setup" of docs/kv.md) price the method claims at the paper's setup, and
the methods' own default settings answer the claims that are configuration constants. Each
basis names the point so that ``sparsim model --model M --hw H --phase P --batch B --context C
--dtype D --kv-method K`` reproduces it.
"""

from __future__ import annotations

import functools

from simulator.course import Check, Claim, evaluates
from simulator.capacity.kv_analysis import anchor_value, load_kv_anchors
from simulator.methods.kvcache import parse_kv_method


def _summary(model, hw, phase="decode", batch=1, context=4096, dtype="fp16", kv_method=None, recipe="dense"):
    from simulator.model.llm import estimate_model

    return estimate_model(model, hw, phase, batch, context, dtype=dtype, recipe=recipe, kv_method=kv_method,
                          with_ops=False).summary


def _anchor(anchor_id: str, **update):
    """The KV anchor ``anchor_id`` (optionally with another metric, method or context) and the
    model's value for it."""
    anchor = {a.id: a for a in load_kv_anchors()}[anchor_id]
    if update:
        anchor = anchor.model_copy(update=update)
    return anchor, _anchor_value(anchor)


@functools.lru_cache(maxsize=64)
def _anchor_value(anchor) -> float:
    return float(anchor_value(anchor))


def _point(a) -> str:
    """'llama-2-7b, a100-sxm4-80gb, fp16, decode bs2 ctx16384' for an anchor."""
    weights = f" ({a.weights} weights)" if a.weights else ""
    tp = f" tp{a.tp}" if a.tp > 1 else ""
    return f"{a.model}{weights}, {a.hw}{tp}, {a.dtype}, bs{a.batch}, ctx {a.context}"


def _kv_text(method: str, *keys: str) -> str:
    """``--kv-method`` text with the named default settings spelled out, read from the methods
    (``_kv_text('h2o', 'heavy', 'recent')`` -> 'h2o (heavy=0.1, recent=0.1)')."""
    settings = []
    for m in parse_kv_method(method).methods:
        settings += [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.values.items() if k in keys]
    return f"{method} ({', '.join(settings)})" if settings else method


# ---- KV basics (LLaMA-2-70B) -------------------------------------------------------------------

@evaluates("l3-b-kv-bytes-per-token")
def kv_bytes_per_token(claim: Claim) -> Check:
    s = claim.setup
    context = 4096
    kv = _summary(s["model"], "h100", context=context, dtype=s["dtype"])["kv_cache_bytes"]
    from simulator.formats.models import load_model

    m = load_model(s["model"])
    return Check(kv / context, arithmetic=f"{m.layers} layers x 2 (K,V) x {m.kv_heads} KV heads x {m.head_dim} x 2 B = "
                 f"{kv / context:,.0f} B = {kv / context / 2**10:g} KiB", basis=
                 f"{s['model']} {s['dtype']} decode bs1 ctx {context}: kv_cache_bytes / context = layers x 2 (K,V) "
                 f"x KV heads x head_dim x 2 B (the slide's 640 KB counts K,V twice)")


@evaluates("l3-b-kv-128k-bs1", "l3-b-kv-128k-bs8")
def kv_cache_bytes(claim: Claim) -> Check:
    s = claim.setup
    hw = s.get("hw", "h100")
    out = _summary(s["model"], hw, batch=s["batch"], context=s["context"], dtype=s["dtype"])
    kv = out["kv_cache_bytes"]
    fit = (f"; with weights {out['memory_bytes_per_gpu'] / 1e9:.0f} GB vs one {out['hw']}'s "
           f"{out['memory_capacity_bytes'] / 1e9:.1f} GB: fits={out['fits']}") if "hw" in s else ""
    return Check(kv, arithmetic=f"{kv / (s['batch'] * s['context']):,.0f} B/token x {s['context']:,} x {s['batch']} = "
                 f"{kv:,.0f} B = {kv / 1e9:.2f} GB = {kv / 2**30:.0f} GiB",
                 basis=f"{s['model']} {s['dtype']} decode bs{s['batch']} ctx {s['context']}, no KV method: "
                     f"kv_cache_bytes = {kv / 1e9:.2f} GB = {kv / 2**30:.0f} GiB{fit}")


@evaluates("l3-a9-kv-vs-weights-28pct")
def kv_vs_weights(claim: Claim) -> Check:
    s = claim.setup
    out = _summary(s["model"], "h100", batch=s["batch"], context=s["context"], dtype=s["dtype"])
    kv, weights = out["kv_cache_bytes"], out["weight_bytes_per_gpu"]
    half = 0.5 * weights / (kv / (s["batch"] * s["context"]))  # tokens at which KV = 50% of the weights
    return Check(kv / weights,
                 f"{s['model']} {s['dtype']} decode bs{s['batch']} ctx {s['context']} tp1: KV {kv / 1e9:.2f} GB / "
                 f"weights {weights / 1e9:.2f} GB; KV > 50% of weights beyond {half:,.0f} tokens at bs1")


@evaluates("l3-a9-kv-exceeds-weights-long-context")
def kv_exceeds_weights(claim: Claim) -> Check:
    import math

    s = claim.setup
    out = _summary(s["model"], "h100", batch=s["batch"], context=s["context"], dtype=s["dtype"])
    kv, weights = out["kv_cache_bytes"], out["weight_bytes_per_gpu"]
    per_token = kv / (s["batch"] * s["context"])
    equal_at = weights / per_token  # one sequence: KV bytes = weight bytes here
    batch_needed = math.ceil(weights / (per_token * s["context"]))
    return Check(kv / weights,
                 f"{s['model']} {s['dtype']} decode bs{s['batch']} ctx {s['context']}: KV {kv / 1e9:.2f} GB / weights "
                 f"{weights / 1e9:.2f} GB; one sequence's KV reaches the weights at {equal_at:,.0f} tokens; at ctx "
                 f"{s['context']} from batch {batch_needed}",
                 arithmetic=f"{weights:,.0f} B / {per_token:,.0f} B per token = {equal_at:,.0f} tokens")


@evaluates("l2-b4-slicegpt-kv-shrinks")
def slicegpt_kv(claim: Claim) -> Check:
    s = claim.setup
    recipe = f"hidden:{s['slicing']:g}"
    dense = _summary(s["model"], "h100", dtype="fp16")
    sliced = _summary(s["model"], "h100", dtype="fp16", recipe=recipe)
    return Check(sliced["kv_cache_bytes"] / dense["kv_cache_bytes"],
                 f"{s['model']} fp16 decode bs1 ctx 4096, --recipe {recipe} (SliceGPT) / dense: KV bytes ratio "
                 f"(K/V width = KV heads x head_dim, unsliced); weights "
                 f"{sliced['weight_bytes_per_gpu'] / dense['weight_bytes_per_gpu']:.2f}x")


# ---- selection methods -------------------------------------------------------------------------

@evaluates("l3-b-h2o-20pct-budget")
def h2o_budget(claim: Claim) -> Check:
    # H2O's own setting (OPT-30B, the prompt = OPT's 2048 positions): the anchor point of docs/kv.md.
    a, ratio = _anchor("h2o-latency", metric="kv_fraction")
    method = _kv_text(a.method, "heavy", "recent")
    return Check(ratio, f"KV held {method} / none, {_point(a)} decode: (heavy + recent) x prompt + H2O's fp32 "
                        f"attention scores")


@evaluates("l3-b-h2o-opt30b-5.5x")
def h2o_speedup(claim: Claim) -> Check:
    a, speedup = _anchor("h2o-latency")
    _, throughput = _anchor("h2o-latency", metric="throughput_speedup")
    method = _kv_text(a.method, "heavy", "recent")
    return Check(speedup, f"decode step time none / {method}, {_point(a)} (OPT's limit); at each's max batch "
                          f"{throughput:.2f}x tokens/s; KV offloading not modelled")


@evaluates("l3-b-streamingllm-4-sinks")
def streamingllm_sinks(claim: Claim) -> Check:
    select = parse_kv_method("streamingllm").role("select")
    held = [_summary("llama-3.1-8b", "h100", context=c, dtype="bf16", kv_method="streamingllm")["kv_cache_bytes"]
            for c in (32768, 131072)]
    return Check(float(select.sinks),
                 f"streamingllm default sinks={select.sinks} (+ window={select.window}); KV held on llama-3.1-8b bf16 "
                 f"bs1: {held[0] / 1e6:.1f} MB at ctx 32768, {held[1] / 1e6:.1f} MB at 131072 (constant)")


@evaluates("l3-b-snapkv-3.6x")
def snapkv_speedup(claim: Claim) -> Check:
    a, speedup = _anchor("snapkv-decode-16k")
    return Check(speedup, f"decode step time none / {_kv_text(a.method, 'tokens')}, {_point(a)} (LWM-Text-Chat-1M "
                          f"arch); baseline: Flash-Decoding at the roofline, not HF eager")


@evaluates("l3-b-snapkv-92pct")
def snapkv_fraction(claim: Claim) -> Check:
    a, ratio = _anchor("snapkv-decode-16k", metric="kv_fraction")
    return Check(ratio, f"KV held {_kv_text(a.method, 'tokens')} / none, {_point(a)} decode (the paper's 16k "
                        f"input): budget / prompt; {claim.value:g} needs ~{claim.value * a.context:.0f} tokens")


@evaluates("l3-b-snapkv-380k-a100")
def snapkv_capacity(claim: Claim) -> Check:
    a, tokens = _anchor("snapkv-380k-a100")
    return Check(tokens, f"longest prompt whose prefill fits: {a.model} (LWM arch) {a.dtype} bs1, one {a.hw}, "
                         f"{_kv_text(a.method, 'tokens')}, one layer's full KV transient; HF's other temporaries "
                         f"not modelled")


@evaluates("l3-b-razorattention-70pct")
def razorattention_fraction(claim: Claim) -> Check:
    a, ratio = _anchor("razorattention-70pct", metric="kv_fraction")
    return Check(ratio, f"KV held {_kv_text(a.method, 'retrieval', 'window', 'ratio')} / none, {_point(a)} decode: "
                        f"other heads keep sinks + max(window, N/ratio)")


# ---- reading (Quest) ---------------------------------------------------------------------------

@evaluates("l3-b-quest-page-16")
def quest_page(claim: Claim) -> Check:
    quest = parse_kv_method("quest").role("read")
    held = [_summary("llama-3.1-8b", "h100", context=32768, dtype="bf16", kv_method=m)["kv_cache_bytes"]
            for m in (None, "quest")]
    return Check(float(quest.page),
                 f"quest default page={quest.page} (mit-han-lab/Quest bench_textgen.py); its min/max-key metadata "
                 f"makes KV held {held[1] / held[0]:.4f}x dense (llama-3.1-8b bf16 bs1 ctx 32768)")


@evaluates("l3-b-quest-7.3x")
def quest_speedup(claim: Claim) -> Check:
    # The paper's number is a self-attention speed-up (LongChat-7B, RTX 4090, 32k); the slide puts it at 128k.
    a, speedup = _anchor("quest-attention-32k", context=claim.setup["context"])
    _, e2e = _anchor("quest-e2e-32k", context=claim.setup["context"])
    method = _kv_text(a.method, "tokens")
    return Check(speedup, f"decode attention+Quest kernels, one layer, none / {method}, {_point(a)}; "
                          f"end to end, int4 weights: {e2e:.2f}x (a per-step ratio; it says nothing of fit)")


# ---- quantization and combinations -------------------------------------------------------------

@evaluates("l3-b-kivi-4x")
def kivi_compression(claim: Claim) -> Check:
    method = f"kivi:bits={claim.setup['kv_bits']}"
    a, ratio = _anchor("kivi-peak-memory", metric="kv_compression", method=method)
    _, long = _anchor("kivi-peak-memory", metric="kv_compression", method=method, context=131072)
    return Check(ratio, f"KV bytes none / {_kv_text(method, 'group', 'residual')}, {_point(a)} (LLaMA-2-7B's "
                        f"window) decode; {long:.2f}x at ctx 131072 (scales + fp16 residual)")


@evaluates("l3-b-kivi-throughput-2-3x")
def kivi_throughput(claim: Claim) -> Check:
    method = f"kivi:bits={claim.setup['kv_bits']}"
    a, ratio = _anchor("kivi-throughput", method=method)
    return Check(ratio, f"decode tokens/s {_kv_text(method, 'group', 'residual')} / none, each at its largest batch, "
                        f"{a.model} {a.dtype}, one {a.hw}, ctx {a.context}; one fused attention kernel (KIVI runs dequant-GEMVs, softmax and its residual window separately)")


@evaluates("l3-b-pyramidkv-kivi-10x")
def pyramidkv_kivi(claim: Claim) -> Check:
    method = "+".join(claim.setup["method"])
    # PyramidKV's 12% point (LongBench-length prompt, 16k) with KIVI on top.
    a, ratio = _anchor("pyramidkv-12pct", metric="kv_compression", method=method)
    return Check(ratio, f"KV bytes none / {_kv_text(method, 'tokens', 'window', 'beta')}, {_point(a)} decode "
                        f"(PyramidKV's 12% point)")


@evaluates("l3-b-minicache-5x")
def minicache_compression(claim: Claim) -> Check:
    a, ratio = _anchor("minicache-merge")
    b, four_bit = _anchor("minicache-4bit")
    return Check(ratio, f"KV bytes none / {_kv_text(a.method, 'start', 'retain')}, merging only as the slide says, "
                        f"{_point(a)} decode; 4-bit ({b.method}): {four_bit:.2f}x")


# ---- prompt pruning (LazyLLM; area dynamic) ----------------------------------------------------

@evaluates("l3-b-lazyllm-prefill-2.3x")
def lazyllm_ttft(claim: Claim) -> Check:
    from simulator.formats.models import load_model

    a, speedup = _anchor("lazyllm-ttft")
    kept = parse_kv_method(a.method).role("prune").keep_per_layer(load_model(a.model).layers).mean()
    return Check(speedup, f"prefill time none / {_kv_text(a.method, 'stages', 'keep')}, {_point(a)} (LongBench "
                          f"multi-doc QA); {kept:.0%} of prompt tokens computed per layer on average")


@evaluates("l3-b-lazyllm-long-context-8k")
def lazyllm_long_context(claim: Claim) -> Check:
    s = claim.setup
    speedups = {c: _anchor("lazyllm-ttft", model=s["model"], context=int(c))[1] for c in s["contexts"]}
    short, long = speedups[s["short"]], speedups[s["long"]]
    listed = ", ".join(f"{v:.2f}x at {c / 1000:g}k" for c, v in speedups.items())
    return Check(long / short, f"prefill time none / lazyllm on {s['model']} (the lazyllm-ttft anchor's setup at other "
                               f"prompt lengths): {listed}",
                 arithmetic=f"{long:.3f} / {short:.3f} = {long / short:.3f}")

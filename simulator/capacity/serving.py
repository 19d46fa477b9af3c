"""Steady-state serving: continuous batching with chunked prefill, for a request mix.

What a replica does (vLLM V1's scheduler, Sarathi-Serve's "stall-free" batching): every step
runs one forward pass over at most ``token_budget`` tokens (vLLM's ``max_num_batched_tokens``).
Every sequence that is decoding adds its one token; what is left of the budget goes to prompt
chunks of the requests being prefilled (vLLM schedules running requests first, then fills the
budget with prefill chunks). A replica holds at most ``batch`` sequences at once (vLLM's
``max_num_seqs``; the largest that fits is what the KV cache holds). New requests wait in a queue
until a sequence finishes.

The fluid model (every quantity an average over a long run, the queue never empty):

- a request has ``P`` prompt and ``O`` output tokens (the mix's means); it decodes for ``O``
  steps and is prefilled in chunks of ``c = S - D`` tokens (``S`` the budget, ``D`` the
  sequences decoding per step), i.e. for ``k = max(1, P / c)`` steps;
- request balance: ``r`` requests finish per step, so ``D = r O`` decode tokens and ``r P``
  prefill tokens per step; a fraction ``f = r P / c`` of the steps carries a prefill chunk;
- Little's law on the sequences held: ``batch = D + r k``. Solved for ``D`` (a quadratic when
  ``P > c``); ``f`` cannot pass 1, so ``D <= S O / (P + O)``: past that the token budget, not
  the memory, limits the replica (``limited_by`` "token budget").

Step times come from ``simulator.model.llm.sweep`` (the same op graph as ``sparsim model``), split
by op kind: a step with a chunk runs its GEMMs and other token-wise ops (norms, all-reduces,
activations) over ``S`` tokens at once (weights read once), the decode attention of ``D``
sequences at their mean context (``P + O/2``), and a share ``c / P`` of one prompt's chunked
prefill attention (its ``ceil(P / c)`` chunk kernels, each over the prefix before it, spread evenly;
where FlashAttention prices it, the op graph's one-call prefill is scaled by that sum over the
one call, ``_chunked_attention_ratio``). A step without a
chunk runs the GEMMs over ``D`` tokens. ``D`` is fractional: step times are interpolated
linearly between the whole batches around it (a single sequence's step where ``D < 1``).

Results per (deployment, batch): sustained output tokens/s ``D / t`` (``t`` the mean step),
requests/s, TPOT = ``t`` (every request sees the same mix of steps), the inter-token latency at a
percentile (a step with or without a chunk), TTFT = ``ceil(P_i / c)`` chunk steps for each prompt
of the mix (mean and percentile over the mix), and peak memory: the resident sequences with
every KV cache at its longest (the mix's longest prompt + output: nothing is ever preempted),
plus one chunk's activations and KV-method transients (priced as a prompt of ``min(S, P)``
tokens), plus the reserve.

Pipeline parallelism (``pp`` stages of ``tp`` GPUs): ``pp`` micro-batches of ``batch / pp``
sequences are in flight, one per stage (vLLM's virtual engines); a micro-batch's step is the
whole model's step at its size plus ``pp - 1`` stage boundaries (each token's hidden state, over
NVLink inside a node or the spec's internode network between nodes), and the replica finishes
``pp`` of them per such step. Each GPU holds ``1/pp`` of the weights and, for its layers, every
micro-batch's KV cache. Stages are taken as balanced (no bubble).

Data-parallel attention (``dp_attention``, MoE models, docs/llm.md): each of the ``tp`` GPUs runs
the fluid model above for its own ``batch / tp`` sequences with its own token budget, in lockstep
(the MoE all-to-alls join the GPUs every layer); a step is the group's step with every GPU's
tokens, and the group finishes ``tp`` times one GPU's sequences per step. Not with ``pp`` > 1.

Queueing under an arrival rate (``rate``, requests/s per replica): the replica is one M/D/1
server (Poisson arrivals, deterministic service ``1 / mu``, ``mu`` the sustained requests/s):
mean wait ``rho / (2 mu (1 - rho))`` (Pollaczek-Khinchine), and at percentile ``q`` Kingman's
heavy-traffic exponential tail with ``P(wait > 0) = rho``: ``wait_q = (W / rho) ln(rho / (1 - q))``
where ``rho > 1 - q``, else 0. The wait is added to TTFT; TPOT is priced at saturation (a
replica below it runs fewer sequences, so this bounds it from above).

Not modelled: model accuracy (perplexity) of a recipe or KV method; preemption and
recomputation; prefix caching; speculative decoding.

The runtime (``runtime``, simulator/formats/runtimes.py; default eager) prices each kernel launch at its
cost for the phase (every step here is priced as a decode step's kernels, so a CUDA-graph runtime's
graphed launches apply to chunk steps too), and adds its host time once per step: the step cost
plus the per-sequence cost for the ``D`` decoding sequences (and, in a chunk step, the prompts the
chunk holds, at least one).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from simulator.core.errors import SimulatorError
from simulator.hardware.spec import load_hw
from simulator.methods.kvcache import parse_kv_method
from simulator.model.llm import estimate_model, sweep
from simulator.formats.runtimes import DEFAULT_PERCENTILE, DEFAULT_TOKEN_BUDGET, load_runtime, runtime_name  # noqa: F401

# vLLM's SchedulerConfig.DEFAULT_MAX_NUM_BATCHED_TOKENS = 2048 (vllm/config/scheduler.py), which is
# also its OpenAI server's default on GPUs under 70 GiB; on H100/H200-class GPUs the server uses
# 8192 and the offline LLM class 16384 (vllm/engine/arg_utils.py, EngineArgs.get_batch_defaults;
# docs: https://docs.vllm.ai/en/stable/configuration/optimization/ "Chunked Prefill").
ACCURACY_NOTE = "model accuracy (perplexity) of recipes and KV methods is not modelled"
DEPLOYMENT_KEYS = ("hw", "tp", "recipe", "weights", "kv_method")


@dataclass(frozen=True)
class RequestMix:
    """Requests as (prompt tokens, output tokens, weight) classes; one class for a fixed length."""

    prompt_tokens: tuple
    output_tokens: tuple
    weights: tuple

    @property
    def prompt_mean(self) -> float:
        return float(np.dot(self.weights, self.prompt_tokens))

    @property
    def output_mean(self) -> float:
        return float(np.dot(self.weights, self.output_tokens))

    @property
    def decode_context_mean(self) -> float:
        """The context of a decode step, averaged over steps: class i has O_i steps at contexts
        P_i .. P_i + O_i - 1, so steps weigh by O_i and average P_i + (O_i - 1) / 2."""
        p, o, w = (np.asarray(x, float) for x in (self.prompt_tokens, self.output_tokens, self.weights))
        return float(np.dot(w * o, p + (o - 1) / 2) / np.dot(w, o))

    @property
    def longest(self) -> tuple:
        """(prompt, output) of the class with the longest prompt + output (what memory holds)."""
        i = int(np.argmax(np.add(self.prompt_tokens, self.output_tokens)))
        return int(self.prompt_tokens[i]), int(self.output_tokens[i])

    def describe(self) -> str:
        if len(self.weights) == 1:
            return f"{self.prompt_tokens[0]} prompt + {self.output_tokens[0]} output tokens"
        return ", ".join(f"{w:.0%} {p}+{o}" for p, o, w in zip(self.prompt_tokens, self.output_tokens, self.weights))


def request_mix(prompt, output_tokens=None, name="--context") -> RequestMix:
    """A RequestMix from one prompt and output length, or from text 'P:O[:weight],...'
    (e.g. '4096:256:0.7,32768:512:0.3'; weights default to equal and are normalised)."""
    if isinstance(prompt, RequestMix):
        return prompt
    if isinstance(prompt, str):
        classes = []
        for part in [p.strip() for p in prompt.split(",") if p.strip()]:
            fields = part.split(":")
            try:
                if len(fields) not in (2, 3):
                    raise ValueError
                p, o = int(fields[0]), int(fields[1])
                w = float(fields[2]) if len(fields) == 3 else 1.0
            except ValueError:
                raise SimulatorError(f"--mix {prompt!r}: write prompt:output[:weight],... e.g. "
                                     "'4096:256:0.7,32768:512:0.3'") from None
            classes.append((p, o, w))
        if not classes:
            raise SimulatorError("--mix: give at least one prompt:output class")
        prompts, outputs, weights = zip(*classes)
        name = "--mix"
    else:
        prompts, outputs, weights = (prompt,), (output_tokens,), (1.0,)
    for what, values, low in (("prompt", prompts, 1), ("output", outputs, 1)):
        for v in values:
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or not low <= v <= 10**9:
                flag = name if what == "prompt" or name == "--mix" else "--output-tokens"
                raise SimulatorError(f"{flag}: must be a whole number from {low} to 1,000,000,000 ({what} "
                                     f"tokens), got {v!r}")
    w = np.asarray(weights, float)
    if not (np.all(np.isfinite(w)) and np.all(w > 0)):
        raise SimulatorError(f"--mix: weights must be positive numbers, got {list(weights)}")
    return RequestMix(tuple(int(p) for p in prompts), tuple(int(o) for o in outputs), tuple((w / w.sum()).tolist()))


def decode_share(batch, prompt_mean, output_mean, token_budget):
    """The fluid model's sequences decoding per step ``D`` for ``batch`` sequences held (array),
    the chunk size ``c = S - D``, the fraction ``f`` of steps that carry a chunk and the
    sequences actually held ``D + r k`` (less than ``batch`` where the token budget limits)."""
    b = np.asarray(batch, float)
    s, p, o = float(token_budget), float(prompt_mean), float(output_mean)
    # prompts of at most c tokens: one chunk step each, batch = D (1 + 1/O)
    short = b * o / (o + 1.0)
    # longer prompts: batch = D + D P / (O (S - D)), i.e. D^2 - D (S + B + P/O) + B S = 0 (smaller root)
    half = (s + b + p / o) / 2.0
    long_ = half - np.sqrt(np.maximum(half * half - b * s, 0.0))
    d = np.where(short <= s - p, short, long_)
    cap = s * o / (p + o)  # f = D P / (O (S - D)) reaches 1 here
    d = np.minimum(d, cap)
    chunk = s - d
    fraction = np.minimum(1.0, d * p / (o * chunk))
    held = d + (d / o) * np.maximum(1.0, p / chunk)
    return d, chunk, fraction, held, cap


def _chunked_attention_ratio(model, frame: pd.DataFrame, prompts, chunk, dtype: str, kv_dtype, dynamic=None) -> dict:
    """Per prompt length P, per row: (sum of the FlashAttention kernels of P's chunks of ``chunk[row]``
    tokens, each over the prefix before it) / (one kernel over P at once), from
    ``attention.flash_attention_columns`` with the device's calibrated parameters and the model's
    per-GPU heads. The single-call prefill the op graph prices copies every new token into the cache
    from every query head's block (the measured kernel's in-kernel append), work that grows with P
    squared; chunks copy only their own tokens. A sliding-window cache (StreamingLLM) prices both
    in its window. 1 where the op graph does not price attention with FlashAttention (CPUs,
    quantized or merged caches, MLA, other dtypes).

    Approximations: the ratio is taken at the model's unpruned heads (a heads: recipe changes both
    sides alike), and it scales all of the op graph's prefill attention time, a token-selection
    method's own score kernels (H2O's) included."""
    from simulator.kernels.attention import attention_parameters
    from simulator.model.llm import _flash_attention_applies
    from simulator.formats.models import load_model

    cfg = load_model(model) if isinstance(model, str) else model
    ratios = {p: np.ones(len(frame)) for p in prompts}
    if getattr(cfg, "mla", None) is not None:
        return ratios
    kv = kv_dtype or dtype
    flash_priced = {}  # per deployment: does the op graph price its prefill attention with FlashAttention?
    for row in range(len(frame)):
        key = tuple(frame[c].iloc[row] for c in ("hw", "tp", "recipe", "weights", "kv_method"))
        hw, tp = load_hw(key[0]), int(key[1])
        if key not in flash_priced:
            flash_priced[key] = (_flash_attention_applies(hw, dtype, kv) and not cfg.heads % tp
                                 and not cfg.kv_heads % tp and _prefill_is_flash(cfg, hw, key, min(prompts),
                                                                                dtype, kv_dtype, dynamic))
        if not flash_priced[key]:
            continue
        params = attention_parameters(hw)
        shape = dict(q_heads=cfg.heads // tp, kv_heads=cfg.kv_heads // tp, head_dim=cfg.head_dim)
        # a sliding-window cache (StreamingLLM): every chunk and the whole prompt in its window
        selector = parse_kv_method(None if key[4] in (None, "none") else key[4]).role("select")
        shape["window"] = selector.flash_window() if selector is not None else None
        c = max(1.0, float(np.floor(chunk[row])))
        for p in prompts:
            starts = np.arange(int(np.ceil(p / c - 1e-9)), dtype=float) * c
            chunks = _flash_time(hw, params, np.minimum(c, p - starts), starts, dtype, **shape)
            whole = _flash_time(hw, params, np.array([float(p)]), np.zeros(1), dtype, **shape)
            ratios[p][row] = chunks.sum() / whole[0]
    return ratios


def _flash_time(hw, params, q_tokens, kv_tokens, dtype, q_heads, kv_heads, head_dim, window=None) -> np.ndarray:
    """time_s of one sequence's causal FlashAttention calls, ``q_tokens`` new over ``kv_tokens`` cached
    (arrays), in a sliding window of ``window`` keys where given. The chunks and the whole prompt are
    priced in separate calls: the kernel model's work array is points x the longest call's query blocks."""
    from simulator.kernels.attention import flash_attention_columns

    one = np.ones_like(q_tokens)
    return flash_attention_columns(hw, params, one, q_tokens, kv_tokens, one * q_heads, one * kv_heads,
                                   one * head_dim, dtype, np.ones(q_tokens.shape, dtype=bool),
                                   window=None if window is None else one * window)["time_s"]


def _prefill_is_flash(cfg, hw, key, prompt, dtype, kv_dtype, dynamic) -> bool:
    """Whether the op graph prices this deployment's prefill attention as FlashAttention calls (the KV
    method decides per group: windowed or merged caches are not), asked at ``prompt`` tokens."""
    _, tp, recipe, weights, kv_method = key
    try:
        ops = estimate_model(cfg, hw, phase="prefill", context=int(prompt), tp=int(tp), dtype=dtype, weights=weights,
                             recipe=recipe, kv_dtype=kv_dtype, kv_method=kv_method, dynamic=dynamic).ops
    except SimulatorError:  # a deployment the model refuses is priced (and refused) by sweep as it is
        return False
    kernels = ops.loc[ops["kind"] == "attention", "kernel"]
    return not kernels.empty and bool((kernels == "flash-attention").all())


def dp_group(frame: pd.DataFrame) -> np.ndarray:
    """Per deployment row, the GPUs of its data-parallel attention group (``tp`` where the row's
    ``dp_attention`` is set, else 1): the factor between one GPU's sequences and the group's."""
    if "dp_attention" not in frame:
        return np.ones(len(frame), dtype=np.int64)
    return np.where(frame["dp_attention"].to_numpy(bool), frame["tp"].to_numpy(), 1).astype(np.int64)


def serve_points(model, deployments: pd.DataFrame, batch, mix, dtype: str = "bf16",
                 token_budget: int = DEFAULT_TOKEN_BUDGET, memory_reserve_bytes: float = 0.0,
                 percentile: float = DEFAULT_PERCENTILE, kv_dtype=None, dynamic=None,
                 runtime=None) -> pd.DataFrame:
    """The steady state of each row of ``deployments`` (columns hw, tp, recipe, weights,
    kv_method) serving ``mix`` with at most ``batch[j]`` sequences held (one batch per row).
    Vectorized: all rows are priced in a few ``sweep`` passes. Returns one row per input row
    with the columns of the module docstring (SI units: seconds, bytes, tokens/s)."""
    mix = request_mix(mix) if not isinstance(mix, RequestMix) else mix
    given = deployments.reset_index(drop=True)
    frame = given[list(DEPLOYMENT_KEYS)].copy()
    if "expert_parallel" in given:  # MoE experts placed whole (estimate_model's expert_parallel)
        frame["expert_parallel"] = given["expert_parallel"].astype(bool)
    n = len(frame)
    pp = given["pp"].to_numpy().astype(np.int64) if "pp" in given else np.ones(n, dtype=np.int64)
    # data-parallel attention (estimate_model's dp_attention): each of the tp GPUs schedules its own
    # batch / tp sequences with its own token budget, in lockstep (the MoE all-to-alls join them)
    if "dp_attention" in given and given["dp_attention"].astype(bool).any():
        frame["dp_attention"] = given["dp_attention"].astype(bool).to_numpy()
    ranks = dp_group(frame)
    if np.any((ranks > 1) & (pp > 1)):
        raise SimulatorError("--dp-attention with --pp: pipeline stages of data-parallel attention groups are "
                             "not modelled")
    batch = np.broadcast_to(np.asarray(batch, dtype=np.int64), (n,)).copy()
    if n == 0:
        return frame.assign(batch=batch, pp=pp)
    if np.any(batch < 1):
        raise SimulatorError(f"--batch: must be a whole number >= 1, got {int(batch.min())}")
    s = int(token_budget)
    p_mean, o_mean = mix.prompt_mean, mix.output_mean
    # pipeline parallelism: pp micro-batches in flight (vLLM's virtual engines), one per stage, each
    # holding batch / pp sequences and stepping through every stage in turn
    d, chunk, fraction, held, cap = decode_share(batch / (pp * ranks), p_mean, o_mean, s)
    lo = np.maximum(1.0, np.floor(d))
    hi = np.maximum(1.0, np.ceil(d))
    held_whole = np.ceil(held * (1 - 1e-9) - 1e-9).astype(np.int64)  # whole sequences held, past rounding
    mem_prompt, mem_output = mix.longest
    dec_ctx = max(1, int(round(mix.decode_context_mean)))
    dec_gen = min(dec_ctx - 1, int(round(max(0.0, mix.decode_context_mean - np.dot(mix.weights, mix.prompt_tokens)))))
    chunk_tokens = int(min(s, max(mix.prompt_tokens)))
    prompts = sorted(set(mix.prompt_tokens))
    common = dict(model=model, dtype=dtype, kv_dtype=kv_dtype, dynamic=dynamic,
                  memory_reserve_bytes=float(memory_reserve_bytes), runtime=runtime_name(runtime))
    # per deployment: GEMMs over the whole budget, each prompt's prefill attention, one chunk's memory
    uniq = frame.drop_duplicates().reset_index(drop=True)
    index_of = {tuple(r): i for i, r in enumerate(uniq.itertuples(index=False, name=None))}
    which = np.array([index_of[tuple(r)] for r in frame.itertuples(index=False, name=None)])
    u = len(uniq)
    # a data-parallel group's steps: every GPU's own tokens at once (sweep's batch is the group's)
    parts = [uniq.assign(phase="decode", batch=s * dp_group(uniq), context=dec_ctx, generated=dec_gen)]
    parts += [uniq.assign(phase="prefill", batch=1, context=p, generated=0) for p in prompts]
    parts += [frame.assign(phase="decode", batch=lo * ranks, context=dec_ctx, generated=dec_gen),
              frame.assign(phase="decode", batch=hi * ranks, context=dec_ctx, generated=dec_gen),
              frame.assign(phase="decode", batch=np.maximum(held_whole, 1) * ranks, context=mem_prompt + mem_output,
                           generated=mem_output)]
    priced = sweep(pd.concat(parts, ignore_index=True).assign(**common))
    # the runtime's host time is added once per step below, for the step's own sequences
    dense = (priced["time_gemm_ops_s"] + priced["time_other_ops_s"] - priced["time_runtime_s"]).to_numpy()
    attn = priced["time_attention_ops_s"].to_numpy()
    full_dense = dense[:u][which]
    prefill_attn = {p: attn[(1 + i) * u:(2 + i) * u][which] for i, p in enumerate(prompts)}
    # one chunk's activations and KV-method transients: the longest prompt's, x chunk / prompt (exact for
    # transients linear in the prompt, like activation buffers, and for those linear in chunk x prefix,
    # like an eager score matrix)
    longest_row = priced.iloc[(1 + len(prompts) - 1) * u:(1 + len(prompts)) * u]
    chunk_act = ((longest_row["memory_bytes_per_gpu"] - longest_row["weight_bytes_per_gpu"]
                  - longest_row["kv_cache_bytes"] / longest_row["tp"] - float(memory_reserve_bytes)).to_numpy()
                 * chunk_tokens / prompts[-1])[which]
    start = (1 + len(prompts)) * u
    at_lo, at_hi, at_mem = (slice(start + k * n, start + (k + 1) * n) for k in range(3))
    # decode part of a step: interpolated between whole batches; below one sequence, weights are
    # read as for one and attention scales with the fraction
    w_hi = np.where(hi > lo, d - lo, 0.0)
    dense_dec = np.where(d >= 1, dense[at_lo] * (1 - w_hi) + dense[at_hi] * w_hi, dense[at_lo])
    attn_dec = np.where(d >= 1, attn[at_lo] * (1 - w_hi) + attn[at_hi] * w_hi, attn[at_lo] * d)
    # a prompt prefilled in chunks of c runs ceil(P / c) attention kernels (each chunk over the prefix
    # cached before it), not one over P: where FlashAttention prices it, scale by that ratio
    ratio = _chunked_attention_ratio(model, frame, prompts, chunk, dtype, kv_dtype, dynamic)
    prefill_attn = {p: prefill_attn[p] * ratio[p] for p in prompts}
    # one chunk's share of prefill attention: the mix's prefill attention per prompt token, x c
    per_prompt_token = sum(w * prefill_attn[p] for p, w in zip(mix.prompt_tokens, mix.weights)) / p_mean
    profile = load_runtime(runtime)
    step_chunk = full_dense + attn_dec + per_prompt_token * chunk + profile.host_s(d + np.maximum(1.0, chunk / p_mean))
    step_plain = dense_dec + attn_dec + profile.host_s(d)
    if np.any(pp > 1):  # a micro-batch's activations cross pp - 1 stage boundaries per step
        send_chunk, send_plain = _stage_transfers(model, frame, pp, s, np.maximum(d, 1.0), dtype)
        step_chunk = step_chunk + send_chunk
        step_plain = step_plain + send_plain
    step_mean = fraction * step_chunk + (1 - fraction) * step_plain
    tokens_per_s = d / step_mean
    q = float(percentile) / 100.0
    itl_q = np.where(fraction >= 1.0 - q, step_chunk, step_plain)
    # TTFT of each class: ceil(P_i / c) steps carrying a chunk
    ttft_classes = np.stack([np.ceil(p / chunk - 1e-9) * step_chunk for p in mix.prompt_tokens])
    weights = np.asarray(mix.weights)
    ttft_mean = weights @ ttft_classes
    ttft_q = _weighted_percentile(ttft_classes, weights, q)
    # each stage holds 1/pp of the weights and, for its layers, the KV of every micro-batch
    # (pp x one micro-batch's KV / pp), and one micro-batch's activations
    weights_gpu = priced["weight_bytes_per_gpu"].to_numpy()[at_mem]
    memory = priced["memory_bytes_per_gpu"].to_numpy()[at_mem] - weights_gpu * (1.0 - 1.0 / pp) + chunk_act
    capacity = np.array([load_hw(h).memory_capacity_bytes for h in frame["hw"]])
    # pp micro-batches finish a step in the time one crosses all stages; a data-parallel group's
    # ranks each finish their own
    tokens_per_s = tokens_per_s * pp * ranks
    out = frame.assign(
        pp=pp, batch=batch, token_budget=s, decode_sequences=d * pp * ranks, sequences_held=held * pp * ranks,
        chunk_tokens=chunk,
        chunk_step_fraction=fraction, step_with_chunk_s=step_chunk, step_without_chunk_s=step_plain,
        tpot_s=step_mean, itl_percentile_s=itl_q, ttft_s=ttft_mean, ttft_percentile_s=ttft_q,
        output_tokens_per_s=tokens_per_s, requests_per_s=tokens_per_s / o_mean,
        output_tokens_per_s_per_gpu=tokens_per_s / (frame["tp"].to_numpy() * pp),
        memory_bytes_per_gpu=memory, memory_capacity_bytes=capacity, fits=memory <= capacity,
        shortfall_bytes=np.maximum(0.0, memory - capacity), budget_limited=batch / (pp * ranks) > np.floor(cap + 1.0),
        percentile=float(percentile), prompt_mean=p_mean, output_mean=o_mean, runtime=runtime_name(runtime))
    return out


def stage_boundaries(hw, tp: int, pp: int) -> tuple:
    """(boundaries inside a node, boundaries between nodes) of a pipeline of pp stages of tp GPUs,
    stages filling nodes of ``interconnect.gpus_per_node`` GPUs in order (one node if unknown)."""
    spec = load_hw(hw)
    per_node = spec.interconnect.gpus_per_node if spec.interconnect else None
    if per_node is None or tp * pp <= per_node:
        return pp - 1, 0
    stages_per_node = max(1, per_node // tp)
    across = math.ceil(pp / stages_per_node) - 1
    return pp - 1 - across, across


def _stage_transfers(model, frame, pp, step_tokens, decode_tokens, dtype):
    """Seconds a micro-batch spends crossing its stage boundaries, for a step of ``step_tokens``
    (a chunk step) and of ``decode_tokens`` (one without): each boundary sends every token's
    hidden state (each TP rank to its peer, in parallel) over NVLink or PCIe inside a node and
    over the internode network between nodes (HardwareSpec.p2p_time_s)."""
    from simulator.core.dtypes import BYTES_PER_ELEMENT
    from simulator.formats.models import load_model

    cfg = load_model(model) if isinstance(model, str) else model
    per_token = cfg.hidden * BYTES_PER_ELEMENT[dtype]
    send_chunk, send_plain = np.zeros(len(frame)), np.zeros(len(frame))
    for i, (hw, tp) in enumerate(zip(frame["hw"], frame["tp"])):
        if pp[i] == 1:
            continue
        if pp[i] > cfg.layers:
            raise SimulatorError(f"--pp {pp[i]}: {cfg.id} has {cfg.layers} layers, fewer than the stages")
        inside, across = stage_boundaries(hw, int(tp), int(pp[i]))
        spec = load_hw(hw)
        for tokens, out in ((step_tokens, send_chunk), (decode_tokens[i], send_plain)):
            message = tokens * per_token
            out[i] = inside * spec.p2p_time_s(message) + (across * spec.p2p_time_s(message, True) if across else 0.0)
    return send_chunk, send_plain


def _weighted_percentile(values, weights, q):
    """Per column of ``values`` (classes x points), the smallest value whose class weights up to
    it sum to at least q (the q-quantile of a discrete distribution)."""
    order = np.argsort(values, axis=0, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=0)
    cumulative = np.cumsum(weights[order], axis=0)
    first = np.argmax(cumulative >= q - 1e-12, axis=0)
    return sorted_values[first, np.arange(values.shape[1])]


def queue_wait(rate, requests_per_s, percentile: float = DEFAULT_PERCENTILE):
    """M/D/1 waiting time (mean, at ``percentile``) for Poisson arrivals at ``rate`` requests/s
    served at ``requests_per_s``: Pollaczek-Khinchine's mean rho / (2 mu (1 - rho)); the
    percentile from Kingman's exponential tail P(W > t) = rho exp(-rho t / W). inf where rho >= 1."""
    lam = np.asarray(rate, float)
    mu = np.asarray(requests_per_s, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        rho = lam / mu
        ok = rho < 1.0
        mean = np.where(ok, rho / (2 * mu * (1 - rho)), np.inf)
        q = float(percentile) / 100.0
        tail = np.where(rho > 1 - q, (mean / rho) * np.log(rho / (1 - q)), 0.0)
        tail = np.where(ok, np.where(lam > 0, tail, 0.0), np.inf)
    return np.where(lam > 0, mean, 0.0), tail


def calibration_note(hw) -> str:
    """Which parts of an estimate on ``hw`` rest on measurements (HardwareSpec.calibration_state)."""
    spec = load_hw(hw)
    state = spec.calibration_state
    if state == "calibrated":
        return f"{spec.id}: kernel efficiencies calibrated on its own traces"
    if state.startswith("compute from"):
        from simulator.kernels.collectives import inherits_allreduce

        sibling = state.removeprefix("compute from ")
        fabric = " and shared-fabric all-reduce" if inherits_allreduce(spec) else ""
        return (f"{spec.id}: compute efficiencies{fabric} fitted on {sibling} (same silicon); "
                "memory and the rest are spec defaults")
    return f"{spec.id}: spec defaults (uncalibrated: no traces fitted for this device)"


def serve(model, hw, prompt=4096, output_tokens=512, batch: int = 1, tp: int = 1, dtype: str = "bf16",
          weights=None, recipe="dense", kv_method=None, token_budget: int = DEFAULT_TOKEN_BUDGET,
          memory_reserve_bytes: float = 0.0, percentile: float = DEFAULT_PERCENTILE, rate=None,
          kv_dtype=None, dynamic=None, pp: int = 1, runtime=None, expert_parallel: bool = False,
          dp_attention: bool = False) -> dict:
    """One deployment's steady state at ``batch`` sequences held (see the module docstring):
    a dict of SI numbers; with ``rate`` (requests/s to this replica) the M/D/1 wait is added to
    TTFT. ``prompt`` may be a RequestMix or mix text ('4096:256:0.7,32768:512:0.3')."""
    check_budget(token_budget)
    percentile = check_percentile(percentile)  # the same rule as plan's: 0 < q < 100
    mix = request_mix(prompt, output_tokens)
    if not isinstance(pp, (int, np.integer)) or isinstance(pp, bool) or pp < 1:
        raise SimulatorError(f"--pp: must be a whole number >= 1, got {pp!r}")
    frame = pd.DataFrame([dict(hw=load_hw(hw).id, tp=int(tp), recipe=recipe, weights=weights, kv_method=kv_method,
                               pp=int(pp), expert_parallel=bool(expert_parallel) or bool(dp_attention),
                               dp_attention=bool(dp_attention))])
    row = serve_points(model, frame, [int(batch)], mix, dtype, token_budget, memory_reserve_bytes, percentile,
                       kv_dtype, dynamic, runtime).iloc[0].to_dict()
    row.update(model=model if isinstance(model, str) else model.id, mix=mix.describe(),
               prompt=mix.longest[0] if len(mix.weights) == 1 else None,
               output_tokens=int(mix.output_tokens[0]) if len(mix.weights) == 1 else None,
               gpus=int(tp) * int(pp), calibration=calibration_note(hw), accuracy=ACCURACY_NOTE)
    if rate is not None:
        mean, tail = queue_wait(rate, row["requests_per_s"], percentile)
        row.update(rate=float(rate), queue_wait_s=float(mean), queue_wait_percentile_s=float(tail),
                   ttft_s=row["ttft_s"] + float(mean), ttft_percentile_s=row["ttft_percentile_s"] + float(tail))
    # a request's latency: its TTFT, then one token per step after the first
    row["latency_s"] = row["ttft_s"] + (mix.output_mean - 1) * row["tpot_s"]
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in row.items()}


def check_budget(token_budget) -> int:
    if not isinstance(token_budget, (int, np.integer)) or isinstance(token_budget, bool) or not \
            2 <= token_budget <= 10**7:
        raise SimulatorError(f"--token-budget: must be a whole number of tokens from 2 to 10,000,000, "
                             f"got {token_budget!r}")
    return int(token_budget)


def check_percentile(percentile) -> float:
    if not (isinstance(percentile, (int, float)) and math.isfinite(percentile) and 0 < percentile < 100):
        raise SimulatorError(f"--percentile: must be a number between 0 and 100 (exclusive), got {percentile!r}")
    return float(percentile)

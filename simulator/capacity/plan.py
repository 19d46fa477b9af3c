"""Capacity planning: which deployments of a model fit, with how large a batch, at what speed.

A *deployment* is (device, tensor-parallel GPUs, pruning recipe, weight storage, KV method). For
each one, for requests of ``prompt`` tokens that generate ``output_tokens`` more, ``plan``
answers the capacity planner's questions in one row:

- does batch 1 fit, and if not, by how much (memory per GPU against what CUDA can allocate);
- the largest decode batch that fits (memory per GPU is affine in the batch: weights and
  workspace, plus each sequence's KV cache and activations — checked exact against
  ``estimate_model`` at that batch and the next), and whether one prompt's prefill fits;
- time to first token for one prompt, and the decode step at batch 1;
- the batch to serve at: the largest that fits, or, with ``max_tpot_s``, the largest whose
  decode step stays within that time per output token; its tokens/s in all and per GPU.

Decode is priced at the request's last step: the KV cache holds ``prompt + output_tokens``
tokens, of which ``output_tokens`` were generated (methods that compress only the prompt, like
SnapKV, hold their budget plus those). With ``output_tokens`` 0 that is the first step after the
prompt. The largest batch counts decoding sequences only: admitting a new prompt needs its
prefill's transient memory on top (``prefill_fits`` says whether one prefill fits alone).

Every number comes from ``simulator.model.llm.sweep`` (the same model as ``sparsim model``); the points
of all deployments are priced in a few vectorized passes.

``plan_serving`` (what ``sparsim plan`` prints) answers with the steady state of a serving engine
instead (simulator/capacity/serving.py: continuous batching with chunked prefill): per deployment, the batch
that serves best within TTFT/TPOT targets, replicas for an arrival rate, $ per million output tokens
and what limits it. docs/serving.md describes both.

Over 600 lines: the deployment table and the serving planner share the search over deployments and its refusal reasons.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from simulator.core.dtypes import BYTES_PER_ELEMENT, check_dtype
from simulator.core.errors import SimulatorError
from simulator.hardware.spec import load_hw
from simulator.methods.kvcache import parse_kv_method
from simulator.model.llm import estimate_model, parse_recipe, parse_weights, refusals, sweep
from simulator.formats.models import load_model

DEFAULT_HW = ("h100", "h200", "b200")
DEFAULT_TP = (1, 2, 4, 8)
# Batches tried per pass under a TPOT target: a geometric grid up to the largest batch that fits,
# then evenly spaced batches inside the bracket where the target is crossed, until it is one wide.
BATCH_GRID_POINTS = 48
# Under a TPOT target every batch from 1 to the largest is priced when there are at most this many
# points in all (step time is not monotonic in batch: wave quantization makes small dips); above it,
# the bracket search, exact where time grows with batch.
EXHAUSTIVE_POINTS = 250_000
MAX_TOKENS = 10**9  # a context beyond any model; keeps token counts exact in float64

COLUMNS = ("hw", "tp", "recipe", "weights", "kv_method", "fits", "memory_bytes_per_gpu", "shortfall_bytes",
           "max_batch", "prefill_fits", "ttft_s", "tpot_batch1_s", "tokens_per_s_batch1", "batch", "tpot_s",
           "tokens_per_s", "tokens_per_s_per_gpu", "note")


def _none(value):
    if isinstance(value, str):
        value = value.strip()
        return None if value.lower() in ("none", "") else value
    return value


def _as_tuple(values, name: str, normal=lambda v: v) -> tuple:
    if values is None or isinstance(values, (str, int, np.integer)):
        values = (values,)
    values = tuple(dict.fromkeys(normal(v) for v in values))  # normalised, in order, without repeats
    if not values:
        raise SimulatorError(f"{name}: give at least one value")
    return values


def _deployment_axes(model, memory_reserve_bytes, recipes, weights, kv_methods, dtype):
    """The model config and the checked recipe / weight-storage / KV-method axes of a plan."""
    cfg = load_model(model)
    if not (isinstance(memory_reserve_bytes, (int, float)) and math.isfinite(memory_reserve_bytes)
            and memory_reserve_bytes >= 0):
        raise SimulatorError(f"memory reserve: must be a finite number of bytes >= 0, got {memory_reserve_bytes!r}")
    recipes = _as_tuple(recipes, "--recipe", lambda r: r.strip() if isinstance(r, str) else r)
    if any(r == "" for r in recipes):
        raise SimulatorError("--recipe: empty value; use 'dense' for no pruning")
    # weights equal to the math dtype and 'none' are the default storage; KV '' and 'none' are no method
    weights = _as_tuple(weights, "--weights", lambda w: None if _none(w) in (None, dtype) else w)
    kv_methods = _as_tuple(kv_methods, "--kv-method", _none)
    return cfg, recipes, weights, kv_methods


def _check_inputs(cfg, prompt, output_tokens, dtype, recipes, weights, kv_methods, max_tpot_s):
    """Errors that hold for every deployment are bad input (one line, exit 2), not rows."""
    for name, value, low in (("--context", prompt, 1), ("--output-tokens", output_tokens, 0)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or not low <= value <= MAX_TOKENS:
            raise SimulatorError(f"{name}: must be a whole number from {low} to {MAX_TOKENS:,}, got {value!r}")
    if max_tpot_s is not None and not (math.isfinite(max_tpot_s) and max_tpot_s > 0):
        raise SimulatorError(f"--max-tpot-ms: must be a positive, finite time, got {max_tpot_s * 1e3:g}")
    check_dtype(dtype, "--dtype")
    for recipe in recipes:
        parse_recipe(recipe)
    for weight in weights:
        weight_dtype, _ = parse_weights(weight, dtype)
        if BYTES_PER_ELEMENT[weight_dtype or dtype] > BYTES_PER_ELEMENT[dtype]:
            raise SimulatorError(f"--weights {weight}: {weight_dtype} weights are wider than the --dtype {dtype} "
                                 "math; weight-only quantization stores weights narrower than the compute dtype")
    for kv in kv_methods:
        parse_kv_method(_none(kv))
    if cfg.kind == "encoder":
        raise SimulatorError(f"--model {cfg.id}: an encoder has no decode phase to plan for")
    total = prompt + output_tokens
    if cfg.position == "learned" and total > cfg.max_position_embeddings:
        raise SimulatorError(f"--context {prompt} + --output-tokens {output_tokens}: {cfg.id} has learned "
                             f"positions up to {cfg.max_position_embeddings} tokens")


def plan(model: str, context: int, hws=DEFAULT_HW, tps=DEFAULT_TP, recipes=("dense",), weights=(None,),
         kv_methods=(None,), dtype: str = "bf16", max_tpot_s: "float | None" = None,
         output_tokens: int = 0, memory_reserve_bytes: float = 0.0) -> pd.DataFrame:
    """One row per deployment (see the module docstring), the best first: deployments that fit,
    fewest GPUs, then most tokens/s per GPU. ``context`` is the prompt; decode is priced with
    ``context + output_tokens`` tokens cached. Inputs wrong for every deployment (an unknown
    recipe, model, device, dtype; a context past the model's positions) raise SimulatorError;
    deployments the model refuses on their own (a TP degree that does not divide the heads, a
    device that cannot compute in the dtype) are kept as rows with ``note`` saying why.
    ``memory_reserve_bytes`` per GPU is kept for the runtime (see estimate_model) in every fit."""
    cfg, recipes, weights, kv_methods = _deployment_axes(model, memory_reserve_bytes, recipes, weights,
                                                         kv_methods, dtype)
    _check_inputs(cfg, context, output_tokens, dtype, recipes, weights, kv_methods, max_tpot_s)
    devices = tuple(dict.fromkeys(load_hw(h).id for h in _as_tuple(hws, "--hw")))  # aliases resolved
    tps = _as_tuple(tps, "--tp")
    for tp in tps:
        if not isinstance(tp, (int, np.integer)) or isinstance(tp, bool) or tp < 1:
            raise SimulatorError(f"--tp: must be whole numbers >= 1, got {tp!r}")
    point = dict(context=context + output_tokens, generated=output_tokens, reserve=float(memory_reserve_bytes))
    rows, valid = [], []
    keys = [dict(hw=hw, tp=int(tp), recipe=recipe, weights=_none(weight), kv_method=_none(kv))
            for hw, tp, recipe, weight, kv in itertools.product(devices, tps, recipes, weights, kv_methods)]
    # the deployment's own constraints (TP divides heads, the device computes the dtype), all at once
    errors = refusals([dict(model=cfg, hw=key["hw"], phase="decode", batch=1, context=point["context"],
                            tp=key["tp"], dtype=dtype, weights=key["weights"], recipe=key["recipe"],
                            kv_method=key["kv_method"], generated=output_tokens,
                            memory_reserve_bytes=point["reserve"]) for key in keys])
    for key, error in zip(keys, errors):
        if error is not None:
            rows.append({**key, "fits": False, "note": error})
        else:
            valid.append(key)
    if valid:
        rows += _price(model, context, point, dtype, valid, max_tpot_s)
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    table["kv_method"] = table["kv_method"].fillna("none")
    table["weights"] = table["weights"].fillna(dtype)
    for column in ("max_batch", "batch"):  # whole numbers; missing where a deployment is refused or not served
        table[column] = table[column].astype("Int64")
    order = table.assign(_refused=table["note"].notna() & ~table["fits"].astype(bool),
                         _fits=~table["fits"].astype(bool),
                         _rate=-table["tokens_per_s_per_gpu"].fillna(0.0))
    order = order.sort_values(["_refused", "_fits", "tp", "_rate"], kind="stable")
    return table.loc[order.index].reset_index(drop=True)


def _points(model, dtype, deployments, phase, batch, context, generated=0, reserve=0.0) -> pd.DataFrame:
    return pd.DataFrame(deployments).assign(model=model, phase=phase, batch=batch, context=context,
                                            generated=generated, dtype=dtype, memory_reserve_bytes=reserve)


def _decode(model, dtype, point, deployments, index, batches):
    """Decode step time and fit for deployment ``index[j]`` at batch ``batches[j]``, in one sweep."""
    frame = pd.DataFrame([deployments[i] for i in index])
    priced = sweep(frame.assign(model=model, phase="decode", batch=batches, context=point["context"],
                                generated=point["generated"], dtype=dtype,
                                memory_reserve_bytes=point.get("reserve", 0.0)))
    return priced["time_s"].to_numpy(), priced["fits"].to_numpy(), priced["tokens_per_s"].to_numpy()


def _largest_within(model, dtype, point, deployments, top, max_tpot_s) -> np.ndarray:
    """Per deployment, the largest batch in 1..top whose decode step takes at most max_tpot_s
    (0 where even batch 1 does not). Every batch is priced when that is at most
    EXHAUSTIVE_POINTS in all; otherwise a geometric grid, then brackets narrowed to one batch."""
    n = len(deployments)
    if int(top.clip(min=0).sum()) <= EXHAUSTIVE_POINTS:
        index = np.repeat(np.arange(n), top.clip(min=0))
        if not len(index):
            return np.zeros(n, dtype=np.int64)
        batches = np.concatenate([np.arange(1, t + 1) for t in top if t >= 1]).astype(np.int64)
        time_s, fits, _ = _decode(model, dtype, point, deployments, index, batches)
        ok = fits & (time_s <= max_tpot_s)
        best = np.zeros(n, dtype=np.int64)
        np.maximum.at(best, index[ok], batches[ok])
        return best
    low = np.zeros(n, dtype=np.int64)        # largest batch known within the target (0: none yet)
    high = top.astype(np.int64) + 1          # smallest batch known over it, or past the top
    grids = [np.unique(np.r_[np.round(np.geomspace(1, t, BATCH_GRID_POINTS)), t]).astype(np.int64)
             if t >= 1 else np.zeros(0, dtype=np.int64) for t in top]
    while True:
        index = np.concatenate([np.full(len(g), i) for i, g in enumerate(grids)]).astype(int)
        if not len(index):
            return low
        batches = np.concatenate(grids)
        time_s, fits, _ = _decode(model, dtype, point, deployments, index, batches)
        ok = fits & (time_s <= max_tpot_s)
        for i in range(n):
            mine = index == i
            if not mine.any():
                continue
            b, good = batches[mine], ok[mine]
            if good.any():
                low[i] = max(low[i], b[good].max())
            above = b[(~good) & (b > low[i])]
            if len(above):
                high[i] = min(high[i], above.min())
        grids = []
        for i in range(n):
            gap = high[i] - low[i] - 1  # batches still unpriced between the bracket's ends
            if gap <= 0:
                grids.append(np.zeros(0, dtype=np.int64))
            else:
                grids.append(np.unique(np.linspace(low[i] + 1, high[i] - 1, min(gap, BATCH_GRID_POINTS))
                                       .round()).astype(np.int64))


def _price(model, prompt, point, dtype, deployments, max_tpot_s) -> list:
    reserve = point.get("reserve", 0.0)
    first = pd.concat([_points(model, dtype, deployments, "decode", 1, point["context"], point["generated"], reserve),
                       _points(model, dtype, deployments, "decode", 2, point["context"], point["generated"], reserve),
                       _points(model, dtype, deployments, "prefill", 1, prompt, 0, reserve)], ignore_index=True)
    priced = sweep(first)
    n = len(deployments)
    one, two, prefill = (priced.iloc[i * n:(i + 1) * n].reset_index(drop=True) for i in range(3))
    per_sequence = (two["memory_bytes_per_gpu"] - one["memory_bytes_per_gpu"]).to_numpy()
    capacity = np.array([load_hw(d["hw"]).memory_capacity_bytes for d in deployments])
    fixed = one["memory_bytes_per_gpu"].to_numpy() - per_sequence
    with np.errstate(divide="ignore", invalid="ignore"):
        top = np.where(per_sequence > 0, np.floor((capacity - fixed) / per_sequence), 0.0)
    top = np.clip(np.nan_to_num(top), 0, None).astype(np.int64)
    batch = top if max_tpot_s is None else _largest_within(model, dtype, point, deployments, top, max_tpot_s)
    served = np.flatnonzero(batch >= 1)
    time_s = tokens = np.zeros(0)
    if len(served):
        time_s, _, tokens = _decode(model, dtype, point, deployments, served, batch[served])
    at = {int(i): j for j, i in enumerate(served)}
    rows = []
    for i, d in enumerate(deployments):
        row = {**d, "fits": bool(one["fits"][i]), "memory_bytes_per_gpu": float(one["memory_bytes_per_gpu"][i]),
               "shortfall_bytes": float(one["shortfall_bytes"][i]), "max_batch": int(top[i]),
               "prefill_fits": bool(prefill["fits"][i]), "ttft_s": float(prefill["time_s"][i]),
               "tpot_batch1_s": float(one["time_s"][i]), "tokens_per_s_batch1": float(one["tokens_per_s"][i]),
               "note": None}
        if i in at:
            j = at[i]
            row.update(batch=int(batch[i]), tpot_s=float(time_s[j]), tokens_per_s=float(tokens[j]),
                       tokens_per_s_per_gpu=float(tokens[j]) / d["tp"])
        elif row["fits"] and max_tpot_s:
            row["note"] = f"batch 1 takes {row['tpot_batch1_s'] * 1e3:.3g} ms per token, over the TPOT target"
        rows.append(row)
    return rows


def throughput_curves(table: pd.DataFrame, model: str, context: int, dtype: str = "bf16", output_tokens: int = 0,
                      points: int = 24) -> pd.DataFrame:
    """The latency-throughput curve of each deployment of a ``plan`` table that fits: decode
    step time (time per output token) and tokens/s per GPU at batches from 1 to its largest,
    on a geometric grid. One row per (deployment, batch)."""
    fitting = table[table["fits"].astype(bool) & (table["max_batch"].fillna(0) >= 1)]
    columns = ["hw", "tp", "recipe", "weights", "kv_method", "batch", "tpot_s", "tokens_per_s", "tokens_per_s_per_gpu"]
    if not len(fitting):
        return pd.DataFrame(columns=columns)
    frames = []
    for r in fitting.itertuples():
        batches = np.unique(np.round(np.geomspace(1, int(r.max_batch), points))).astype(np.int64)
        frames.append(pd.DataFrame({"hw": r.hw, "tp": r.tp, "recipe": r.recipe,
                                    "weights": None if r.weights == dtype else r.weights,
                                    "kv_method": None if r.kv_method == "none" else r.kv_method, "batch": batches}))
    points_frame = pd.concat(frames, ignore_index=True)
    priced = sweep(points_frame.assign(model=model, phase="decode", context=context + output_tokens,
                                       generated=output_tokens, dtype=dtype))
    out = points_frame.assign(tpot_s=priced["time_s"].to_numpy(), tokens_per_s=priced["tokens_per_s"].to_numpy())
    out["tokens_per_s_per_gpu"] = out["tokens_per_s"] / out["tp"]
    out["weights"] = out["weights"].fillna(dtype)
    out["kv_method"] = out["kv_method"].fillna("none")
    return out[columns]


def longest_context(model, hw, phase: str = "decode", batch: int = 1, tp: int = 1, dtype: str = "bf16",
                    weights=None, recipe="dense", kv_method=None, dynamic=None, kv_dtype=None,
                    memory_reserve_bytes: float = 0.0) -> dict:
    """The longest context that fits at ``batch``: the context per sequence of a decode step, or
    the prompt of a prefill. Memory never shrinks as the context grows (checked for every KV
    method), so this doubles, then bisects to within 0.1%. A decode context is only reachable if
    its prompt could be prefilled, so for decode the prefill's own longest prompt is found too.

    Returns ``context`` (0 when not even one token fits), ``limit``: "memory", "positions" (a
    learned position table ends first) or "unbounded" (memory stops growing, as under a fixed
    KV budget, and nothing ran out by ``SEARCH_CEILING`` tokens), the ``summary`` at that
    context, and for decode ``prefill_context`` / ``prefill_limit``."""
    cfg = load_model(model) if isinstance(model, str) else model
    found = _longest(cfg, hw, phase, batch, tp, dtype, weights, recipe, kv_method, dynamic, kv_dtype,
                     memory_reserve_bytes)
    if phase == "decode" and found["context"]:
        prefill = _longest(cfg, hw, "prefill", batch, tp, dtype, weights, recipe, kv_method, dynamic, kv_dtype,
                           memory_reserve_bytes)
        found["prefill_context"], found["prefill_limit"] = prefill["context"], prefill["limit"]
    return found


SEARCH_CEILING = 2 ** 26  # tokens: past any model's positions and any device's memory


def _longest(cfg, hw, phase, batch, tp, dtype, weights, recipe, kv_method, dynamic, kv_dtype, reserve) -> dict:
    def estimate(context):
        return estimate_model(cfg, hw, phase, batch, int(context), tp, dtype, weights, recipe, kv_dtype,
                              kv_method=kv_method, dynamic=dynamic, with_ops=False,
                              memory_reserve_bytes=reserve).summary

    learned = cfg.position == "learned"
    cap = cfg.max_position_embeddings if learned else SEARCH_CEILING
    first = estimate(1)
    if not first["fits"]:
        return {"context": 0, "limit": "memory", "summary": first}
    low, high = 1, 2
    while high <= cap and estimate(high)["fits"]:
        low, high = high, high * 2
    if high > cap:  # the table (or the search's own ceiling) ends before memory does
        at_cap = estimate(cap)
        if at_cap["fits"]:
            return {"context": int(cap), "limit": "positions" if learned else "unbounded", "summary": at_cap}
        high = cap
    while high - low > max(1, low // 1000):
        mid = (low + high) // 2
        low, high = (mid, high) if estimate(mid)["fits"] else (low, mid)
    return {"context": int(low), "limit": "memory", "summary": estimate(low)}


# --- Serving plans: the steady state of continuous batching (simulator/capacity/serving.py) -------------------

OBJECTIVES = ("cost", "throughput", "gpus", "latency")
SERVING_EXHAUSTIVE_POINTS = 20_000  # candidate batches priced one by one up to this many in all
SERVING_GRID_POINTS = 64
MAX_REPLICAS = 1_000_000
SERVING_COLUMNS = ("hw", "gpus", "gpus_per_replica", "tp", "pp", "expert_parallel", "dp_attention", "recipe", "weights", "kv_method", "batch",
                   "max_batch", "replicas", "ttft_s", "ttft_percentile_s", "tpot_s", "itl_percentile_s",
                   "latency_s", "output_tokens_per_s", "output_tokens_per_s_per_gpu", "requests_per_s",
                   "rate_per_replica", "price_per_gpu_hour", "cost_per_million_output_tokens", "limited_by",
                   "fits", "meets_targets", "memory_bytes_per_gpu", "memory_capacity_bytes", "shortfall_bytes",
                   "decode_sequences", "chunk_step_fraction", "target_ratio", "calibration", "note", "model_command")


def parse_prices(text) -> dict:
    """'h100=2.5,h200=3.7' ($ per GPU-hour, user input) -> {device id: $/s}; aliases resolved."""
    if text is None:
        return {}
    if isinstance(text, dict):
        items = list(text.items())
    else:
        items = []
        for part in [p.strip() for p in str(text).split(",") if p.strip()]:
            name, eq, value = part.partition("=")
            if not eq:
                raise SimulatorError(f"--price {text!r}: write device=dollars_per_gpu_hour,... e.g. h100=2.5,h200=3.7")
            try:
                items.append((name.strip(), float(value)))
            except ValueError:
                raise SimulatorError(f"--price {part!r}: {value!r} is not a number of $ per GPU-hour") from None
    prices = {}
    for name, value in items:
        if not (math.isfinite(value) and value > 0):
            raise SimulatorError(f"--price {name}={value:g}: must be a positive, finite $ per GPU-hour")
        prices[load_hw(name).id] = float(value)
    return prices


def _replicas_for(rate, mu, ttft_q, max_ttft_s, percentile):
    """The fewest replicas that serve ``rate`` requests/s (each at ``mu``) with TTFT at the
    percentile (``ttft_q`` plus the M/D/1 wait) within ``max_ttft_s``; 0 where none does."""
    from simulator.capacity.serving import queue_wait

    mu = np.asarray(mu, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.floor(rate / mu) + 1.0  # rho < 1
    if max_ttft_s is not None:
        slack = max_ttft_s - np.asarray(ttft_q, float)
        # the largest utilisation whose waiting time at the percentile fits the slack (it grows with rho)
        low, high = np.zeros_like(mu), np.ones_like(mu)
        for _ in range(60):
            mid = (low + high) / 2
            _, tail = queue_wait(mid * mu, mu, percentile)
            ok = tail <= slack
            low, high = np.where(ok, mid, low), np.where(ok, high, mid)
        with np.errstate(divide="ignore", invalid="ignore"):
            by_ttft = np.where(low > 0, np.ceil(rate / (low * mu) - 1e-12), np.inf)
        need = np.where(slack > 0, np.maximum(need, by_ttft), np.inf)
    need = np.where(np.isfinite(need) & (need <= MAX_REPLICAS), need, 0.0)
    # the rounding above may leave rho at exactly 1 or the wait a hair over: one more replica then
    return need.astype(np.int64)


def plan_serving(model: str, context=4096, output_tokens: int = 512, hws=DEFAULT_HW, tps=DEFAULT_TP, pps=(1,),
                 recipes=("dense",), weights=(None,), kv_methods=(None,), dtype: str = "bf16",
                 max_ttft_s=None, max_tpot_s=None, rate=None, prices=None, objective: str = "throughput",
                 memory_reserve_bytes: float = 0.0, token_budget: int = None, percentile: float = None,
                 return_candidates: bool = False, runtime=None, expert_parallel=(False,)) -> pd.DataFrame:
    """Serving configurations of ``model`` for a request mix (``context`` prompt tokens and
    ``output_tokens``, or ``context`` a mix 'P:O[:w],...'), one row per deployment, the best first
    by ``objective``: each at the batch (sequences held) the objective prefers among those that fit
    and meet the targets (TTFT at ``percentile`` within ``max_ttft_s``, mean TPOT within
    ``max_tpot_s``), with replicas for ``rate`` requests/s, $ per million output tokens from
    ``prices`` ($/GPU-hour by device) and what limits it (``limited_by``: memory, KV capacity,
    token budget, TPOT, TTFT). Every number is ``simulator.capacity.serving.serve`` at that point (what
    ``sparsim model --output-tokens`` prints; ``model_command`` says how). With
    ``return_candidates``, also every (deployment, batch) priced, as serve_points rows. ``runtime``:
    the runtime profile every step is priced with (simulator/formats/runtimes.py; default eager), in
    ``table.attrs["runtime"]``. ``expert_parallel``: the MoE placements searched, (False,) (experts
    split by width over TP, the default), True (whole experts per GPU, attention tensor parallel)
    and/or "dp" (whole experts per GPU, attention data parallel: estimate_model's dp_attention)."""
    from simulator.formats.runtimes import runtime_name
    from simulator.capacity.serving import (DEFAULT_PERCENTILE, DEFAULT_TOKEN_BUDGET, calibration_note, check_budget,
                                   check_percentile, decode_share, dp_group, request_mix, serve_points)

    token_budget = check_budget(DEFAULT_TOKEN_BUDGET if token_budget is None else token_budget)
    percentile = check_percentile(DEFAULT_PERCENTILE if percentile is None else percentile)
    if objective not in OBJECTIVES:
        raise SimulatorError(f"--objective {objective!r}: allowed {', '.join(OBJECTIVES)}")
    for name, value in (("--max-ttft-ms", max_ttft_s), ("--max-tpot-ms", max_tpot_s)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise SimulatorError(f"{name}: must be a positive, finite time, got {value * 1e3:g}")
    if rate is not None and not (math.isfinite(rate) and rate > 0):
        raise SimulatorError(f"--rate: must be a positive, finite number of requests/s, got {rate:g}")
    mix = request_mix(context, output_tokens)
    prices = parse_prices(prices)
    if objective == "cost" and not prices:
        raise SimulatorError("--objective cost: give --price device=$/GPU-hour,... (prices are user input)")
    cfg, recipes, weights, kv_methods = _deployment_axes(model, memory_reserve_bytes, recipes, weights,
                                                         kv_methods, dtype)
    longest_prompt, longest_output = mix.longest
    _check_inputs(cfg, max(mix.prompt_tokens), longest_output, dtype, recipes, weights, kv_methods, max_tpot_s)
    if cfg.position == "learned" and longest_prompt + longest_output > cfg.max_position_embeddings:
        raise SimulatorError(f"--context {longest_prompt} + --output-tokens {longest_output}: {cfg.id} has learned "
                             f"positions up to {cfg.max_position_embeddings} tokens")
    devices = tuple(dict.fromkeys(load_hw(h).id for h in _as_tuple(hws, "--hw")))
    tps = _as_tuple(tps, "--tp")
    for tp in tps:
        if not isinstance(tp, (int, np.integer)) or isinstance(tp, bool) or tp < 1:
            raise SimulatorError(f"--tp: must be whole numbers >= 1, got {tp!r}")
    pps = _as_tuple(pps, "--pp")
    for pp in pps:
        if not isinstance(pp, (int, np.integer)) or isinstance(pp, bool) or pp < 1:
            raise SimulatorError(f"--pp: must be whole numbers >= 1, got {pp!r}")
    reserve = float(memory_reserve_bytes)
    placements = _as_tuple(expert_parallel, "--ep")
    bad = [e for e in placements if not (isinstance(e, (bool, np.bool_)) or e == "dp")]
    if bad:
        raise SimulatorError(f"--ep: placement {bad[0]!r}; allowed: False (experts split by width), True (whole "
                             "experts, attention tensor parallel), 'dp' (whole experts, attention data parallel)")
    eps = tuple(dict.fromkeys("dp" if e == "dp" else bool(e) for e in placements))
    if (True in eps or "dp" in eps) and cfg.moe is None:
        raise SimulatorError(f"--ep: {cfg.id} is not a mixture of experts; expert parallelism needs experts to place")
    rows, candidates = [], []
    for hw, tp, pp, recipe, weight, kv, ep in itertools.product(devices, tps, pps, recipes, weights, kv_methods, eps):
        if ep and tp == 1 and False in eps:
            continue  # one GPU per stage holds every expert either way: the same deployment
        dp = ep == "dp"
        key = dict(hw=hw, tp=int(tp), pp=int(pp), recipe=recipe, weights=_none(weight), kv_method=_none(kv),
                   expert_parallel=bool(ep), dp_attention=dp)
        try:
            _check_stages(cfg, hw, int(tp), int(pp))
            if dp and pp > 1:
                raise SimulatorError("--dp-attention with --pp: pipeline stages of data-parallel attention groups "
                                     "are not modelled")
        except SimulatorError as err:
            candidates.append((key, str(err)))
            continue
        candidates.append((key, None))
    # the model's own checks of every deployment left, at once
    checked = [key for key, error in candidates if error is None]
    errors = iter(refusals([dict(model=cfg, hw=key["hw"], phase="decode", batch=1,
                                 context=longest_prompt + longest_output, tp=key["tp"], dtype=dtype,
                                 weights=key["weights"], recipe=key["recipe"], kv_method=key["kv_method"],
                                 generated=longest_output, memory_reserve_bytes=reserve,
                                 expert_parallel=key["expert_parallel"], dp_attention=key["dp_attention"])
                            for key in checked]))
    valid = []
    for key, error in candidates:
        if error is None:
            error = next(errors)
        if error is not None:
            rows.append({**key, "gpus": key["tp"] * key["pp"], "gpus_per_replica": key["tp"] * key["pp"], "fits": False,
                         "meets_targets": False, "limited_by": "invalid", "note": error})
            continue
        valid.append(key)
    runtime = runtime_name(runtime)
    kw = dict(dtype=dtype, token_budget=token_budget, memory_reserve_bytes=reserve, percentile=percentile,
              runtime=runtime)
    if valid:
        frame = pd.DataFrame(valid)
        n = len(frame)
        # memory is affine in the sequences held (per micro-batch, pp of them): batches pp and 2 pp
        # give it, and the batch where it runs out
        # (a data-parallel attention group: per tp sequences, one per GPU)
        stages = frame["pp"].to_numpy().astype(np.int64) * dp_group(frame)
        two = serve_points(model, pd.concat([frame, frame], ignore_index=True), np.r_[stages, 2 * stages], mix, **kw)
        m1, m2 = two["memory_bytes_per_gpu"].to_numpy()[:n], two["memory_bytes_per_gpu"].to_numpy()[n:]
        capacity = two["memory_capacity_bytes"].to_numpy()[:n]
        per_seq = (m2 - m1) / stages
        with np.errstate(divide="ignore", invalid="ignore"):
            top_mem = np.where(per_seq > 0, np.floor((capacity - (m1 - stages * per_seq)) / per_seq), 10**7)
        top_mem = np.clip(np.nan_to_num(top_mem), 0, 10**7).astype(np.int64)
        top_mem = np.where(m1 <= capacity, np.maximum(top_mem, 1), 0)
        _, _, _, _, cap_d = decode_share(1, mix.prompt_mean, mix.output_mean, token_budget)
        # more sequences than this change nothing (per micro-batch: x pp stages)
        top_budget = (int(math.floor(cap_d + 1.0)) + 1) * stages
        top = np.minimum(top_mem + 1, top_budget)  # one past the memory limit, to see it fail
        index = np.arange(n)
        if int(top.sum()) <= SERVING_EXHAUSTIVE_POINTS:
            grids = [np.arange(1, t + 1) for t in top]
        else:
            grids = [np.unique(np.r_[np.round(np.geomspace(1, max(t, 1), SERVING_GRID_POINTS)), t, max(t - 1, 1)])
                     for t in top]
        which = np.concatenate([np.full(len(g), i) for i, g in zip(index, grids)])
        batches = np.concatenate(grids).astype(np.int64)
        priced = serve_points(model, frame.iloc[which].reset_index(drop=True), batches, mix, **kw)
        priced["deployment"] = which
        candidates = priced
        rows += _choose(priced, frame, mix, max_ttft_s, max_tpot_s, rate, prices, objective, percentile,
                        top_mem, top_budget, model, dtype, reserve,
                        token_budget, context, output_tokens, runtime)
    table = pd.DataFrame(rows, columns=list(SERVING_COLUMNS))
    table["kv_method"] = table["kv_method"].fillna("none")
    table["weights"] = table["weights"].fillna(dtype)
    table["calibration"] = [calibration_note(h) for h in table["hw"]]
    for column in ("batch", "max_batch", "replicas", "gpus"):
        table[column] = table[column].astype("Int64")
    table = _rank(table, objective).reset_index(drop=True)
    table.attrs["mix"] = mix.describe()
    table.attrs["token_budget"] = token_budget
    table.attrs["longest_tokens"] = longest_prompt + longest_output
    table.attrs["percentile"] = percentile
    table.attrs["runtime"] = runtime
    if return_candidates:  # every candidate batch priced, for the Pareto front (--plot)
        return table, (candidates if valid else pd.DataFrame())
    return table


def _check_stages(cfg, hw, tp, pp):
    """A pipeline the spec can price: no more stages than layers, a network between nodes if it spans them."""
    from simulator.capacity.serving import stage_boundaries

    if pp > cfg.layers:
        raise SimulatorError(f"--pp {pp}: {cfg.id} has {cfg.layers} layers, fewer than the stages")
    _, across = stage_boundaries(hw, tp, pp)
    spec = load_hw(hw)
    if across and (spec.interconnect is None or spec.interconnect.internode is None):
        raise SimulatorError(f"--pp {pp}: {tp * pp} GPUs span several {spec.id} nodes and its spec has no "
                             "interconnect.internode group")


def _rank(table, objective):
    good = table["meets_targets"].astype(bool)
    invalid = table["limited_by"] == "invalid"
    key = {"cost": ["cost_per_million_output_tokens", "gpus"],
           "throughput": ["_rate"], "gpus": ["gpus", "cost_per_million_output_tokens", "_rate"],
           "latency": ["latency_s", "gpus"]}[objective]
    order = table.assign(_invalid=invalid, _bad=~good, _rate=-table["output_tokens_per_s_per_gpu"].fillna(0.0))
    if objective == "cost":
        order["_nocost"] = table["cost_per_million_output_tokens"].isna()
        key = ["_nocost"] + key
    return table.loc[order.sort_values(["_invalid", "_bad"] + key, kind="stable", na_position="last").index]


def _choose(priced, frame, mix, max_ttft_s, max_tpot_s, rate, prices, objective, percentile, top_mem,
            top_budget, model, dtype, reserve, token_budget, context, output_tokens, runtime="eager") -> list:
    """Per deployment, the candidate batch the objective prefers among those that fit and meet the
    targets (or, where none does, batch 1 as the closest miss), as SERVING_COLUMNS rows."""
    from simulator.capacity.serving import queue_wait

    p = priced
    tpot_ok = np.ones(len(p), bool) if max_tpot_s is None else (p["tpot_s"] <= max_tpot_s).to_numpy()
    replicas = np.ones(len(p), dtype=np.int64)
    wait_mean = np.zeros(len(p))
    wait_q = np.zeros(len(p))
    if rate is not None:
        replicas = _replicas_for(rate, p["requests_per_s"].to_numpy(), p["ttft_percentile_s"].to_numpy(),
                                 max_ttft_s, percentile)
        mu = p["requests_per_s"].to_numpy()
        _, wait_q = queue_wait(rate / np.maximum(replicas, 1), mu, percentile)
        # a rounding hair over the target (or rho at 1): one replica more
        over = ~np.isfinite(wait_q)
        if max_ttft_s is not None:
            over |= p["ttft_percentile_s"].to_numpy() + wait_q > max_ttft_s
        replicas = np.where((replicas > 0) & over, replicas + 1, replicas)
        wait_mean, wait_q = queue_wait(rate / np.maximum(replicas, 1), p["requests_per_s"].to_numpy(), percentile)
        wait_mean = np.where(replicas > 0, wait_mean, np.inf)
        wait_q = np.where(replicas > 0, wait_q, np.inf)
    ttft = p["ttft_s"].to_numpy() + wait_mean
    ttft_q = p["ttft_percentile_s"].to_numpy() + wait_q
    ttft_ok = np.ones(len(p), bool) if max_ttft_s is None else ttft_q <= max_ttft_s
    if rate is not None:
        ttft_ok &= replicas > 0
    fits = p["fits"].to_numpy()
    ok = fits & tpot_ok & ttft_ok
    gpus_per_replica = (p["tp"].to_numpy() * p["pp"].to_numpy()).astype(np.int64)
    gpus = gpus_per_replica * np.maximum(replicas, 1)
    price = np.array([prices.get(h, np.nan) for h in p["hw"]])
    tokens = p["output_tokens_per_s"].to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        if rate is None:
            cost = price * gpus_per_replica / 3600.0 / tokens * 1e6
        else:
            cost = price * gpus / 3600.0 / (rate * mix.output_mean) * 1e6
    latency = ttft + (mix.output_mean - 1) * p["tpot_s"].to_numpy()
    rows = []
    for i, d in enumerate(frame.to_dict("records")):
        d = {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in d.items()}
        mine = np.flatnonzero(p["deployment"].to_numpy() == i)
        good = mine[ok[mine]]
        if len(good):
            if objective == "latency":
                j = good[np.lexsort((-tokens[good], latency[good]))[0]]
            elif rate is not None and objective in ("cost", "gpus"):
                j = good[np.lexsort((-tokens[good], gpus[good]))[0]]
            else:
                j = good[np.argmax(tokens[good])]
            limited = _limited_by(j, mine, p, fits, tpot_ok, ttft_ok, objective, top_budget[i])
            met = True
        else:
            j = mine[0]  # batch 1: the closest miss
            if not fits[j]:
                limited = "memory"
            elif not tpot_ok[j]:
                limited = "TPOT"
            else:
                limited = "TTFT"
            met = False
        r = p.iloc[j]
        rows.append({
            **d, "gpus": int(gpus[j]), "gpus_per_replica": int(gpus_per_replica[j]),
            "batch": int(r["batch"]), "max_batch": int(min(top_mem[i], top_budget[i])),
            "replicas": (int(replicas[j]) if replicas[j] > 0 else None) if rate is not None else 1,
            "ttft_s": float(ttft[j]), "ttft_percentile_s": float(ttft_q[j]), "tpot_s": float(r["tpot_s"]),
            "itl_percentile_s": float(r["itl_percentile_s"]), "latency_s": float(latency[j]),
            "output_tokens_per_s": float(tokens[j]), "output_tokens_per_s_per_gpu": float(r["output_tokens_per_s_per_gpu"]),
            "requests_per_s": float(r["requests_per_s"]),
            "rate_per_replica": (rate / replicas[j]) if rate is not None and replicas[j] > 0 else None,
            "price_per_gpu_hour": prices.get(d["hw"]),
            "cost_per_million_output_tokens": float(cost[j]) if met and np.isfinite(cost[j]) else None,
            "limited_by": limited, "fits": bool(fits[j]), "meets_targets": met,
            "memory_bytes_per_gpu": float(r["memory_bytes_per_gpu"]),
            "memory_capacity_bytes": float(r["memory_capacity_bytes"]), "shortfall_bytes": float(r["shortfall_bytes"]),
            "decode_sequences": float(r["decode_sequences"]), "chunk_step_fraction": float(r["chunk_step_fraction"]),
            "note": None,
            "model_command": _model_command(model, d, int(r["batch"]), context, output_tokens, dtype, reserve,
                                            token_budget, percentile,
                                            (rate / replicas[j]) if rate is not None and replicas[j] > 0 else None,
                                            runtime),
        })
        # how far from the targets: the larger of TPOT / target and TTFT (before queueing) / target
        ratios = [r["tpot_s"] / max_tpot_s if max_tpot_s else 0.0,
                  r["ttft_percentile_s"] / max_ttft_s if max_ttft_s else 0.0]
        rows[-1]["target_ratio"] = max(ratios) if fits[j] else None
        if not met and limited == "memory":
            rows[-1]["note"] = (f"does not fit: needs {r['memory_bytes_per_gpu'] / 1e9:.1f} GB per GPU, has "
                                f"{r['memory_capacity_bytes'] / 1e9:.1f} GB")
        elif not met and limited == "TPOT":
            rows[-1]["note"] = f"TPOT {r['tpot_s'] * 1e3:.3g} ms at batch 1, over the {max_tpot_s * 1e3:g} ms target"
        elif not met:
            before = f"TTFT p{percentile:g} {r['ttft_percentile_s']:.3g} s at batch 1 before any queueing"
            rows[-1]["note"] = before + (f", over the {max_ttft_s:g} s target" if ratios[1] > 1 else
                                         f"; no count of replicas up to {MAX_REPLICAS:,} keeps the queue within "
                                         f"the {max_ttft_s:g} s target")
    return rows


def _limited_by(j, mine, p, fits, tpot_ok, ttft_ok, objective, top_budget) -> str:
    """Why the chosen batch is not larger: the next candidate's failure, or what caps the batch."""
    later = mine[mine > j]
    if objective == "latency" and len(later) and fits[later[0]] and tpot_ok[later[0]] and ttft_ok[later[0]]:
        return "latency objective"
    if int(p["batch"].iloc[j]) >= top_budget or bool(p["budget_limited"].iloc[j]):
        return "token budget"
    if not len(later):
        return "KV capacity"
    nxt = later[0]
    if not fits[nxt]:
        return "KV capacity"
    if not tpot_ok[nxt]:
        return "TPOT"
    if not ttft_ok[nxt]:
        return "TTFT"
    return "throughput peak"  # a larger batch fits and meets the targets but serves less (rare)


def _model_command(model, d, batch, context, output_tokens, dtype, reserve, token_budget, percentile, rate,
                   runtime="eager") -> str:
    """The `sparsim model` call that prints this configuration's numbers."""
    from simulator.capacity.serving import DEFAULT_PERCENTILE, DEFAULT_TOKEN_BUDGET

    parts = ["sparsim model", f"--model {model}", f"--hw {d['hw']}", f"--tp {d['tp']}"]
    if d.get("pp", 1) > 1:
        parts.append(f"--pp {d['pp']}")
    if d.get("dp_attention"):
        parts.append("--dp-attention")
    elif d.get("expert_parallel"):
        parts.append("--ep")
    if isinstance(context, str):
        parts.append(f"--mix {context}")
    else:
        parts += [f"--context {context}", f"--output-tokens {output_tokens}"]
    parts.append(f"--batch {batch}")
    if d["recipe"] != "dense":
        parts.append(f"--recipe {d['recipe']}")
    if d["weights"]:
        parts.append(f"--weights {d['weights']}")
    if d["kv_method"]:
        parts.append(f"--kv-method {d['kv_method']}")
    if dtype != "bf16":
        parts.append(f"--dtype {dtype}")
    if reserve:
        parts.append(f"--reserve-gb {reserve / 1e9:g}")
    if token_budget != DEFAULT_TOKEN_BUDGET:
        parts.append(f"--token-budget {token_budget}")
    if percentile != DEFAULT_PERCENTILE:
        parts.append(f"--percentile {percentile:g}")
    if rate is not None:
        parts.append(f"--rate {float(rate)!r}")
    if runtime != "eager":
        parts.append(f"--runtime {runtime}")
    return " ".join(parts)

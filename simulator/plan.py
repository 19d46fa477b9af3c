"""Capacity planning: which deployments of a model fit, with how large a batch, at what speed.

A *deployment* is (device, tensor-parallel GPUs, pruning recipe, weight storage, KV method). For
each one, at a given context, ``plan`` answers the capacity planner's questions in one row:

- does batch 1 fit, and if not, by how much (memory per GPU against what CUDA can allocate);
- the largest decode batch that fits (memory per GPU is affine in the batch: weights and
  workspace, plus each sequence's KV cache and activations), and whether the prompt's prefill
  fits at batch 1 (the prefill holds one layer's transient activations for the whole prompt);
- time to first token for one prompt of ``context`` tokens, and the decode step at batch 1;
- the batch to serve at: the largest that fits, or, with ``max_tpot_s``, the largest whose
  decode step stays within that time per output token; its tokens/s in all and per GPU.

Every number comes from ``simulator.llm.sweep`` (the same model as ``sparsim model``); points of
one deployment are priced in one vectorized pass. Decode is priced with ``context`` tokens in
the KV cache, the last and slowest step of a request of that length.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from simulator.errors import SimulatorError
from simulator.hardware import load_hw
from simulator.llm import estimate_model, sweep
from simulator.models import load_model

DEFAULT_HW = ("h100", "h200", "b200")
DEFAULT_TP = (1, 2, 4, 8)
# Batches tried under a TPOT target: a geometric grid up to the largest batch that fits.
BATCH_GRID_POINTS = 48

COLUMNS = ("hw", "tp", "recipe", "weights", "kv_method", "fits", "memory_bytes_per_gpu", "shortfall_bytes",
           "max_batch", "prefill_fits", "ttft_s", "tpot_batch1_s", "tokens_per_s_batch1", "batch", "tpot_s",
           "tokens_per_s", "tokens_per_s_per_gpu", "note")


def _none(value):
    return None if value in (None, "none", "") else value


def plan(model: str, context: int, hws=DEFAULT_HW, tps=DEFAULT_TP, recipes=("dense",), weights=(None,),
         kv_methods=(None,), dtype: str = "bf16", max_tpot_s: "float | None" = None) -> pd.DataFrame:
    """One row per deployment (see the module docstring), the best first: deployments that fit,
    fewest GPUs, then most tokens/s per GPU. Deployments the model refuses (a TP degree that does
    not divide the heads, a recipe that does not apply) are kept as rows with ``note`` saying why."""
    if not isinstance(context, (int, np.integer)) or context < 1:
        raise SimulatorError(f"--context: must be a whole number >= 1, got {context!r}")
    if max_tpot_s is not None and not (math.isfinite(max_tpot_s) and max_tpot_s > 0):
        raise SimulatorError(f"--max-tpot-ms: must be a positive time, got {max_tpot_s * 1e3:g} ms")
    cfg = load_model(model)
    devices = [load_hw(h).id for h in hws]  # unknown devices fail here, with the list of known ones
    for tp in tps:
        if not isinstance(tp, (int, np.integer)) or tp < 1:
            raise SimulatorError(f"--tp: must be whole numbers >= 1, got {tp!r}")
    rows, valid = [], []
    for hw, tp, recipe, weight, kv in itertools.product(devices, tps, recipes, weights, kv_methods):
        key = dict(hw=hw, tp=int(tp), recipe=recipe, weights=_none(weight), kv_method=_none(kv))
        try:  # the deployment's own constraints (TP divides heads, recipe applies), at batch 1
            estimate_model(cfg, hw, "decode", 1, context, int(tp), dtype, key["weights"], recipe,
                           kv_method=key["kv_method"], with_ops=False)
        except SimulatorError as err:
            rows.append({**key, "fits": False, "note": str(err)})
            continue
        valid.append(key)
    if valid:
        rows += _price(model, context, dtype, valid, max_tpot_s)
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


def _points(model, context, dtype, deployments, phase, batch) -> pd.DataFrame:
    return pd.DataFrame(deployments).assign(model=model, phase=phase, batch=batch, context=context, dtype=dtype)


def _price(model, context, dtype, deployments, max_tpot_s) -> list:
    first = pd.concat([_points(model, context, dtype, deployments, "decode", 1),
                       _points(model, context, dtype, deployments, "decode", 2),
                       _points(model, context, dtype, deployments, "prefill", 1)], ignore_index=True)
    priced = sweep(first)
    n = len(deployments)
    one, two, prefill = (priced.iloc[i * n:(i + 1) * n].reset_index(drop=True) for i in range(3))
    per_sequence = two["memory_bytes_per_gpu"] - one["memory_bytes_per_gpu"]
    capacity = np.array([load_hw(d["hw"]).memory_capacity_bytes for d in deployments])
    fixed = one["memory_bytes_per_gpu"] - per_sequence
    max_batch = np.where(per_sequence > 0, np.floor((capacity - fixed) / per_sequence.where(per_sequence > 0, 1.0)),
                         0.0).clip(min=0).astype(int)
    # the batch to serve at: the largest that fits, or the largest within the TPOT target
    grids = []
    for i, d in enumerate(deployments):
        top = int(max_batch[i])
        if top < 1:
            continue
        grid = (np.array([top]) if max_tpot_s is None else
                np.unique(np.r_[np.round(np.geomspace(1, top, BATCH_GRID_POINTS)), top]).astype(int))
        grids.append((i, grid))
    chosen = {}
    if grids:
        frame = pd.DataFrame([deployments[i] for i, grid in grids for _ in grid])
        points = frame.assign(model=model, phase="decode", batch=np.concatenate([g for _, g in grids]),
                              context=context, dtype=dtype)
        priced_grid = sweep(points)
        start = 0
        for i, grid in grids:
            block = priced_grid.iloc[start:start + len(grid)]
            start += len(grid)
            ok = block[block["fits"] & ((block["time_s"] <= max_tpot_s) if max_tpot_s else True)]
            if len(ok):
                chosen[i] = ok.iloc[-1]
    rows = []
    for i, d in enumerate(deployments):
        row = {**d, "fits": bool(one["fits"][i]), "memory_bytes_per_gpu": float(one["memory_bytes_per_gpu"][i]),
               "shortfall_bytes": float(one["shortfall_bytes"][i]), "max_batch": int(max_batch[i]),
               "prefill_fits": bool(prefill["fits"][i]), "ttft_s": float(prefill["time_s"][i]),
               "tpot_batch1_s": float(one["time_s"][i]), "tokens_per_s_batch1": float(one["tokens_per_s"][i]),
               "note": None}
        best = chosen.get(i)
        if best is not None:
            row.update(batch=int(best["batch"]), tpot_s=float(best["time_s"]),
                       tokens_per_s=float(best["tokens_per_s"]),
                       tokens_per_s_per_gpu=float(best["tokens_per_s"]) / d["tp"])
        elif row["fits"] and max_tpot_s:
            row["note"] = f"batch 1 takes {row['tpot_batch1_s'] * 1e3:.3g} ms per token, over the TPOT target"
        rows.append(row)
    return rows

"""sparsim's estimates written as Vidur profiling files, so Vidur's cluster simulator can run on
devices and recipes nobody has profiled (2:4 on H200, int4 weights on B200, ...).

Vidur (Agrawal et al., "Vidur: A Large-Scale Simulation Framework for LLM Inference", MLSys'24,
github.com/microsoft/vidur) predicts a replica's batch times from measured per-op profiles of the
exact model and GPU. Its ``mlp.csv`` holds, per (tensor-parallel degree, token count), the kernel
time of each op of one transformer block (see simulator/truth/importers/vidur_mlp.py, which reads it,
and shared/data/vidur/README.md for what Vidur measured):

    time_stats.<op>.{min,max,mean,median,std}   ms, kernel time (no launch latency)
    n_head, n_kv_head, n_embd, n_expanded_embd, vocab_size, use_gated_mlp, num_tokens,
    num_tensor_parallel_workers

for the ops emb, input_layernorm, attn_pre_proj, attn_rope, attn_post_proj,
post_attention_layernorm, mlp_up_proj, mlp_act, mlp_down_proj, add (the column order of Vidur's
own files). ``write_mlp_csv`` fills it from sparsim's op table for the same shapes: each token
count is one prefill point of ``num_tokens`` one-token sequences (so every linear layer has
M = num_tokens, as in Vidur's profiler), priced with the recipe, dtype and weight storage given.

- Times are sparsim's kernel times: the roofline time without the launch overhead (gemm's
  ``kernel_time_s``; max(compute, memory) for element-wise kernels), as Vidur's profiler sums
  kernel durations. A model is deterministic, so min = max = mean = median and std = 0.
- attn_rope and add are 0: sparsim prices no separate RoPE kernel (it is fused into the QKV or
  attention kernels of the engines it models) and no separate residual add (vLLM's
  fused_add_rms_norm does the add inside the norm, which sparsim's norm kernel stands for).
- A layer group's time is the count-weighted mean over its rows (OWL's per-layer sparsities,
  LazyLLM's token groups), so Vidur's per-layer time x layers equals sparsim's total.
- Token counts are Vidur's profiling grid (vidur/profiling/utils: get_num_tokens_to_profile):
  1, 2, 4, 8..1016 by 8, 1024..2048 by 16, 2048..4096 by 32, ..., up to ``max_tokens``.

``write_profiles`` adds Vidur's other two inputs: ``attention.csv`` (``attention_table``: per
layer and GPU, decode of batch_size sequences over kv_cache_size cached tokens, priced through the
whole-model path so ``--kv-method`` changes it, and one sequence's prefill chunk over a cached
prefix, dense) and ``profiling/network/<hw>/all_reduce.csv`` (``all_reduce_table``: the spec's ring
all-reduce), at Vidur's own profiling grids. ``run_vidur`` runs Vidur's simulator offline on them
(optional ``[serving]`` extra).

What the layout cannot say is refused with an error rather than written wrong: MoE MLPs and MLA
(Vidur's block has one dense MLP and a fused QKV), structured recipes (Vidur takes the layer count
and widths from its own model config), head_dim != n_embd / n_head (Vidur derives head_dim), KV heads
that do not split over the TP degree, encoders.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from simulator.core.errors import SimulatorError

MLP_OPS = ("emb", "input_layernorm", "attn_pre_proj", "attn_rope", "attn_post_proj", "post_attention_layernorm",
           "mlp_up_proj", "mlp_act", "mlp_down_proj", "add")
STATS = ("min", "max", "mean", "median", "std")
SHAPE_COLUMNS = ("n_head", "n_kv_head", "n_embd", "n_expanded_embd", "vocab_size", "use_gated_mlp", "num_tokens",
                 "num_tensor_parallel_workers")
DEFAULT_TP = (1, 2, 4, 8)  # the degrees Vidur profiles (its mlp.csv files hold TP 1, 2, 4, 8)
DEFAULT_MAX_TOKENS = 4096  # the largest token count in Vidur's shipped mlp.csv files
MANIFEST = "sparsim-export.json"
# sparsim op -> Vidur op; the norms row stands for both of Vidur's norms
_SPARSIM_OPS = {"embedding": "emb", "norms": "input_layernorm", "qkv": "attn_pre_proj", "o_proj": "attn_post_proj",
                "gate_up": "mlp_up_proj", "up": "mlp_up_proj", "activation": "mlp_act", "down": "mlp_down_proj"}


def vidur_token_grid(max_tokens: int = DEFAULT_MAX_TOKENS) -> np.ndarray:
    """Vidur's profiling token counts up to ``max_tokens`` (vidur/profiling/utils/__init__.py,
    get_num_tokens_to_profile), ascending."""
    if int(max_tokens) != max_tokens or max_tokens < 1:
        raise SimulatorError(f"--max-tokens: must be a whole number >= 1, got {max_tokens}")
    space = ([1, 2, 4] + list(range(8, 1024, 8)) + list(range(1024, 2 * 1024 + 1, 16))
             + list(range(2 * 1024, 4 * 1024 + 1, 32)) + list(range(4 * 1024, 8 * 1024 + 1, 64))
             + list(range(8 * 1024, 16 * 1024 + 1, 128)) + list(range(16 * 1024, 32 * 1024 + 1, 256))
             + list(range(32 * 1024, 64 * 1024 + 1, 512)) + list(range(64 * 1024, 128 * 1024 + 1, 1024)))
    tokens = sorted({t for t in space if t <= max_tokens})
    return np.array(tokens or [1], dtype=float)


def _check_exportable(cfg, rec) -> None:
    what = None
    if cfg.kind != "decoder":
        what = "it is an encoder (Vidur simulates decoder serving)"
    elif cfg.moe is not None:
        what = "it is a mixture of experts (Vidur's mlp.csv holds one dense MLP per block)"
    elif cfg.mla is not None:
        what = "it uses MLA (Vidur's mlp.csv holds a fused QKV projection)"
    elif cfg.heads * cfg.head_dim != cfg.hidden:
        what = (f"heads x head_dim ({cfg.heads} x {cfg.head_dim}) is not hidden ({cfg.hidden}); Vidur derives "
                f"head_dim = n_embd / n_head")
    if what:
        raise SimulatorError(f"--model {cfg.id}: cannot be written as a Vidur profile: {what}")
    cut = [axis for axis, keep in rec.keep.items() if keep != 1.0]
    if cut:
        raise SimulatorError(f"--recipe {rec.text!r}: structured pruning ({', '.join(cut)}) changes the model's "
                             f"dimensions, which Vidur takes from its own model config; export sparsity formats "
                             f"and weight storage only")


def _tp_degrees(cfg, tp) -> list[int]:
    if tp is None:
        return [t for t in DEFAULT_TP if cfg.heads % t == 0 and cfg.kv_heads % t == 0 and cfg.ffn % t == 0]
    degrees = [tp] if isinstance(tp, (int, np.integer)) else list(tp)
    for t in degrees:
        if int(t) != t or t < 1:
            raise SimulatorError(f"--tp: must be whole numbers >= 1, got {t}")
        for what, value in (("attention heads", cfg.heads), ("KV heads", cfg.kv_heads), ("FFN width", cfg.ffn)):
            if value % t:
                raise SimulatorError(f"--tp {t}: {cfg.id}'s {what} ({value}) do not split over {t} GPUs, which "
                                     f"Vidur's layout needs")
    return sorted({int(t) for t in degrees})


def mlp_table(model, hw, tp=None, recipe="dense", dtype: str = "fp16", weights=None, dynamic=None,
              max_tokens: int = DEFAULT_MAX_TOKENS) -> pd.DataFrame:
    """Vidur's mlp.csv as a DataFrame (its column order): one row per (TP degree, token count),
    times in ms (see the module docstring for what is priced and what is refused)."""
    from simulator.hardware.spec import load_hw
    from simulator.model.llm import _plan, parse_recipe
    from simulator.formats.models import load_model

    cfg = load_model(model) if isinstance(model, str) else model
    hw = load_hw(hw)
    rec = parse_recipe(recipe) if isinstance(recipe, str) else recipe
    _check_exportable(cfg, rec)
    tokens = vidur_token_grid(max_tokens)
    frames = []
    for t in _tp_degrees(cfg, tp):
        ops, _ = _plan(cfg, hw, np.full(tokens.shape, "prefill", dtype=object), tokens, np.ones_like(tokens), t,
                       dtype, weights, rec, None, None, np.zeros_like(tokens), dynamic)
        times = _per_layer_kernel_ms(ops, tokens.shape)
        row = {f"time_stats.{op}.{stat}": (np.zeros_like(tokens) if stat == "std" else times[op])
               for op in MLP_OPS for stat in STATS}
        row.update({"n_head": cfg.heads, "n_kv_head": cfg.kv_heads, "n_embd": cfg.hidden, "n_expanded_embd": cfg.ffn,
                    "vocab_size": cfg.vocab, "use_gated_mlp": cfg.mlp == "gated",
                    "num_tokens": tokens.astype(int), "num_tensor_parallel_workers": t})
        if cfg.norms_per_layer < 2:  # one norm per block (parallel attention): Vidur's second norm is absent
            for stat in STATS:
                row[f"time_stats.post_attention_layernorm.{stat}"] = np.zeros_like(tokens)
        frames.append(pd.DataFrame(row))
    table = pd.concat(frames, ignore_index=True)
    # largest token count first, as Vidur's profiler writes them
    return table.sort_values(["num_tensor_parallel_workers", "num_tokens"], ascending=[True, False],
                             ignore_index=True)


def _per_layer_kernel_ms(ops, shape) -> dict:
    """Each Vidur op's kernel time in ms per point: the count-weighted mean over the sparsim rows
    that stand for it (one per layer group), per launch."""
    total = {op: np.zeros(shape) for op in MLP_OPS}
    launches = {op: np.zeros(shape) for op in MLP_OPS}
    for i, op in enumerate(ops.op):
        name = _SPARSIM_OPS.get(op.split("[", 1)[0])
        if name is None:
            continue
        count = ops.count[i].reshape(shape)
        total[name] = total[name] + ops.kernel_time_s[i].reshape(shape) * count
        launches[name] = launches[name] + count
    return {op: np.where(launches[op] > 0, total[op] / np.maximum(launches[op], 1e-300), 0.0) * 1e3
            for op in MLP_OPS}


def write_mlp_csv(out_dir, model, hw, tp=None, recipe="dense", dtype: str = "fp16", weights=None,
                  kv_method=None, dynamic=None, max_tokens: int = DEFAULT_MAX_TOKENS) -> Path:
    """Write ``<out_dir>/profiling/compute/<hw id>/<model id>/mlp.csv`` (Vidur's layout under its
    data/ folder) and a ``sparsim-export.json`` manifest beside it saying what was priced.
    Returns the CSV's path."""
    from simulator.hardware.spec import load_hw
    from simulator.methods.kvcache import parse_kv_method
    from simulator.formats.models import load_model

    cfg = load_model(model) if isinstance(model, str) else model
    hw = load_hw(hw)
    pipeline = parse_kv_method(kv_method)  # checked, recorded; it changes only the attention
    table = mlp_table(cfg, hw, tp, recipe, dtype, weights, dynamic, max_tokens)
    folder = Path(out_dir) / "profiling" / "compute" / hw.id / cfg.id
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SimulatorError(f"--out {out_dir}: cannot create {folder} ({exc.strerror})") from None
    path = folder / "mlp.csv"
    # repr-exact floats, so the importer reads back the very numbers written
    table.to_csv(path, index=False, float_format=None)
    manifest = {
        "written_by": "sparsim export vidur", "file": "mlp.csv", "layout": "Vidur profiling/compute mlp.csv",
        "model": cfg.id, "hw": hw.id, "tp": sorted(int(t) for t in table["num_tensor_parallel_workers"].unique()),
        "recipe": str(recipe if isinstance(recipe, str) else recipe.text), "dtype": dtype, "weights": weights,
        "kv_method": pipeline.text, "kv_method_note": "changes only the attention (Vidur's attention.csv), "
                                                      "not written by this export",
        "dynamic": dynamic, "times": "sparsim kernel times (no launch overhead), ms; min = max = mean = median, "
                                     "std = 0; attn_rope and add 0 (fused in the kernels sparsim prices)",
        "max_tokens": int(max_tokens),
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return path



# ---- attention.csv and all_reduce.csv ---------------------------------------------------------------

ATTENTION_OPS = ("attn_input_reshape", "attn_decode", "attn_output_reshape", "attn_prefill")
ATTENTION_SHAPE_COLUMNS = ("n_embd", "n_q_head", "n_kv_head", "block_size", "num_tensor_parallel_workers",
                           "max_model_len", "batch_size", "prefill_chunk_size", "kv_cache_size", "is_prefill",
                           "attention_backend", "profile_method")
ALL_REDUCE_COLUMNS = ("time_stats.all_reduce.min", "time_stats.all_reduce.max", "time_stats.all_reduce.mean",
                      "time_stats.all_reduce.median", "time_stats.all_reduce.std", "rank", "num_workers", "size",
                      "collective", "devices_per_node", "max_devices_per_node")
VIDUR_BLOCK_SIZE = 16  # Vidur's default paged-KV block size (its attention profiles' block_size)


def vidur_attention_grid(max_seq_len: int = 4096, max_batch_size: int = 128,
                         max_chunk_size: int = 4096) -> pd.DataFrame:
    """The (prefill_chunk_size, kv_cache_size, batch_size, is_prefill) points Vidur profiles
    (vidur/profiling/utils/__init__.py: get_attention_input_combinations and the grids it uses,
    Vidur 0.0.26): chunked prefills of one sequence at kv_cache_size = 0, chunk, 2 chunk, ...; full
    prefills; decodes of 1..max_batch_size sequences over the sequence-length grid; invalid points
    (chunk + cache > max_seq_len, an empty decode cache) dropped, duplicates dropped."""
    for name, value in (("max_seq_len", max_seq_len), ("max_batch_size", max_batch_size),
                        ("max_chunk_size", max_chunk_size)):
        if int(value) != value or value < 1:
            raise SimulatorError(f"--{name.replace('_', '-')}: must be a whole number >= 1, got {value}")
    chunks = [c for c in (list(range(32, 129, 32)) + list(range(256, 1025, 128)) + list(range(1024, 8 * 1024 + 1, 512)))
              if c <= max_seq_len and c <= max_chunk_size]
    seq = [s for s in (list(range(0, 1025, 32)) + list(range(1024, 4 * 1024 + 1, 64))
                       + list(range(4 * 1024, 64 * 1024 + 1, 256)) + list(range(64 * 1024, 512 * 1024 + 1, 1024)))
           if s < max_seq_len]
    batches = [b for b in list(range(1, 129)) + list(range(128, 1025, 8)) if b <= max_batch_size]
    rows = [(c, i * c, 1, True) for c in chunks for i in range(max_seq_len // c)]
    if max_seq_len <= max_chunk_size:
        rows += [(s, 0, 1, True) for s in seq]
    rows += [(0, kv, b, False) for kv in seq for b in batches]
    grid = pd.DataFrame(rows, columns=["prefill_chunk_size", "kv_cache_size", "batch_size", "is_prefill"])
    valid = np.where(grid["is_prefill"], (grid["prefill_chunk_size"] > 0)
                     & (grid["prefill_chunk_size"] + grid["kv_cache_size"] <= max_seq_len),
                     (grid["kv_cache_size"] > 0) & (grid["kv_cache_size"] <= max_seq_len))
    return grid[valid].drop_duplicates(ignore_index=True)


def attention_table(model, hw, tp=None, dtype: str = "fp16", kv_dtype=None, kv_method=None,
                    max_seq_len: int = 4096, max_batch_size: int = 128) -> pd.DataFrame:
    """Vidur's attention.csv as a DataFrame: per TP degree and grid point (vidur_attention_grid),
    the attention kernel time of one layer on one GPU in ms.

    Decode rows are sparsim decode steps of ``batch_size`` sequences with ``kv_cache_size`` tokens
    cached (context kv_cache_size + 1, the new token included), priced through the whole-model path
    so a KV method (``kv_method``) changes them: its attention kernels and its own kernels (score
    passes, page scans), count-weighted over layer groups, per layer. Prefill rows (one sequence,
    ``prefill_chunk_size`` new tokens over ``kv_cache_size`` cached) are the kernel Vidur profiled,
    FlashAttention's ``flash_attn_with_kvcache`` as ``simulator.estimate_attention`` prices it (on
    GPUs and dtypes FlashAttention runs; else sparsim's split-KV attention kernel over chunk x cached
    + causal pairs): the whole-model path has no chunked prefill, and KV methods act once the prompt
    is in. Kernel times (what a profiler measures), no launch overhead; reshapes 0 (not priced by
    sparsim)."""
    from simulator.core.dtypes import BYTES_PER_ELEMENT
    from simulator.hardware.spec import load_hw
    from simulator.methods.kvcache import _causal, attention_columns
    from simulator.kernels.attention import attention_parameters, flash_attention_columns
    from simulator.model.llm import _flash_attention_applies, _plan, parse_recipe
    from simulator.formats.models import load_model

    cfg = load_model(model) if isinstance(model, str) else model
    hw = load_hw(hw)
    _check_exportable(cfg, parse_recipe("dense"))
    grid = vidur_attention_grid(max_seq_len, max_batch_size)
    act = BYTES_PER_ELEMENT[dtype]
    kv_el = BYTES_PER_ELEMENT[kv_dtype or dtype]
    decode = grid[~grid["is_prefill"]]
    prefill = grid[grid["is_prefill"]]
    frames = []
    for t in _tp_degrees(cfg, tp):
        # decode: the model's own attention ops (and a KV method's), per layer
        b = decode["batch_size"].to_numpy(float)
        kv = decode["kv_cache_size"].to_numpy(float)
        ops, info = _plan(cfg, hw, np.full(b.shape, "decode", dtype=object), b, kv + 1.0, t, dtype, None, "dense",
                          kv_dtype, kv_method, np.zeros_like(b), None)
        per_layer = np.zeros(b.shape)
        for i, kind in enumerate(ops.kind):
            if kind in ("attention", "kv-method"):
                per_layer = per_layer + ops.kernel_time_s[i].reshape(b.shape) * ops.count[i].reshape(b.shape)
        decode_ms = per_layer / info["layers"] * 1e3
        # prefill: one sequence, a chunk over a cached prefix, dense FlashAttention
        chunk = prefill["prefill_chunk_size"].to_numpy(float)
        cached = prefill["kv_cache_size"].to_numpy(float)
        heads, kv_heads = cfg.heads / t, max(1.0, cfg.kv_heads / t)
        if _flash_attention_applies(hw, dtype, kv_dtype or dtype):
            # the kernel Vidur profiles (flash_attn_with_kvcache, new K/V appended in the kernel), as
            # simulator.estimate_attention prices it
            one = np.ones_like(chunk)
            c = flash_attention_columns(hw, attention_parameters(hw), one, chunk, cached, one * heads,
                                        one * kv_heads, one * cfg.head_dim, dtype, np.ones(chunk.shape, dtype=bool))
            prefill_ms = c["kernel_time_s"] * 1e3
        else:
            c = attention_columns(hw, batch=np.ones_like(chunk), heads=heads, kv_heads=kv_heads, head_dim=cfg.head_dim,
                                  new_tokens=chunk, pairs=chunk * cached + _causal(chunk), read_tokens=cached + chunk,
                                  read_bytes=(cached + chunk) * 2.0 * cfg.head_dim * kv_el, dtype=dtype, act_bytes=act)
            prefill_ms = np.maximum(c["compute_time_s"], c["memory_time_s"]) * 1e3
        for part, op, ms in ((decode, "attn_decode", decode_ms), (prefill, "attn_prefill", prefill_ms)):
            frame = pd.DataFrame({f"time_stats.{o}.{stat}": (np.zeros(len(part)) if o not in ("attn_decode", "attn_prefill")
                                                             else (ms if o == op and stat != "std" else
                                                                   (np.zeros(len(part)) if o == op else np.nan)))
                                  for o in ATTENTION_OPS for stat in STATS})
            frame = frame.assign(n_embd=cfg.hidden, n_q_head=cfg.heads, n_kv_head=cfg.kv_heads,
                                 block_size=VIDUR_BLOCK_SIZE, num_tensor_parallel_workers=t, max_model_len=max_seq_len,
                                 batch_size=part["batch_size"].to_numpy(), prefill_chunk_size=part["prefill_chunk_size"].to_numpy(),
                                 kv_cache_size=part["kv_cache_size"].to_numpy(), is_prefill=part["is_prefill"].to_numpy(),
                                 attention_backend="AttentionBackend.FLASH_ATTENTION", profile_method="sparsim")
            frames.append(frame)
    return pd.concat(frames, ignore_index=True)


def all_reduce_table(hw, model, tp=None, max_bytes: int = 64 * 2**20) -> pd.DataFrame:
    """Vidur's all_reduce.csv for the TP degrees > 1: sparsim's ring all-reduce time
    (HardwareSpec.allreduce_time_s, the spec's interconnect) of ``size`` bytes per GPU over
    ``num_workers`` GPUs of one node, in ms, at Vidur's collective sizes
    (vidur/profiling/utils/__init__.py: get_collectives_sizes_to_profile) up to ``max_bytes``."""
    from simulator.hardware.spec import load_hw
    from simulator.formats.models import load_model

    cfg = load_model(model) if isinstance(model, str) else model
    hw = load_hw(hw)
    sizes = np.array([s for s in (list(range(1024, 512 * 1024 + 1, 4 * 1024))
                                  + list(range(512 * 1024, 8 * 2**20 + 1, 16 * 1024))
                                  + list(range(8 * 2**20, 64 * 2**20 + 1, 64 * 1024))
                                  + list(range(64 * 2**20 + 1, 512 * 2**20 + 1, 265 * 1024))) if s <= max_bytes])
    sizes = np.unique(sizes).astype(float)
    frames = []
    for t in [t for t in _tp_degrees(cfg, tp) if t > 1]:
        ms = np.asarray(hw.allreduce_time_s(sizes, t), float) * 1e3
        frames.append(pd.DataFrame({
            "time_stats.all_reduce.min": ms, "time_stats.all_reduce.max": ms, "time_stats.all_reduce.mean": ms,
            "time_stats.all_reduce.median": ms, "time_stats.all_reduce.std": np.zeros_like(ms), "rank": 0,
            "num_workers": t, "size": sizes.astype(int), "collective": "all_reduce", "devices_per_node": t,
            "max_devices_per_node": max(8, t)}))
    if not frames:
        return pd.DataFrame(columns=list(ALL_REDUCE_COLUMNS))
    return pd.concat(frames, ignore_index=True)


def write_profiles(out_dir, model, hw, tp=None, recipe="dense", dtype: str = "fp16", weights=None,
                   kv_method=None, dynamic=None, max_tokens: int = DEFAULT_MAX_TOKENS,
                   max_seq_len: int = 4096, max_batch_size: int = 128) -> dict:
    """Vidur's three profiles for one model on one device: ``profiling/compute/<hw>/<model>/mlp.csv``
    and ``attention.csv`` (the recipe prices the first, the KV method the second), and
    ``profiling/network/<hw>/all_reduce.csv`` (TP > 1), with the manifest. Returns {file name: path}."""
    from simulator.hardware.spec import load_hw
    from simulator.formats.models import load_model

    cfg = load_model(model) if isinstance(model, str) else model
    hw = load_hw(hw)
    mlp = write_mlp_csv(out_dir, cfg, hw, tp, recipe, dtype, weights, kv_method, dynamic, max_tokens)
    paths = {"mlp.csv": mlp}
    attention = attention_table(cfg, hw, tp, dtype, None, kv_method, max_seq_len, max_batch_size)
    paths["attention.csv"] = mlp.parent / "attention.csv"
    attention.to_csv(paths["attention.csv"], index=False)
    reduce = all_reduce_table(hw, cfg, tp)
    if len(reduce):
        network = Path(out_dir) / "profiling" / "network" / hw.id
        network.mkdir(parents=True, exist_ok=True)
        paths["all_reduce.csv"] = network / "all_reduce.csv"
        reduce.to_csv(paths["all_reduce.csv"], index=True)  # Vidur's files keep pandas' index column
    manifest_path = mlp.parent / MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest.update({"files": {name: str(path.relative_to(Path(out_dir))) for name, path in paths.items()},
                     "kv_method_note": "prices attention.csv's decode rows (prefill rows are dense attention)",
                     "attention": "sparsim attention kernel times per layer per GPU, ms (no launch overhead); "
                                  "reshapes 0", "all_reduce": "sparsim ring all-reduce over the spec's interconnect, ms",
                     "max_seq_len": int(max_seq_len), "max_batch_size": int(max_batch_size)})
    manifest["file"] = "mlp.csv, attention.csv" + (", all_reduce.csv" if "all_reduce.csv" in paths else "")
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    return paths

# ---- running Vidur on an export (optional: pip install -e ".[serving]") ----------------------------

VIDUR_TESTED_VERSION = "0.0.26"


def run_vidur(mlp_csv, attention_csv, all_reduce_csv, out_dir, *, vidur_model: str, device: str,
              network_device: str, tp: int, replicas: int = 1, qps: float = 1.0, requests: int = 20,
              prefill_tokens: int = 512, decode_tokens: int = 64, seed: int = 42,
              new_device: "dict | None" = None, new_node: "dict | None" = None) -> "pd.DataFrame":
    """Run Vidur's cluster simulator (``pip install vidur``, tested with 0.0.26) offline on local
    profile files, a Poisson stream of ``requests`` fixed-length requests at ``qps`` over
    ``replicas`` replicas of ``tp`` GPUs (one pipeline stage, Sarathi scheduler), and return its
    per-request metrics (Vidur's request_metrics.csv; times in s).

    The released Vidur fetches its profiles with huggingface_hub from dataset repositories and
    first tries downloading trained predictions; both are replaced here by the local files (two of
    Vidur's private methods are patched, which is why the version is pinned). ``vidur_model``,
    ``device`` and ``network_device`` must be in Vidur's own registries (e.g.
    'meta-llama/Llama-3-70B', 'a100', 'a100_dgx'); the mlp.csv's shape columns must equal that model
    config's. Random-forest predictors with a small grid (16 trees, depth 8, 2-fold CV) keep the run
    to seconds on a CPU. ``new_device`` ({"name", "fp16_tflops", "total_memory_gb"}) and ``new_node``
    ({"name", "num_devices_per_node"}) add a device or node type Vidur does not list (its registries
    are subclasses of its config classes), e.g. from a sparsim spec with ``vidur_device_for``.
    Vidur keeps global counters (replica ids), so each run is a fresh Python
    process."""
    import importlib.util
    import subprocess
    import sys

    if importlib.util.find_spec("vidur") is None:
        raise SimulatorError("run_vidur: Vidur is not installed; pip install -e \".[serving]\"")
    files = [str(Path(p).resolve()) for p in (mlp_csv, attention_csv, all_reduce_csv)]
    for path in files:
        if not Path(path).is_file():
            raise SimulatorError(f"run_vidur: {path}: no such file")
    out = Path(out_dir).resolve()
    request = dict(files=files, out_dir=str(out), vidur_model=vidur_model, device=device,
                   network_device=network_device, tp=int(tp), replicas=int(replicas), qps=float(qps),
                   requests=int(requests), prefill_tokens=int(prefill_tokens), decode_tokens=int(decode_tokens),
                   seed=int(seed), new_device=new_device, new_node=new_node)
    package_root = str(Path(__file__).resolve().parents[2])  # the folder holding simulator/
    env = {**__import__("os").environ, "WANDB_MODE": "disabled"}
    env["PYTHONPATH"] = package_root + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    done = subprocess.run([sys.executable, "-m", "simulator.truth.export_vidur", json.dumps(request)], env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise SimulatorError(f"run_vidur: Vidur failed: {last}")
    metrics = sorted(out.glob("*/request_metrics.csv"))
    if not metrics:
        raise SimulatorError(f"run_vidur: Vidur wrote no request_metrics.csv under {out}")
    return pd.read_csv(metrics[-1])


def vidur_device_for(hw) -> dict:
    """A Vidur device entry for a sparsim spec: dense fp16 tensor TFLOP/s and memory in GiB (Vidur's
    80 for an 80 GB A100/H100), named by the spec id's first word (h200, b200)."""
    from simulator.hardware.spec import load_hw

    hw = load_hw(hw)
    peak = hw.matrix_peak_flop_per_s("fp16") or hw.vector_peak_flop_per_s("fp16")
    return {"name": hw.id.split("-")[0], "fp16_tflops": int(round(peak / 1e12)),
            "total_memory_gb": int(round(hw.memory_capacity_bytes / 2**30))}


def _register(new_device, new_node) -> None:
    """Add a device and a node type to Vidur's registries (subclasses found by get_type())."""
    from dataclasses import field, make_dataclass

    from vidur.config.device_sku_config import BaseDeviceSKUConfig
    from vidur.config.node_sku_config import BaseNodeSKUConfig

    if new_device:
        d = dict(new_device)
        make_dataclass(f"Sparsim{d['name'].title()}DeviceSKUConfig",
                       [("fp16_tflops", int, field(default=int(d["fp16_tflops"]))),
                        ("total_memory_gb", int, field(default=int(d["total_memory_gb"])))],
                       bases=(BaseDeviceSKUConfig,), namespace={"get_type": staticmethod(lambda: d["name"])})
    if new_node:
        n = dict(new_node)
        make_dataclass(f"Sparsim{n['name'].title().replace('_', '')}NodeSKUConfig",
                       [("num_devices_per_node", int, field(default=int(n["num_devices_per_node"]))),
                        ("device_sku_type", str, field(default=str(n.get("device", ""))))],
                       bases=(BaseNodeSKUConfig,), namespace={"get_type": staticmethod(lambda: n["name"])})


def _run_vidur_here(files, out_dir, vidur_model, device, network_device, tp, replicas, qps, requests,
                    prefill_tokens, decode_tokens, seed, new_device=None, new_node=None) -> None:
    """run_vidur's body, in the process that runs it."""
    try:
        import vidur
        from vidur.config import (ClusterConfig, FixedRequestLengthGeneratorConfig, MetricsConfig,
                                  PoissonRequestIntervalGeneratorConfig,
                                  RandomForrestExecutionTimePredictorConfig, ReplicaConfig,
                                  SarathiSchedulerConfig, SimulationConfig, SyntheticRequestGeneratorConfig)
        from vidur.execution_time_predictor import sklearn_execution_time_predictor as predictor
        from vidur.simulator import Simulator
        from vidur.utils.random import set_seeds
    except ImportError as exc:
        raise SimulatorError(f"Vidur is not installed ({exc}); pip install -e \".[serving]\"") from None
    version = getattr(vidur, "__version__", None)
    if version not in (None, VIDUR_TESTED_VERSION):
        raise SimulatorError(f"vidur {version}: run_vidur patches Vidur {VIDUR_TESTED_VERSION}'s profile "
                             f"loading; install that version")
    files = tuple(files)
    _register(new_device, new_node)

    def local_files(self):
        return (*files, "/nonexistent/send_recv.csv")  # send_recv is read only with pipeline stages > 1

    def no_downloaded_predictions(self):
        raise RuntimeError("offline: Vidur's predictors are trained on the local profiles")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cls = predictor.SklearnExecutionTimePredictor
    saved = cls._get_input_files, cls._load_predictions_from_hf
    cls._get_input_files, cls._load_predictions_from_hf = local_files, no_downloaded_predictions
    try:
        config = SimulationConfig(
            seed=seed,
            cluster_config=ClusterConfig(
                num_replicas=replicas,
                replica_config=ReplicaConfig(model_name=vidur_model, num_pipeline_stages=1, tensor_parallel_size=tp,
                                             device=device, network_device=network_device),
                replica_scheduler_config=SarathiSchedulerConfig()),
            request_generator_config=SyntheticRequestGeneratorConfig(
                seed=seed, num_requests=requests,
                length_generator_config=FixedRequestLengthGeneratorConfig(prefill_tokens=prefill_tokens,
                                                                          decode_tokens=decode_tokens),
                interval_generator_config=PoissonRequestIntervalGeneratorConfig(qps=qps)),
            execution_time_predictor_config=RandomForrestExecutionTimePredictorConfig(
                num_estimators=[16], max_depth=[8], min_samples_split=[2], k_fold_cv_splits=2,
                num_training_job_threads=1, cache_dir=str(out / "cache"), no_cache=True,
                prediction_max_tokens_per_request=max(4096, prefill_tokens + decode_tokens)),
            metrics_config=MetricsConfig(output_dir=str(out), write_metrics=True, store_plots=False,
                                         enable_chrome_trace=False, write_json_trace=False),
        )
        set_seeds(config.seed)
        Simulator(config).run()
    finally:
        cls._get_input_files, cls._load_predictions_from_hf = saved


if __name__ == "__main__":  # run_vidur's child process: python -m simulator.truth.export_vidur '<request json>'
    import sys

    _run_vidur_here(**json.loads(sys.argv[1]))

"""Whole-model estimates: a transformer's op table for one phase, its time, tokens/s and memory.

One formula over a query length covers both phases: prefill is q_len = context (the prompt),
decode is q_len = 1 at a given context. Per layer the ops are

    norm -> QKV GEMM -> attention -> O GEMM -> [all-reduce] -> norm -> MLP GEMMs (+ act) -> [all-reduce]

plus the embedding gather, the final norm and the LM head (logits for the last token of each
sequence). GEMMs are priced by the GEMM model (gemm.gemm_priced) with the recipe's sparsity
format and the weight storage dtype; attention by the FlashAttention kernel model
(attention.flash_attention_columns) where it is a plain FlashAttention call, else by the
split-KV model of attention.attention_columns; element-wise ops and collectives through ops.py.
Identical layers are one row with ``count`` = number of layers (OWL's non-uniform sparsity makes
a few groups). Tensor parallelism (Megatron-style) splits heads and FFN columns over ``tp`` GPUs,
with two all-reduces per layer.

Everything is vectorized over *points* (batch, context, phase): ``estimate_model`` is one
point with its op table; ``sweep`` prices thousands of points per (model, hw, recipe) group in
one pass; ``estimate_request`` integrates decode steps over a growing context. The op graph of
one configuration (``_graph``, a generator) yields the batched kernels it waits for; ``_plans``
prices those of many configurations together, one call per kernel family and device, and each
graph then fills its op record (core.roofline.OpTable: (ops, points) arrays).

KV-cache methods (``kv_method``, simulator/methods/kvcache.py) change what the attention holds, reads
and computes per layer group and add their own kernels (score passes, page scans,
quantization); LazyLLM also shrinks the tokens the later layers' GEMMs process.

Over 600 lines: the op graph of one phase, its MoE and MLA pieces, the per-point sums, the summary and the sweep share the op rows' layout and private helpers; splitting them would make those internals an interface.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import threading
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from simulator.core.dtypes import BYTES_PER_ELEMENT, check_dtype
from simulator.methods.dynamic import DynamicMethod, parse_dynamic
from simulator.core.checks import MAX_DIMENSION, along, as_whole, broadcast
from simulator.core.errors import SimulatorError
from simulator.kernels.families import KERNEL_FAMILIES
from simulator.kernels.gemm import gemm_columns, gemm_priced
from simulator.hardware.spec import load_hw
from simulator.methods.kvcache import KV_METHODS, KVEnv, attention_columns, extra_op_columns, parse_kv_method
from simulator.kernels.ops import allreduce_columns, alltoall_columns, layer_text, memory_op_columns
from simulator.core.roofline import OP_NUMERIC, Bound, OpTable, bound_codes, bound_labels, roofline
from simulator.formats.runtimes import DEFAULT_RUNTIME, load_runtime, reprice_launches, runtime_name
from simulator.formats.sparsity import UNSTRUCTURED_STORAGES, Block, Unstructured, parse_fraction, parse_sparsity

PHASES = ("prefill", "decode")
STRUCTURED_AXES = {"width": "FFN channels (LLM-Pruner)", "heads": "attention heads, whole KV groups",
                   "hidden": "embedding/hidden dimension (SliceGPT)", "depth": "whole layers (ShortGPT, LaCo)"}
RECIPE_ALIASES = {  # method names of the course -> the format they produce
    "sparsegpt": "unstructured:0.5", "wanda": "unstructured:0.5",
    "sparsegpt-2:4": "2:4", "wanda-2:4": "2:4",
}
OWL_DEFAULT_LAMBDA = 0.08  # OWL (Yin et al., ICML'24) limits layer sparsities to S +- lambda; 0.08 in its LLaMA runs
OWL_GROUPS = 8
RECIPE_HELP = ("dense | 2:4 | N:M | unstructured:S[:csr|bitmap|tiled-csl|masked] | block:B:S | sparsegpt[:kernel] | "
               "wanda[:kernel] | owl:S[:lambda][:kernel], optionally @attn/@mlp/@qkv/@o/@up/@down | width:F | "
               "heads:F | hidden:F | depth:F, joined with '+' (e.g. '2:4@mlp+depth:0.25')")
TIME_CATEGORIES = ("weights", "kv", "compute", "memory-ops", "overhead", "communication", "offload", "runtime")
# Time by what an op does, whatever bounds it (launches included): the GEMMs, the attention with
# a KV method's own kernels, and the rest (norms, activations, embedding, all-reduces).
OP_KINDS = ("gemm", "attention", "other")
_OP_KIND = {"gemm": "gemm", "attention": "attention", "kv-method": "attention"}
_BOUNDS = tuple(bound_labels())  # every Bound, in code order


@dataclass(frozen=True)
class Recipe:
    """A pruning recipe: the linear layers' sparsity (one format, or OWL's per-layer groups)
    plus structured cuts along four axes (fractions kept)."""

    sparsity: str = "dense"
    keep: dict = field(default_factory=lambda: {axis: 1.0 for axis in STRUCTURED_AXES})
    owl: "tuple | None" = None  # (mean sparsity, lambda, storage)
    text: str = "dense"
    roles: frozenset = frozenset(("qkv", "o", "mlp_in", "mlp_out"))  # linear layers the format applies to

    def layer_groups(self, layers: int) -> list[tuple[float, str]]:
        """(number of layers, sparsity string) groups covering the kept layers."""
        if self.owl is None:
            return [(float(layers), self.sparsity)]
        return list(_owl_groups(self.owl, layers))


@functools.lru_cache(maxsize=256)
def _owl_groups(owl: tuple, layers: int) -> tuple:
    """An OWL recipe's (number of layers, sparsity string) groups (found once per recipe and depth)."""
    mean, lam, storage = owl
    # OWL gives layers with more activation outliers less sparsity; outlier ratios fall with
    # depth (OWL, Fig. 2), so the assumed profile is a linear ramp S - lambda -> S + lambda.
    per_layer = np.clip(mean + lam * np.linspace(-1.0, 1.0, layers), 0.0, 0.99)
    bins = np.minimum((np.arange(layers) * OWL_GROUPS) // layers, OWL_GROUPS - 1)
    groups = []
    for b in np.unique(bins):
        members = per_layer[bins == b]
        groups.append((float(len(members)), f"unstructured:{members.mean():.6f}:{storage}"))
    return tuple(groups)


# '@scope' after a sparsity format restricts it to some linear layers (the others stay dense).
RECIPE_SCOPES = {"all": ("qkv", "o", "mlp_in", "mlp_out"), "attn": ("qkv", "o"), "mlp": ("mlp_in", "mlp_out"),
                 "qkv": ("qkv",), "o": ("o",), "up": ("mlp_in",), "down": ("mlp_out",)}


def parse_recipe(text: str = "dense") -> Recipe:
    sparsity, keep, owl, roles = "dense", {axis: 1.0 for axis in STRUCTURED_AXES}, None, RECIPE_SCOPES["all"]
    for part in [p.strip().lower() for p in str(text).split("+") if p.strip()] or ["dense"]:
        part, at, scope = part.partition("@")
        if at:
            if scope not in RECIPE_SCOPES:
                raise SimulatorError(f"--recipe {text!r}: scope @{scope} unknown; allowed: "
                                     f"{', '.join('@' + k for k in RECIPE_SCOPES)}")
            if part.partition(":")[0] in STRUCTURED_AXES:
                raise SimulatorError(f"--recipe {text!r}: @scopes apply to sparsity formats, not to {part}")
            roles = RECIPE_SCOPES[scope]
        axis, _, value = part.partition(":")
        if axis in STRUCTURED_AXES:
            keep[axis] = 1.0 - parse_fraction(value, f"{axis} fraction", f"--recipe {text!r}")
            continue
        if sparsity != "dense" or owl is not None:
            raise SimulatorError(f"--recipe {text!r}: one sparsity format at a time ({sparsity!r} and {part!r})")
        if axis == "owl":
            owl = _parse_owl(text, value)
            continue
        if axis in ("sparsegpt", "wanda"):
            part = RECIPE_ALIASES[axis] + (f":{value}" if value else "")
        part = RECIPE_ALIASES.get(part, part)
        try:
            fmt = parse_sparsity(part)
        except SimulatorError as err:
            raise SimulatorError(f"--recipe {text!r}: {err} (recipes: {RECIPE_HELP})") from None
        if fmt.family == "structured":
            raise SimulatorError(f"--recipe {text!r}: use width:/heads:/hidden:/depth: for structured pruning")
        sparsity = part
    return Recipe(sparsity=sparsity, keep=keep, owl=owl, text=str(text), roles=frozenset(roles))


def _parse_owl(text, value):
    fields = [f for f in value.split(":") if f]
    storage = "csr"
    if fields and fields[-1] in UNSTRUCTURED_STORAGES:
        storage = fields.pop()
    try:
        if not 1 <= len(fields) <= 2:  # S, lambda; anything else (a misspelt storage) is wrong
            raise ValueError
        mean = float(fields[0])
        lam = float(fields[1]) if len(fields) > 1 else OWL_DEFAULT_LAMBDA
    except (ValueError, IndexError):
        raise SimulatorError(f"--recipe {text!r}: write owl:S[:lambda][:csr|bitmap|tiled-csl|masked], e.g. owl:0.7") from None
    if not (0.0 < mean < 1.0 and 0.0 <= lam < min(mean, 1.0 - mean) + 1e-12):
        raise SimulatorError(f"--recipe {text!r}: OWL needs 0 < S < 1 and 0 <= lambda <= min(S, 1 - S), "
                             f"got S={mean}, lambda={lam}")
    return (mean, lam, storage)


MAX_GROUP_SIZE = 2**20  # quantization groups are 32-1024 elements in practice (GPTQ, AWQ: 128)


def parse_weights(text: "str | None", dtype: str):
    """'int4', 'int4:g128', 'int8', 'fp8', 'fp4' -> (weight dtype, group size)."""
    if text is None:
        return dtype, None
    name, _, group = str(text).lower().partition(":")
    check_dtype(name, "--weights")
    if group:
        if not re.fullmatch(r"g\d{1,8}", group) or not 1 <= int(group[1:]) <= MAX_GROUP_SIZE:
            raise SimulatorError(f"--weights {text!r}: group size is written g<N> with 1 <= N <= "
                                 f"{MAX_GROUP_SIZE:,}, e.g. int4:g128")
        return name, int(group[1:])
    return name, None


class ModelEstimate:
    """The op table and the summary of one (model, hardware, phase, batch, context) point.

    ``ops`` is the per-op DataFrame (OP_COLUMNS), or None when estimated with with_ops=False. It
    is built the first time it is read (a DataFrame costs about half an estimate, and sweeps
    that read only the summary never need it), then kept; threads reading it at once get the
    same table."""

    __slots__ = ("summary", "_ops", "_op_rows", "_phase")
    _building = threading.Lock()

    def __init__(self, ops=None, summary=None, *, op_rows=None):
        self.summary = summary
        self._ops = ops
        self._op_rows = op_rows  # the cost model's ops, until the table is built
        self._phase = summary["phase"] if op_rows is not None else None  # as estimated

    @property
    def ops(self) -> "pd.DataFrame | None":
        if self._ops is None and self._op_rows is not None:
            with ModelEstimate._building:
                if self._ops is None:  # another thread may have built it meanwhile
                    self._ops = _op_table(self._op_rows, self._phase)
                    self._op_rows = None
        return self._ops

    def __repr__(self):
        s = self.summary
        return (f"ModelEstimate({s['model']} on {s['hw']} x{s['tp']}, {s['phase']}: {s['time_s'] * 1e3:.3g} ms, "
                f"{s['tokens_per_s']:.4g} tok/s, fits={s['fits']})")


def _kept(value: int, keep: float) -> int:
    return max(1, int(round(value * keep)))


def _divide(what: str, value: int, tp: int) -> float:
    if value % tp:
        raise SimulatorError(f"--tp {tp}: {what} ({value}) is not divisible by the tensor-parallel degree")
    return value / tp


def _check_points(phase, batch, context, generated=0):
    if _one_valid_point(phase, batch, context, generated):
        # One point given as plain Python numbers (estimate_model's usual call): the same
        # arrays the general path below builds, without its dozen small numpy operations.
        return (np.array([phase], dtype=object), np.array([float(batch)]), np.array([float(context)]),
                np.array([float(generated)]))
    phase = np.atleast_1d(np.asarray(phase, dtype=object))
    bad = [p for p in set(phase.tolist()) if p not in PHASES]
    if bad:
        raise SimulatorError(f"--phase: {bad[0]!r} unknown; allowed: {', '.join(PHASES)}")
    arrays = []
    for name, value, low in (("--batch", batch, 1), ("--context", context, 1), ("generated", generated, 0)):
        arrays.append(np.atleast_1d(as_whole(name, value, low)))
    phase, batch, context, generated = (a.ravel() for a in broadcast(phase=phase, batch=arrays[0],
                                                                     context=arrays[1], generated=arrays[2]))
    if np.any((phase == "prefill") & (generated > 0)):
        raise SimulatorError("generated: a prefill has generated no tokens yet (use phase decode)")
    if np.any(generated >= context):
        raise SimulatorError("generated: decode steps since the prefill must be fewer than the context")
    return phase, batch.astype(float), context.astype(float), generated.astype(float)


def _one_valid_point(phase, batch, context, generated) -> bool:
    """Whether the arguments are one point, as Python scalars, that _check_points accepts
    (anything else, errors included, takes its general path)."""
    if not isinstance(phase, str) or phase not in PHASES:
        return False
    for value, low in ((batch, 1), (context, 1), (generated, 0)):
        if type(value) not in (int, float) or not (low <= value < 2 ** 53 and value == math.floor(value)):
            return False
    return not (phase == "prefill" and generated > 0) and generated < context


def _sparse_extra(kernel) -> bool:
    """Whether an op's overhead holds its kernel family's sparse-path extra kernels."""
    family = KERNEL_FAMILIES.get(kernel) if isinstance(kernel, str) else None
    return bool(family and family.sparse_extra)


def _plan(cfg, hw, phase, batch, context, tp, dtype, weights, recipe, kv_dtype, kv_method=None, generated=0,
          dynamic=None, runtime=None, expert_parallel=False, dp_attention=False):
    """The op record of one configuration over its points (an OpTable) and what the sums need."""
    return _plans([(cfg, hw, phase, batch, context, tp, dtype, weights, recipe, kv_dtype, kv_method, generated,
                    dynamic, runtime, expert_parallel, dp_attention)])[0]


def _plans(calls: list) -> list:
    """``_plan`` for many configurations (``calls``: its arguments, each in order), with their
    batched kernels priced together: every configuration's element-wise ops on a device in one
    call, its FlashAttention calls on a device and dtype in one, and every GEMM of one device,
    dtype, weight storage and format in one, whatever configuration it belongs to. Each op gets
    the numbers a call of its own would (the kernel models price point by point and shape by
    shape; tests/test_golden.py and the sweep-equals-estimate tests hold them to it)."""
    graphs = [_graph(*call) for call in calls]
    pendings = [next(graph) for graph in graphs]
    results = []
    for graph, blocks in zip(graphs, _price_pending(pendings)):
        try:
            graph.send(blocks)
        except StopIteration as done:
            results.append(done.value)
        else:  # _graph yields once, by construction
            raise RuntimeError("an op graph asked to be priced twice")
    return results


@dataclass
class _Pending:
    """The batched kernels one op graph waits for: element-wise ops (op, bytes moved), GEMMs (op,
    sparsity, weight copies) and FlashAttention calls (op, _flash_inputs), with what prices them."""

    hw: object
    dtype: str
    weight_dtype: str
    group: "int | None"
    n_points: int
    memory: list
    gemms: list
    flash: list


def _price_pending(pendings: list) -> list:
    """The priced blocks of rows of each ``_Pending``: (ops, columns) per batched call, the columns
    holding those ops' points one op after the other (one call serves many graphs; each gets its
    slice). Resident weight bytes are set on each GEMM op."""
    out = [[] for _ in pendings]
    by_device = {}
    for i, p in enumerate(pendings):
        if p.memory:
            by_device.setdefault(id(p.hw), []).append(i)
    for members in by_device.values():
        parts = [_stacked([b for _, b in pendings[i].memory], pendings[i].n_points) for i in members]
        cols = memory_op_columns(pendings[members[0]].hw, np.concatenate(parts))
        for i, piece in zip(members, _slices(cols, [part.size for part in parts])):
            out[i].append(([o for o, _ in pendings[i].memory], piece))
    flash = {}  # (device, dtype) -> [(graph, op, inputs)]
    for i, p in enumerate(pendings):
        for o, inputs in p.flash:
            flash.setdefault((id(p.hw), p.dtype), []).append((i, o, inputs))
    for (_, dtype), members in flash.items():
        cols = _flash_priced(pendings[members[0][0]].hw, dtype,
                             tuple(np.concatenate([inputs[a] for _, _, inputs in members]) for a in range(len(_FLASH_INPUTS))))
        for (i, o, _), piece in zip(members, _slices(cols, [pendings[i].n_points for i, _, _ in members])):
            out[i].append(([o], piece))
    calls = {}  # (device, dtype, weight storage, group size, format) -> [(graph, op, copies, sparsity)]
    for i, p in enumerate(pendings):
        for o, sparsity, copies in p.gemms:
            key = (id(p.hw), p.dtype, p.weight_dtype, p.group, _price_key(sparsity))
            calls.setdefault(key, []).append((i, o, copies, sparsity))
    for (_, dtype, weight_dtype, group, fmt), members in calls.items():
        hw = pendings[members[0][0]].hw
        # members come graph by graph (in order); each op's values broadcast to its graph's points
        by_graph = {}
        for member in members:
            by_graph.setdefault(member[0], []).append(member)
        graphs, per_graph = list(by_graph), list(by_graph.values())
        ends = np.cumsum([pendings[i].n_points for i, _, _, _ in members]).tolist()
        m, n, k, groups, density = (np.empty(ends[-1]) for _ in range(5))
        start = 0
        for (_, o, _, sparsity), end in zip(members, ends):
            m[start:end], n[start:end], k[start:end] = o["m"], o["n"], o["k"]
            groups[start:end] = 1.0 if o.get("grouped") is None else o["grouped"]
            density[start:end] = _density(sparsity)
            start = end
        if _plain_gemms(m, n, k, groups, dtype, weight_dtype):
            cols = {**gemm_priced(hw, m, n, k, density, groups, dtype, fmt, weight_dtype, group), "m": m, "n": n, "k": k}
            priced = list(zip(per_graph, _slices(cols, [len(sub) * pendings[i].n_points
                                                        for i, sub in zip(graphs, per_graph)])))
        else:  # gemm_columns' checks name what is wrong (one call per graph and format, as given)
            priced = []
            for i, sub in zip(graphs, per_graph):
                for sparsity in dict.fromkeys(sp for _, _, _, sp in sub):
                    part = [member for member in sub if member[3] == sparsity]
                    shapes = [_stacked([o[d] for _, o, _, _ in part], pendings[i].n_points) for d in ("m", "n", "k")]
                    grouped = _stacked([1.0 if o.get("grouped") is None else o["grouped"] for _, o, _, _ in part],
                                       pendings[i].n_points)
                    priced.append((part, {**gemm_columns(hw, *shapes, dtype, _sparsity_format(sparsity), weight_dtype,
                                                         group, numeric_only=True, groups=grouped),
                                          **dict(zip(("m", "n", "k"), shapes))}))
        for sub, piece in priced:
            i = sub[0][0]
            stored = piece["stored_bytes_each"][::pendings[i].n_points]  # each op's first point (per expert if grouped)
            for j, (_, o, copies, _) in enumerate(sub):
                o["resident_total"] = float(stored[j] * copies)
            out[i].append(([o for _, o, _, _ in sub], piece))
    return out


def _slices(columns: dict, sizes: list) -> list:
    """``columns`` (equally long arrays, or scalars) cut into consecutive pieces of ``sizes``."""
    pieces, start = [], 0
    for size in sizes:
        pieces.append({key: value[start:start + size] if isinstance(value, np.ndarray) else value
                       for key, value in columns.items()})
        start += size
    return pieces


def _graph(cfg, hw, phase, batch, context, tp, dtype, weights, recipe, kv_dtype, kv_method=None, generated=0,
           dynamic=None, runtime=None, expert_parallel=False, dp_attention=False, points_checked=False):
    """_plan as a generator: builds the op graph, yields its batched kernels (a _Pending) to be
    priced, takes back their blocks of rows (``send``) and returns (OpTable, what the sums need).
    ``points_checked``: phase, batch, context and generated are _check_points' own output (sweep
    checks all its points at once)."""
    profile = load_runtime(runtime)
    check_dtype(dtype)
    if hw.matrix_peak_flop_per_s(dtype) is None and hw.vector_peak_flop_per_s(dtype) is None:
        raise SimulatorError(f"--dtype: {hw.id} cannot compute in {dtype}; it supports "
                             f"{', '.join(hw.compute_dtypes())} (for narrow weights with wider math use --weights)")
    dyn = parse_dynamic(dynamic)
    cfg = dyn.transform_model(cfg)
    kv_dtype = check_dtype(kv_dtype, "--kv-dtype") if kv_dtype else dtype
    weight_dtype, group = parse_weights(weights, dtype)
    if isinstance(recipe, Recipe):
        rec = recipe
    else:
        rec = _parse_recipe_cached(recipe) if isinstance(recipe, str) else parse_recipe(recipe)
    if type(tp) is not int or not 1 <= tp <= 65536:  # a plain int in range needs no more checking
        if np.ndim(tp) != 0:
            raise SimulatorError(f"--tp: one tensor-parallel degree per call, got {tp!r}")
        tp = int(as_whole("--tp", tp, 1, 65536))
    ranks = 1  # GPUs of a data-parallel attention group (dp_attention), else 1
    if expert_parallel or dp_attention:  # whole experts placed on the tp GPUs
        flag = "--dp-attention" if dp_attention else "--ep"
        if cfg.moe is None:
            raise SimulatorError(f"{flag}: {cfg.id} is not a mixture of experts; expert parallelism needs experts "
                                 "to place")
        if dp_attention and tp < 2:
            raise SimulatorError("--dp-attention: needs --tp 2 or more (the GPUs that share the batch and the experts)")
        if cfg.moe.experts % tp:
            raise SimulatorError(f"{flag} with --tp {tp}: {cfg.id}'s {cfg.moe.experts} routed experts do not place "
                                 f"whole and evenly on {tp} GPUs")
    if dp_attention:
        # each GPU runs attention and the dense parts whole (no tensor parallelism) for its share of
        # the sequences, and holds experts/ranks whole experts; tokens meet their experts by all-to-all
        ranks, tp, expert_parallel = tp, 1, True
    pipeline = parse_kv_method(kv_method)
    if not points_checked:
        phase, batch, context, generated = _check_points(phase, batch, context, generated)
    batch_total = batch
    if ranks > 1:  # the busiest GPU's sequences: the step waits for it, and its memory must fit
        batch = np.ceil(batch / ranks)
    if cfg.kind == "encoder" and np.any(phase == "decode"):
        raise SimulatorError(f"--phase decode: {cfg.id} is an encoder; it has no decode phase (use prefill)")
    if cfg.kind == "encoder" and pipeline.methods:
        raise SimulatorError(f"--kv-method {pipeline.text}: {cfg.id} is an encoder; it keeps no KV cache")
    unfit = [m.name for m in pipeline.methods if not m.on_mla] if cfg.mla is not None else []
    if unfit:
        usable = ", ".join(sorted(n for n, c in KV_METHODS.items() if c.on_mla))
        raise SimulatorError(f"--kv-method {pipeline.text}: {cfg.id} caches an MLA latent (one "
                             f"{cfg.mla.cache_elements_per_token()}-wide vector per token and layer, shared by "
                             f"all heads); {unfit[0]} on it is not modelled (head-wise budgets, K/V quantization "
                             f"and merged layers need separate K/V heads); token-level methods apply: {usable} "
                             "(--kv-dtype still applies)")
    if cfg.position == "learned" and np.any(context > cfg.max_position_embeddings):
        raise SimulatorError(f"--context {int(context.max())}: {cfg.id} has learned positions up to "
                             f"{cfg.max_position_embeddings} tokens")

    layers = _kept(cfg.layers, rec.keep["depth"])
    hidden = _kept(cfg.hidden, rec.keep["hidden"])
    ffn = _kept(cfg.ffn, rec.keep["width"])
    kv_heads = _kept(cfg.kv_heads, rec.keep["heads"])
    heads = kv_heads * (cfg.heads // cfg.kv_heads)
    head_dim = cfg.head_dim
    heads_gpu = _divide("attention heads", heads, tp)
    if kv_heads % tp and tp % kv_heads:
        raise SimulatorError(f"--tp {tp}: {kv_heads} KV heads can be neither split nor replicated evenly")
    kv_heads_gpu = max(1.0, kv_heads / tp)  # fewer KV heads than GPUs: each GPU keeps a copy
    ffn_gpu = _divide("FFN width", ffn, tp)
    mla = cfg.mla
    cache_head_dim = head_dim
    if mla is not None:
        # The MLA cache is one latent per token and layer that every head reads: to the KV methods'
        # arithmetic (bytes = 2 x kv_heads x head_dim per token) it is one KV head of half its width,
        # and every GPU of the TP group holds all of it (heads split over TP all need the whole latent;
        # vLLM's MLA backends keep the full latent cache on every TP rank).
        kv_heads_gpu = 1.0
        cache_head_dim = mla.cache_elements_per_token() // 2

    act = BYTES_PER_ELEMENT[dtype]
    kv_el = BYTES_PER_ELEMENT[kv_dtype]
    prefill = phase == "prefill"
    q_len = np.where(prefill, context, 1.0)
    env = KVEnv(layers=layers, heads=heads_gpu, kv_heads=kv_heads_gpu, head_dim=cache_head_dim, hidden=hidden,
                kv_el=kv_el, act_el=act, max_positions=cfg.max_position_embeddings, model=cfg.id,
                batch=batch, context=context, q_len=q_len, generated=generated)
    kv = pipeline.profile(env)
    tokens = batch * q_len
    ops = []

    def add(op, kind, count, columns, m=None, n=None, k=None, resident_total=0.0, scope="layers", bytes_kv=None,
            layer=None):
        """``resident_total``: bytes of weights this row keeps in memory, all its copies.
        ``layer``: the layers the row stands for (layer_text); None outside the layers."""
        ops.append({"scope": scope, "op": op, "kind": kind, "count": count, "columns": columns,
                    "m": m, "n": n, "k": k, "resident_total": float(resident_total),
                    "bytes_kv": (columns or {}).get("bytes_kv", 0.0) if bytes_kv is None else bytes_kv,
                    "layer": layer})

    n_points = len(batch)
    pending = []  # GEMMs are priced together, one vectorized call per sparsity format
    pending_memory = []  # and the element-wise kernels in one ops.memory_op_columns call
    pending_flash = []  # and the FlashAttention calls in one

    def memory_op(op, count, bytes_moved, scope="layers", resident_total=0.0, layer=None):
        """A memory-bound kernel (norm, activation, gather) moving ``bytes_moved``."""
        add(op, "memory", count, None, resident_total=resident_total, scope=scope, layer=layer)
        pending_memory.append((ops[-1], bytes_moved))

    def gemm(op, m, n, k, count, sparsity, scope="layers", weight_copies=None, role=None, layer=None,
             grouped=None):
        """``role`` (qkv, o, mlp_in, mlp_out): the recipe's @scope and a dynamic method use it.
        ``grouped``: a grouped (fused MoE) GEMM, one launch over this many expert GEMMs of m x n x k
        each (FLOPs, bytes and roofline times scale with it; the launch does not)."""
        if role is not None and role not in rec.roles:
            sparsity = "dense"  # outside the recipe's @scope
        full = _largest(n) * _largest(k)
        if role is not None and dyn.name != "none":
            n_keep, k_keep = dyn.keep(role, m)
            n = np.maximum(1.0, np.ceil(n * np.asarray(n_keep, float)))
            k = np.maximum(1.0, np.ceil(k * np.asarray(k_keep, float)))
        add(op, "gemm", count, None, m, n, k, 0.0, scope, layer=layer)
        ops[-1]["role"] = role
        ops[-1]["grouped"] = grouped
        copies = (count if weight_copies is None else weight_copies) * (dyn.resident_fraction(role) if role else 1.0)
        # resident weights are the whole matrix, however little of it a step reads
        pending.append((ops[-1], sparsity, copies * full / (_first(n) * _first(k))))

    memory_op("embedding", 1.0, 2 * tokens * hidden * act, scope="embedding",
              resident_total=(cfg.vocab * hidden / tp + cfg.parameters_by_part()["position"]) * act)
    norm_params = hidden * (2 if cfg.norm == "layernorm" else 1)
    up_n = (2 if cfg.mlp == "gated" else 1) * ffn_gpu
    top_k = dyn.experts_per_token(cfg) if cfg.moe else 1
    # channels the activation (+ gating) kernel reads and writes per token: up and down widths of the MLP,
    # for MoE of each routed expert a token runs plus the shared experts
    gated = 2 if cfg.mlp == "gated" else 1
    act_width = (up_n + ffn_gpu) if cfg.moe is None else (
        (gated + 1) * (cfg.expert_ffn() * top_k + cfg.shared_expert_ffn()) * rec.keep["width"] / tp)
    # a MoE model's first dense layers (DeepSeek-V3's first_k_dense_replace) keep a dense MLP of ffn channels
    dense_layers = layers if cfg.moe is None else min(cfg.moe.first_dense_layers, layers)
    # Layers split into token groups (LazyLLM: later layers process fewer prompt tokens) and
    # recipe groups (OWL's per-layer sparsities); every per-layer op is priced per group.
    recipe_groups = rec.layer_groups(layers)
    token_groups = _layer_partition(tuple(pipeline.keep_per_layer(layers).tolist()),
                                    tuple(int(c) for c, _ in recipe_groups), dense_layers)
    ffn_groups = []  # (tokens, layers, tag, first op index, layer text) of each token group: where offload waits go
    for t_index, (fraction, t_layers, recipe_counts, t_layer_text, both_text, splits, t_split) in enumerate(
            token_groups):
        t_tag = "" if len(token_groups) == 1 else f"[s{t_index}]"
        t_tokens = batch * (np.round(fraction * (q_len - 1.0)) + 1.0)  # as KVGroup.new
        ffn_groups.append((t_tokens, t_layers, t_tag, len(ops), t_layer_text))
        norms = t_layers * cfg.norms_per_layer
        memory_op("norms" + t_tag, norms, 2 * t_tokens * hidden * act + norm_params * act,
                  resident_total=norms * norm_params * act, layer=t_layer_text)
        if mla is not None:  # q_a_layernorm and kv_a_layernorm on the latents
            latent = mla.kv_lora_rank + (mla.q_lora_rank or 0)
            latent_params = latent * (2 if cfg.norm == "layernorm" else 1)
            memory_op("latent_norms" + t_tag, t_layers, 2 * t_tokens * latent * act + latent_params * act,
                      resident_total=t_layers * latent_params * act, layer=t_layer_text)
        if tp > 1:
            add("allreduce" + t_tag, "comm", 2 * t_layers, allreduce_columns(hw, t_tokens * hidden * act, tp),
                layer=t_layer_text)
        for r_index, ((_, sparsity), count, r_layer_text, split) in enumerate(
                zip(recipe_groups, recipe_counts, both_text, splits)):
            if count == 0:
                continue
            tag = ("" if len(recipe_groups) == 1 else f"[{r_index}]") + t_tag
            if mla is None:
                gemm("qkv" + tag, t_tokens, (heads_gpu + 2 * kv_heads_gpu) * head_dim, hidden, count, sparsity,
                     role="qkv", layer=r_layer_text)
                gemm("o_proj" + tag, t_tokens, hidden, heads_gpu * head_dim, count, sparsity, role="o",
                     layer=r_layer_text)
            else:
                _mla_gemms(mla, gemm, tag, t_tokens, hidden, heads_gpu, count, sparsity, r_layer_text, prefill)
            for name, pred_n, pred_k in dyn.predictor_gemms(cfg, tp):  # Deja Vu's per-layer predictors
                gemm(name + tag, t_tokens, pred_n, pred_k, count, "dense", layer=r_layer_text)
            (d_count, d_text), (m_count, m_text) = split
            if d_count:
                prefix = "" if cfg.moe is None else "dense_"
                gemm(prefix + ("gate_up" if cfg.mlp == "gated" else "up") + tag, t_tokens, up_n, hidden, d_count,
                     sparsity, role="mlp_in", layer=d_text)
                gemm(prefix + "down" + tag, t_tokens, hidden, ffn_gpu, d_count, sparsity, role="mlp_out",
                     layer=d_text)
            if m_count:
                _moe_gemms(cfg, gemm, tag, t_tokens, top_k, hidden, tp, m_count, sparsity, m_text, expert_parallel,
                           ranks, t_tokens * batch_total / batch)
                if ranks > 1:  # dispatch each token to its experts' GPUs, and combine their outputs back
                    add("all_to_all" + tag, "comm", 2 * m_count,
                        alltoall_columns(hw, t_tokens * top_k * hidden * act, ranks), layer=m_text)
        (d_total, d_layer_text), (m_total, m_layer_text) = t_split
        if cfg.moe is None:
            memory_op("activation" + t_tag, t_layers, act_width * t_tokens * act, layer=t_layer_text)
        else:
            if m_total:
                memory_op("activation" + t_tag, m_total, act_width * t_tokens * act, layer=m_layer_text)
            if d_total:
                memory_op("dense_activation" + t_tag, d_total, (up_n + ffn_gpu) * t_tokens * act, layer=d_layer_text)
    ffn_end = len(ops)  # the per-layer ops of the token groups end here
    flash = _flash_attention_applies(hw, dtype, kv_dtype) if mla is None else False
    selector = pipeline.role("select")
    span = selector.flash_window() if selector is not None else None
    for g in kv.groups:
        window = np.inf
        if not flash:
            shaped = np.zeros(n_points, dtype=bool)
        elif not pipeline.methods:  # the plain cache: a plain FlashAttention call by construction
            shaped = np.ones(n_points, dtype=bool)
        else:
            shaped, window = _flash_shaped(g, env, n_points, span)
        if mla is None and shaped.all():  # priced with the other graphs' FlashAttention calls (_price_pending)
            add("attention" + g.label, "attention", g.count, None, layer=g.layers,
                bytes_kv=_flash_bytes_kv(g, batch, kv_heads_gpu, n_points))
            pending_flash.append((ops[-1], _flash_inputs(g, batch, heads_gpu, kv_heads_gpu, head_dim, n_points,
                                                         window)))
            continue
        if mla is None:
            columns = attention_columns(hw, batch=batch, heads=heads_gpu, kv_heads=kv_heads_gpu, head_dim=head_dim,
                                        new_tokens=g.new, pairs=g.pairs, read_tokens=g.read_tokens + g.new,
                                        read_bytes=g.read_bytes, dtype=dtype, act_bytes=act,
                                        dequant_flops=g.dequant_flops)
            if shaped.any():  # per point: FlashAttention where the group is a plain FA call there
                fa = _flash_columns(hw, g, batch, heads_gpu, kv_heads_gpu, head_dim, dtype, n_points, window)
                columns = {key: np.where(shaped, fa[key], np.broadcast_to(columns[key], (n_points,)))
                           for key in ("flops", "bytes", "compute_time_s", "memory_time_s", "overhead_s", "time_s",
                                       "bound_code", "bytes_kv", "splits")}
        else:
            columns = _mla_attention_columns(hw, mla, g, batch, heads_gpu, prefill, dtype, act)
        add("attention" + g.label, "attention", g.count, columns, layer=g.layers)
    for extra in kv.extra_ops:
        if not (np.any(np.asarray(extra.flops) > 0) or np.any(np.asarray(extra.bytes) > 0)):
            continue  # a kernel that runs at none of the points (SnapKV's selection while decoding)
        add(extra.name, "kv-method", extra.count,
            extra_op_columns(hw, extra.flops, extra.bytes, extra.unit, dtype, extra.launches),
            bytes_kv=np.broadcast_to(np.asarray(extra.bytes_kv, float), batch.shape), layer=extra.layers)
    memory_op("final_norm", 1.0 if cfg.final_norm else 0.0, 2 * batch * hidden * act, scope="head",
              resident_total=(norm_params * act) if cfg.final_norm else 0.0)
    gemm("lm_head", batch, cfg.vocab / tp, hidden, 1.0, "dense", scope="head",
         weight_copies=0.0 if cfg.tied_embeddings else 1.0)  # tied: it reads the embedding table

    # The batched kernels (element-wise ops, GEMMs) are priced by the caller, for this graph alone
    # or together with others' (sweep): it sends back the priced blocks of rows.
    blocks = yield _Pending(hw, dtype, weight_dtype, group, n_points, pending_memory, pending, pending_flash)
    table = _table(ops, blocks, n_points)

    # a sparse kernel that streams its selected weights less efficiently (a dynamic method's)
    efficiency = np.array([dyn.read_efficiency(o["role"]) if o.get("role") else 1.0 for o in ops])
    slow = np.flatnonzero(efficiency < 1.0)
    if slow.size:
        memory = table.memory_time_s[slow] / efficiency[slow, None]
        roof = roofline(table.compute_time_s[slow], memory, table.overhead_s[slow])
        table.memory_time_s[slow], table.time_s[slow], table.bound_code[slow] = memory, roof["time_s"], roof["bound_code"]

    # The runtime's launch path (simulator/formats/runtimes.py): each op's launches at the runtime's cost for
    # its phase (eager: the spec's, nothing changes), all ops at once
    if profile.changes_launches:
        launch_s = profile.launch_s(hw, prefill)
        columns = {key: getattr(table, key) for key in ("overhead_s", "time_s", "bound_code", "compute_time_s",
                                                         "memory_time_s")}
        reprice_launches(columns, launch_s, hw,
                         sparse_extra=np.array([_sparse_extra(kernel) for kernel in table.kernel])[:, None])
        for key in ("overhead_s", "time_s", "bound_code"):
            getattr(table, key)[...] = columns[key]

    # Offloaded FFN work (PowerInfer's CPU neurons, LLM in a Flash's loads), per token group
    # (the base DynamicMethod offloads nothing: no need for the model copy).
    later = len(ops)  # rows added from here on join the table at the end
    if type(dyn).offload_seconds is not DynamicMethod.offload_seconds:
        offload_cfg = cfg.model_copy(update={"ffn": int(ffn_gpu), "hidden": int(hidden)})
        ends = [g[3] for g in ffn_groups[1:]] + [ffn_end]
        for (t_tokens, t_layers, t_tag, start, t_layer_text), end in zip(ffn_groups, ends):
            extra = dyn.offload_seconds(offload_cfg, hw, t_tokens, dtype, tp, weight_dtype, group)
            if extra is None:
                continue
            # this token group's FFN GEMMs only (later groups' ops follow them in the list)
            rows = [i for i in range(start, end) if ops[i].get("role") in ("mlp_in", "mlp_out")]
            device_ffn = sum(table.time_s[i] * table.count[i] for i in rows) / t_layers
            wait = np.maximum(0.0, extra - device_ffn) if dyn.overlaps_device else extra
            wait = np.broadcast_to(np.asarray(wait, float), (n_points,)).copy()
            zeros = np.zeros(n_points)
            add("offload" + t_tag, "offload", t_layers,
                {"flops": zeros, "bytes": zeros, "compute_time_s": zeros, "memory_time_s": zeros,
                 "overhead_s": zeros, "comm_time_s": zeros, "time_s": wait, "bound_code": np.full(n_points, int(Bound.OFFLOAD))}, layer=t_layer_text)

    if profile.has_host_cost:  # the runtime's host time per step: scheduling, inputs, graph launch
        host = np.broadcast_to(profile.host_s(batch), (n_points,)).astype(float)
        zeros = np.zeros(n_points)
        add("runtime", "runtime", 1.0,
            {"flops": zeros, "bytes": zeros, "compute_time_s": zeros, "memory_time_s": zeros,
             "overhead_s": host, "comm_time_s": zeros, "time_s": host, "bound_code": np.full(n_points, int(Bound.RUNTIME))},
            scope="host")
    if len(ops) > later:
        table = table.extended(_table(ops[later:], [], n_points))

    # Memory per GPU (weights do not depend on the point; KV and activations do).
    weights_gpu = sum(o["resident_total"] for o in ops)
    # the cache and the method's state held after the phase (dense: layers x 2 x KV heads x hd x context x batch)
    kv_gpu = kv.held_bytes_per_gpu
    widest = max(hidden, up_n, (heads_gpu + 2 * kv_heads_gpu) * head_dim)
    if mla is not None:  # prefill's q, decompressed k (nope + the shared rope part) and v, all heads of a GPU
        widest = max(hidden, up_n, heads_gpu * (2 * (mla.qk_nope_head_dim + mla.qk_rope_head_dim) + mla.v_head_dim))
    # two live buffers + fp32 logits + what a KV method keeps only during the phase
    activations = 2 * tokens * widest * act + batch * cfg.vocab / tp * 4 + kv.transient_bytes_per_gpu
    context_info = {
        "rec": rec, "tp": tp * ranks, "expert_parallel": bool(expert_parallel), "dp_attention": ranks > 1,
        "dtype": dtype, "weights": weight_dtype + (f":g{group}" if group else ""),
        "kv_dtype": kv_dtype, "kv_method": pipeline.text, "dynamic": dyn.describe() if dyn.name != "none" else "none",
        "layers": layers, "phase": phase, "batch": batch_total, "runtime": runtime_name(runtime),
        "context": context, "generated": generated,
        "tokens_out": np.where(prefill, batch_total * context, batch_total),
        "weights_gpu": weights_gpu, "kv_gpu": kv_gpu, "activations": activations,
    }
    return table, context_info


def expected_experts_touched(experts, top_k, tokens):
    """Expected number of distinct experts that ``tokens`` tokens, each routed to ``top_k`` of
    ``experts`` experts, touch together, under uniform routing: E (1 - (1 - k/E)^T).

    Each token picks k distinct experts of E uniformly, so a given expert is missed by one token
    with probability 1 - k/E and by all T (independent) tokens with (1 - k/E)^T; summing the
    probability of being hit over the E experts gives the expectation (the classical occupancy
    problem, e.g. Feller, "An Introduction to Probability Theory and Its Applications", vol. 1,
    ch. II.11; used for MoE batching in Huang et al., "Towards MoE Deployment: Mitigating
    Inefficiencies in Mixture-of-Expert (MoE) Inference", arXiv 2303.06182). Real routers are
    skewed, so this is an upper bound on the distinct experts and so on the weight bytes read."""
    tokens = np.asarray(tokens, float)
    return experts * (1.0 - (1.0 - top_k / experts) ** tokens)


def busiest_rank_experts(experts, top_k, tokens, ranks):
    """Expected distinct experts touched on the busiest of ``ranks`` GPUs that hold ``experts/ranks``
    whole experts each, when ``tokens`` tokens each route to ``top_k`` of the ``experts``.

    Under uniform routing an expert is touched with p = 1 - (1 - k/E)^T (as in
    ``expected_experts_touched``); treating experts as independent, a rank's count is
    Binomial(E/ranks, p) and the busiest rank's is the maximum of ``ranks`` of them:
    E[max] = sum_{x>=0} (1 - F(x)^ranks), with F the binomial CDF. Real routers are skewed (hot
    experts), so measured imbalance is larger; this is the balanced-router floor. Vectorized over
    ``tokens``."""
    from scipy.stats import binom

    per_rank = experts // ranks
    p = 1.0 - (1.0 - top_k / experts) ** np.asarray(tokens, float)
    x = np.arange(per_rank + 1)
    cdf = binom.cdf(x[None, :], per_rank, p.reshape(-1, 1))  # (points, per_rank + 1)
    busiest = (1.0 - cdf ** ranks).sum(axis=1)
    # at least one expert where any is touched (the binomial floor rounds that away at tiny p)
    return np.maximum(busiest, np.minimum(1.0, expected_experts_touched(experts, top_k, tokens))).reshape(p.shape)


def _moe_gemms(cfg, gemm, tag, t_tokens, top_k, hidden, tp, count, sparsity, layer_text_, expert_parallel=False,
               ranks=1, routed=None):
    """The MoE FFN of ``count`` layers as fused kernels (vLLM's fused_moe, SGLang, TensorRT-LLM's
    grouped GEMMs): router, one grouped gate/up GEMM and one grouped down GEMM over the experts the
    batch touches (their weights only are read), each expert's M = its expected tokens; then the
    shared experts (DeepSeek, Qwen-MoE) as one dense MLP over all tokens. Launches per layer are
    fixed: 3 (+ 2 with shared experts) whatever the batch.

    Tensor parallel (default): every GPU holds 1/tp of every expert's width and runs all the touched
    experts. ``expert_parallel``: every GPU holds experts/tp whole experts (vLLM's
    --enable-expert-parallel with TP attention: all ranks see all tokens after attention, so the
    MoE output is summed by the same all-reduce as TP's, with no all-to-all); a step waits for the
    GPU whose experts the batch touches most (``busiest_rank_experts``). Shared experts stay TP-split.

    ``ranks`` > 1 (data-parallel attention, ``tp`` then 1): each of ``ranks`` GPUs brings its own
    ``t_tokens`` (the busiest GPU's) and holds experts/ranks whole experts; the routed experts see the
    ``routed`` tokens of the whole group (after the all-to-all dispatch), the router and the shared
    experts only the GPU's own."""
    moe = cfg.moe
    experts = moe.experts
    expert_ffn = cfg.expert_ffn() if expert_parallel else _divide("expert FFN width", cfg.expert_ffn(), tp)
    up_n = (2 if cfg.mlp == "gated" else 1) * expert_ffn
    routed = t_tokens if routed is None else routed  # the tokens the experts of the group see
    touched = expected_experts_touched(experts, top_k, routed)
    # expected tokens per touched expert, whole (gemm_columns prices whole rows): the grouped GEMM's M
    per_expert = np.maximum(1.0, np.round(routed * top_k / touched))
    grouped, copies = touched, count * experts
    if expert_parallel and max(tp, ranks) > 1:
        places = max(tp, ranks)
        grouped, copies = busiest_rank_experts(experts, top_k, routed, places), count * experts // places
    gemm("router" + tag, t_tokens, experts, hidden, count, "dense", layer=layer_text_)
    gemm("experts_gate_up" + tag, per_expert, up_n, hidden, count, sparsity, weight_copies=copies,
         role="mlp_in", layer=layer_text_, grouped=grouped)
    gemm("experts_down" + tag, per_expert, hidden, expert_ffn, count, sparsity, weight_copies=copies,
         role="mlp_out", layer=layer_text_, grouped=grouped)
    if moe.shared_experts:
        shared_ffn = _divide("shared expert FFN width", cfg.shared_expert_ffn(), tp)
        gemm("shared_gate_up" + tag, t_tokens, (2 if cfg.mlp == "gated" else 1) * shared_ffn, hidden, count,
             sparsity, role="mlp_in", layer=layer_text_)
        gemm("shared_down" + tag, t_tokens, hidden, shared_ffn, count, sparsity, role="mlp_out", layer=layer_text_)


def _mla_gemms(mla, gemm, tag, t_tokens, hidden, heads_gpu, count, sparsity, layer_text_, prefill):
    """Multi-head latent attention's projections for ``count`` layers (DeepSeek-V2, arXiv 2405.04434
    sec. 2.1 and appendix C; DeepSeek-V3, arXiv 2412.19437 sec. 2.1.1), per GPU of the TP group.

    q_a (hidden -> q_lora_rank) and kv_a (hidden -> kv_lora_rank + rope: the cached latent and the
    shared RoPE key) are replicated, whole on every GPU: every head needs the whole latent (vLLM's
    DeepseekV2MLAAttention uses ReplicatedLinear for both); q_b and kv_b are split by heads, o by its
    input (column / row parallel).

    Two forms, as the serving engines run them (vLLM's MLA backends, vllm/attention/backends/mla;
    SGLang; FlashMLA is the absorbed decode kernel):
    - prefill, non-absorbed (compute-friendly): kv_b decompresses each token's latent into per-head
      k_nope and v ([T, heads, nope + v]), then ordinary multi-head attention with q/k width nope + rope
      and v width v_head_dim. Absorbing would make the attention's q/k width kv_lora_rank + rope (576
      instead of 192 for DeepSeek-V3), 3x the attention FLOPs for T^2 pairs, to save the T x kv_b GEMM.
    - decode, absorbed (data-movement-friendly): W_UK is folded into the query (q_absorb: per head
      q_nope [T, nope] x W_UK [nope, kv_lora_rank], one batched launch over the heads) and W_UV applied
      to the attention output (v_up: per head [T, kv_lora_rank] x [kv_lora_rank, v]), so attention reads
      only the latent cache; decompressing the whole cached context every step instead would cost a
      context x kv_b GEMM per step and read/write per-head K/V of the whole context.
    Each point takes its phase's form (``count`` is 0 for the other); kv_b's weights are held once,
    by the absorbed halves (W_UK, W_UV together are kv_b) where any point decodes."""
    nope, rope, v, rank = mla.qk_nope_head_dim, mla.qk_rope_head_dim, mla.v_head_dim, mla.kv_lora_rank
    decode = ~prefill
    if mla.q_lora_rank:
        gemm("q_a" + tag, t_tokens, mla.q_lora_rank, hidden, count, sparsity, role="qkv", layer=layer_text_)
        gemm("q_b" + tag, t_tokens, heads_gpu * (nope + rope), mla.q_lora_rank, count, sparsity, role="qkv",
             layer=layer_text_)
    else:
        gemm("q_proj" + tag, t_tokens, heads_gpu * (nope + rope), hidden, count, sparsity, role="qkv",
             layer=layer_text_)
    gemm("kv_a" + tag, t_tokens, rank + rope, hidden, count, sparsity, role="qkv", layer=layer_text_)
    if np.any(prefill):
        gemm("kv_b" + tag, t_tokens, heads_gpu * (nope + v), rank, np.where(prefill, count, 0.0), sparsity,
             weight_copies=0.0 if np.any(decode) else count, role="qkv", layer=layer_text_)
    if np.any(decode):
        on_decode = np.where(decode, count, 0.0)
        gemm("q_absorb" + tag, t_tokens, rank, nope, on_decode, sparsity, weight_copies=count * heads_gpu,
             role="qkv", layer=layer_text_, grouped=heads_gpu)
        gemm("v_up" + tag, t_tokens, v, rank, on_decode, sparsity, weight_copies=count * heads_gpu,
             role="qkv", layer=layer_text_, grouped=heads_gpu)
    gemm("o_proj" + tag, t_tokens, hidden, heads_gpu * v, count, sparsity, role="o", layer=layer_text_)


def _mla_attention_columns(hw, mla, g, batch, heads_gpu, prefill, dtype, act):
    """MLA's attention kernel per point, in its phase's form (see _mla_gemms):

    - prefill: multi-head attention over the decompressed k and v (kv heads = heads), read as
      activations: per pair and head 2 (nope + rope) FLOP for q.k and 2 v_head_dim for p.v;
    - decode: multi-query attention over the latent cache (FlashMLA): every head of the GPU scores its
      absorbed query (kv_lora_rank + rope wide) against the one cached latent per token and sums the
      latents (kv_lora_rank wide): 2 (kv_lora_rank + rope) + 2 kv_lora_rank FLOP per pair and head;
      the cache read is g.read_bytes (kv_lora_rank + rope elements per token).
    attention_columns prices 4 x heads x head_dim FLOP per pair, so head_dim is half the q/k and v
    widths together (prefill (192 + 128) / 2 = 160, decode (576 + 512) / 2 = 544 for DeepSeek-V3)."""
    nope, rope, v, rank = mla.qk_nope_head_dim, mla.qk_rope_head_dim, mla.v_head_dim, mla.kv_lora_rank
    common = dict(batch=batch, heads=heads_gpu, new_tokens=g.new, pairs=g.pairs, read_tokens=g.read_tokens + g.new,
                  dtype=dtype, act_bytes=act)
    forms = []
    if np.any(prefill):
        width = nope + rope + v  # elements of one head's k and v per token
        forms.append(attention_columns(hw, kv_heads=heads_gpu, head_dim=width / 2,
                                       read_bytes=(g.read_tokens + g.new) * width * act, **common))
    if np.any(~prefill):
        forms.append(attention_columns(hw, kv_heads=1.0, head_dim=(2 * rank + rope) / 2, read_bytes=g.read_bytes,
                                       **common))
    if len(forms) == 1:
        return forms[0]
    shape = np.shape(prefill)
    return {key: np.where(prefill, np.broadcast_to(forms[0][key], shape), np.broadcast_to(forms[1][key], shape))
            for key in forms[0]}


FLASH_DTYPES = ("fp16", "bf16", "fp8")  # FlashAttention's (simulator.estimate_attention's) dtypes


def _flash_attention_applies(hw, dtype: str, kv_dtype: str) -> bool:
    """Whether ``simulator.estimate_attention``'s FlashAttention model prices this attention: a GPU
    with a tensor-core peak for ``dtype``, one of FlashAttention's dtypes, the cache in that dtype."""
    return (hw.kind == "gpu" and dtype in FLASH_DTYPES and kv_dtype == dtype
            and hw.matrix_peak_flop_per_s(dtype) is not None)


def _flash_shaped(g, env, n_points: int, span=None) -> tuple:
    """Whether a KV group's attention is a FlashAttention call over the tokens it attends to, and
    its sliding window per point (inf: none): full-precision K/V (no quantization, no merged
    layers: bytes = tokens x token_bytes), no dequantization work, and causal pairs, or the
    pairs of a causal sliding window of ``span`` keys (StreamingLLM's prefill; FlashAttention
    runs it natively). Token selection (H2O, SnapKV, Quest's pages, LazyLLM's kept prompt) only
    changes which tokens are attended, so it is one. Per point (a bool array): KIVI's prefill
    attends full-precision K/V, its decode does not."""
    if g.merged:
        return np.zeros(n_points, dtype=bool), np.inf
    plain_bytes = (g.read_tokens + g.new) * env.token_bytes
    plain_pairs = g.new * g.read_tokens + g.new * (g.new + 1.0) / 2.0
    def close(a, b):  # np.isclose(a, b, rtol=1e-12, atol=0) for finite values, without its overhead
        a, b = np.asarray(a, float), np.asarray(b, float)
        return np.broadcast_to(np.abs(a - b) <= 1e-12 * np.abs(b), (n_points,))
    no_dequant = np.broadcast_to(np.asarray(g.dequant_flops, float) == 0, (n_points,))
    plain = close(g.pairs, plain_pairs)
    window = np.inf
    if span is not None and not plain.all():
        # flash_attention_columns' pairs for a window of span keys: query i sees min(kv + i + 1, span)
        first = np.asarray(g.read_tokens, float) + 1.0
        n1 = np.clip(span - first, 0.0, g.new)
        windowed = close(g.pairs, n1 * first + n1 * (n1 - 1.0) / 2.0 + (g.new - n1) * span) & ~plain
        window = np.where(windowed, float(span), np.inf)
        plain = plain | windowed
    return no_dequant & close(g.read_bytes, plain_bytes) & plain, window


def _flash_columns(hw, g, batch, heads_gpu, kv_heads_gpu, head_dim, dtype, n_points, window=np.inf) -> dict:
    """A KV group's attention priced by ``simulator.estimate_attention``'s FlashAttention kernel model
    (attention.flash_attention_columns with the device's calibrated ``attention:`` parameters), over
    the points at once: ``g.new`` queries per sequence over ``g.read_tokens`` attended cached tokens,
    causal, in a sliding window of ``window`` keys where finite. Columns as attention_columns (the
    launches in ``overhead_s``; kernel_time_s the kernel's own time, its fixed time and split
    combine included)."""
    columns = _flash_priced(hw, dtype, _flash_inputs(g, batch, heads_gpu, kv_heads_gpu, head_dim, n_points, window))
    columns["bytes_kv"] = _flash_bytes_kv(g, batch, kv_heads_gpu, n_points)
    return columns


_FLASH_INPUTS = ("batch", "q_tokens", "kv_tokens", "q_heads", "kv_heads", "head_dim", "window")


def _flash_inputs(g, batch, heads_gpu, kv_heads_gpu, head_dim, n_points, window=np.inf) -> tuple:
    """A KV group's FlashAttention call per point, as arrays in _FLASH_INPUTS order (window: inf
    where none)."""
    like = np.empty((n_points,))
    return tuple(along(v, like) for v in (batch, g.new, g.read_tokens, heads_gpu, kv_heads_gpu, head_dim, window))


def _flash_bytes_kv(g, batch, kv_heads_gpu, n_points) -> np.ndarray:
    """The KV cache bytes a group's attention reads per point."""
    return along(batch, np.empty((n_points,))) * kv_heads_gpu * np.asarray(g.read_bytes, float)


def _flash_priced(hw, dtype, inputs: tuple) -> dict:
    """_flash_columns' columns (but bytes_kv) for FlashAttention calls given as _flash_inputs arrays
    (of one group, or many concatenated: the model prices point by point)."""
    from simulator.kernels.attention import attention_parameters, flash_attention_columns

    *call, window = inputs
    c = flash_attention_columns(hw, attention_parameters(hw), *call, dtype, np.ones(call[0].shape, dtype=bool),
                                window=None if np.isinf(window).all() else window)
    overhead = c["time_s"] - c["kernel_time_s"]  # the launches: one, and the combine's where split
    roof = c["kernel_time_s"]
    # the launches decide where they exceed the kernel; inside the kernel its fixed part does not
    # count as overhead here (it is part of kernel_time_s), so compute vs memory decides instead
    inner = np.where(c["bound_code"] == Bound.OVERHEAD,
                     bound_codes(c["compute_time_s"], c["memory_time_s"], 0.0), c["bound_code"])
    bound = np.where(overhead > roof, int(Bound.OVERHEAD), inner)
    return {"flops": c["flops"], "bytes": c["bytes"], "compute_time_s": c["compute_time_s"],
            "memory_time_s": c["memory_time_s"], "overhead_s": overhead, "time_s": c["time_s"],
            "kernel_time_s": c["kernel_time_s"], "bound_code": bound, "splits": c["splits"],
            "kernel": "flash-attention"}


@functools.lru_cache
def _parse_recipe_cached(text: str) -> Recipe:
    """parse_recipe for _plan: a recipe string is parsed once (Recipes are not modified)."""
    return parse_recipe(text)


@functools.lru_cache(maxsize=1024)
def _density(sparsity: str) -> float:
    """The density of a sparsity string's format, as a number."""
    return float(_sparsity_format(sparsity).density)


@functools.lru_cache(maxsize=1024)
def _price_key(sparsity: str):
    """The format a GEMM is priced with in the op graph's batched calls: formats that differ only in
    their sparsity value (unstructured in one storage, block-sparse of one block size: their kernel,
    efficiencies and byte counts read the value only as the density passed per shape) share one
    call, under one representative; any other format is its own."""
    fmt = _sparsity_format(sparsity)
    if isinstance(fmt, (Unstructured, Block)):
        return dataclasses.replace(fmt, sparsity=0.5)
    return fmt


# Sparsity strings parsed once for gemm_columns (the formats are frozen dataclasses); parsing
# an 'unstructured:S' string costs about as much as pricing a few GEMMs.
_sparsity_format = functools.lru_cache(parse_sparsity)


@functools.lru_cache
def _layer_partition(keep: tuple, recipe_counts: tuple, dense_layers: "int | None" = None) -> tuple:
    """The kept layers split into token groups (a fraction of the prompt each layer processes,
    ``keep`` per layer) and, within each, layers per recipe group (``recipe_counts`` layers in
    order): ((fraction, layers, (layers of each recipe group), which layers, (which layers of each
    recipe group), splits, token-group split), ...) in order of first layer; "which" as
    ops.layer_text writes it. A split is ((dense layers, which), (MoE layers, which)): the first
    ``dense_layers`` layers (default all) have a dense MLP, the rest are MoE; ``splits`` has one per
    recipe group, the token-group split covers the whole group."""
    keep = np.array(keep)
    recipe_index = np.repeat(np.arange(len(recipe_counts)), recipe_counts)
    dense = np.arange(len(keep)) < (len(keep) if dense_layers is None else dense_layers)

    def split(members):
        return tuple((float(np.sum(members & part)), layer_text(members & part)) for part in (dense, ~dense))

    groups = []
    for fraction in dict.fromkeys(keep.tolist()):
        in_group = keep == fraction
        in_both = [in_group & (recipe_index == r) for r in range(len(recipe_counts))]
        counts = tuple(float(np.sum(both)) for both in in_both)
        groups.append((fraction, float(in_group.sum()), counts,
                       layer_text(in_group), tuple(layer_text(both) for both in in_both),
                       tuple(split(both) for both in in_both), split(in_group)))
    return tuple(groups)



# The op record's columns a kernel model prices (count, bytes_kv and the shapes are the op's own).
_PRICED = tuple(key for key in OP_NUMERIC if key not in ("count", "m", "n", "k", "bytes_kv"))


def _table(ops, blocks, n_points: int) -> OpTable:
    """The op record of ``ops``: each op's own columns (count, bytes_kv, the resident weights), and
    the priced ones from its cost model: ``blocks`` are (ops, columns) of one batched call whose
    arrays hold those ops' points one op after the other (a GEMM block carries the shapes, m, n,
    k); every other op carries its own ``columns`` (arrays over the points, or scalars). A column
    a cost model does not give is 0 (m, n, k: NaN), but ``kernel_time_s``: the roof (a
    collective's: its communication time)."""
    n_ops = len(ops)
    # every numeric column and the bound codes as one (column, op, point) array
    table = np.zeros((len(_COLUMNS), n_ops, n_points))
    table[_SHAPES] = np.nan
    for r, key in ((_COUNT, "count"), (_BYTES_KV, "bytes_kv")):
        values = [o[key] for o in ops]
        table[r] = np.array([v if type(v) is float else 0.0 for v in values])[:, None]
        for i, value in enumerate(values):
            if type(value) is not float:  # an array over the points (or an int)
                table[r, i] = value
    kernel = [o["kind"] for o in ops]
    index = {id(o): i for i, o in enumerate(ops)}
    for members, columns in blocks:
        if not members:
            continue
        rows = [index[id(o)] for o in members]
        size = len(rows) * n_points
        zero, nan = np.zeros(size), np.full(size, np.nan)
        # np.array of equally long arrays stacks them at a third of np.stack's cost
        table[_FILLED:, rows] = np.array([columns.get(key, nan if key in ("m", "n", "k") else zero)
                                          for key in _COLUMNS[_FILLED:]]).reshape(-1, len(rows), n_points)
        if "kernel_time_s" not in columns:
            _default_kernel_time(table, rows, "comm_time_s" in columns)
        label = columns.get("kernel")
        if label is not None:
            for i in rows:
                kernel[i] = label
    for i, o in enumerate(ops):
        columns = o["columns"]
        if columns is None:
            continue
        for r in range(_FILLED, len(_COLUMNS)):
            if _COLUMNS[r] in columns:
                table[r, i] = columns[_COLUMNS[r]]
        if "kernel_time_s" not in columns:
            _default_kernel_time(table, [i], "comm_time_s" in columns)
        kernel[i] = columns.get("kernel", kernel[i])
    labels = {"scope": [o["scope"] for o in ops], "layer": [o["layer"] for o in ops], "op": [o["op"] for o in ops],
              "kind": [o["kind"] for o in ops], "kernel": kernel}
    return OpTable(labels, dict(zip(_COLUMNS[:-1], table[:-1])), table[-1].astype(np.int64),
                   [o["resident_total"] for o in ops])


# The op record's columns in one array: count and bytes_kv (the op's own), then what a kernel
# model fills (the shapes m, n, k, which only GEMM blocks give, the priced columns), bound codes last.
_COLUMNS = ("count", "bytes_kv", "m", "n", "k", *_PRICED, "bound_code")
assert set(_COLUMNS[:-1]) == set(OP_NUMERIC) and len(_COLUMNS) == len(OP_NUMERIC) + 1
_COUNT, _BYTES_KV = 0, 1
_SHAPES = slice(2, 5)
_FILLED = 2  # from m on: filled by the kernel models
_KERNEL_TIME, _COMM, _COMPUTE, _MEMORY = (_COLUMNS.index(key) for key in
                                          ("kernel_time_s", "comm_time_s", "compute_time_s", "memory_time_s"))


def _default_kernel_time(priced, rows, collective: bool) -> None:
    """kernel_time_s where a cost model gives none: a collective's communication time, else the roof."""
    priced[_KERNEL_TIME, rows] = priced[_COMM, rows] if collective else np.maximum(priced[_COMPUTE, rows],
                                                                                   priced[_MEMORY, rows])


def _stacked(values, n_points: int) -> np.ndarray:
    """``values`` (scalars or arrays over the points) broadcast to ``n_points`` each and
    concatenated, as floats."""
    rows = _rows(values, n_points)
    if rows.shape[1] != n_points:
        rows = np.repeat(rows, n_points, axis=1)
    return rows.ravel()


def _plain_gemms(m, n, k, groups, dtype: str, weight_dtype: str) -> bool:
    """Whether stacked GEMM shapes pass gemm_columns' checks (whole dimensions >= 1 and finite,
    groups >= 1 and finite, weights no wider than the math), so that gemm_priced may take them as
    they are (a NaN fails every comparison, so it fails here too)."""
    dims = np.concatenate((m, n, k))
    return bool(BYTES_PER_ELEMENT[weight_dtype] <= BYTES_PER_ELEMENT[dtype] and dims.min() >= 1.0
                and dims.max() <= MAX_DIMENSION and (np.floor(dims) == dims).all() and groups.min() >= 1.0
                and groups.max() < np.inf)


def _largest(value) -> float:
    """np.max(value) as a float, without np.max's overhead on a scalar."""
    return float(value.max()) if isinstance(value, np.ndarray) else float(value)


def _totals(ops: OpTable, info, hw):
    """Per-point sums over the op record: time, categories, memory, fit.

    Each sum adds the ops in table order, one after the other from 0.0, as a loop over the ops
    would (np.sum may pair terms up, which rounds differently): all sums at once, over a
    (quantity, op, point) array whose first op row is zeros."""
    n_ops, n_points = len(ops), len(info["batch"])
    time, flops, bytes_, code, count, kv_read = ops.time_s, ops.flops, ops.bytes, ops.bound_code, ops.count, ops.bytes_kv
    kind, by_code, applies = _kind_tables(ops.kind)
    # the category each op's time at each point goes to
    category = np.where(code == 0, by_code[0], np.where(code == 1, by_code[1],
                                                        np.where(code == 2, by_code[2], by_code[3])))

    n_kinds = len(OP_KINDS)
    parts = np.zeros((4 + n_kinds + len(TIME_CATEGORIES), n_ops + 1, n_points))
    body = parts[:, 1:]
    total = np.multiply(time, count, out=body[0])
    np.multiply(flops, count, out=body[1])
    np.multiply(bytes_, count, out=body[2])
    np.multiply(kv_read, count, out=body[3])
    np.copyto(body[4:4 + n_kinds], total, where=kind)  # all of an op's time to its kind
    # to the category of the op's bound: time x 1.0 there, x 0.0 in the op's other categories
    # (time x (code == 0) for compute, ...), nothing in the rest
    np.multiply(total, category == np.arange(len(TIME_CATEGORIES))[:, None, None], out=body[4 + n_kinds:],
                where=applies)
    # Sequential sums over the op axis: with more than one point numpy's reduce over a leading axis
    # adds the rows one after the other (its pairwise summation runs along the contiguous last axis
    # only; tests/test_llm.py checks the sums against a loop over the ops); one point makes the op
    # axis the contiguous one, where the accumulation keeps the order
    sums = np.add.reduce(parts, axis=1) if n_points > 1 else np.add.accumulate(parts, axis=1)[:, -1].copy()

    memory = info["weights_gpu"] + info["kv_gpu"] + info["activations"]
    return {
        "time_s": sums[0], "by_category": {c: sums[4 + n_kinds + i] for i, c in enumerate(TIME_CATEGORIES)},
        "by_kind": {k: sums[4 + i] for i, k in enumerate(OP_KINDS)}, "flops": sums[1], "bytes": sums[2],
        "kv_read": sums[3],
        "memory": memory, "fits": memory <= hw.memory_capacity_bytes,
        "shortfall": np.maximum(0.0, memory - hw.memory_capacity_bytes),
    }


def _checked_reserve(reserve) -> np.ndarray:
    """A memory reserve (a number, or one per point) as a float array, or one line saying what is wrong."""
    reserve = np.asarray(reserve, dtype=float)
    if not np.all(np.isfinite(reserve)) or np.any(reserve < 0):
        bad = reserve[~np.isfinite(reserve) | (reserve < 0)].flat[0]
        raise SimulatorError(f"memory reserve: must be a finite number of bytes >= 0, got {bad:g}")
    return reserve


def _reserve(totals: dict, reserve, hw) -> dict:
    """``totals`` with ``reserve`` bytes per GPU (a number, or one per point) added to the memory
    and the fit and shortfall recomputed; unchanged for a zero reserve."""
    if type(reserve) in (int, float) and reserve == 0:  # estimate_model's default: nothing to check or add
        return totals
    reserve = _checked_reserve(reserve)
    if not np.any(reserve):
        return totals
    memory = totals["memory"] + reserve
    return {**totals, "memory": memory, "fits": memory <= hw.memory_capacity_bytes,
            "shortfall": np.maximum(0.0, memory - hw.memory_capacity_bytes)}


def _rows(values, n_points: int) -> np.ndarray:
    """A 2-D float array whose row i broadcasts as values[i] (a scalar or an array over the
    points) does: (len(values), n_points), or (len(values), 1) where all are scalars."""
    types = set(map(type, values))
    if types <= {float, int} or types == {np.ndarray}:  # all alike: one np.array call
        try:
            out = np.array(values, dtype=float)
        except ValueError:  # arrays of different lengths: the row-by-row path below
            out = None
        if out is not None and out.ndim == 1:
            return out[:, None]
        if out is not None and out.shape in ((len(values), n_points), (len(values), 1)):
            return out
    out = np.empty((len(values), n_points))
    for row, value in enumerate(values):
        out[row] = value
    return out


@functools.lru_cache
def _kind_tables(kinds: tuple) -> tuple:
    """_kind_rule for each op of an op table with these kinds, as read-only arrays: whether its
    time goes to each of OP_KINDS (kind, op, 1), the category of each bound code (code, op, 1),
    whether each category may receive its time (category, op, 1)."""
    rules = [_kind_rule(kind) for kind in kinds]
    tables = ((np.array([r[0] for r in rules]) == np.arange(len(OP_KINDS))[:, None])[:, :, None],
              np.array([r[1] for r in rules]).T[:, :, None],
              np.array([r[2] for r in rules]).T[:, :, None])
    for table in tables:
        table.flags.writeable = False
    return tables


def _kind_rule(kind: str) -> tuple:
    """Where an op of ``kind`` adds its time (what the breakdown adds up), as indices: (its
    OP_KINDS entry, the TIME_CATEGORIES entry for bound codes 0, 1, 2 and any other, whether
    each category may receive its time). An all-reduce's time is communication and an
    offload's is offload whatever its code; other ops split by bound: compute, the memory they
    read (weights, KV cache or activations), overhead."""
    category = TIME_CATEGORIES.index
    if kind in ("comm", "offload", "runtime"):
        by_code = (category({"comm": "communication"}.get(kind, kind)),) * 4
    else:
        memory_name = {"attention": "kv", "kv-method": "kv", "gemm": "weights"}.get(kind, "memory-ops")
        by_code = (category("compute"), category(memory_name), category("overhead"), -1)
    applies = tuple(i in by_code for i in range(len(TIME_CATEGORIES)))
    return OP_KINDS.index(_OP_KIND.get(kind, "other")), by_code, applies


def estimate_model(model, hw, phase: str = "decode", batch: int = 1, context: int = 4096, tp: int = 1,
                   dtype: str = "bf16", weights: "str | None" = None, recipe="dense",
                   kv_dtype: "str | None" = None, with_ops: bool = True, kv_method=None,
                   generated: int = 0, dynamic=None, memory_reserve_bytes: float = 0.0,
                   runtime: "str | None" = None, expert_parallel: bool = False,
                   dp_attention: bool = False) -> ModelEstimate:
    """Estimate one phase of ``model`` on ``tp`` GPUs of ``hw`` (one point, with its op table).

    ``phase`` "prefill" processes a prompt of ``context`` tokens per sequence; "decode" produces
    one token per sequence with ``context`` tokens in the KV cache. ``dtype`` is the activation
    and math dtype, ``weights`` the weight storage ('int4:g128', ...), ``kv_dtype`` the cache's.
    ``kv_method`` is a KV-cache method ('snapkv+kivi', a KVMethod or KVPipeline; default none,
    see simulator/methods/kvcache.py); ``generated`` the decode steps already taken since the prefill
    (methods that compress only the prompt, like SnapKV, hold their budget plus these).
    Times are per phase (prefill: the whole prompt; decode: one step), in seconds.
    ``dynamic`` is an input-dependent weight-sparsity method ('teal', 'dejavu:mlp_sparsity=0.9',
    'naee'; simulator/methods/dynamic.py). ``with_ops=False`` skips building the op DataFrame.
    ``memory_reserve_bytes`` is memory per GPU the runtime keeps for itself (CUDA context,
    library workspaces, allocator slack; vLLM's gpu_memory_utilization leaves 10%): it counts
    against the capacity in ``fits`` and is part of ``memory_bytes_per_gpu``.
    ``runtime`` names the software's per-step costs (simulator/formats/runtimes.py: eager, cuda-graphs,
    vllm, trtllm, gpt-fast; default eager): each kernel launch at the runtime's cost for the phase,
    and its host time per step as the ``runtime`` time category.
    ``expert_parallel`` (MoE models): the ``tp`` GPUs hold whole experts, experts/tp each, instead of
    a 1/tp slice of every expert (see ``_moe_gemms``; the attention stays tensor parallel).
    ``dp_attention`` (MoE models, implies expert parallelism): data-parallel attention, as SGLang's
    --enable-dp-attention and vLLM's data-parallel deployment with --enable-expert-parallel run
    DeepSeek-V3: each of the ``tp`` GPUs holds the attention and dense weights whole and runs them for
    its share of the ``batch`` (the busiest GPU's ceil(batch/tp) sequences set the step and the memory),
    keeps only its own sequences' KV cache, holds experts/tp whole experts, and sends each token to its
    experts' GPUs and back by two all-to-alls per MoE layer (ops.alltoall_columns) instead of
    all-reducing. ``tp`` in the summary stays the GPU count.
    """
    from simulator.formats.models import load_model

    cfg = load_model(model) if isinstance(model, str) else model
    hw = load_hw(hw)
    ops, info = _plan(cfg, hw, phase, batch, context, tp, dtype, weights, recipe, kv_dtype, kv_method, generated,
                      dynamic, runtime, expert_parallel, dp_attention)
    totals = _reserve(_totals(ops, info, hw), memory_reserve_bytes, hw)
    summary = _summary(cfg, hw, info, totals, 0)
    summary["memory_reserve_bytes_per_gpu"] = float(memory_reserve_bytes)
    if not with_ops:
        return ModelEstimate(ops=None, summary=summary)
    return ModelEstimate(summary=summary, op_rows=ops)


def refusals(calls: list) -> list:
    """For each estimate_model call (``calls``: its keyword arguments; with_ops does not matter),
    None where it would answer, else the message of the SimulatorError it would raise. The op
    graphs are built one by one and priced together (one by one only where pricing them together
    fails, to say which): a capacity plan's check of hundreds of deployments costs about one sweep."""
    from simulator.formats.models import load_model

    errors = [None] * len(calls)
    built = []
    for i, kw in enumerate(calls):
        try:
            cfg = load_model(kw["model"]) if isinstance(kw["model"], str) else kw["model"]
            _checked_reserve(kw.get("memory_reserve_bytes", 0.0))
            graph = _graph(cfg, load_hw(kw["hw"]), kw.get("phase", "decode"), kw.get("batch", 1),
                           kw.get("context", 4096), kw.get("tp", 1), kw.get("dtype", "bf16"), kw.get("weights"),
                           kw.get("recipe", "dense"), kw.get("kv_dtype"), kw.get("kv_method"), kw.get("generated", 0),
                           kw.get("dynamic"), kw.get("runtime"), kw.get("expert_parallel", False),
                           kw.get("dp_attention", False))
            built.append((i, graph, next(graph)))
        except SimulatorError as err:
            errors[i] = str(err)

    def finish(items):
        for (i, graph, _), blocks in zip(items, _price_pending([pending for _, _, pending in items])):
            try:
                graph.send(blocks)
            except StopIteration:
                pass
            except SimulatorError as err:
                errors[i] = str(err)

    try:
        finish(built)
    except SimulatorError:  # a batched kernel refused one of them: price them one by one
        for item in built:
            try:
                finish([item])
            except SimulatorError as err:
                errors[item[0]] = str(err)
    return errors


OP_COLUMNS = ("phase", "scope", "layer", "op", "kind", "kernel", "count", "m", "n", "k", "flops", "bytes", "bytes_weight",
              "bytes_metadata", "bytes_kv", "resident_weight_bytes", "compute_time_s", "memory_time_s",
              "overhead_s", "comm_time_s", "time_s", "total_time_s", "bound")

_TEXT_COLUMNS = ("phase", "scope", "layer", "op", "kind", "kernel", "bound")

# The op table's numeric columns but total_time_s (time_s x count), in OP_COLUMNS order: the op
# record's columns of the same names.
_NUMERIC_COLUMNS = tuple(name for name in OP_COLUMNS if name not in _TEXT_COLUMNS and name != "total_time_s")


def _op_table(ops: OpTable, phase: str) -> pd.DataFrame:
    """The op table of a one-point estimate: a row per op, OP_COLUMNS, at the first point.
    ``layer`` says which layers a row stands for (0-based among the kept layers: '0-79'); rows
    outside the layers (embedding, head) have none (NaN)."""
    columns = {name: ops.resident_weight_bytes.copy() if name == "resident_weight_bytes" else getattr(ops, name)[:, 0].copy()
               for name in _NUMERIC_COLUMNS}
    bounds = tuple(_BOUNDS[int(c)] for c in ops.bound_code[:, 0])
    text = _text_columns(tuple(zip((phase,) * len(ops), ops.scope, ops.layer, ops.op, ops.kind, ops.kernel)), bounds)
    columns["total_time_s"] = columns["time_s"] * columns["count"]
    return pd.DataFrame({name: text[name].copy() if name in _TEXT_COLUMNS else columns[name]
                         for name in OP_COLUMNS}, copy=False)


@functools.lru_cache(maxsize=256)
def _text_columns(names: tuple, bounds: tuple) -> dict:
    """The text columns for ops with these (phase, scope, layer, op, kind, kernel) names and bounds, as pandas
    string arrays: the same op graph comes back for every point of a sweep, and inferring a
    string column from a list is most of a small DataFrame's cost. Callers copy them."""
    return {name: pd.array(list(values), dtype="str") for name, values in zip(_TEXT_COLUMNS, (*zip(*names), bounds))}


def _first(value):
    if value is None:
        return np.nan
    if isinstance(value, np.ndarray):
        return float(value.item(0))  # the first element, as .flat[0] (a few times faster)
    return float(value)


def _summary(cfg, hw, info, totals, i) -> dict:
    tp = info["tp"]
    rec = info["rec"]
    phase = str(info["phase"][i])
    kv_gpu = _at_point(info["kv_gpu"], info["batch"].shape, i)
    return {
        "model": cfg.id, "hw": hw.id, "tp": tp, "expert_parallel": info["expert_parallel"],
        "dp_attention": info["dp_attention"], "phase": phase,
        "batch": int(info["batch"][i]),
        "context": int(info["context"][i]),
        # a rotary model asked for more positions than it was trained on (learned positions are an
        # error instead): priced as if a long-context variant (RoPE scaling) of it ran
        "beyond_trained_context": cfg.beyond_trained_context(info["context"][i]),
        "trained_context": cfg.max_position_embeddings, "dtype": info["dtype"], "weights": info["weights"],
        "kv_dtype": info["kv_dtype"], "recipe": rec.text, "kv_method": info["kv_method"],
        "dynamic": info["dynamic"], "runtime": info["runtime"], "layers": info["layers"],
        "time_s": float(totals["time_s"][i]),
        "tokens_per_s": float(info["tokens_out"][i] / totals["time_s"][i]),
        "time_by_category_s": {c: float(v[i]) for c, v in totals["by_category"].items()},
        "time_by_op_kind_s": {k: float(v[i]) for k, v in totals["by_kind"].items()},
        "flops": float(totals["flops"][i]), "bytes": float(totals["bytes"][i]),
        "weight_bytes_per_gpu": float(info["weights_gpu"]),
        "kv_cache_bytes": float(kv_gpu * tp),
        "kv_cache_bytes_per_gpu": float(kv_gpu),
        "kv_read_bytes_per_step": float(totals["kv_read"][i] * tp) if phase == "decode" else 0.0,
        "activation_bytes_per_gpu": float(_at_point(info["activations"], info["batch"].shape, i)),
        "memory_bytes_per_gpu": float(totals["memory"][i]),
        "memory_capacity_bytes": float(hw.memory_capacity_bytes),
        "fits": bool(totals["fits"][i]),
        "shortfall_bytes": float(totals["shortfall"][i]),
    }


def _at_point(value, shape, i):
    """np.broadcast_to(value, shape)[i], without the broadcast where value has that shape."""
    if isinstance(value, np.ndarray) and value.shape == shape:
        return value[i]
    return np.broadcast_to(value, shape)[i]


SWEEP_KEYS = ("model", "hw", "tp", "dtype", "weights", "recipe", "kv_dtype", "kv_method", "dynamic", "runtime",
              "expert_parallel", "dp_attention")


def sweep(points: pd.DataFrame) -> pd.DataFrame:
    """Summaries for many points. ``points`` has columns model, hw, phase, batch, context and
    optionally tp, dtype, weights, recipe, kv_dtype, kv_method, dynamic, runtime (default eager), expert_parallel
    and dp_attention (default False; see estimate_model), generated (decode steps since
    the prefill) and memory_reserve_bytes (per GPU, see estimate_model); points sharing the first
    ones are priced in one vectorized pass. Returns one
    row per point (same order) with time_s, tokens_per_s, memory_bytes_per_gpu, fits,
    shortfall_bytes, kv_cache_bytes, kv_read_bytes_per_step, the time categories (time_<bound
    category>_s) and the time by op kind (time_gemm_ops_s, time_attention_ops_s, time_other_ops_s)."""
    from simulator.formats.models import load_model

    frame = points.reset_index(drop=True).copy()
    defaults = {"tp": 1, "dtype": "bf16", "weights": None, "recipe": "dense", "kv_dtype": None, "kv_method": None,
                "dynamic": None, "runtime": DEFAULT_RUNTIME, "generated": 0, "memory_reserve_bytes": 0.0,
                "expert_parallel": False, "dp_attention": False}
    for key, value in defaults.items():
        if key not in frame:
            frame[key] = value
    missing = [c for c in ("model", "hw", "phase", "batch", "context") if c not in frame]
    if missing:
        raise SimulatorError(f"sweep: points need columns {', '.join(missing)}")
    # KV methods may be strings or objects: points are grouped by the pipeline's canonical text
    pipelines, text_of = {}, {}
    values = frame["kv_method"].tolist()
    # a missing value (NaN) is no method; each distinct method is parsed once
    keys = [v if v is None or type(v) is str else None if isinstance(v, float) and v != v else _hashable(v)
            for v in values]
    for key, value in dict(zip(keys, values)).items():
        pipeline = parse_kv_method(None if key is None else value)
        text_of[key] = pipeline.text
        pipelines.setdefault(pipeline.text, pipeline)
    keyed = frame[list(SWEEP_KEYS)].astype(object)
    keyed["kv_method"] = [text_of[key] for key in keys]
    out = {name: np.zeros(len(frame)) for name in
           ("time_s", "tokens_per_s", "memory_bytes_per_gpu", "shortfall_bytes", "kv_cache_bytes",
            "kv_read_bytes_per_step", "weight_bytes_per_gpu", *[f"time_{c}_s" for c in TIME_CATEGORIES],
            *[f"time_{k}_ops_s" for k in OP_KINDS])}
    fits = np.zeros(len(frame), dtype=bool)
    # the per-point columns as arrays once (selecting a group's rows from the frame costs more
    # than pricing them)
    phase_all, batch_all, context_all, generated_all = _check_points(  # every point checked once
        frame["phase"].to_numpy(object), frame["batch"].to_numpy(), frame["context"].to_numpy(),
        frame["generated"].to_numpy())
    reserve_all = frame["memory_reserve_bytes"].to_numpy(float)
    models, devices = {}, {}  # each name resolved once
    calls, indices = [], []
    for key, index in keyed.groupby(list(SWEEP_KEYS), dropna=False, sort=False).indices.items():
        model, hw_name, tp, dtype, weights, recipe, kv_dtype, kv_text, dynamic, runtime, ep, dp = (
            None if isinstance(v, float) and np.isnan(v) else v for v in key)
        idx = np.asarray(index)
        if isinstance(model, str) and model not in models:
            models[model] = load_model(model)
        cfg = models[model] if isinstance(model, str) else model
        if _hashable(hw_name) not in devices:
            devices[_hashable(hw_name)] = load_hw(hw_name)
        calls.append((cfg, devices[_hashable(hw_name)], phase_all[idx], batch_all[idx], context_all[idx], int(tp), dtype,
                      weights, recipe, kv_dtype, pipelines[kv_text], generated_all[idx], dynamic, runtime, bool(ep),
                      bool(dp), True))
        indices.append(idx)
    # every group's op graph at once: their batched kernels priced together (_plans)
    pieces = {name: [] for name in (*out, "fits")}
    reserve_any = bool(np.any(_checked_reserve(reserve_all)))
    for call, idx, (ops, info) in zip(calls, indices, _plans(calls)):
        hw = call[1]
        totals = _totals(ops, info, hw)
        if reserve_any:
            totals = _reserve(totals, reserve_all[idx], hw)
        for name, value in (
                ("time_s", totals["time_s"]), ("tokens_per_s", info["tokens_out"] / totals["time_s"]),
                ("memory_bytes_per_gpu", totals["memory"]), ("shortfall_bytes", totals["shortfall"]),
                ("kv_cache_bytes", np.broadcast_to(info["kv_gpu"], idx.shape) * info["tp"]),
                ("kv_read_bytes_per_step", np.where(info["phase"] == "decode", totals["kv_read"] * info["tp"], 0.0)),
                ("weight_bytes_per_gpu", np.broadcast_to(info["weights_gpu"], idx.shape)), ("fits", totals["fits"]),
                *((f"time_{c}_s", totals["by_category"][c]) for c in TIME_CATEGORIES),
                *((f"time_{k}_ops_s", totals["by_kind"][k]) for k in OP_KINDS)):
            pieces[name].append(value)
    if indices:  # each column written once, in the groups' order
        order = np.concatenate(indices)
        for name, values in pieces.items():
            (fits if name == "fits" else out[name])[order] = np.concatenate(values)
    result = frame.assign(**out)
    result["fits"] = fits
    return result


def _hashable(value):
    try:
        hash(value)
        return value
    except TypeError:
        return repr(value)


def estimate_request(model, hw, prompt: int, output_tokens: int, batch: int = 1, tp: int = 1,
                     dtype: str = "bf16", weights=None, recipe="dense", kv_dtype=None, samples: int = 33,
                     kv_method=None, dynamic=None, memory_reserve_bytes: float = 0.0, runtime=None) -> dict:
    """A whole request for a batch: time to first token (the prefill), the time per output token
    as the context grows from ``prompt`` to ``prompt + output_tokens - 1``, and throughput.

    Decode steps are priced at ``samples`` contexts and interpolated linearly in between (decode
    time is piecewise linear in context: KV bytes grow linearly, weight bytes are constant; a KV
    method with a fixed budget makes it flat). Decode step ``s`` has ``s`` tokens generated
    since the prefill, so prompt-only methods (SnapKV) hold their budget plus ``s``.
    """
    from simulator.formats.models import load_model

    if int(output_tokens) != output_tokens or output_tokens < 1:
        raise SimulatorError(f"--output-tokens: must be a whole number >= 1, got {output_tokens}")
    cfg = load_model(model) if isinstance(model, str) else model
    steps = np.arange(int(output_tokens), dtype=float)
    sampled = np.unique(np.round(np.linspace(0, output_tokens - 1, min(samples, int(output_tokens)))))
    pipeline = parse_kv_method(kv_method)
    points = pd.DataFrame({
        "model": [model] * (1 + len(sampled)), "hw": hw, "tp": tp, "dtype": dtype, "weights": weights,
        "recipe": recipe, "kv_dtype": kv_dtype, "kv_method": [pipeline] * (1 + len(sampled)), "dynamic": dynamic,
        "phase": ["prefill"] + ["decode"] * len(sampled), "batch": batch,
        "context": np.concatenate([[prompt], prompt + sampled]), "generated": np.concatenate([[0], sampled]),
        "memory_reserve_bytes": memory_reserve_bytes, "runtime": runtime_name(runtime),
    })
    result = sweep(points)
    ttft = float(result["time_s"].iloc[0])
    per_step = np.interp(steps, sampled, result["time_s"].iloc[1:].to_numpy())
    decode_total = float(per_step.sum())
    return {
        "model": model if isinstance(model, str) else model.id, "hw": hw if isinstance(hw, str) else hw.id,
        "prompt": int(prompt), "output_tokens": int(output_tokens), "batch": int(batch),
        "kv_method": pipeline.text, "runtime": runtime_name(runtime), "ttft_s": ttft,
        "tpot_first_s": float(per_step[0]), "tpot_last_s": float(per_step[-1]),
        "tpot_mean_s": decode_total / len(steps),
        "latency_s": ttft + decode_total,
        "output_tokens_per_s": batch * len(steps) / decode_total,
        "fits": bool(result["fits"].all()),
        "peak_memory_bytes_per_gpu": float(result["memory_bytes_per_gpu"].max()),
        "kv_cache_bytes_last": float(result["kv_cache_bytes"].iloc[-1]),
        # the last step caches prompt + output_tokens - 1 tokens (see estimate_model's summary)
        "trained_context": cfg.max_position_embeddings,
        "beyond_trained_context": cfg.beyond_trained_context(prompt + output_tokens - 1),
    }

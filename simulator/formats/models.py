"""The LLM model zoo: one strict schema over ``workloads/models/<id>.yaml``, exact parameter counts.

A model file states the architecture the way its Hugging Face ``config.json`` (or paper table)
does, plus the few facts a config leaves implicit (which projections carry a bias, how many norms
a layer has, whether the output matrix is the embedding). From those fields alone this module
counts parameters exactly and sizes the KV cache; the per-phase op graph is built on top of it.

Conventions (also stated at the top of every model file):
- Counts are parameters (elements), never bytes; bytes appear only in ``kv_bytes_per_token``.
- Linear layers are y = x.W^T (+ b); q/k/v/o are hidden x heads*head_dim, hidden x
  kv_heads*head_dim (k and v each) and heads*head_dim x hidden. ``head_dim`` is explicit because
  heads*head_dim need not equal hidden (Minitron-4B-Width: 32 x 128 = 4096 vs hidden 3072).
- rmsnorm has a weight (hidden); layernorm a weight and a bias (2 x hidden).
- mlp "gated" is gate+up+down (3 x hidden x ffn, LLaMA); "plain" is up+down (2 x hidden x ffn).
  ``mlp_bias`` puts a bias on every MLP projection (gated: 2 x ffn + hidden; plain: ffn + hidden).
- MoE: every routed expert is one MLP of moe.expert_ffn (default ffn) channels; shared experts are one
  MLP of shared_experts x shared_expert_ffn channels every token runs; the router is a hidden x experts
  linear without bias (moe.router_bias adds DeepSeek-V3's per-expert e_score_correction_bias). The first
  moe.first_dense_layers layers (DeepSeek first_k_dense_replace) have a dense MLP of ffn channels instead.
  qk_norm adds two head_dim RMSNorm weights (q, k) per layer (Qwen3).
- MLA (multi-head latent attention, DeepSeek-V2 arXiv 2405.04434 sec. 2.1, DeepSeek-V3 arXiv 2412.19437
  sec. 2.1.1): q = W_UQ norm(W_DQ x) (hidden x q_lora_rank, q_lora_rank x heads*(nope+rope); without
  q_lora_rank one hidden x heads*(nope+rope)); the cached latent [c_KV; k_rope] = W_DKV x is hidden x
  (kv_lora_rank + qk_rope_head_dim), c_KV normed (kv_lora_rank weights); k_nope and v = W_UKV c_KV is
  kv_lora_rank x heads*(nope + v_head_dim); o is heads*v_head_dim x hidden. head_dim must be
  nope + rope and kv_heads = heads (config.json's num_key_value_heads); the KV cache is the latent:
  kv_lora_rank + qk_rope_head_dim elements per token per layer, shared by all heads.
- Learned position tables have max_position_embeddings + learned_position_offset rows (OPT keeps
  2 extra rows).
- A decoder's lm_head is vocab x hidden unless tied to the token embedding (then it adds nothing).
  An encoder is counted as the bare encoder (BertModel: embeddings, layers, pooler): no LM or task
  head, so an encoder file must say ``tied_embeddings: true`` and ``lm_head_bias: false``.
- ``parameters()`` counts each distinct tensor once: a tied lm_head is not counted again even when a
  checkpoint stores it as its own tensor (``published_includes_tied_lm_head`` says when the
  published total does).
- Encoders keep no KV cache (no autoregressive decode): ``kv_bytes_per_token`` raises for them
  rather than returning 0, so a decode-phase caller cannot silently price an encoder.
"""

from __future__ import annotations

import functools

import re
from pathlib import Path
from typing import Literal, Optional

from pydantic import (
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from simulator.core.datafiles import Strict, check_file, load_yaml, looks_like_path
from simulator.core.errors import SimulatorError
from simulator.core.paths import workloads_path

_ID_PATTERN = r"^[a-z0-9]+([.-][a-z0-9]+)*$"
# a model file's published_parameters may differ from the count by at most this (published totals are
# rounded, e.g. "46.7B"); more is a wrong field or a wrong published figure, and an error
PUBLISHED_TOLERANCE = 0.02

PARTS = ("embedding", "position", "attention", "mlp", "router", "norms", "lm_head", "pooler")


class _Strict(Strict):
    """Counts must be real integers in the files (no "32" or true where a count is expected)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class Moe(_Strict):
    """Mixture of experts: every layer's MLP is ``experts`` copies, ``experts_per_token`` of them run."""

    experts: int = Field(ge=2)
    experts_per_token: int = Field(ge=1)
    # the width of one routed expert (config.json moe_intermediate_size); None: the model's ffn
    expert_ffn: Optional[int] = Field(default=None, gt=0)
    # experts every token runs besides the routed ones (DeepSeek n_shared_experts, Qwen-MoE's shared
    # expert), one MLP of shared_experts x shared_expert_ffn (default expert_ffn) channels
    shared_experts: int = Field(default=0, ge=0)
    shared_expert_ffn: Optional[int] = Field(default=None, gt=0)
    # leading layers with a dense MLP of the model's ffn instead (DeepSeek-V3 first_k_dense_replace)
    first_dense_layers: int = Field(default=0, ge=0)
    # a learned per-expert bias added to the routing scores (DeepSeek-V3 gate.e_score_correction_bias)
    router_bias: bool = False

    @field_validator("experts_per_token")
    @classmethod
    def _top_k_within_experts(cls, value: int, info: ValidationInfo) -> int:
        experts = info.data.get("experts")
        if experts is not None and value > experts:
            raise ValueError(f"experts_per_token ({value}) exceeds experts ({experts})")
        return value


class Mla(_Strict):
    """Multi-head latent attention (DeepSeek-V2/V3): low-rank q and a compressed, cached KV latent.
    Field names are config.json's; see the module docstring for the shapes."""

    kv_lora_rank: int = Field(gt=0)
    # None: q is one hidden x heads*(nope+rope) projection (DeepSeek-V2-Lite's q_lora_rank null)
    q_lora_rank: Optional[int] = Field(default=None, gt=0)
    qk_nope_head_dim: int = Field(gt=0)
    qk_rope_head_dim: int = Field(gt=0)
    v_head_dim: int = Field(gt=0)

    def cache_elements_per_token(self) -> int:
        """Cached elements per token per layer: the latent c_KV and the shared RoPE key."""
        return self.kv_lora_rank + self.qk_rope_head_dim


class ModelConfig(_Strict):
    """One model's architecture, as its config.json states it; see the module docstring for conventions."""

    id: str = Field(pattern=_ID_PATTERN)
    name: str = Field(min_length=1)
    aliases: list[str] = []
    family: str = Field(pattern=r"^[a-z0-9]+$")
    kind: Literal["decoder", "encoder"]
    source: str = Field(min_length=3)
    published_parameters: int = Field(gt=0)
    published_parameters_source: str = Field(min_length=3)
    published_includes_tied_lm_head: bool = False

    layers: int = Field(gt=0)
    hidden: int = Field(gt=0)
    heads: int = Field(gt=0)
    kv_heads: int = Field(gt=0)
    head_dim: int = Field(gt=0)
    ffn: int = Field(gt=0)
    vocab: int = Field(gt=0)

    mlp: Literal["gated", "plain"]
    activation: Literal["silu", "gelu", "relu"]
    norm: Literal["rmsnorm", "layernorm"]
    norms_per_layer: int = Field(ge=0)
    final_norm: bool
    embedding_norm: bool = False
    parallel_attention: bool

    qkv_bias: bool
    o_bias: bool
    mlp_bias: bool
    lm_head_bias: bool

    position: Literal["rope", "learned", "alibi"]
    rotary_dim: Optional[int] = Field(default=None, gt=0)
    max_position_embeddings: int = Field(gt=0)
    learned_position_offset: int = Field(default=0, ge=0)
    sliding_window: Optional[int] = Field(default=None, gt=0)
    token_type_vocab: int = Field(default=0, ge=0)
    pooler: bool = False

    tied_embeddings: bool
    moe: Optional[Moe] = None
    # per-head RMSNorm on q and k (Qwen3: q_norm, k_norm, head_dim weights each per layer)
    qk_norm: bool = False
    mla: Optional[Mla] = None

    @field_validator("aliases")
    @classmethod
    def _aliases_are_ids(cls, value: list[str]) -> list[str]:
        for alias in value:
            if not re.match(_ID_PATTERN, alias):
                raise ValueError(f"alias {alias!r} is not lower-case hyphenated (pattern {_ID_PATTERN})")
        if len(set(value)) != len(value):
            raise ValueError(f"aliases repeat: {value}")
        return value

    @field_validator("kv_heads")
    @classmethod
    def _kv_heads_divide_heads(cls, value: int, info: ValidationInfo) -> int:
        heads = info.data.get("heads")
        if heads is not None and heads % value != 0:
            raise ValueError(f"heads ({heads}) is not a multiple of kv_heads ({value})")
        return value

    @field_validator("rotary_dim")
    @classmethod
    def _rotary_dim_fits(cls, value: Optional[int], info: ValidationInfo) -> Optional[int]:
        if value is None:
            return value
        head_dim = info.data.get("head_dim")
        if info.data.get("position") != "rope":
            raise ValueError("rotary_dim applies only to position: rope")
        if head_dim is not None and (value > head_dim or value % 2):
            raise ValueError(f"rotary_dim ({value}) must be even and at most head_dim ({head_dim})")
        return value

    @field_validator("learned_position_offset")
    @classmethod
    def _offset_needs_learned(cls, value: int, info: ValidationInfo) -> int:
        if value and info.data.get("position") != "learned":
            raise ValueError("learned_position_offset applies only to position: learned")
        return value

    @field_validator("pooler", "token_type_vocab")
    @classmethod
    def _encoder_only(cls, value, info: ValidationInfo):
        if value and info.data.get("kind") != "encoder":
            raise ValueError(f"{info.field_name} applies only to kind: encoder")
        return value

    @field_validator("sliding_window")
    @classmethod
    def _window_decoder_only(cls, value: Optional[int], info: ValidationInfo) -> Optional[int]:
        if value is not None and info.data.get("kind") != "decoder":
            raise ValueError("sliding_window applies only to kind: decoder")
        return value

    @field_validator("tied_embeddings")
    @classmethod
    def _encoder_has_no_head(cls, value: bool, info: ValidationInfo) -> bool:
        if info.data.get("kind") == "encoder" and (not value or info.data.get("lm_head_bias")):
            raise ValueError("an encoder is counted without an LM head: set tied_embeddings: true "
                             "and lm_head_bias: false")
        return value

    @model_validator(mode="after")
    def _cross_checks(self) -> "ModelConfig":
        if self.published_includes_tied_lm_head and not self.tied_embeddings:
            raise ValueError("published_includes_tied_lm_head needs tied_embeddings: true")
        if self.id in self.aliases:
            raise ValueError(f"aliases repeat the id {self.id!r}")
        if self.moe is not None and self.moe.first_dense_layers >= self.layers:
            raise ValueError(f"moe.first_dense_layers ({self.moe.first_dense_layers}) must be fewer than "
                             f"layers ({self.layers})")
        if self.mla is not None:
            mla = self.mla
            if self.head_dim != mla.qk_nope_head_dim + mla.qk_rope_head_dim:
                raise ValueError(f"mla: head_dim ({self.head_dim}) must be qk_nope_head_dim + qk_rope_head_dim "
                                 f"({mla.qk_nope_head_dim} + {mla.qk_rope_head_dim})")
            if self.kv_heads != self.heads:
                raise ValueError(f"mla: kv_heads ({self.kv_heads}) must equal heads ({self.heads}): every head "
                                 f"has its own k and v, decompressed from the shared latent")
            if self.qkv_bias or self.qk_norm or self.kind != "decoder" or self.position != "rope":
                raise ValueError("mla: modelled for rope decoders without qkv_bias or qk_norm (DeepSeek-V2/V3)")
            if mla.cache_elements_per_token() % 2:
                raise ValueError(f"mla: kv_lora_rank + qk_rope_head_dim ({mla.cache_elements_per_token()}) "
                                 f"must be even")
        counted = self.parameters() + (self.vocab * self.hidden if self.published_includes_tied_lm_head else 0)
        if abs(counted - self.published_parameters) > PUBLISHED_TOLERANCE * self.published_parameters:
            raise ValueError(f"published_parameters ({self.published_parameters:,}) disagrees with the count "
                             f"from the fields ({counted:,}) by more than {PUBLISHED_TOLERANCE:.0%}")
        return self

    # ---- counts -------------------------------------------------------------------------------

    def _norm_size(self) -> int:
        return self.hidden if self.norm == "rmsnorm" else 2 * self.hidden

    def _mlp_parameters(self, ffn: "int | None" = None) -> int:
        """One MLP (one expert, by default of the model's ffn width), weights and biases."""
        ffn = self.expert_ffn() if ffn is None else ffn
        if self.mlp == "gated":
            weights, biases = 3 * self.hidden * ffn, 2 * ffn + self.hidden
        else:
            weights, biases = 2 * self.hidden * ffn, ffn + self.hidden
        return weights + (biases if self.mlp_bias else 0)

    def expert_ffn(self) -> int:
        """One routed expert's FFN width (the model's ffn for a dense model or without moe.expert_ffn)."""
        return self.moe.expert_ffn if self.moe is not None and self.moe.expert_ffn else self.ffn

    def shared_expert_ffn(self) -> int:
        """The FFN width of the shared experts together (0 without)."""
        if self.moe is None or not self.moe.shared_experts:
            return 0
        return self.moe.shared_experts * (self.moe.shared_expert_ffn or self.expert_ffn())

    def beyond_trained_context(self, tokens) -> bool:
        """Whether ``tokens`` positions are more than the model was trained on (learned position
        tables refuse them instead; rotary models are then priced as a long-context variant)."""
        return bool(int(tokens) > self.max_position_embeddings)

    def parameters_by_part(self) -> dict[str, int]:
        """Exact parameter count per part (elements), the keys of ``PARTS``; they sum to ``parameters()``.

        embedding: token (+ BERT token-type) embeddings; position: the learned position table (0 for
        rope/alibi); attention: q/k/v/o and their biases (MLA: its projections and latent norms); mlp: all experts' MLPs; router: MoE
        routers; norms: per-layer, final and embedding norms; lm_head: the untied output matrix and
        its bias; pooler: BERT's dense + bias.
        """
        q_out = self.heads * self.head_dim
        kv_out = self.kv_heads * self.head_dim
        if self.mla is None:
            attention = self.hidden * q_out + 2 * self.hidden * kv_out + q_out * self.hidden
        else:
            attention = sum(n * k for _, n, k in self.mla_projections()) + self._mla_norm_parameters()
        if self.qkv_bias:
            attention += q_out + 2 * kv_out
        if self.o_bias:
            attention += self.hidden
        if self.qk_norm:
            attention += 2 * self.head_dim

        moe_layers = self.moe_layers()
        dense_layers = self.layers - moe_layers
        mlp = dense_layers * self._mlp_parameters(self.ffn)
        router = 0
        if self.moe:
            mlp += moe_layers * (self.moe.experts * self._mlp_parameters()
                                 + (self._mlp_parameters(self.shared_expert_ffn()) if self.shared_expert_ffn() else 0))
            router = moe_layers * self.moe.experts * (self.hidden + int(self.moe.router_bias))

        positions = (self.max_position_embeddings + self.learned_position_offset
                     if self.position == "learned" else 0)
        embedding = (self.vocab + self.token_type_vocab) * self.hidden

        norms = self._norm_size() * (self.layers * self.norms_per_layer + int(self.final_norm)
                                     + int(self.embedding_norm))

        lm_head = 0
        if self.kind == "decoder":
            lm_head = (0 if self.tied_embeddings else self.vocab * self.hidden)
            lm_head += self.vocab if self.lm_head_bias else 0

        return {
            "embedding": embedding,
            "position": positions * self.hidden,
            "attention": self.layers * attention,
            "mlp": mlp,
            "router": router,
            "norms": norms,
            "lm_head": lm_head,
            "pooler": self.hidden * self.hidden + self.hidden if self.pooler else 0,
        }

    def parameters(self) -> int:
        """Exact number of distinct parameters (elements) implied by the fields."""
        return sum(self.parameters_by_part().values())

    def active_parameters_per_token(self) -> int:
        """Parameters one token touches: all of them for a dense model, top-k experts for MoE."""
        if self.moe is None:
            return self.parameters()
        idle = self.moe.experts - self.moe.experts_per_token
        return self.parameters() - self.moe_layers() * idle * self._mlp_parameters()

    def moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts (all but moe.first_dense_layers; 0 when dense)."""
        return 0 if self.moe is None else self.layers - self.moe.first_dense_layers

    def mla_projections(self) -> list[tuple[str, int, int]]:
        """MLA's linear layers of one layer as (name, out features N, in features K), whole model
        width (before tensor parallelism): q_a, q_b (or q), kv_a (the latent and the RoPE key),
        kv_b (k_nope and v of every head), o. Empty without MLA."""
        mla = self.mla
        if mla is None:
            return []
        q_width = self.heads * (mla.qk_nope_head_dim + mla.qk_rope_head_dim)
        q = ([("q_a", mla.q_lora_rank, self.hidden), ("q_b", q_width, mla.q_lora_rank)]
             if mla.q_lora_rank else [("q", q_width, self.hidden)])
        return q + [("kv_a", mla.cache_elements_per_token(), self.hidden),
                    ("kv_b", self.heads * (mla.qk_nope_head_dim + mla.v_head_dim), mla.kv_lora_rank),
                    ("o", self.hidden, self.heads * mla.v_head_dim)]

    def _mla_norm_parameters(self) -> int:
        """The latent norms' weights of one layer (q_a_layernorm, kv_a_layernorm)."""
        widths = self.mla.kv_lora_rank + (self.mla.q_lora_rank or 0)
        return widths * (1 if self.norm == "rmsnorm" else 2)

    def kv_bytes_per_token(self, bytes_per_element: float = 2.0) -> float:
        """KV-cache bytes per token of context: layers x 2 (K and V) x kv_heads x head_dim x bytes;
        with MLA layers x (kv_lora_rank + qk_rope_head_dim) x bytes (the latent, shared by all heads).

        No sliding-window cap is applied here (see ``sliding_window``). Encoders keep no KV cache
        and raise ``SimulatorError``.
        """
        if self.kind != "decoder":
            raise SimulatorError(f"model {self.id!r} is an encoder: it keeps no KV cache "
                                 f"(no autoregressive decode)")
        if not bytes_per_element > 0:
            raise SimulatorError(f"bytes_per_element must be > 0, got {bytes_per_element!r}")
        if self.mla is not None:
            return float(self.layers * self.mla.cache_elements_per_token() * bytes_per_element)
        return float(self.layers * 2 * self.kv_heads * self.head_dim * bytes_per_element)


# ---- loading ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def models_dir() -> Path:
    return workloads_path("models")


def _load_file(path: Path) -> ModelConfig:
    model = load_yaml(path, ModelConfig)
    if model.id != path.stem:
        raise SimulatorError(f"{path}: id: {model.id!r} does not match the file name {path.stem!r}")
    return model


def list_models() -> list[ModelConfig]:
    """Every shipped model, sorted by id; ids and aliases are checked to be unique across files."""
    models = [_load_file(p.resolve()) for p in sorted(models_dir().glob("*.yaml"))]
    seen: dict[str, str] = {}
    for m in models:
        for name in (m.id, *m.aliases):
            if name in seen:
                raise SimulatorError(f"{models_dir() / (m.id + '.yaml')}: aliases: {name!r} "
                                     f"is already used by model {seen[name]!r}")
            seen[name] = m.id
    return models


def load_model(name_or_path: str) -> ModelConfig:
    """A model by id, alias, or path to a ``.yaml`` file (whose stem must equal its id)."""
    if looks_like_path(str(name_or_path)):
        return _load_file(check_file(name_or_path, "--model: model file").absolute())
    direct = models_dir() / f"{name_or_path}.yaml"
    if direct.is_file():
        return _load_file(direct)
    models = list_models()
    for m in models:
        if name_or_path in m.aliases:
            return m
    known = ", ".join(m.id for m in models)
    raise SimulatorError(f"unknown model {name_or_path!r}; known: {known}")

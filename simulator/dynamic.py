"""Input-dependent (dynamic) weight sparsity: which weight channels one step actually reads.

Static pruning removes weights for every input; these methods skip weights *per token*:

- ``teal``  TEAL (Liu et al., ICLR'25, arXiv 2408.14690): magnitude thresholds zero a fraction
  of every linear layer's *input* activations; the weight columns (input channels) of zeroed
  activations are not read. Reported: 40-50% model-wide sparsity on Llama-2/3 and Mistral
  7B-70B, 1.53x / 1.8x single-batch decode at 40% / 50% (abstract; Together AI blog).
- ``dejavu`` Deja Vu (Liu et al., ICML'23): small predictors choose, per token, the attention
  heads and MLP neurons to compute; only their weight rows/columns are read. Reported: OPT-175B
  decode over 2x faster than FasterTransformer (abstract); ReLU MLPs of OPT are ~95% sparse
  (Together AI TEAL blog), which is what makes it work.
- ``naee``  NAEE (Lu et al., ACL'24, "Not All Experts are Equal"): prune MoE experts (Mixtral
  8 -> 6 per layer) and optionally skip a token's second expert when its router weight is small.
  Reported (course L3): 25% fewer expert parameters, ~1.2x faster, -2.9 points on average.

Every method answers, for each role of a linear layer (``qkv``, ``o``, ``mlp_in``, ``mlp_out``),
which fraction of its output rows (n) and input columns (k) a step reads, given the number of
tokens in the step: a channel is read if *any* token in the step needs it, so with T tokens
and a per-token keep probability p the read fraction is 1 - (1 - p)^T (independent tokens). At
batch 1 decode that is p; for a prefill of thousands of tokens it is 1, which is why all of
these help decode and not prefill. Methods id strings take parameters as
``name:key=value,key=value``; every parameter has the default documented below.

Not modelled yet: PowerInfer (GPU/CPU neuron split) and LLM in a Flash (flash-resident weights).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from simulator.errors import SimulatorError

ROLES = ("qkv", "o", "mlp_in", "mlp_out")


def union_keep(per_token_keep, tokens):
    """Fraction of channels read when each of ``tokens`` tokens needs a channel with
    probability ``per_token_keep`` independently."""
    p = np.clip(np.asarray(per_token_keep, float), 0.0, 1.0)
    return 1.0 - (1.0 - p) ** np.asarray(tokens, float)


@dataclass(frozen=True)
class DynamicMethod:
    """Base: keeps everything. Subclasses override ``keep`` and may add predictor GEMMs."""

    name = "none"

    def keep(self, role: str, tokens) -> tuple:
        """(n fraction, k fraction) of the role's weight matrix read by a step of ``tokens``."""
        return 1.0, 1.0

    def predictor_gemms(self, cfg, tp: int = 1) -> list:
        """Extra per-layer GEMMs as (op, n, k): the predictor's weights, run on every token
        (under tensor parallelism each GPU predicts only its own heads and neurons)."""
        return []

    def transform_model(self, cfg):
        return cfg

    def experts_per_token(self, cfg) -> float:
        return float(cfg.moe.experts_per_token)

    @property
    def text(self) -> str:
        return self.name

    def describe(self) -> str:
        params = ", ".join(f"{f.name}={getattr(self, f.name)}" for f in fields(self))
        return f"{self.name}({params})"


@dataclass(frozen=True)
class Teal(DynamicMethod):
    sparsity: float = 0.5  # model-wide activation sparsity; TEAL's headline points are 0.4 and 0.5

    name = "teal"

    def __post_init__(self):
        _fraction("teal", "sparsity", self.sparsity)

    def keep(self, role, tokens):
        return 1.0, union_keep(1.0 - self.sparsity, tokens)  # input channels of zero activations


@dataclass(frozen=True)
class DejaVu(DynamicMethod):
    # JUDGEMENT defaults: OPT's ReLU MLP activations are ~95% zero (Together AI TEAL blog); Deja Vu
    # predicts a superset, so 85% of neurons are skipped here; about half of the heads.
    mlp_sparsity: float = 0.85
    head_sparsity: float = 0.5
    predictor_rank: int = 1000  # JUDGEMENT: a low-rank two-layer predictor per block, hidden -> r -> units

    name = "dejavu"

    def __post_init__(self):
        _fraction("dejavu", "mlp_sparsity", self.mlp_sparsity)
        _fraction("dejavu", "head_sparsity", self.head_sparsity)
        if int(self.predictor_rank) != self.predictor_rank or self.predictor_rank < 1:
            raise SimulatorError(f"--dynamic dejavu: predictor_rank must be a whole number >= 1, got {self.predictor_rank}")

    def keep(self, role, tokens):
        if role == "qkv":
            return union_keep(1.0 - self.head_sparsity, tokens), 1.0
        if role == "o":
            return 1.0, union_keep(1.0 - self.head_sparsity, tokens)
        if role == "mlp_in":
            return union_keep(1.0 - self.mlp_sparsity, tokens), 1.0
        return 1.0, union_keep(1.0 - self.mlp_sparsity, tokens)

    def predictor_gemms(self, cfg, tp: int = 1):
        r = int(self.predictor_rank)
        return [("predict_heads_in", r, cfg.hidden), ("predict_heads_out", cfg.heads / tp, r),
                ("predict_mlp_in", r, cfg.hidden), ("predict_mlp_out", cfg.ffn / tp, r)]


@dataclass(frozen=True)
class Naee(DynamicMethod):
    keep_experts: int = 6          # NAEE's Mixtral setting: 8 -> 6 experts per layer
    skip_second_expert: float = 0.0  # fraction of tokens whose second expert is skipped dynamically

    name = "naee"

    def __post_init__(self):
        if int(self.keep_experts) != self.keep_experts or self.keep_experts < 1:
            raise SimulatorError(f"--dynamic naee: keep_experts must be a whole number >= 1, got {self.keep_experts}")
        _fraction("naee", "skip_second_expert", self.skip_second_expert)

    def transform_model(self, cfg):
        if cfg.moe is None:
            raise SimulatorError(f"--dynamic naee: {cfg.id} has no experts to prune (not a mixture-of-experts model)")
        if self.keep_experts > cfg.moe.experts or self.keep_experts < cfg.moe.experts_per_token:
            raise SimulatorError(f"--dynamic naee: keep_experts must lie between top-k "
                                 f"{cfg.moe.experts_per_token} and {cfg.moe.experts}, got {self.keep_experts}")
        return cfg.model_copy(update={"moe": cfg.moe.model_copy(update={"experts": int(self.keep_experts)})})

    def experts_per_token(self, cfg) -> float:
        """Expected experts a token runs: top-k minus the skipped second expert."""
        return cfg.moe.experts_per_token - (self.skip_second_expert if cfg.moe.experts_per_token >= 2 else 0.0)


def _fraction(method, key, value):
    if not 0.0 <= float(value) < 1.0:
        raise SimulatorError(f"--dynamic {method}: {key} must lie in [0, 1), got {value}")


REGISTRY: dict[str, type[DynamicMethod]] = {cls.name: cls for cls in (Teal, DejaVu, Naee)}


def parse_dynamic(text: "str | DynamicMethod | None") -> DynamicMethod:
    """'teal', 'teal:sparsity=0.4', 'dejavu:mlp_sparsity=0.9,head_sparsity=0.3', 'naee:keep_experts=6'."""
    if text is None or text == "none":
        return DynamicMethod()
    if isinstance(text, DynamicMethod):
        return text
    name, _, args = str(text).strip().lower().partition(":")
    if name not in REGISTRY:
        raise SimulatorError(f"--dynamic {text!r}: unknown method {name!r}; known: {', '.join(REGISTRY)}")
    cls = REGISTRY[name]
    known = {f.name: f.type for f in fields(cls)}
    kwargs = {}
    for item in filter(None, args.split(",")):
        key, eq, value = item.partition("=")
        if not eq or key not in known:
            raise SimulatorError(f"--dynamic {text!r}: {item!r} is not key=value with key in "
                                 f"{', '.join(known) or '(no parameters)'}")
        try:
            kwargs[key] = int(value) if known[key] in (int, "int") else float(value)
        except ValueError:
            raise SimulatorError(f"--dynamic {text!r}: {key}={value!r} is not a number") from None
    return cls(**kwargs)

"""Course claims about training and pruning cost (area ``model``): compute by the 6ND rule.

sparsim is an inference simulator; it does not price a training run kernel by kernel. Training
claims are checked with the standard dense-transformer count instead: a training token costs
6 FLOP per parameter (2 forward, 4 backward; Kaplan et al., arXiv:2001.08361, section 2.1), a
forward-only token (a distillation teacher) 2 FLOP per parameter. Parameters come from the model
zoo (``Model.parameters``), peaks from the device specs, and the sustained fraction of peak (MFU)
from one published large-scale run, fixed here for every claim:

- ``TRAINING_MFU`` = 0.40: the Llama 3 paper (arXiv:2407.21783, Table 4) reports 38-43% BF16 MFU
  for its 405B pre-training on 8,192-16,384 H100s. Smaller models on fewer GPUs reach similar or
  higher MFU, so the times below are, if anything, long.

Iterative magnitude pruning (IMP) is counted in rounds: pruning a fraction ``p`` of the remaining
weights per round reaches sparsity ``s`` after ``ln(1 - s) / ln(1 - p)`` rounds, each a full
retraining.
"""

from __future__ import annotations

import math

from simulator.course import Check, Claim, evaluates
from simulator.hardware.spec import load_hw
from simulator.formats.models import load_model

TRAINING_MFU = 0.40        # Llama 3 paper (arXiv:2407.21783) Table 4: 38-43% BF16 MFU on H100
TRAINING_HW = "h100"       # the slides' training claims name H100s
TRAINING_DTYPE = "bf16"
SECONDS_PER_WEEK = 7 * 24 * 3600.0
SECONDS_PER_DAY = 24 * 3600.0


def _gpu_seconds(flop: float) -> tuple[float, str]:
    """GPU-seconds for ``flop`` on one TRAINING_HW at TRAINING_MFU, and how that was computed."""
    peak = load_hw(TRAINING_HW).matrix_peak_flop_per_s(TRAINING_DTYPE)
    sustained = peak * TRAINING_MFU
    return flop / sustained, (f"{TRAINING_HW} {TRAINING_DTYPE} dense peak {peak / 1e12:.1f} TFLOP/s x MFU "
                              f"{TRAINING_MFU:.2f} = {sustained / 1e12:.1f} TFLOP/s")


def _pretrain_flop(model: str, tokens: float) -> tuple[float, int]:
    params = load_model(model).parameters()
    return 6.0 * params * tokens, params


@evaluates("l2-intro-70b-pretrain-8k-h100-weeks")
def pretrain_weeks(claim: Claim) -> Check:
    s = claim.setup
    flop, params = _pretrain_flop(s["model"], float(s["tokens"]))
    gpu_s, how = _gpu_seconds(flop)
    weeks = gpu_s / int(s["gpus"]) / SECONDS_PER_WEEK
    return Check(weeks, f"6ND: 6 x {params / 1e9:.1f}B params x {float(s['tokens']) / 1e12:.0f}T tokens on "
                        f"{s['gpus']} x {how}",
                 arithmetic=f"6 x {params:.4g} x {float(s['tokens']):.3g} = {flop:.3g} FLOP; / {s['gpus']} GPUs / "
                            f"sustained rate = {gpu_s / int(s['gpus']) / 3600:,.0f} h = {weeks:.2f} weeks "
                            f"({gpu_s / 3600 / 1e6:.2f}M GPU-hours)")


def _distill(s: dict) -> tuple[float, float, str]:
    """(distillation FLOP, scratch FLOP of the teacher, arithmetic) for a pruned student distilled on
    ``tokens`` tokens: the student trains (6 N_s), the teacher runs forward only (2 N_t)."""
    student = load_model(s["student"]).parameters()
    teacher = load_model(s["teacher"]).parameters()
    tokens, scratch_tokens = float(s["tokens"]), float(s["scratch_tokens"])
    flop = (6.0 * student + 2.0 * teacher) * tokens
    scratch = 6.0 * teacher * scratch_tokens
    text = (f"(6 x {student / 1e9:.2f}B student + 2 x {teacher / 1e9:.2f}B teacher) x {tokens / 1e9:.0f}B tokens = "
            f"{flop:.3g} FLOP")
    return flop, scratch, text


@evaluates("l2-d2-minitron-gpu-days")
def minitron_gpu_days(claim: Claim) -> Check:
    flop, _, text = _distill(claim.setup)
    gpu_s, how = _gpu_seconds(flop)
    days = gpu_s / SECONDS_PER_DAY
    return Check(days, f"distillation compute at the slide's own token count on {how}",
                 arithmetic=f"{text}; / sustained rate = {days:.1f} GPU-days")


@evaluates("l2-d2-minitron-5-10x-cheaper")
def minitron_saving(claim: Claim) -> Check:
    s = claim.setup
    flop, scratch, text = _distill(s)
    return Check(scratch / flop, f"6ND: training {s['teacher']} from scratch on {float(s['scratch_tokens']) / 1e12:.0f}T "
                                 f"tokens / distilling {s['student']} on {float(s['tokens']) / 1e9:.0f}B tokens",
                 arithmetic=f"scratch 6 x N_teacher x {float(s['scratch_tokens']):.3g} = {scratch:.3g} FLOP; {text}; "
                            f"ratio {scratch / flop:,.0f}")


@evaluates("l2-c-minitron-40x-tokens")
def minitron_token_ratio(claim: Claim) -> Check:
    s = claim.setup
    ratio = float(s["scratch_tokens"]) / float(s["tokens"])
    return Check(ratio, f"token count only: {s['teacher']}'s pre-training {float(s['scratch_tokens']) / 1e12:.0f}T "
                        f"tokens / the slide's {float(s['tokens']) / 1e9:.0f}B distillation tokens",
                 arithmetic=f"{float(s['scratch_tokens']):.3g} / {float(s['tokens']):.3g} = {ratio:,.0f}")


@evaluates("l1-a4-imp-5-20x-training")
def imp_rounds(claim: Claim) -> Check:
    s = claim.setup
    p, target = float(s["prune_per_round"]), float(s["sparsity"])
    rounds = math.log(1.0 - target) / math.log(1.0 - p)
    low, high = (math.log(1.0 - x) / math.log(1.0 - p) for x in s["sparsity_span"])
    return Check(rounds, f"IMP pruning {p:.0%} of the remaining weights per round (Frankle & Carbin, arXiv:1803.03635), "
                         f"one full retraining per round, to {target:.0%} sparsity",
                 arithmetic=f"ln(1 - {target:g}) / ln(1 - {p:g}) = {rounds:.1f} rounds = {rounds:.1f}x one dense "
                            f"training; {s['sparsity_span'][0]:.0%} sparsity takes {low:.1f}, "
                            f"{s['sparsity_span'][1]:.0%} takes {high:.1f}")

"""The course's quantitative claims, each recomputed by sparsim: the course ledger.

``workloads/course/claims.yaml`` holds every number the course text states, verbatim, with the
slide line it comes from. Each *checkable* claim has an evaluator here (one module per area:
``facts`` for hardware facts and GEMMs, ``storage`` for bytes and EIE, ``models`` for whole
models and dynamic sparsity, ``kv`` for KV-cache methods, ``training`` for training cost by the
6ND rule) that computes the same quantity from the specs and cost models and says what it
computed. The ledger compares the two:

    claims.yaml --evaluator--> Check(value, basis) --verdict--> DataFrame --> CLI / docs/course.md

Verdicts. The slide bounds the quantity (``compare``): it states a value (``equal``), an
``exact`` value (a count, a bit width, a structural fact: right or wrong, no tolerance), a
ceiling or floor (``at_most`` / ``at_least``) or a ``range`` [low, high]. The distance ``d`` is
symmetric in ratio, ``d = max(v/t, t/v) - 1`` from sparsim's value ``v`` to the nearest value
``t`` the slide allows (0 inside what it allows), so 2x too high and 2x too low are equally far:

- ``agrees``: a value within 10% (d <= 0.10: a roofline model cannot resolve finer than that
  without calibration); an ``exact`` value equal; a bound or range met (d = 0: the slide's
  bound already is its tolerance);
- ``near``: d <= 0.25 (an ``exact`` claim is never near: it is right or it differs);
- ``differs``: otherwise; the claim's ``note``, the evaluator's ``basis`` and docs/course.md say why;
- ``not modelled``: the evaluator declines (``value`` None) and its basis says what is missing.

The thresholds are fixed here, once, for every claim; they are not chosen per claim.

Each row also carries its ``relation`` (``RELATIONS``: approx, exact, at most, at least, range), a
one-line ``reason`` (the claim's ``reason`` or its note's first sentence; a "differs" starts with
its ``cause``, one of ``CAUSES``) and the ``arithmetic`` of byte-level checks (``Check.arithmetic``).
A claim with a ``source`` quotes a paper's result: its verdict is the quote's (``Source.verdict``,
what the paper says for that setting), and sparsim's own verdict is ``sparsim_verdict``, shown in
the reason as a second line; ``judged`` says which of the two the verdict is about ("quote" or
"sparsim"), so a table that shows one verdict beside sparsim's number can say so.
"""

from __future__ import annotations

import importlib
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Optional, Union

import pandas as pd
from pydantic import Field, model_validator

from simulator.core.datafiles import Strict, load_yaml
from simulator.core.errors import SimulatorError
from simulator.core.paths import workloads_path

AGREES, NEAR = 0.10, 0.25
ROUNDING = 1e-9  # floating-point slack at the band edges, not a tolerance
VERDICTS = ("agrees", "near", "differs", "not modelled")
AREAS = ("hw-fact", "gemm", "model", "kv", "dynamic", "eie", "storage", "other")
# Evaluator modules, imported on first use; each registers the ids it answers.
MODULES = ("simulator.course.facts", "simulator.course.storage", "simulator.course.models",
           "simulator.course.kv", "simulator.course.training")


CAUSES = ("slide error", "unit mix GB vs GiB", "different assumption", "uncalibrated efficiency",
          "misquoted source", "model limit")
RELATIONS = {"equal": "approx", "exact": "exact", "at_most": "at most", "at_least": "at least", "range": "range"}


class Source(Strict):
    """What the cited paper says for the quoted number (its abstract or table), and whether the quote matches."""

    ref: str = Field(min_length=1)       # paper + where (abstract, Table n), with an arXiv id a reader can find
    says: str = Field(min_length=1)      # the paper's own words or number
    verdict: Literal["agrees", "near", "differs"]


class Claim(Strict):
    id: str = Field(pattern=r"^l[123]-[a-z0-9]+(-[a-z0-9.]+)*$")
    lecture: Literal[1, 2, 3]
    part: Optional[str] = None
    line: int = Field(gt=0)
    quote: str = Field(min_length=1)
    claim: str = Field(min_length=1)
    quantity: Optional[str] = None
    value: Union[float, list[float]]
    unit: str
    setup: Optional[dict] = None
    area: Literal[AREAS]
    checkable: bool
    compare: Optional[Literal["equal", "exact", "at_most", "at_least", "range"]] = None
    note: Optional[str] = None
    # one line a student can follow; default: the note's first sentence
    reason: Optional[str] = None
    # why a claim differs (required for every "differs", tests/test_course_ledger.py)
    cause: Optional[Literal[CAUSES]] = None
    # a quoted paper result: the verdict is about the quote, sparsim's estimate is a second line
    source: Optional["Source"] = None

    @model_validator(mode="after")
    def _compare_fits_value(self):
        if isinstance(self.value, list):
            if len(self.value) != 2 or not self.value[0] < self.value[1]:
                raise ValueError(f"a range value is [low, high] with low < high, got {self.value}")
            if self.compare not in (None, "range"):
                raise ValueError(f"compare {self.compare!r} needs a single value, got the range {self.value}")
        elif self.compare == "range":
            raise ValueError(f"compare 'range' needs [low, high], got {self.value}")
        values = self.value if isinstance(self.value, list) else [self.value]
        if self.checkable and not all(math.isfinite(v) and v > 0 for v in values):
            raise ValueError(f"a checkable claim's value must be > 0 (distances are ratios), got {self.value}")
        return self

    @property
    def comparison(self) -> str:
        return self.compare or ("range" if isinstance(self.value, list) else "equal")


Claim.model_rebuild()


class Claims(Strict):
    claims: list[Claim]


@dataclass(frozen=True)
class Check:
    """sparsim's answer to one claim: ``value`` in the claim's unit (None: not modelled) and
    ``basis``, one line saying what was computed, on which model, device and setup."""

    value: Optional[float]
    basis: str
    arithmetic: Optional[str] = None  # the byte-level (or count) arithmetic, for people


Evaluator = Callable[[Claim], Check]
LEDGER_COLUMNS = ("id", "lecture", "part", "line", "area", "claim", "quote", "quantity", "unit", "slide", "compare",
                  "sparsim", "distance", "verdict", "basis", "relation", "reason", "arithmetic",
                  "sparsim_verdict", "judged")
EVALUATORS: dict[str, Evaluator] = {}


def evaluates(*ids: str):
    """Register the decorated function as the evaluator of the claims ``ids``."""

    def register(fn: Evaluator) -> Evaluator:
        for claim_id in ids:
            if claim_id in EVALUATORS:
                raise RuntimeError(f"claim {claim_id} has two evaluators")
            EVALUATORS[claim_id] = fn
        return fn

    return register


def claims_path() -> Path:
    return workloads_path("course", "claims.yaml")


def load_claims() -> list[Claim]:
    claims = load_yaml(claims_path(), Claims).claims
    seen = set()
    for c in claims:
        if c.id in seen:
            raise SimulatorError(f"{claims_path()}: claim id {c.id!r} appears twice")
        seen.add(c.id)
    return claims


def evaluators() -> dict[str, Evaluator]:
    for module in MODULES:
        importlib.import_module(module)
    return EVALUATORS


def _ratio_distance(value: float, target: float) -> float:
    """max(v/t, t/v) - 1: how many times off, minus one (inf when sparsim's value is 0)."""
    if value == target:
        return 0.0
    if value <= 0:
        return math.inf
    return max(value / target, target / value) - 1.0


def distance(claim: Claim, value: float) -> float:
    """Distance from ``value`` to what the claim allows (0 inside it), symmetric in ratio."""
    how = claim.comparison
    if how == "range":
        low, high = claim.value
        return _ratio_distance(value, min(max(value, low), high))
    target = float(claim.value)
    if how == "at_most":
        return 0.0 if value <= target else _ratio_distance(value, target)
    if how == "at_least":
        return 0.0 if value >= target else _ratio_distance(value, target)
    return _ratio_distance(value, target)


def verdict(claim: Claim, value: Optional[float]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "not modelled"
    d = distance(claim, value) - ROUNDING  # a value exactly on a band's edge (10 vs 8: 1.25) is inside it
    if claim.comparison == "exact":
        return "agrees" if d <= 0.0 else "differs"
    if claim.comparison in ("at_most", "at_least", "range"):
        return "agrees" if d <= 0.0 else "near" if d <= NEAR else "differs"
    return "agrees" if d <= AGREES else "near" if d <= NEAR else "differs"


def evaluate(claim: Claim) -> Check:
    fn = evaluators().get(claim.id)
    if fn is None:
        raise SimulatorError(f"claim {claim.id} is marked checkable but no evaluator answers it")
    check = fn(claim)
    if check.value is not None and not (math.isfinite(check.value) and check.value >= 0):
        raise SimulatorError(f"claim {claim.id}: evaluator returned {check.value!r}, not a finite value >= 0")
    return check


def _first_sentence(text: str) -> str:
    head = re.split(r"(?<=[.])\s", text.strip(), maxsplit=1)[0]
    return head if len(head) <= 240 else head[:237] + "..."


def reason_text(claim: Claim, final: str, own: str, check: Check) -> str:
    """One line a student can follow: why this verdict (and its cause when it differs)."""
    if claim.source is not None:
        src = claim.source
        text = f"quote {final} with {src.ref}: {src.says}"
        if final != "agrees" and claim.cause:
            text = f"{claim.cause}: " + text
        return text + f"; sparsim's own estimate: {format_value(check.value, claim.unit)} ({own})"
    why = claim.reason or _first_sentence(claim.note or check.basis)
    if final == "differs" and claim.cause:
        return f"{claim.cause}: {why}"
    return why


def ledger(area: "str | None" = None, ids: "list[str] | None" = None) -> pd.DataFrame:
    """One row per checkable claim: what the slide says, what sparsim computes, the verdict."""
    claims = [c for c in load_claims() if c.checkable]
    if area is not None:
        if area not in AREAS:
            raise SimulatorError(f"--area {area!r}: allowed {', '.join(AREAS)}")
        claims = [c for c in claims if c.area == area]
    if ids:
        known = {c.id for c in claims}
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise SimulatorError(f"--id {unknown[0]!r}: not a checkable claim"
                                 + (f" in area {area}" if area else "") + "; `sparsim course` lists them")
        claims = [c for c in claims if c.id in ids]
    rows = []
    for c in claims:
        check = evaluate(c)
        own = verdict(c, check.value)
        final = c.source.verdict if c.source is not None else own
        rows.append({
            "id": c.id, "lecture": c.lecture, "part": c.part, "line": c.line, "area": c.area,
            "claim": c.claim, "quote": c.quote, "quantity": c.quantity, "unit": c.unit,
            "slide": c.value, "compare": c.comparison, "sparsim": check.value,
            "distance": None if check.value is None else distance(c, check.value),
            "verdict": final, "basis": check.basis,
            "relation": RELATIONS[c.comparison], "reason": reason_text(c, final, own, check),
            "arithmetic": check.arithmetic or "", "sparsim_verdict": own,
            "judged": "quote" if c.source is not None else "sparsim",
        })
    return pd.DataFrame(rows, columns=list(LEDGER_COLUMNS))


# ---- formatting at the edge (CLI, docs) ---------------------------------------------------------

def _unit_formats() -> dict:
    """The units written specially, each with its formatter (every other unit: "4.2 GPU-days")."""
    from simulator.report.text import _DECIMAL, _scaled, fmt_bytes, fmt_time

    return {
        "B": fmt_bytes,
        "s": fmt_time,
        "B/s": lambda v: _scaled(v, "B/s", _DECIMAL),
        "ratio": lambda v: f"{v:,.0f}×" if v >= 1000 else f"{v:.3g}×",
        "fraction": lambda v: f"{v * 100:.3g}%",
        "tokens/s": lambda v: f"{v:.3g} tok/s",
        "count": lambda v: f"{v:,.0f}" if v == round(v) else f"{v:,.4g}",
    }


def format_value(value, unit: str) -> str:
    """A claim's or sparsim's value in the claim's unit, for people ("1.53×", "140 GB", "42 ms")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"  # not modelled (pandas holds a missing value as NaN)
    formats = _unit_formats()
    if isinstance(value, (list, tuple)):
        if unit not in formats:  # "100 – 500 GPU-days": a plain unit is written once
            return f"{float(value[0]):.4g} – {float(value[1]):.4g} {unit}"
        low, high = (format_value(v, unit) for v in value)
        return f"{low} – {high}"
    value = float(value)
    return formats[unit](value) if unit in formats else f"{value:.4g} {unit}"


def bound_text(compare: str, slide, unit: str) -> str:
    """What the slide allows, e.g. "≤ 1.3×", "≥ 100", "1.5× – 1.8×", "2×"."""
    text = format_value(slide, unit)
    return {"at_most": f"≤ {text}", "at_least": f"≥ {text}", "exact": f"= {text}"}.get(compare, text)


def summary_counts(table: pd.DataFrame) -> dict:
    return {v: int((table["verdict"] == v).sum()) for v in VERDICTS}


def summary_line(table: pd.DataFrame) -> str:
    counts = summary_counts(table)
    return (f"{len(table)} checkable claim(s): " + ", ".join(f"{counts[v]} {v}" for v in VERDICTS)
            + f" (agrees: a value within {AGREES:.0%}, an exact value equal, a bound or range met; "
              f"near: within {NEAR:.0%})")


def ledger_markdown(table: "pd.DataFrame | None" = None) -> str:
    """The ledger as a markdown table (docs/course.md holds it between markers)."""
    table = ledger() if table is None else table
    lines = ["| claim | slide line | the slide says | relation | sparsim | verdict | why | what sparsim computed |",
             "|---|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        cell = lambda s: str(s).replace("|", "\\|")  # noqa: E731
        lines.append(f"| `{r.id}` | {r.line} | {cell(r.quote)} ({bound_text(r.compare, r.slide, r.unit)}) | "
                     f"{r.relation} | {format_value(r.sparsim, r.unit)} | {r.verdict} | {cell(r.reason)} | "
                     f"{cell(r.basis + ('; ' + r.arithmetic if r.arithmetic else ''))} |")
    lines.append("")
    lines.append(summary_line(table) + ".")
    return "\n".join(lines)

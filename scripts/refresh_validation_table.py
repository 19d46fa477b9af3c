"""Rewrite docs/validation.md's GPU per-class table (between its markers) from the committed
traces and calibrations, and check every class against workloads/validation/gpu-classes.yaml.

    python scripts/refresh_validation_table.py          # rewrite in place
    python scripts/refresh_validation_table.py --check  # change nothing; exit 1 if the table is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from simulator.truth import calibration, validation  # noqa: E402

DOC = ROOT / "docs" / "validation.md"
BOUNDS = ROOT / "workloads" / "validation" / "gpu-classes.yaml"
BEGIN, END = "<!-- gpu-classes:begin -->", "<!-- gpu-classes:end -->"
DEVICES = ("a100-sxm4-80gb", "h100-sxm5-80gb", "a100-pcie-80gb")
TRANSFERS = (("a100-sxm4-80gb", "h100-sxm5-80gb"), ("h100-sxm5-80gb", "a100-sxm4-80gb"))


def results() -> dict[str, list[dict]]:
    """Scope ('<device>' or '<fit>-><target>') -> class rows."""
    out = {hw: validation.validate(hw)["classes"] for hw in DEVICES}
    for fit_on, target in TRANSFERS:
        out[f"{fit_on}->{target}"] = calibration.transfer(fit_on, target)["classes"]
    return out


def verdicts(scopes: dict) -> dict[tuple[str, str], str]:
    bounds = yaml.safe_load(BOUNDS.read_text())["bounds"]
    out = {}
    for scope, classes in bounds.items():
        got = {c["class"]: c for c in scopes.get(scope, [])}
        for cls, bound in classes.items():
            row = got.get(cls)
            ok = row is not None and row["median_ape"] <= bound["median_ape"] and (
                "p90_ape" not in bound or row["p90_ape"] <= bound["p90_ape"])
            limit = f"≤ {bound['median_ape']:.0%}" + (f", p90 ≤ {bound['p90_ape']:.0%}" if "p90_ape" in bound else "")
            out[(scope, cls)] = f"met ({limit})" if ok else f"**MISSED** ({limit})"
    return out


def table(scopes: dict) -> str:
    marks = verdicts(scopes)
    lines = ["| scope | class | split | n | median APE | p90 APE | bias | bound |", "|---|---|---|---|---|---|---|---|"]
    for scope, classes in scopes.items():
        for c in classes:
            if c.get("median_ape") is None:  # a class no cost model covers yet: counted, not scored
                lines.append(f"| {scope} | {c['class']} | {c['split']} | {c['n']} | not modelled | | | |")
                continue
            lines.append(f"| {scope} | {c['class']} | {c['split']} | {c['n']} | {c['median_ape']:.1%} | "
                         f"{c['p90_ape']:.1%} | {c['bias']:+.1%} | {marks.get((scope, c['class']), '')} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    text = DOC.read_text()
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{BEGIN}\n{table(results())}\n{END}{tail}"
    if args.check:
        if new != text:
            print("docs/validation.md: the GPU per-class table is stale; run scripts/refresh_validation_table.py")
            return 1
        return 0
    DOC.write_text(new)
    print("rewrote the GPU per-class table in docs/validation.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

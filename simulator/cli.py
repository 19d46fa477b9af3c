"""The ``sparsim`` command. Units are converted here and in report.py only.

Every user mistake ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import sys

import numpy as np

from simulator.errors import SimulatorError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse would print the usage block too)
        raise SimulatorError(f"{self.prog}: {message}")


def _int_list(flag: str):
    """Parse '16', '1,16,256' or '1:4096:x2' (geometric) / '128:1024:+128' (arithmetic)."""

    def parse(text: str):
        values = []
        for part in text.split(","):
            part = part.strip()
            try:
                if part.count(":") == 2:
                    start, stop, step = part.split(":")
                    start, stop = int(start), int(stop)
                    if step.startswith("x") and float(step[1:]) > 1:
                        v = start
                        while v <= stop:
                            values.append(v)
                            v = int(math.ceil(v * float(step[1:])))
                    elif step.startswith("+") and int(step[1:]) > 0:
                        values.extend(range(start, stop + 1, int(step[1:])))
                    else:
                        raise ValueError
                else:
                    values.append(int(part))
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{part!r} is not a whole number, a list 'a,b,c' or a range "
                    "'start:stop:x2' / 'start:stop:+step'"
                ) from None
        for v in values:
            if v < 1:
                raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {v}")
        return values

    return parse


def _json_records(df):
    records = []
    for row in df.to_dict(orient="records"):
        records.append({key: (value.item() if isinstance(value, np.generic) else value)
                        for key, value in row.items()})
    return records


def _gemm_frames(args):
    from simulator.gemm import estimate_gemm

    shapes = list(itertools.product(args.m, args.n, args.k))
    m, n, k = (np.array(col) for col in zip(*shapes))
    df = estimate_gemm(args.hw, m, n, k, args.dtype, args.sparsity)
    dense = estimate_gemm(args.hw, m, n, k, args.dtype, "dense") if args.sparsity != "dense" else None
    return df, dense


def cmd_gemm(args) -> int:
    from simulator.hardware import load_hw
    from simulator.report import explain_gemm, fmt_time

    hw = load_hw(args.hw)
    df, dense = _gemm_frames(args)
    if args.json:
        records = _json_records(df)
        if dense is not None:
            for rec, dense_time in zip(records, dense["time_s"]):
                rec["dense_time_s"] = float(dense_time)
                rec["speedup_vs_dense"] = float(dense_time / rec["time_s"])
        print(json.dumps(records[0] if len(records) == 1 else records, indent=None if len(records) > 1 else 2))
        return 0
    if len(df) == 1:
        print(explain_gemm(df.iloc[0], hw, None if dense is None else dense.iloc[0]))
        if df["format"].iloc[0].startswith("unstructured"):
            print(_crossover_line(args, hw))
        return 0
    table = df[["m", "n", "k", "kernel"]].astype({"m": int, "n": int, "k": int})
    for col in ("time_s", "compute_time_s", "memory_time_s"):
        table[col.removesuffix("_s")] = df[col].map(fmt_time)
    table["bound"] = df["bound"]
    if dense is not None:
        table["vs_dense"] = (dense["time_s"] / df["time_s"]).map(lambda x: f"{x:.2f}x")
    print(f"{len(df)} GEMMs on {hw.id}, {args.dtype}, {args.sparsity}")
    print(table.to_string(index=False))
    return 0


def _crossover_line(args, hw) -> str:
    from simulator.gemm import crossover_sparsity

    parts = []
    for storage in ("masked", "csr", "bitmap"):
        try:
            row = crossover_sparsity(hw, args.m, args.n, args.k, args.dtype, storage).iloc[0]
        except SimulatorError:  # e.g. no tensor cores for the bitmap kernel on this device
            continue
        parts.append(f"{storage} from {row.crossover_sparsity:.0%}" if row.beats_dense else f"{storage} never")
    return "  crossover     sparsity at which each unstructured kernel beats dense here: " + ", ".join(parts)


def cmd_hw_list(args) -> int:
    from simulator.hardware import list_hw

    specs = list_hw()
    if args.json:
        print(json.dumps([{"id": s.id, "name": s.name, "kind": s.kind, "architecture": s.architecture,
                           "aliases": s.aliases} for s in specs], indent=2))
        return 0
    width = max(len(s.id) for s in specs)
    for s in specs:
        bf16 = s.matrix_peak_flop_per_s("bf16") or s.vector_peak_flop_per_s("fp32")
        aliases = f"  (alias: {', '.join(s.aliases)})" if s.aliases else ""
        print(f"{s.id:<{width}}  {s.kind:<3}  {s.memory.capacity_GiB:>6g} GiB  "
              f"{s.memory.bandwidth_GBps / 1000:>6.3g} TB/s  {bf16 / 1e12:>8.4g} TFLOP/s "
              f"{'bf16' if s.matrix_peak_flop_per_s('bf16') else 'fp32'}  {s.name}{aliases}")
    return 0


def cmd_hw_show(args) -> int:
    import yaml

    from simulator.hardware import load_hw

    spec = load_hw(args.name)
    data = spec.model_dump(mode="json", exclude_none=True)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True).rstrip())
    return 0


def _headless_plots():
    import matplotlib

    matplotlib.use("Agg")  # the CLI writes files and never opens windows


def cmd_roofline(args) -> int:
    _headless_plots()
    from simulator.plots import roofline_figure

    df, _ = _gemm_frames(args)
    fig = roofline_figure(args.hw, df, dtype=args.dtype)
    fig.savefig(args.out, dpi=150, bbox_inches="tight")
    print(f"wrote {args.out} ({len(df)} point(s) on {df['device'].iloc[0]})")
    return 0


def cmd_tour(args) -> int:
    from simulator.tour import run_tour

    if args.plots:
        _headless_plots()
    print(run_tour(plots_dir=args.plots))
    return 0


def _add_gemm_args(p, require_out=False):
    p.add_argument("--hw", default="h100", help="device id, alias or path to a spec YAML (default h100)")
    p.add_argument("-m", type=_int_list("-m"), required=True,
                   help="tokens (rows of x); list '1,16' or range '1:4096:x2'")
    p.add_argument("-n", type=_int_list("-n"), required=True, help="output features (rows of W)")
    p.add_argument("-k", type=_int_list("-k"), required=True, help="input features (reduction)")
    p.add_argument("--dtype", default="bf16", help="fp32, tf32, fp16, bf16, fp8, int8, fp4, int4")
    p.add_argument("--sparsity", default="dense",
                   help="dense | 2:4 | N:M | unstructured:0.9[:csr|bitmap|masked] | block:32:0.9 | "
                        "structured:0.36[:n|k]")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sparsim", description="Roofline and hardware simulator for sparse inference.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)

    p = sub.add_parser("gemm", help="estimate y = x.W^T for one or many shapes")
    _add_gemm_args(p)
    p.add_argument("--json", action="store_true", help="print JSON (one object, or a list for sweeps)")
    p.set_defaults(func=cmd_gemm)

    p = sub.add_parser("roofline", help="roofline chart with the given GEMMs as points")
    _add_gemm_args(p)
    p.add_argument("--out", required=True, help="image file to write (.png, .svg, .pdf)")
    p.set_defaults(func=cmd_roofline)

    hw = sub.add_parser("hw", help="list or show hardware specs")
    hw_sub = hw.add_subparsers(dest="hw_command", parser_class=_Parser, required=True)
    p = hw_sub.add_parser("list", help="every shipped device")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hw_list)
    p = hw_sub.add_parser("show", help="one device's spec with sources")
    p.add_argument("name", help="device id, alias or spec path")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_hw_show)

    p = sub.add_parser("tour", help="headline numbers from the course, computed on built-in data")
    p.add_argument("--plots", metavar="DIR", help="also write the tour's figures into DIR")
    p.set_defaults(func=cmd_tour)
    return parser


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SimulatorError as err:
        print(f"sparsim: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sparsim ... | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())

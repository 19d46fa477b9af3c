"""``sparsim figures``: every quantitative figure of the course (simulator/report/figures.py) into a folder."""

from __future__ import annotations

import sys

from simulator.cli.util import _headless_plots


def cmd_figures(args) -> int:
    _headless_plots()
    from simulator.report.figures import write_figures

    names = [n.strip() for n in args.only.split(",")] if args.only else None
    written = write_figures(args.out, lang=args.lang, formats=args.format, names=names)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    figures = [p for p in written if p.suffix != ".txt"]
    print(f"wrote {len(figures)} figure file(s) and {len(written) - len(figures)} caption(s) into {args.out}")
    return 0


def add_parser(subparsers):
    p = subparsers.add_parser("figures", help="every quantitative figure of the course, 1280x720, with captions")
    p.add_argument("--out", required=True, metavar="DIR", help="folder to write the figures and their .txt captions into")
    p.add_argument("--lang", default="en", choices=("en", "zh"), help="label language (zh needs a CJK font: fonts-noto-cjk)")
    p.add_argument("--format", default="png", help="comma-separated: png, svg, pdf (default png)")
    p.add_argument("--only", metavar="NAMES", help="only these figures (comma-separated names)")
    p.set_defaults(func=cmd_figures)
    return p

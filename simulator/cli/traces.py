"""`sparsim traces import`: other tools' measurements -> sparsim traces beside the device spec."""

from __future__ import annotations

import csv
import importlib
from pathlib import Path
from typing import TYPE_CHECKING

from simulator.core.errors import SimulatorError

if TYPE_CHECKING:
    import pandas as pd

# Vidur file name -> importer module (simulator.truth.importers.<name>), imported only when needed.
VIDUR_FILES = {"mlp.csv": "vidur_mlp", "attention.csv": "vidur_attention", "all_reduce.csv": "vidur_allreduce"}
# A column only that layout has -> its importer: a file is read by what it holds, whatever its name.
VIDUR_LAYOUTS = (("time_stats.mlp_up_proj.median", "vidur_mlp", "mlp.csv"),
                 ("time_stats.attn_prefill.median", "vidur_attention", "attention.csv"),
                 ("time_stats.attn_decode.median", "vidur_attention", "attention.csv"),
                 ("time_stats.all_reduce.median", "vidur_allreduce", "all_reduce.csv"))
FORMATS = ("vidur", "published")


def _importer(name: str):
    try:
        return importlib.import_module(f"simulator.truth.importers.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"simulator.truth.importers.{name}":
            raise SimulatorError(f"PATH: simulator.truth.importers.{name} is not in this build, so this file kind "
                                 "cannot be imported yet") from None
        raise


def vidur_layout(path: Path) -> tuple[str, str]:
    """(importer module, Vidur file kind) of a Vidur CSV, told by its header's columns."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            header = set(next(csv.reader(handle), []))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise SimulatorError(f"PATH: {str(path)!r}: cannot read a CSV header ({type(exc).__name__})") from None
    for column, module, kind in VIDUR_LAYOUTS:
        if column in header:
            return module, kind
    raise SimulatorError(f"PATH: {path.name!r} is not a Vidur profile: no column of the mlp, attention or all_reduce "
                         f"layouts (e.g. {', '.join(c for c, _, _ in VIDUR_LAYOUTS[::2])})")


def _output_name(fmt: str, path: Path, rows: pd.DataFrame, kind: str = "") -> str:
    if fmt == "published":
        return f"published-{path.stem}.csv"
    kind = Path(kind or path.name).stem.replace("_", "-")
    model = str(rows["model"].iloc[0]) if "model" in rows and len(rows) else path.parent.name
    return f"vidur-{kind}-{model}.csv" if kind == "mlp" else f"vidur-{kind}-{path.parent.name}.csv"


def import_files(fmt: str, paths, hw, out_dir=None) -> list[tuple[Path, int]]:
    """Read each file with its importer and write it as a trace CSV into the device's traces folder."""
    from simulator.hardware.spec import load_hw
    from simulator.truth.validation import traces_dir

    if fmt not in FORMATS:
        raise SimulatorError(f"--format: {fmt!r}; allowed: {', '.join(FORMATS)}")
    spec = load_hw(hw, calibrated=False)
    folder = Path(out_dir) if out_dir else traces_dir(spec)
    written = []
    for raw_path in paths:
        path = Path(raw_path)
        if not path.is_file():
            raise SimulatorError(f"PATH: {str(path)!r} is not a file")
        if fmt == "vidur":
            module, kind = vidur_layout(path)
            rows = _importer(module).read(path)
        else:
            rows = _importer("published").read(path)
            rows = rows[rows["device"] == spec.id].drop(columns=["device"])
            if rows.empty:
                raise SimulatorError(f"PATH: {path.name} has no rows for {spec.id}")
        rows = rows.copy()
        rows.insert(0, "hw", spec.id)
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / _output_name(fmt, path, rows, kind if fmt == "vidur" else "")
        rows.to_csv(target, index=False, float_format="%.6g")
        written.append((target, len(rows)))
    return written


def cmd_traces_import(args) -> int:
    for target, count in import_files(args.format, args.paths, args.hw):
        print(f"wrote {target} ({count} rows)")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("traces", help="import measured traces from other tools (Vidur, published tables)")
    traces_sub = p.add_subparsers(dest="traces_command", required=True)
    imp = traces_sub.add_parser("import", help="read Vidur CSVs or a published table into hwspecs/<id>/traces/")
    imp.add_argument("--format", required=True, choices=FORMATS, help="vidur: mlp.csv, attention.csv, "
                     "all_reduce.csv (told apart by their columns); published: a published-kernels table")
    imp.add_argument("--hw", required=True, help="the device the measurements were taken on (id, alias or path)")
    imp.add_argument("paths", nargs="+", metavar="PATH")
    imp.set_defaults(func=cmd_traces_import)

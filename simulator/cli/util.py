"""Helpers shared by the CLI command modules: one-line argument errors, the list/range syntax of
-m/-n/-k, strict JSON of DataFrames, checked figure writing. Command modules import from here,
never from ``simulator.cli`` (which imports them)."""

from __future__ import annotations

import argparse
import math
import sys

import numpy as np

from simulator.core.errors import SimulatorError


class _Once(argparse.Action):
    """The default action of every valued option: a flag given twice is an error naming both
    values (argparse would silently keep the last), with a hint where the command has a way to
    say what the user likely meant."""

    def __init__(self, option_strings, dest, repeat_hint=None, **kwargs):
        self.repeat_hint = repeat_hint
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_given", {})
        if self.dest in given:
            hint = f"; {self.repeat_hint}" if self.repeat_hint else ""
            raise argparse.ArgumentError(self, f"given twice ({given[self.dest]!r}, then {self._raw!r}): "
                                               f"give it once{hint}")
        given[self.dest] = self._raw
        setattr(namespace, self.dest, values)


class _Extend(argparse.Action):
    """A list option given several times adds up: ``-m 16 -m 4096`` is ``-m 16,4096``."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = namespace.__dict__.setdefault("_given", {})
        previous = getattr(namespace, self.dest) if self.dest in given else []
        given[self.dest] = True
        setattr(namespace, self.dest, list(previous) + list(values))


class _Parser(argparse.ArgumentParser):
    def add_argument(self, *args, **kwargs):
        if args and args[0].startswith("-") and kwargs.get("action") in (None, "store"):
            kwargs["action"] = _Once
        return super().add_argument(*args, **kwargs)

    def _get_values(self, action, arg_strings):
        if isinstance(action, _Once):  # the text as typed, for the "given twice" message
            action._raw = arg_strings[0] if len(arg_strings) == 1 else " ".join(arg_strings)
        return super()._get_values(action, arg_strings)

    def error(self, message):  # one line, exit 2 (argparse would print the usage block too)
        # main() prints "sparsim: error: " once; a subcommand's parser names itself ("gemm: ...")
        command = self.prog.removeprefix("sparsim").strip()
        raise SimulatorError(f"{command}: {message}" if command else message)


MAX_RANGE_VALUES = 1_000_000  # values one -m/-n/-k may list
MAX_SHAPES = 5_000_000  # GEMM shapes one command may price (-m x -n x -k); ~5 s of cost model
from simulator.core.checks import MAX_DIMENSION  # a GEMM dimension or count beyond this is a typo


def _int_list(flag: str):
    """Parse '16', '1,16,256' or '1:4096:x2' (geometric) / '128:1024:+128' (arithmetic)."""

    def parse(text: str):
        values = []
        for part in text.split(","):
            if len(values) > MAX_RANGE_VALUES:
                break  # the check below names the limit
            part = part.strip()
            try:
                if part.count(":") == 2:
                    start, stop, step = part.split(":")
                    start, stop = int(start), int(stop)
                    if stop > MAX_DIMENSION:
                        raise argparse.ArgumentTypeError(f"range {part!r} ends past {MAX_DIMENSION:.0e}, the "
                                                         "largest value allowed")
                    if start < 1 or stop < start:
                        raise argparse.ArgumentTypeError(
                            f"range {part!r} is empty or starts below 1: write start:stop:step with "
                            "1 <= start <= stop")
                    if step.startswith("x") and math.isfinite(float(step[1:])) and float(step[1:]) > 1:
                        v = start
                        while v <= stop:
                            values.append(v)
                            grown = v * float(step[1:])  # may overflow to inf for x1e308: then stop
                            if not grown <= stop or len(values) > MAX_RANGE_VALUES:
                                break
                            v = max(v + 1, int(math.ceil(grown)))
                    elif step.startswith("+") and int(step[1:]) > 0:
                        values.extend(range(start, min(stop, start + int(step[1:]) * MAX_RANGE_VALUES) + 1,
                                            int(step[1:])))
                    else:
                        raise ValueError
                else:
                    values.append(int(part))
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"{part!r} is not a whole number, a list 'a,b,c' or a range "
                    "'start:stop:x2' / 'start:stop:+step'"
                ) from None
        if len(values) > MAX_RANGE_VALUES:
            raise argparse.ArgumentTypeError(f"{text!r} gives more than {MAX_RANGE_VALUES:,} values; "
                                             "use a coarser step")
        for v in values:
            if v < 1:
                raise argparse.ArgumentTypeError(f"must be a whole number >= 1, got {v}")
            if v > MAX_DIMENSION:
                raise argparse.ArgumentTypeError(f"must be a whole number <= {MAX_DIMENSION:.0e}, got "
                                                 f"{str(v)[:20] + '...' if len(str(v)) > 20 else v}")
        if not values:
            raise argparse.ArgumentTypeError(f"{text!r} gives no values")
        return values

    return parse


def _whole(low: int, high: int):
    """argparse type: a whole number in [low, high] (a 400-digit number or 'nan' is one line)."""

    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            shown = str(value) if len(str(value)) <= 20 else str(value)[:20] + "..."
            raise argparse.ArgumentTypeError(f"must be a whole number from {low:,} to {high:,}, got {shown}")
        return value

    return parse


def _finite(low: float = 0.0, high: float = math.inf, low_open: bool = False, what: str = "a number"):
    """argparse type: a finite float in [low, high] ((low, high] with ``low_open``); nan, inf and
    1e400 are refused here, not discovered as NaN in the output."""

    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        if not (math.isfinite(value) and (value > low if low_open else value >= low) and value <= high):
            interval = f"{'(' if low_open else '['}{low:g}, {high:g}]"
            raise argparse.ArgumentTypeError(f"must be {what} in {interval}, got {text.strip()}")
        return value

    return parse


def _json_value(value):
    """A DataFrame cell as strict JSON: numpy scalars as Python numbers, missing values (NaN,
    pd.NA, None) as null — json.dumps would otherwise write NaN, which is not JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    pandas = sys.modules.get("pandas")  # a value can only be pd.NA once pandas is loaded
    if value is None or (pandas is not None and value is pandas.NA) or (isinstance(value, float)
                                                                         and not np.isfinite(value)):
        return None
    return value


def _json_records(df):
    """Strict-JSON records of a DataFrame, or of a dict of equally long columns (no pandas needed)."""
    rows = (df.to_dict(orient="records") if hasattr(df, "to_dict") and not isinstance(df, dict) else
            [dict(zip(df, values)) for values in zip(*df.values())])
    return [{key: _json_value(value) for key, value in row.items()} for row in rows]


class _Row(dict):
    """One row of a dict of columns, read as a pandas row is (``row.time_s`` or ``row["time_s"]``)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _headless_plots():
    import matplotlib

    matplotlib.use("Agg")  # the CLI writes files and never opens windows


def _save_figure(make, path: str, flag: str = "--plot", quiet: bool = False) -> None:
    """Draw with ``make()`` and write ``path``; a path matplotlib cannot write is one line (exit 2)
    naming ``flag``. The suffix is checked before anything is drawn."""
    if not path.strip():
        raise SimulatorError(f"{flag}: empty file name")
    _headless_plots()
    import matplotlib.pyplot as plt
    from pathlib import Path

    suffix = Path(path).suffix.lstrip(".").lower()
    supported = plt.figure().canvas.get_supported_filetypes()
    plt.close("all")
    if suffix not in supported:
        raise SimulatorError(f"{flag} {path!r}: the file name must end in one of "
                             f".{', .'.join(sorted(supported))}")
    fig = make()
    try:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    except OSError as err:
        raise SimulatorError(f"{flag} {path!r}: cannot write ({err.strerror or err})") from None
    except (RuntimeError, ValueError) as err:  # e.g. .pgf needs a LaTeX install matplotlib cannot find
        raise SimulatorError(f"{flag} {path!r}: matplotlib cannot write this format here "
                             f"({str(err).splitlines()[0]}); use .png, .pdf or .svg") from None
    finally:
        plt.close(fig)
    if not quiet:
        print(f"wrote {path}", file=sys.stderr)


def _check_output_file(path: "str | None", flag: str) -> None:
    """Before a slow computation: a figure path whose folder does not exist, or that names a
    folder, is one line now rather than after the work."""
    if path is None:
        return
    from pathlib import Path

    if not path.strip():
        raise SimulatorError(f"{flag}: empty file name")
    target = Path(path)
    if target.is_dir():
        raise SimulatorError(f"{flag} {path!r}: is a folder; name the image file to write")
    if not target.absolute().parent.is_dir():
        raise SimulatorError(f"{flag} {path!r}: cannot write (folder {str(target.parent)!r} does not exist)")


def _check_output_dir(path: "str | None", flag: str) -> None:
    """Before a slow computation: the folder figures go into can be created (or exists)."""
    if path is None:
        return
    from pathlib import Path

    target = Path(path)
    if target.exists() and not target.is_dir():
        raise SimulatorError(f"{flag} {path!r}: exists and is not a folder; name a folder to write into")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SimulatorError(f"{flag} {path!r}: cannot create the folder ({err.strerror or err})") from None


MAX_GPUS = 65_536  # tensor/pipeline degrees: beyond this a value is a typo


def _list_arg(values, flag: str, cast=str) -> list:
    """A flag given as comma lists and/or repeated: --tp 1,2 --tp 8 -> [1, 2, 8]."""
    items = [item.strip() for value in values for item in value.split(",")]
    if not items or any(item == "" for item in items):
        raise SimulatorError(f"{flag}: empty value in {','.join(values)!r}")
    out = []
    for item in items:
        try:
            out.append(cast(item))
        except ValueError:
            raise SimulatorError(f"{flag}: {item!r} is not a whole number") from None
        if cast is int and out[-1] > MAX_GPUS:
            raise SimulatorError(f"{flag}: {item[:20]}{'...' if len(item) > 20 else ''} is more than "
                                 f"{MAX_GPUS:,} GPUs")
    return out

"""One way to read a YAML data file into a strict pydantic model, with one-line errors.

Every data file of the project (hardware specs, models, layer sets, anchors, EIE layers, Deep
Compression tables) goes through ``load_yaml``: a YAML error names the file and line; a schema
error names the file, the dotted path to the field, what is wrong and the value given; an
unknown key lists the keys that are recognized there (a typo must never pass silently).
"""

from __future__ import annotations

import functools
import os
import re
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from simulator.core.errors import SimulatorError


class Strict(BaseModel):
    """Base of every data-file schema: unknown keys are errors, instances are immutable, and a
    float field never holds NaN or infinity (``.inf``, ``1e400`` and ``.nan`` are errors)."""

    # defer_build: a schema is built on its first use, not at import (a CLI call that reads one
    # device spec does not pay for the model zoo's or the runtimes' schemas).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False, defer_build=True)


MAX_DATA_FILE_BYTES = 16 * 2**20  # the largest shipped file is ~100 kB; a user file this big is a mistake


def looks_like_path(text: str) -> bool:
    """One rule for every ``--hw``/``--model``/``--spec`` argument: a name ending in .yaml/.yml or
    holding a path separator is a file path; anything else is an id or alias."""
    return text.endswith((".yaml", ".yml")) or "/" in text or os.sep in text


def check_file(path, what: str) -> Path:
    """``path`` as a Path if it is a readable regular file, else one line saying what it is."""
    path = Path(path)
    if path.is_dir():
        raise SimulatorError(f"{what} {str(path)!r} is a folder, not a file")
    if not path.exists():
        raise SimulatorError(f"{what} {str(path)!r} does not exist")
    if not path.is_file():
        raise SimulatorError(f"{what} {str(path)!r} is not a regular file (a device or a pipe?)")
    return path


_SOURCE_KEY = re.compile(r"\[([A-Za-z0-9][A-Za-z0-9_.&+-]*)\]")


def _source_keys(model: BaseModel):
    """Every [KEY] cited in a ``source`` field anywhere inside ``model``."""
    for name in type(model).model_fields:
        value = getattr(model, name)
        if name == "source" and isinstance(value, str):
            yield from _SOURCE_KEY.findall(value)
        elif isinstance(value, BaseModel):
            yield from _source_keys(value)
        elif isinstance(value, (dict, list, tuple)):
            for item in (value.values() if isinstance(value, dict) else value):
                if isinstance(item, BaseModel):
                    yield from _source_keys(item)


def check_citations(model: BaseModel, references: dict) -> None:
    """Raise (inside a pydantic validator) if a source cites a key ``references`` does not define."""
    unknown = sorted(set(_source_keys(model)) - set(references))
    if unknown:
        raise ValueError(f"sources cite {', '.join('[' + k + ']' for k in unknown)} which is not in "
                         f"references (known: {', '.join(sorted(references))})")


def _model_at(model: type[BaseModel], path) -> "type[BaseModel] | None":
    """The pydantic model that a dotted error path leads to (through lists, dicts, Optionals).
    Parts that are not fields (list indices, dict keys) keep the current model."""
    for part in path:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue
        stack, model = [field.annotation], None
        while stack:
            ann = stack.pop()
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                model = ann
                break
            stack.extend(typing.get_args(ann))
        if model is None:
            return None
    return model


def validation_message(path: Path, err: ValidationError, model: type[BaseModel]) -> str:
    errors = err.errors()
    # A typo shows up twice (the unknown key and the missing one): name the unknown key.
    first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
    loc = ".".join(str(part) for part in first["loc"]) or "(top level)"
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        owner = _model_at(model, first["loc"][:-1])
        msg = f"unrecognized key {first['loc'][-1]!r}"
        if owner is not None:
            msg += f" (recognized keys: {', '.join(owner.model_fields)})"
    elif "input" in first and first["type"] != "missing" and not isinstance(first["input"], (dict, list)):
        msg += f" (got {first['input']!r})"
    more = len(errors) - 1
    return f"{path}: {loc}: {msg}" + (f" (+{more} more error{'s' if more > 1 else ''})" if more else "")


# libyaml's C parser where PyYAML was built with it (the wheels on the package index are): the
# same safe constructor, ~10x faster than the pure-Python scanner, which was most of a CLI call.
_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(text: str):
    """``yaml.safe_load``, with the C parser when available. Every data file is read through it."""
    return yaml.load(text, Loader=_SAFE_LOADER)  # noqa: S506 - a safe loader (CSafeLoader or SafeLoader)


MAX_NESTING = 64  # levels of lists/mappings; sparsim's own files use fewer than 10


def _depth(data) -> int:
    """Nesting depth of parsed YAML, without recursion (libyaml parses a 1,500-deep list happily;
    the pure-Python parser ran out of stack, which was the old refusal)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, (list, dict)):
            deepest = max(deepest, level)
            if level > MAX_NESTING:
                return level
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def read_yaml(path: Path):
    if not path.is_file():
        raise SimulatorError(f"{path}: " + ("is a folder, not a YAML file" if path.is_dir() else
                                            "no such file" if not path.exists() else
                                            "not a regular file (a device or a pipe?)"))
    if path.stat().st_size > MAX_DATA_FILE_BYTES:
        raise SimulatorError(f"{path}: {path.stat().st_size:,} bytes is too large for a data file "
                             f"(at most {MAX_DATA_FILE_BYTES:,})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SimulatorError(f"{path}: not a text (UTF-8) YAML file (byte {exc.start} is "
                             f"0x{exc.object[exc.start]:02x})") from None
    except OSError as exc:
        raise SimulatorError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        data = parse_yaml(text)
        if _depth(data) > MAX_NESTING:
            raise RecursionError
        return data
    except RecursionError:
        raise SimulatorError(f"{path}: nested too deeply to be a data file") from None
    except yaml.YAMLError as exc:
        problem = str(getattr(exc, "problem", None) or exc)
        if "nesting depth" in problem:  # newer libyaml refuses deep nesting itself
            raise SimulatorError(f"{path}: nested too deeply to be a data file") from None
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SimulatorError(f"{path}:{where}: not valid YAML ({problem})") from None


def validate(path: Path, raw, model: type[BaseModel]):
    if not isinstance(raw, dict):
        raise SimulatorError(f"{path}: expected a mapping of fields at the top level")
    try:
        return model.model_validate(raw)
    except RecursionError:
        raise SimulatorError(f"{path}: nested too deeply to be a data file") from None
    except ValidationError as err:
        raise SimulatorError(validation_message(path, err, model)) from None


@functools.lru_cache(maxsize=256)
def _cached(path: Path, mtime: float, model: type[BaseModel]):
    return validate(path, read_yaml(path), model)


def load_yaml(path, model: type[BaseModel]):
    """``model`` validated from the YAML file at ``path``; cached until the file changes."""
    path = Path(path).absolute()  # no realpath: this runs on every estimate
    try:
        mtime = path.stat().st_mtime
    except OSError:
        raise SimulatorError(f"{path}: no such file") from None
    return _cached(path, mtime, model)

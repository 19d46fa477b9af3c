"""One way to read a YAML data file into a strict pydantic model, with one-line errors.

Every data file of the project (hardware specs, models, layer sets, anchors, EIE layers, Deep
Compression tables) goes through ``load_yaml``: a YAML error names the file and line; a schema
error names the file, the dotted path to the field, what is wrong and the value given; an
unknown key lists the keys that are recognized there (a typo must never pass silently).
"""

from __future__ import annotations

import functools
import re
import typing
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from simulator.errors import SimulatorError


class Strict(BaseModel):
    """Base of every data-file schema: unknown keys are errors, instances are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


def read_yaml(path: Path):
    if not path.is_file():
        raise SimulatorError(f"{path}: no such file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise SimulatorError(f"{path}:{where}: not valid YAML ({getattr(exc, 'problem', None) or exc})") from None


def validate(path: Path, raw, model: type[BaseModel]):
    if not isinstance(raw, dict):
        raise SimulatorError(f"{path}: expected a mapping of fields at the top level")
    try:
        return model.model_validate(raw)
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

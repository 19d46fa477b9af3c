"""One registry for every pluggable axis, and the one ``name:key=value,...`` parser.

Sparsity formats (``--sparsity``), GEMM kernel families (``kernel``, named by a format, not by
the user), KV-cache methods (``--kv-method``), input-dependent weight sparsity (``--dynamic``) and
runtimes (``--runtime``) are each a :class:`Registry`: name -> entry (a class, a family record, or
a runtime name whose profile is data), filled by :meth:`Registry.register` at import and
read-only after. An unknown name is one line
that lists the known ones; ``tests/test_registries.py`` runs one contract over every entry of every
registry (``REGISTRIES``).

Options are written ``name:key=value,key=value``; :func:`parse_options` is the only parser of that
form, and :func:`to_number` the only coercion of its values, so every axis refuses the same
mistakes with the same words.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from simulator.core.errors import SimulatorError

REGISTRIES: dict[str, "Registry"] = {}  # axis flag -> its registry (filled as each module loads)


class Registry(Mapping):
    """Name -> entry for one pluggable axis.

    ``what`` names an entry in messages ("method", "runtime"); ``flag`` is the CLI flag the axis is
    given by (or, for an axis users never name, what messages call it). Names are lower case; :meth:`lookup` takes any case."""

    def __init__(self, what: str, flag: str):
        self.what, self.flag = what, flag
        self._entries: dict[str, object] = {}
        REGISTRIES[flag] = self

    def register(self, entry=None, *, name: "str | None" = None):
        """Add ``entry`` under ``name`` (default: its ``name`` attribute); usable as a decorator.
        A name registered twice is a programming error, not user input."""
        def add(value):
            key = str(name if name is not None else getattr(value, "name", "")).strip().lower()
            if not key:
                raise ValueError(f"{self.flag}: an entry needs a name")
            if key in self._entries:
                raise ValueError(f"{self.flag}: {key!r} registered twice")
            self._entries[key] = value
            return value
        return add if entry is None else add(entry)

    def known(self) -> str:
        return ", ".join(sorted(self._entries))

    def lookup(self, name: str, text: "str | None" = None, also: str = ""):
        """The entry called ``name``; otherwise one line naming the flag, what was given (``text``,
        default the name) and the known names (``also``: more accepted words, e.g. 'or none')."""
        key = str(name).strip().lower()
        if key not in self._entries:
            given = name if text is None else text
            raise SimulatorError(f"{self.flag} {given!r}: unknown {self.what} {key!r}; known: {self.known()}{also}")
        return self._entries[key]

    def __getitem__(self, name: str):
        return self._entries[name]

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.flag}: {self.known()})"


def split_spec(text: str) -> tuple[str, str]:
    """'name:key=value,...' -> ('name', 'key=value,...'), the name stripped and lower case."""
    name, _, rest = str(text).strip().partition(":")
    return name.strip().lower(), rest


def parse_options(flag: str, text: str, name: str, rest: str, keys) -> dict[str, str]:
    """The ``key=value[,key=value]`` after ``name:`` -> {key: value text}, keys matched without
    regard to case against ``keys`` (the entry's parameters, in their own spelling). A bare item,
    an empty value, an unknown key or a key given twice is one line naming ``flag`` and ``text``."""
    keys = list(keys)
    by_lower = {k.lower(): k for k in keys}
    listed = ", ".join(keys) or "none"
    values: dict[str, str] = {}
    for item in (i.strip() for i in str(rest).split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        if not eq or not value.strip():
            raise SimulatorError(f"{flag} {text!r}: write {name}:key=value[,key=value]; got {item!r} (keys: {listed})")
        key = key.strip()
        if key.lower() not in by_lower:
            raise SimulatorError(f"{flag} {text!r}: unknown parameter {key!r}; known: {listed}")
        key = by_lower[key.lower()]
        if key in values:
            raise SimulatorError(f"{flag} {text!r}: {key} given twice")
        values[key] = value.strip()
    return values


def to_number(flag: str, name: str, key: str, value, kind=float):
    """``value`` as a finite float (or a whole int when ``kind`` is int): one line otherwise."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise SimulatorError(f"{flag} {name}: {key}={value!r} is not a number") from None
    if not math.isfinite(number):
        raise SimulatorError(f"{flag} {name}: {key} must be a finite number, got {value}")
    if kind in (int, "int"):
        if number != int(number):
            raise SimulatorError(f"{flag} {name}: {key} must be a whole number, got {value}")
        return int(number)
    return number

"""Checks of numeric arguments shared by every public estimate: whole numbers in range, finite
values, arrays that broadcast. Each failure is a SimulatorError naming the argument, the value
and what is allowed (never a numpy traceback, never a NaN carried into a result)."""

from __future__ import annotations

import numpy as np

from simulator.core.errors import SimulatorError

# A dimension or count beyond this is a typo: float64 holds integers exactly up to 2**53, and
# products of three such dimensions (FLOP) stay far below float64's range.
MAX_DIMENSION = 1e15


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def as_numbers(name: str, value) -> np.ndarray:
    """``value`` as a float array; text, booleans, complex numbers and numbers too large for a
    float are refused by name."""
    try:
        raw = np.asarray(value)
    except (TypeError, ValueError, OverflowError):
        raise SimulatorError(f"{name}: must be a number or an array of numbers, got {_shown(value)}") from None
    if raw.dtype.kind in "bUSVc" or raw.dtype.kind == "M":
        raise SimulatorError(f"{name}: must be a number or an array of numbers, got {_shown(value)}")
    try:
        return raw.astype(float) if raw.dtype != float else raw
    except (TypeError, ValueError, OverflowError):
        raise SimulatorError(f"{name}: must be a number or an array of numbers, got {_shown(value)}") from None


def as_whole(name: str, value, low: float = 1, high: float = MAX_DIMENSION) -> np.ndarray:
    """``value`` as a float array of whole numbers in [low, high]."""
    arr = as_numbers(name, value)
    if arr.size == 0:
        raise SimulatorError(f"{name}: needs at least one value")
    bad = ~np.isfinite(arr) | (arr < low) | (arr > high) | (arr != np.floor(arr))
    if np.any(bad):
        first = arr[bad].flat[0]
        shown = int(first) if np.isfinite(first) and first == int(first) and abs(first) < 1e18 else first
        limit = f"<= {high:.0e}" if np.isfinite(first) and first > high else f">= {low:g}"
        raise SimulatorError(f"{name}: must be a whole number {limit}, got {shown}")
    return arr


def broadcast(**arrays) -> list[np.ndarray]:
    """The arrays broadcast together, or one line naming the arguments and their shapes."""
    try:
        return list(np.broadcast_arrays(*arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{name} {np.shape(a)}" for name, a in arrays.items())
        raise SimulatorError(f"{', '.join(arrays)}: arrays of shapes that do not broadcast together ({shapes}); "
                             "give equal lengths, or scalars") from None


def along(value, like: np.ndarray) -> np.ndarray:
    """``value`` broadcast to ``like``'s shape as a new float array (what
    ``np.broadcast_to(value, like.shape).astype(float)`` gives, at a fraction of its cost on the
    small arrays of one estimate)."""
    out = np.empty(like.shape)
    out[...] = value
    return out

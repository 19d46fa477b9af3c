"""Golden outputs: the JSON of 45 representative sparsim calls (scripts/refresh_golden.py lists
them), pinned so that moving code between modules or layers provably changes no number. Every
number must match at 1e-9 relative; every string, key and list length exactly. A change that is
meant to move numbers regenerates the file with `python scripts/refresh_golden.py` and says in
its commit which calls moved and why."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = json.loads((ROOT / "tests" / "golden" / "cli.json").read_text())
_spec = importlib.util.spec_from_file_location("refresh_golden", ROOT / "scripts" / "refresh_golden.py")
refresh = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(refresh)


def _diff(old, new, where="$"):
    """The first difference between two JSON values (None when equal at 1e-9 relative)."""
    if isinstance(old, bool) or isinstance(new, bool) or old is None or new is None or isinstance(old, str):
        return None if old == new else f"{where}: {old!r} -> {new!r}"
    if isinstance(old, (int, float)) and isinstance(new, (int, float)):
        if math.isnan(old) and math.isnan(new):
            return None
        return None if math.isclose(old, new, rel_tol=1e-9, abs_tol=1e-300) else f"{where}: {old!r} -> {new!r}"
    if isinstance(old, dict) and isinstance(new, dict):
        if old.keys() != new.keys():
            return f"{where}: keys {sorted(set(old) ^ set(new))} added or removed"
        for key in old:
            found = _diff(old[key], new[key], f"{where}.{key}")
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            return f"{where}: {len(old)} -> {len(new)} items"
        for i, (a, b) in enumerate(zip(old, new)):
            found = _diff(a, b, f"{where}[{i}]")
            if found:
                return found
        return None
    return f"{where}: {type(old).__name__} -> {type(new).__name__}"


def test_the_golden_file_covers_every_listed_call():
    assert set(GOLDEN) == set(refresh.CALLS)
    assert len(GOLDEN) >= 45


@pytest.mark.parametrize("call", refresh.CALLS)
def test_golden_output_is_unchanged(call):
    found = _diff(GOLDEN[call], refresh.run(call))
    assert found is None, f"sparsim {call}: {found} (regenerate with scripts/refresh_golden.py only if meant)"


def test_the_comparison_catches_a_moved_number():
    # the checker itself: a 1e-6 relative change in one nested number is found and located
    call = refresh.CALLS[0]
    moved = json.loads(json.dumps(GOLDEN[call]))
    rows = moved if isinstance(moved, list) else next(v for v in moved.values() if isinstance(v, list))
    key = next(k for k, v in rows[0].items() if isinstance(v, float) and v > 0)
    rows[0][key] *= 1 + 1e-6
    assert key in (_diff(GOLDEN[call], moved) or "")
    assert _diff(GOLDEN[call], json.loads(json.dumps(GOLDEN[call]))) is None

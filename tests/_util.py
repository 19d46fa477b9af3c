"""Small helpers shared by tests."""


def swap(text: str, old: str, new: str) -> str:
    """str.replace that fails loudly when ``old`` is absent (a corrupted copy must differ)."""
    assert old in text, f"test fixture drifted: {old!r} not in the spec"
    return text.replace(old, new)

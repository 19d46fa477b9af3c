import os

import pytest

# Hypothesis: deterministic and bounded so CI time is predictable.
try:
    from hypothesis import settings

    settings.register_profile("ci", max_examples=60, deadline=None, derandomize=True)
    settings.load_profile("ci")
except ImportError:  # pragma: no cover
    pass


@pytest.fixture
def spec_text():
    """The H100 spec file as text, for tests that corrupt a copy of it."""
    from simulator.hardware.spec import hwspecs_dir

    return (hwspecs_dir() / "h100-sxm5-80gb.yaml").read_text()


@pytest.fixture(autouse=True)
def _headless(monkeypatch):
    monkeypatch.setenv("MPLBACKEND", os.environ.get("MPLBACKEND", "Agg"))


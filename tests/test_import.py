"""The core stays light: importing and estimating pulls in neither matplotlib nor torch."""

import subprocess
import sys

import pytest


def test_core_import_is_light():
    code = (
        "import sys, simulator\n"
        "assert 'pydantic' not in sys.modules and 'pandas' not in sys.modules, 'lazy package import'\n"
        "simulator.estimate_gemm('h100', 1, 4096, 4096)\n"
        "heavy = [m for m in ('matplotlib', 'torch', 'scipy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_public_api_names():
    import simulator

    for name in simulator.__all__:
        assert getattr(simulator, name) is not None
    with pytest.raises(AttributeError):
        simulator.not_a_name  # noqa: B018

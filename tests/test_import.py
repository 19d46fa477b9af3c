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


def test_notebooks_and_docs_import_only_the_facade():
    # issue 13: notebooks, docs and the README use `simulator`'s public names, not module paths
    import json
    import re
    from pathlib import Path

    import simulator

    root = Path(__file__).resolve().parents[1]
    sources = {p.name: "\n".join("".join(c["source"]) for c in json.loads(p.read_text())["cells"]
                                 if c["cell_type"] == "code") for p in (root / "notebooks").glob("*.ipynb")}
    for p in [root / "README.md", *(root / "docs").glob("*.md")]:
        sources[p.name] = "\n".join(re.findall(r"```python\n(.*?)```", p.read_text(), re.S)
                                    + re.findall(r"python -c \"([^\"]+)\"", p.read_text()))
    assert len(sources) > 5
    for name, text in sources.items():
        deep = re.findall(r"^\s*(?:from simulator\.[\w.]+ import|import simulator\.)[^\n]*", text, re.M)
        assert not deep, f"{name}: {deep}"
        for imported in re.findall(r"from simulator import ([\w, ]+)", text):
            for word in re.findall(r"\w+", imported):
                assert word in simulator.__all__, f"{name}: {word} is not a public name"


def test_no_public_name_is_a_submodule():
    # `import simulator.capacity.plan` sets the package attribute `plan` to the module: a facade name equal
    # to a submodule's would change meaning with import order.
    from pathlib import Path

    import simulator

    package = Path(simulator.__file__).parent
    submodules = {p.stem for p in package.glob("*.py")} | {p.name for p in package.iterdir() if p.is_dir()}
    assert not set(simulator.__all__) & submodules

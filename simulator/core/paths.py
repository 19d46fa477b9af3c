"""Where sparsim's data lives: the spec files (``hwspecs/``) and the workloads (``workloads/``).

In a checkout (and an editable install) they are the repository's top-level folders, next to the
``simulator`` package. A wheel carries a copy of both inside the package, under
``simulator/_data/`` (setup.py's build step copies them), so an installed sparsim runs from any
directory. The checkout wins where both exist; ``$SPARSIM_HWSPECS`` overrides the spec folder.
"""

from __future__ import annotations

import functools
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent.parent  # simulator/ (this file is simulator/core/paths.py)


@functools.lru_cache(maxsize=1)
def data_root() -> Path:
    """The folder holding ``hwspecs/`` and ``workloads/``: the checkout, else the wheel's copy."""
    checkout = _PACKAGE.parent
    if (checkout / "hwspecs").is_dir() and (checkout / "workloads").is_dir():
        return checkout
    return _PACKAGE / "_data"


def workloads_path(*parts: str) -> Path:
    """A path under ``workloads/``."""
    return data_root().joinpath("workloads", *parts)

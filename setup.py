"""Build hook: a wheel carries the spec files and workloads inside the package.

The repository keeps ``hwspecs/`` and ``workloads/`` at the top level (where users edit and review
them); ``simulator.core.paths`` reads them there in a checkout. An installed wheel has no checkout, so
the build copies both folders to ``simulator/_data/`` in the build tree. Everything else is in
pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA_FOLDERS = ("hwspecs", "workloads")


class build_py_with_data(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):  # an editable install reads the checkout itself
            return
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "simulator" / "_data"
        for name in DATA_FOLDERS:
            dest = target / name
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(root / name, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


setup(cmdclass={"build_py": build_py_with_data})

"""Every `sparsim ...` command the README and docs/*.md show, and a runner for an installed sparsim.

`tests/test_docs.py` runs these commands in-process from the checkout. CI (`.ci/run`) also builds
the wheel, installs it into a clean venv and runs the README's commands with that install from a
directory outside the checkout:

    python scripts/doc_commands.py --sparsim /path/to/venv/bin/sparsim --readme-only

Each command must exit 0, or 2 where the doc marks it `# error: ...`. Exit status: the number of
commands that did not (capped at 1), and one line per failure.
"""

from __future__ import annotations

import argparse
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def doc_commands(readme_only: bool = False) -> list[tuple[str, str, bool]]:
    """(doc name, command after `sparsim `, whether the doc marks it an error) for every `sparsim ...`
    line shown as indented code, continuation lines joined, trailing comments and optional
    [brackets] dropped; lines with <placeholders> are the reader's own values and are skipped."""
    found = []
    paths = [ROOT / "README.md"] + ([] if readme_only else sorted((ROOT / "docs").glob("*.md")))
    for path in paths:
        text = re.sub(r"\\\n\s+", " ", path.read_text())
        for line in text.splitlines():
            match = re.match(r"^    (?:\$ )?sparsim ([^\n]+)$", line)
            if not match:
                continue
            command, _, comment = match.group(1).partition("#")
            if "<" in command or ".npz" in command:
                continue
            found.append((path.name, re.sub(r"\[[^\]]*\]", "", command).strip(), "error:" in comment))
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsim", required=True, help="the sparsim executable to run")
    parser.add_argument("--readme-only", action="store_true", help="only the README's commands")
    args = parser.parse_args(argv)
    commands = doc_commands(args.readme_only) + [("(always)", "--version", False), ("(always)", "tour", False)]
    failures = 0
    with tempfile.TemporaryDirectory() as where:  # outside the checkout; figures land here
        for doc, command, fails in commands:
            run = subprocess.run([args.sparsim, *shlex.split(command)], cwd=where, capture_output=True, text=True)
            expected = 2 if fails else 0
            if run.returncode != expected or "Traceback" in run.stderr:
                failures += 1
                last = (run.stderr.strip().splitlines() or [""])[-1]
                print(f"FAILED {doc}: sparsim {command}: exit {run.returncode}, expected {expected}: {last}")
    print(f"installed sparsim: {len(commands) - failures} of {len(commands)} documented commands behave as documented")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

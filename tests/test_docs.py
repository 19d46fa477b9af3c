"""Documentation that quotes output must match what the code prints today."""

import re
from pathlib import Path

import pytest

from simulator.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_readme_worked_example_matches_cli(capsys):
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"\n    \$ sparsim (gemm [^\n]+)\n((?:    [^\n]*\n)+)", readme)
    assert block, "README lost its worked example"
    argv = block.group(1).split()
    expected = "\n".join(line[4:] for line in block.group(2).rstrip("\n").split("\n"))
    assert main(argv) == 0
    assert capsys.readouterr().out.rstrip("\n") == expected


def test_readme_names_both_commands():
    readme = (ROOT / "README.md").read_text()
    assert "pip install -e . && sparsim tour" in readme
    assert 'pip install -e ".[test]" "torch==2.13.0" && python -m pytest' in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'pip install -q -e ".[test]" "torch==2.13.0"' in ci and "python -m pytest" in ci


def test_anchor_doc_quotes_current_errors():
    from simulator.truth.workloads import anchor_table

    doc = (ROOT / "docs" / "anchors.md").read_text()
    for row in anchor_table().itertuples():
        assert f"{row.model_time_s * 1e3:.3f} ms" in doc, row.anchor
        assert f"{row.error:+.1%}".replace("-", "−") in doc, row.anchor


def test_anchor_doc_quotes_current_kernel_speedups():
    from simulator.truth.workloads import speedup_anchor_table

    doc = (ROOT / "docs" / "anchors.md").read_text()
    for row in speedup_anchor_table().itertuples():
        assert f"{row.model_speedup:.2f}× ({row.model_min:.2f}-{row.model_max:.2f})" in doc, row.anchor
        assert f"{row.error:+.1%}".replace("-", "−") in doc, row.anchor


def test_llm_doc_quotes_current_anchor_errors():
    from simulator.truth.workloads import model_anchor_table

    doc = (ROOT / "docs" / "llm.md").read_text()
    for row in model_anchor_table().itertuples():
        assert f"{row.error:+.1%}".replace("-", "−") in doc, row.anchor


def _refresh_script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("refresh_doc_tables", ROOT / "scripts" / "refresh_doc_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_doc_tables_are_current_and_the_refresh_script_repairs_a_stale_one(capsys):
    refresh = _refresh_script()
    assert refresh.main(["--check"]) == 0, capsys.readouterr().out
    text = (ROOT / "docs" / "llm.md").read_text()
    line = next(ln for ln in text.splitlines() if ln.startswith("| 72 |"))
    cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
    current = cells[7]
    cells[7] = "+123.4%"
    stale = text.replace(line, "| " + " | ".join(cells) + " |")
    assert stale != text
    repaired, changes = refresh.refresh_llm(stale)
    assert repaired == text and changes == [f"72: column 7: +123.4% -> {current}"]


def test_llm_doc_plan_example_matches_cli(capsys):
    doc = (ROOT / "docs" / "llm.md").read_text()
    block = re.search(r"\n    \$ sparsim (plan [^\n]+)\\\n +([^\n]+)\n((?:    [^\n]*\n)+)", doc)
    assert block, "docs/llm.md lost its capacity-planning example"
    argv = (block.group(1) + " " + block.group(2)).split()
    expected = "\n".join(line[4:] for line in block.group(3).rstrip("\n").split("\n"))
    assert main(argv) == 0
    assert capsys.readouterr().out.rstrip("\n") == expected


def _doc_commands():
    """Every `sparsim ...` command line shown in README.md and docs/*.md (scripts/doc_commands.py)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("doc_commands", ROOT / "scripts" / "doc_commands.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.doc_commands()


@pytest.mark.parametrize("doc, command, fails", _doc_commands(), ids=lambda x: str(x)[:60])
def test_every_command_in_the_docs_runs(capsys, monkeypatch, tmp_path, doc, command, fails):
    import shlex

    from simulator.cli import main

    monkeypatch.chdir(tmp_path)  # commands that write figures write them here
    code = main(shlex.split(command))
    capsys.readouterr()
    assert code == (2 if fails else 0), f"{doc}: sparsim {command}"


def test_llm_doc_quotes_the_current_course_decode_number():
    from simulator.model.llm import estimate_model

    s = estimate_model("llama-2-70b", "h100", "decode", 1, 4096, dtype="fp16", with_ops=False).summary
    doc = (ROOT / "docs" / "llm.md").read_text()
    share = s["time_by_category_s"]["weights"] / s["time_s"]
    assert f"{s['time_s'] * 1e3:.1f} ms ({s['tokens_per_s']:.1f} tok/s)" in doc
    assert f"{share:.0%} of it streaming weights" in doc

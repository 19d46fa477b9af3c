"""Rewrite the computed columns of the docs' comparison tables from the code, after a change
of the model or of a calibration (e.g. the first H200 traces), and say what moved.

    python scripts/refresh_doc_tables.py            # rewrite in place, list the changes
    python scripts/refresh_doc_tables.py --check    # change nothing; exit 1 if a table is stale

Only columns that are pure numbers from the code are touched: docs/anchors.md (model, error; the
kernel speed-up table's model mean and error),
docs/llm.md's anchor table (model, error), docs/kv.md's method table (speed-ups, KV fractions,
max batch, throughput) and docs/course.md's ledger (generated whole, between its markers). The
prose next to them ("why they differ", the paper column of kv.md, the ledger's discussion) is
not: read it again after a refresh, because an explanation written for one error may not fit
the next. tests/test_docs.py and tests/test_kvcache.py fail while a table is stale.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def signed(error: float) -> str:
    return f"{error:+.1%}".replace("-", "−")


def _rewrite_rows(text: str, key_of, new_cells) -> tuple[str, list[str]]:
    """Replace cells of markdown table rows: ``key_of(cells)`` names a row (or None to skip it),
    ``new_cells(key)`` gives {column index: text}; a row is rebuilt only if one of its cells
    changes. Returns the new text and the changes made."""
    lines, changes = text.split("\n"), []
    for i, line in enumerate(lines):
        if not line.startswith("| "):
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        key = key_of(cells)
        if key is None:
            continue
        changed = False
        for column, value in new_cells(key).items():
            if cells[column] != value:
                changes.append(f"{key}: column {column}: {cells[column]} -> {value}")
                cells[column], changed = value, True
        if changed:
            lines[i] = "| " + " | ".join(cells) + " |"
    return "\n".join(lines), changes


def refresh_anchors(text: str) -> tuple[str, list[str]]:
    from simulator.truth.workloads import anchor_table

    table = anchor_table().set_index("row")
    ratio_model = table.loc[1, "model_time_s"] / table.loc[2, "model_time_s"]
    ratio_published = table.loc[1, "published_time_s"] / table.loc[2, "published_time_s"]

    def key_of(cells):
        return int(cells[0]) if cells[0].isdigit() and int(cells[0]) in (1, 2, 3) else None

    def new_cells(row):
        if row == 3:
            return {6: f"{ratio_model:.3f}×", 7: signed(ratio_model / ratio_published - 1.0)}
        r = table.loc[row]
        return {6: f"{r.model_time_s * 1e3:.3f} ms", 7: signed(r.error)}

    text, changes = _rewrite_rows(text, key_of, new_cells)
    text, more = _rewrite_rows(text, _speedup_key, _speedup_cells)
    return text, changes + more


def _speedup_key(cells):
    """The kernel speed-up table's rows: (anchor row, sparsity as '70%')."""
    if cells[0].isdigit() and 25 <= int(cells[0]) <= 28 and cells[2].endswith("%"):
        return int(cells[0]), cells[2]
    return None


def _speedup_cells(key):
    from simulator.truth.workloads import speedup_anchor_table

    table = speedup_anchor_table()
    level = table["sparsity"].str.split(":").str[1].astype(float)
    r = table[(table["row"] == key[0]) & ((level * 100).round().astype(int).astype(str) + "%" == key[1])].iloc[0]
    return {4: f"{r.model_speedup:.2f}× ({r.model_min:.2f}-{r.model_max:.2f})", 5: signed(r.error)}


def refresh_llm(text: str) -> tuple[str, list[str]]:
    from simulator.truth.workloads import model_anchor_table

    table = model_anchor_table().set_index("row")

    def key_of(cells):
        return int(cells[0]) if cells[0].isdigit() and int(cells[0]) in table.index and len(cells) >= 8 else None

    def new_cells(row):
        r = table.loc[row]
        value = f"{r.estimate * 1e3:.2f} ms" if r.metric == "ttft_s" else f"{r.estimate:.2f} tok/s"
        return {6: value, 7: signed(r.error)}

    start = text.index("## Published anchors")
    end = text.index("\n## ", start + 1)
    body, changes = _rewrite_rows(text[start:end], key_of, new_cells)
    return text[:start] + body + text[end:], changes


def refresh_kv(text: str) -> tuple[str, list[str]]:
    from simulator.capacity.kv_analysis import method_comparison

    table = method_comparison().set_index("method")

    def key_of(cells):
        if not cells[0].startswith("`"):
            return None
        method = cells[0].strip("`")
        return method if method in table.index else None

    def new_cells(method):
        r = table.loc[method]
        return {1: f"{r.decode_speedup_32768:.2f}×", 2: f"{r.decode_speedup_131072:.2f}×",
                3: f"{r.kv_held_131072:.3f}", 4: f"{r.kv_read_131072:.3f}", 5: f"{r.ttft_speedup:.2f}×",
                6: f"{int(r.max_batch):d}", 7: f"{r.throughput_speedup:.2f}×"}

    start = text.index("## One table")
    end = text.find("\n## ", start + 1)
    end = len(text) if end < 0 else end
    body, changes = _rewrite_rows(text[start:end], key_of, new_cells)
    return text[:start] + body + text[end:], changes


LEDGER_START, LEDGER_END = "<!-- ledger: generated by scripts/refresh_doc_tables.py -->", "<!-- ledger end -->"


def refresh_course(text: str) -> tuple[str, list[str]]:
    from simulator.course import ledger_markdown

    start = text.index(LEDGER_START) + len(LEDGER_START)
    end = text.index(LEDGER_END)
    old, new = text[start:end].strip("\n").split("\n"), ledger_markdown().split("\n")
    changes = [f"ledger: {a} -> {b}" for a, b in zip(old, new) if a != b]
    if len(old) != len(new):
        changes.append(f"ledger: {len(old)} lines -> {len(new)}")
    return text[:start] + "\n" + "\n".join(new) + "\n" + text[end:], changes


DOCS = {"docs/anchors.md": refresh_anchors, "docs/llm.md": refresh_llm, "docs/kv.md": refresh_kv,
        "docs/course.md": refresh_course}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a table is stale")
    args = parser.parse_args(argv)
    stale = False
    for name, refresh in DOCS.items():
        path = ROOT / name
        text = path.read_text()
        new_text, changes = refresh(text)
        for change in changes:
            print(f"{name}: {change}")
        if changes:
            stale = True
            if not args.check:
                path.write_text(new_text)
    if not stale:
        print("every computed column is current")
    elif not args.check:
        print("rewritten; now reread the explanations next to the changed numbers")
    return 1 if (stale and args.check) else 0


if __name__ == "__main__":
    sys.exit(main())

"""One contract over every entry of every registry (simulator/core/registry.py): formats, KV methods,
dynamic methods and runtimes. Adding an entry without what it needs fails here."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.methods import dynamic, kvcache

from simulator.formats import runtimes, sparsity
from simulator.kernels import families
from simulator.core.errors import SimulatorError
from simulator.core.registry import REGISTRIES, Registry, parse_options, to_number

DOCS = {p.name: p.read_text() for p in (Path(__file__).resolve().parents[1] / "docs").glob("*.md")}

# How to build an entry from text, and one spec per entry (formats are positional, the others
# are `name[:key=value,...]` with every key defaulted, so the name alone must do).
BUILD = {
    "--sparsity": sparsity.parse_sparsity,
    "--kv-method": kvcache.parse_kv_method,
    "--dynamic": dynamic.parse_dynamic,
    "--runtime": runtimes.load_runtime,
    "kernel": families.KERNEL_FAMILIES.lookup,  # a format names its family; not user input
}
FORMAT_EXAMPLES = {"dense": "dense", "nm": "2:4", "unstructured": "unstructured:0.5:bitmap",
                   "block": "block:16:0.5", "structured": "structured:0.3:k"}
WITH_OPTIONS = {"--kv-method": lambda cls: cls.params, "--dynamic": lambda cls: {
    f.name: f for f in __import__("dataclasses").fields(cls)}}
ENTRIES = [(flag, name) for flag, registry in sorted(REGISTRIES.items()) for name in sorted(registry)]


def test_every_pluggable_axis_is_a_registry():
    assert set(REGISTRIES) == set(BUILD)
    assert all(isinstance(r, Registry) for r in REGISTRIES.values())
    assert set(REGISTRIES["--sparsity"]) == set(FORMAT_EXAMPLES)


@pytest.mark.parametrize("flag, name", ENTRIES, ids=[f"{f} {n}" for f, n in ENTRIES])
def test_every_entry_builds_from_its_name_and_is_documented(flag, name):
    entry = REGISTRIES[flag][name]
    assert name == name.lower() and name.strip() == name
    built = BUILD[flag](FORMAT_EXAMPLES[name] if flag == "--sparsity" else name)
    if flag == "--sparsity":
        assert type(built) is entry and built.family == name
    elif flag == "--runtime":  # a profile: every number with its source, and a row in docs/llm.md
        assert built.description and all(getattr(built, f).source for f in (
            "prefill_kernel_launch_us", "decode_kernel_launch_us", "step_us", "per_sequence_us"))
        fmt = lambda v: "spec" if v is None else f"{v:g}"  # noqa: E731
        row = (f"| `{name}` | {built.description} | {fmt(built.prefill_kernel_launch_us.value)} | "
               f"{fmt(built.decode_kernel_launch_us.value)} | {fmt(built.step_us.value)} | "
               f"{fmt(built.per_sequence_us.value)} |")
        assert row in DOCS["llm.md"], f"docs/llm.md's runtime table lacks or misquotes {name}"
    elif flag == "kernel":  # every family says what it is and is priced by its own resolve
        assert built.name == name and built.description and callable(built.resolve) and built.series
        assert f"`{name}`" in DOCS["cost-models.md"], f"docs/cost-models.md does not name kernel family {name}"
    elif flag == "--kv-method":  # a pipeline of one method (adakv brings the SnapKV it spreads)
        assert [m for m in built.methods if m.name == name] and isinstance(built.methods[0], kvcache.KVMethod)
        assert any(isinstance(m, entry) for m in built.methods)
    else:
        assert built.name == name and isinstance(built, entry)
    if flag not in ("--runtime", "kernel"):
        # documented where users read about the axis
        doc = {"--sparsity": "cost-models.md", "--kv-method": "kv.md", "--dynamic": "dynamic.md"}[flag]
        word = FORMAT_EXAMPLES[name].split(":")[0] if flag == "--sparsity" else name
        assert f"`{word}" in DOCS[doc], f"docs/{doc} does not name {flag} {name}"


@pytest.mark.parametrize("flag", sorted(WITH_OPTIONS))
def test_options_are_parsed_alike_on_every_axis(flag):
    for name in REGISTRIES[flag]:
        keys = list(WITH_OPTIONS[flag](REGISTRIES[flag][name]))
        with pytest.raises(SimulatorError, match=f"unknown parameter 'no_such_key'; known: {', '.join(keys) or 'none'}"):
            BUILD[flag](f"{name}:no_such_key=1")
        if keys:
            with pytest.raises(SimulatorError, match=f"write {name}:key=value"):
                BUILD[flag](f"{name}:{keys[0]}")
            with pytest.raises(SimulatorError, match="given twice"):
                BUILD[flag](f"{name}:{keys[0]}=1,{keys[0].upper()}=1")


@pytest.mark.parametrize("flag", sorted(BUILD))
def test_an_unknown_name_lists_the_known_ones(flag):
    with pytest.raises(SimulatorError) as info:
        REGISTRIES[flag].lookup("no-such-entry")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{flag} 'no-such-entry': unknown")
    assert all(name in message for name in REGISTRIES[flag])


def test_a_registry_is_read_only_and_refuses_a_name_twice():
    registry = Registry("thing", "--thing-for-test")
    try:
        registry.register("a", name="A")
        assert registry.lookup(" a ") == "a" and list(registry) == ["a"]
        with pytest.raises(ValueError, match="registered twice"):
            registry.register("b", name="a")
        with pytest.raises(TypeError):
            registry["c"] = "c"  # noqa: B018 - a Mapping has no item assignment
    finally:
        REGISTRIES.pop("--thing-for-test")


@pytest.mark.parametrize("value, kind, message", [("x", float, "is not a number"), ("inf", float, "finite"),
                                                  ("nan", float, "finite"), ("1.5", int, "whole number"),
                                                  ("1e400", float, "finite")])
def test_option_values_are_refused_alike(value, kind, message):
    with pytest.raises(SimulatorError, match=message):
        to_number("--flag", "name", "key", value, kind)
    assert to_number("--flag", "name", "key", "3", int) == 3


def test_option_keys_match_without_regard_to_case():
    assert parse_options("--flag", "m:Budget=0.5", "m", "Budget=0.5", ["budget"]) == {"budget": "0.5"}


def test_every_format_runs_on_a_registered_kernel_family():
    specs = list(FORMAT_EXAMPLES.values()) + [f"unstructured:0.5:{s}" for s in sparsity.UNSTRUCTURED_STORAGES]
    for spec in specs:
        assert sparsity.parse_sparsity(spec).kernel in families.KERNEL_FAMILIES, spec

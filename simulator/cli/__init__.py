"""The ``sparsim`` command. Units are converted here and in report.py only.

Every user mistake ends in one line on stderr and exit code 2, never a traceback.

Over 600 lines: the parser and the text output of the model, gemm, plan and course commands; the other command groups are modules of their own.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import math
import sys

import numpy as np

from simulator.core.errors import SimulatorError
from simulator.cli.util import (MAX_RANGE_VALUES, MAX_SHAPES, _check_output_dir, _check_output_file, _Extend, _finite, _headless_plots, _int_list,
                               _json_records, _json_value, _list_arg, _Parser, _Row, _save_figure, _whole)

MAX_COUNT = 10**9  # sequences, tokens of context, table rows: beyond this a value is a typo
MAX_GPUS = 65_536
MAX_OUTPUT_TOKENS = 10**7  # generated tokens per request (each decode step is priced)


def _gemm_frames(args, plain: bool = False):
    """The estimate (and the dense one, for a sparse format): DataFrames, or with ``plain`` dicts
    of columns with string labels (gemm_columns(plain_labels=True): one GEMM needs no pandas)."""
    from simulator.kernels.gemm import estimate_gemm, gemm_columns

    count = len(args.m) * len(args.n) * len(args.k)
    if count > MAX_SHAPES:
        raise SimulatorError(f"-m x -n x -k: {count:,} shapes, more than {MAX_SHAPES:,} in one command; "
                             "use coarser ranges (or simulator.estimate_gemm from Python)")
    shapes = list(itertools.product(args.m, args.n, args.k))
    m, n, k = (np.array(col) for col in zip(*shapes))

    def estimate(sparsity):
        if plain:
            return gemm_columns(args.hw, m, n, k, args.dtype, sparsity, plain_labels=True)
        return estimate_gemm(args.hw, m, n, k, args.dtype, sparsity)

    return estimate(args.sparsity), estimate("dense") if args.sparsity != "dense" else None


def cmd_gemm(args) -> int:
    from simulator.hardware.spec import load_hw
    from simulator.report.text import explain_gemm, fmt_time

    hw = load_hw(args.hw)
    single = len(args.m) * len(args.n) * len(args.k) == 1
    df, dense = _gemm_frames(args, plain=single)
    if args.json:
        records = _json_records(df)
        if dense is not None:
            for rec, dense_time in zip(records, dense["time_s"]):
                rec["dense_time_s"] = float(dense_time)
                rec["speedup_vs_dense"] = float(dense_time / rec["time_s"])
        print(json.dumps(records[0] if len(records) == 1 else records, indent=None if len(records) > 1 else 2))
        return 0
    if single:
        row = _Row({key: values[0] for key, values in df.items()})
        print(explain_gemm(row, hw, None if dense is None else _Row({key: values[0] for key, values in dense.items()})))
        if row["format"].startswith("unstructured"):
            print(_crossover_line(args, hw))
        return 0
    table = df[["m", "n", "k", "kernel"]].astype({"m": int, "n": int, "k": int})
    for col in ("time_s", "compute_time_s", "memory_time_s"):
        table[col.removesuffix("_s")] = df[col].map(fmt_time)
    table["bound"] = df["bound"]
    if dense is not None:
        table["vs_dense"] = (dense["time_s"] / df["time_s"]).map(lambda x: f"{x:.2f}x")
    print(f"{len(df)} GEMMs on {hw.id}, {args.dtype}, {args.sparsity}")
    print(table.to_string(index=False))
    return 0


def _crossover_line(args, hw) -> str:
    from simulator.kernels.gemm import crossover_sparsity

    parts = []
    for storage in ("masked", "csr", "bitmap", "tiled-csl"):
        try:
            row = crossover_sparsity(hw, args.m, args.n, args.k, args.dtype, storage).iloc[0]
        except SimulatorError:  # e.g. no tensor cores for the bitmap kernel on this device
            continue
        parts.append(f"{storage} from {row.crossover_sparsity:.0%}" if row.beats_dense else f"{storage} never")
    return "  crossover     sparsity at which each unstructured kernel beats dense here: " + ", ".join(parts)


def cmd_hw_list(args) -> int:
    from simulator.hardware.spec import list_hw

    specs = list_hw()
    if args.json:
        print(json.dumps([{"id": s.id, "name": s.name, "kind": s.kind, "architecture": s.architecture,
                           "aliases": s.aliases} for s in specs], indent=2))
        return 0
    width = max(len(s.id) for s in specs)
    for s in specs:
        bf16 = s.matrix_peak_flop_per_s("bf16") or s.vector_peak_flop_per_s("fp32")
        aliases = f"  (alias: {', '.join(s.aliases)})" if s.aliases else ""
        print(f"{s.id:<{width}}  {s.kind:<3}  {s.memory.capacity_GiB:>6.4g} GiB  "
              f"{s.memory.bandwidth_GBps / 1000:>6.3g} TB/s  {bf16 / 1e12:>8.4g} TFLOP/s "
              f"{'bf16' if s.matrix_peak_flop_per_s('bf16') else 'fp32'}  {s.name}{aliases}")
    return 0


def cmd_hw_show(args) -> int:
    import yaml

    from simulator.hardware.spec import load_hw

    spec = load_hw(args.name)
    data = spec.model_dump(mode="json", exclude_none=True)
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        print(yaml.safe_dump(data, sort_keys=False, width=100, allow_unicode=True).rstrip())
    return 0


def cmd_anchors(args) -> int:
    from simulator.truth.workloads import anchor_table, model_anchor_table, speedup_anchor_table

    gemm, model, speedup = anchor_table(), model_anchor_table(), speedup_anchor_table()
    if args.json:
        print(json.dumps({"gemm": json.loads(gemm.to_json(orient="records")),
                          "kernel_speedup": json.loads(speedup.to_json(orient="records")),
                          "model": json.loads(model.to_json(orient="records"))}, indent=2))
        return 0

    def signed(error):
        return f"{error:+.1%}".replace("-", "−")

    def value(metric, v):
        return f"{v * 1e3:.1f} ms TTFT" if metric == "ttft_s" else f"{v:.2f} tok/s"

    print("Published GEMM anchors (../shared/reference/published-anchors.csv rows), model vs measured:")
    print("| row | device | GEMM | published | model | error | efficiencies |")
    print("|---|---|---|---|---|---|---|")
    for r in gemm.itertuples():
        print(f"| {r.row} | {r.hw} | {r.dtype} {r.sparsity} {r.m}×{r.n}×{r.k} | {r.published_time_s * 1e3:.3f} ms | "
              f"{r.model_time_s * 1e3:.3f} ms | {signed(r.error)} | {r.calibration} |")
    print()
    print("Published kernel speed-ups, each averaged over a shape set (spmm.yaml), model vs published:")
    print("| row | kernel | device | sparsity | over | points | published | model mean (range) | error | efficiencies |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in speedup.itertuples():
        print(f"| {r.row} | {r.kernel} | {r.hw} | {r.dtype} {r.sparsity} | {r.baseline} | {r.points} | "
              f"{r.published_speedup:.2f}x | {r.model_speedup:.2f}x ({r.model_min:.2f}-{r.model_max:.2f}) | "
              f"{signed(r.error)} | {r.calibration} |")
    print()
    print("Published whole-model anchors:")
    print("| row | model | device | precision | context | runtime | published | model | error | efficiencies |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in model.itertuples():
        print(f"| {r.row} | {r.model} | {r.hw} | {r.dtype} math, {r.weights} weights | {r.context} | {r.runtime} | "
              f"{value(r.metric, r.published)} | {value(r.metric, r.estimate)} | {signed(r.error)} | {r.calibration} |")
    within = (model["error"].abs() <= 0.15).sum()
    eager = model_anchor_table(runtime="eager")
    print(f"\n{within} of {len(model)} whole-model anchors within 15%; "
          f"{(model['calibration'] != 'spec defaults').sum()} on calibrated efficiencies; median |error| "
          f"{model['error'].abs().median():.1%} with each anchor's runtime ({eager['error'].abs().median():.1%} "
          f"all priced eager)")
    return 0


def _trained_context_note(model, tokens: int) -> None:
    """One line when a rotary model is asked for more positions than it was trained on."""
    from simulator.formats.models import load_model

    cfg = load_model(model)
    if cfg.position != "learned" and cfg.beyond_trained_context(tokens):
        print(f"  note          {tokens:,} tokens is past {cfg.id}'s {cfg.max_position_embeddings:,} trained "
              f"positions: priced as if a long-context (RoPE-scaled) variant ran it")


def cmd_course(args) -> int:
    from simulator.course import AREAS, VERDICTS, bound_text, format_value, ledger, summary_counts, summary_line

    if args.verdict is not None and args.verdict not in VERDICTS:
        raise SimulatorError(f"--verdict {args.verdict!r}: allowed {', '.join(VERDICTS)}")
    table = ledger(area=args.area, ids=_list_arg(args.id, "--id") if args.id else None)
    if args.verdict is not None:
        table = table[table["verdict"] == args.verdict]
    if args.plot is not None:
        _save_figure(lambda: __import__("simulator.report.plots", fromlist=["course_figure"]).course_figure(table), args.plot)
    if args.json:
        print(json.dumps({"claims": json.loads(table.to_json(orient="records")),
                          "summary": summary_counts(table), "areas": list(AREAS)}, indent=2, ensure_ascii=False))
        return 0
    print("The course's numbers (workloads/course/claims.yaml), recomputed by sparsim; docs/course.md explains")
    for r in table.itertuples():
        print(f"\n{r.id}  (lecture {r.lecture}, part {r.part}, line {r.line}): {r.claim}")
        print(f"  slide {bound_text(r.compare, r.slide, r.unit):<22} ({r.relation})  sparsim "
              f"{format_value(r.sparsim, r.unit):<14} {r.verdict}")
        print(f"  why: {r.reason}")
        if r.arithmetic:
            print(f"  arithmetic: {r.arithmetic}")
        print(f"  sparsim computed: {r.basis}")
    print()
    print(summary_line(table))
    return 0


def _reserve_bytes(args) -> float:
    if not (math.isfinite(args.reserve_gb * 1e9) and args.reserve_gb >= 0):
        raise SimulatorError(f"--reserve-gb: must be a finite number of GB >= 0, got {args.reserve_gb:g}")
    return args.reserve_gb * 1e9


def _longest_text(found: dict, phase: str) -> str:
    """One line for --longest-context: how long, what stopped it, and (decode) the prefill's limit."""
    why = {"memory": "memory runs out past it (to 0.1%)",
           "positions": "the model's learned positions end there",
           "unbounded": "memory stops growing (the KV method's budget holds it) and nothing ran out by the "
                        "search's ceiling"}
    text = (f"{found['context']:,} {'tokens of context per sequence' if phase == 'decode' else 'prompt tokens'}; "
            f"{why[found['limit']]}")
    if phase == "decode" and "prefill_context" in found:
        prefill = found["prefill_context"]
        stop = {"memory": "memory", "positions": "the learned positions", "unbounded": "nothing, up to the ceiling"}
        if prefill < found["context"]:
            text += (f". A prompt's prefill fits only up to {prefill:,} tokens (stopped by "
                     f"{stop[found['prefill_limit']]}): longer contexts are reached only by generating past the prompt")
        else:
            text += f"; a prompt that long can be prefilled (up to {prefill:,} tokens)"
    return text


def _rate(tokens_per_s: float) -> str:
    return f"{tokens_per_s:,.0f}" if tokens_per_s >= 100 else f"{tokens_per_s:.3g}"


def _serving_caveats(hws) -> list[str]:
    """The lines every serving estimate ends with: accuracy is not modelled; per device, what is calibrated."""
    from simulator.capacity.serving import ACCURACY_NOTE, calibration_note

    return [f"  note: {ACCURACY_NOTE}"] + [f"  calibration: {calibration_note(h)}" for h in dict.fromkeys(hws)]


def _ms(value) -> float | None:
    """Milliseconds from the command line to seconds (None stays None)."""
    return None if value is None else value * 1e-3


def cmd_plan(args) -> int:
    from simulator.capacity.plan import DEFAULT_HW, DEFAULT_TP, plan_serving
    from simulator.report.text import fmt_bytes, fmt_time

    hws = _list_arg(args.hw, "--hw") if args.hw else list(DEFAULT_HW)
    tps = _list_arg(args.tp, "--tp", int) if args.tp else list(DEFAULT_TP)
    pps = _list_arg(args.pp, "--pp", int) if args.pp else [1]
    for flag, value in (("--max-tpot-ms", args.max_tpot_ms), ("--max-ttft-ms", args.max_ttft_ms)):
        if value is not None and not (math.isfinite(value) and value > 0):
            raise SimulatorError(f"{flag}: must be a positive, finite time in ms, got {value:g}")
    if args.top < 1:
        raise SimulatorError(f"--top: must be a whole number >= 1, got {args.top}")
    if args.output_tokens < 1:
        raise SimulatorError(f"--output-tokens: must be a whole number from 1 to 1,000,000,000, got {args.output_tokens}")
    context = args.mix if args.mix else args.context
    table, candidates = plan_serving(args.model, context, args.output_tokens, hws, tps, pps, args.recipe or ["dense"],
                         args.weights or [None], args.kv_method or [None], args.dtype, _ms(args.max_ttft_ms),
                         _ms(args.max_tpot_ms), args.rate, args.price, args.objective, _reserve_bytes(args),
                         args.token_budget, args.percentile, return_candidates=True, runtime=args.runtime,
                         expert_parallel=(False, True, "dp") if args.ep else (False,))
    met = table[table["meets_targets"].astype(bool)]
    targets = [f"TTFT p{table.attrs['percentile']:g} <= {args.max_ttft_ms:g} ms" if args.max_ttft_ms else None,
               f"TPOT <= {args.max_tpot_ms:g} ms" if args.max_tpot_ms else None,
               f"{args.rate:g} requests/s" if args.rate else None]
    targets = ", ".join(t for t in targets if t) or "no latency target"
    if args.plot is not None:
        from simulator.report.plots import serving_figure

        if not len(candidates) or not candidates["fits"].any():
            raise SimulatorError("--plot: nothing to plot (no deployment fits)")
        title = f"{args.model}, {table.attrs['mix']}, budget {table.attrs['token_budget']} tokens/step"
        best = met.iloc[0] if len(met) else None
        _save_figure(lambda: serving_figure(candidates, best, title), args.plot)
    if not len(met):
        valid = table[table["limited_by"] != "invalid"]
        if not len(valid):
            raise SimulatorError("no valid deployment in this product: every one is refused (change --tp or --hw); "
                                 + str(table["note"].iloc[0]))
        close = valid.assign(_far=valid["target_ratio"].astype(float).fillna(np.inf),
                             _short=valid["shortfall_bytes"].astype(float))
        close = close.sort_values(["_far", "_short"], kind="stable").iloc[0]
        miss = close["note"]
        stages = f" x {close['pp']} stages" if close["pp"] > 1 else ""
        raise SimulatorError(f"no configuration meets {targets}: the closest is {close['tp']} x "
                             f"{close['hw']}{stages} ({close['recipe']}, {close['weights']} weights, KV {close['kv_method']}), "
                             f"limited by {close['limited_by']}: {miss}")
    if args.json:
        from simulator.formats.models import load_model
        from simulator.capacity.serving import ACCURACY_NOTE

        cfg = load_model(args.model)
        print(json.dumps({"model": args.model, "mix": table.attrs["mix"], "context": args.context,
                          "output_tokens": args.output_tokens, "dtype": args.dtype,
                          "token_budget": table.attrs["token_budget"], "percentile": table.attrs["percentile"],
                          "max_ttft_s": _ms(args.max_ttft_ms), "max_tpot_s": _ms(args.max_tpot_ms), "rate": args.rate,
                          "objective": args.objective, "runtime": table.attrs["runtime"],
                          "memory_reserve_bytes_per_gpu": _reserve_bytes(args),
                          "trained_context": cfg.max_position_embeddings, "accuracy": ACCURACY_NOTE,
                          "configurations": _json_records(met),
                          "not_meeting_targets": _json_records(table[~table["meets_targets"].astype(bool)])},
                         indent=2))
        return 0
    print(f"Serving plan: {args.model}, {args.dtype} math, {table.attrs['mix']}; {targets}; objective "
          f"{args.objective}; runtime {table.attrs['runtime']}")
    reserve = f"; {args.reserve_gb:g} GB per GPU reserved for the runtime" if args.reserve_gb else ""
    print(f"  continuous batching, chunked prefill in a {table.attrs['token_budget']}-token budget per step "
          f"(docs/serving.md){reserve}; batch = sequences held; TPOT mean, TTFT at p{table.attrs['percentile']:g}"
          + (" with M/D/1 queueing" if args.rate else " (no queueing)"))
    _trained_context_note(args.model, table.attrs["longest_tokens"])
    cells = []
    for r in met.head(args.top).itertuples():
        cost = "-" if r.cost_per_million_output_tokens is None or math.isnan(r.cost_per_million_output_tokens) \
            else f"${r.cost_per_million_output_tokens:,.2f}"
        cells.append([f"{r.gpus}", f"{r.replicas}", f"{r.tp}" + (" EP+DP" if r.dp_attention else " EP" if r.expert_parallel else ""), f"{r.pp}", r.hw, r.recipe, r.weights, r.kv_method,
                      f"{r.batch}", fmt_time(r.ttft_percentile_s), fmt_time(r.tpot_s), _rate(r.output_tokens_per_s),
                      _rate(r.output_tokens_per_s_per_gpu), cost, fmt_bytes(r.memory_bytes_per_gpu), r.limited_by])
    header = ["GPUs", "replicas", "TP", "PP", "device", "recipe", "weights", "KV method", "batch",
              f"TTFT p{table.attrs['percentile']:g}", "TPOT", "tok/s", "tok/s/GPU", "$/M out", "mem/GPU", "limited by"]
    widths = [max(len(str(row[c])) for row in cells + [header]) for c in range(len(header))]
    left = {4, 5, 6, 7, 15}
    for row in [header] + cells:
        print("  " + " ".join(f"{str(v):<{w}}" if c in left else f"{str(v):>{w}}"
                              for c, (v, w) in enumerate(zip(row, widths))).rstrip())
    if len(met) > args.top:
        print(f"  ... {len(met) - args.top} more (--top N shows more, --json all)")
    missed = table[~table["meets_targets"].astype(bool)]
    if len(missed):
        print(f"not meeting the targets ({len(missed)}):")
        for r in missed.head(args.top).itertuples():
            stages = f" x {r.pp} stages" if r.pp > 1 else ""
            print(f"  {r.tp} x {r.hw}{stages} {r.recipe} {r.weights} {r.kv_method}: {r.limited_by}: {r.note}")
        if len(missed) > args.top:
            print(f"  ... {len(missed) - args.top} more")
    best = met.iloc[0]
    stages = f" x {best.pp} stages" if best.pp > 1 else ""
    if best.dp_attention:
        stages += ", experts parallel, attention data parallel"
    elif best.expert_parallel and best.tp > 1:
        stages += ", experts parallel"
    print(f"recommended ({args.objective}): {best.replicas} replica(s) of {best.tp} x {best.hw}{stages} ({best.recipe}, "
          f"{best.weights} weights, KV {best.kv_method}) at batch {best.batch}: {_rate(best.output_tokens_per_s)} "
          f"output tok/s per replica, TTFT p{table.attrs['percentile']:g} {fmt_time(best.ttft_percentile_s)}, "
          f"TPOT {fmt_time(best.tpot_s)}; limited by {best.limited_by}")
    print(f"  re-derive: {best.model_command}")
    for line in _serving_caveats(met["hw"].head(args.top)):
        print(line)
    return 0


def cmd_roofline(args) -> int:
    import pandas as pd

    _headless_plots()
    from simulator.report.plots import roofline_figure

    formats = list(dict.fromkeys(args.sparsity or ["dense"]))  # each format once, in the order given
    frames = []
    for fmt in formats:
        args.sparsity = fmt
        frames.append(_gemm_frames(args)[0])
    df = pd.concat(frames, ignore_index=True)
    _save_figure(lambda: roofline_figure(args.hw, df, dtype=args.dtype), args.out, "--out", quiet=True)
    print(f"wrote {args.out} ({len(df)} point(s) on {df['device'].iloc[0]}: {', '.join(formats)})")
    return 0


def cmd_tour(args) -> int:
    from simulator.report.tour import run_tour

    if args.plots:
        _check_output_dir(args.plots, "--plots")
        _headless_plots()
    print(run_tour(plots_dir=args.plots))
    return 0


def _devices_with_traces(args) -> list[str]:
    from simulator.hardware.spec import hwspecs_dir, list_hw

    if args.hw:
        return [args.hw]
    found = [s.id for s in list_hw() if any((hwspecs_dir() / s.id / "traces").glob("*.csv"))]
    if not found:
        raise SimulatorError("no device has traces under hwspecs/<device>/traces/; see docs/traces.md")
    return found


def _error_lines(records, indent="  ") -> list[str]:
    lines = [f"{indent}{'class':<24} {'n':>4} {'median APE':>11} {'p90 APE':>9} {'bias':>8}"]
    for r in records:
        if r.get("modelled", True) and r["median_ape"] is not None:
            lines.append(f"{indent}{r['class']:<24} {r['n']:>4} {r['median_ape']:>11.1%} {r['p90_ape']:>9.1%} "
                         f"{r['bias']:>+8.1%}")
        else:
            lines.append(f"{indent}{r['class']:<24} {r['n']:>4}   (no model yet: not validated)")
    return lines


def cmd_validate(args) -> int:
    from simulator.hardware.spec import load_hw
    from simulator.truth.validation import validate, validation_figure

    _check_output_file(args.plot, "--plot")
    results, failed = [], []
    for device in _devices_with_traces(args):
        hw = load_hw(device, calibrated=not args.uncalibrated)
        result = validate(hw)
        results.append(result)
        over = [c["class"] for c in result["classes"]
                if args.fail_above is not None and c["median_ape"] is not None and c["median_ape"] > args.fail_above]
        failed += [f"{hw.id}:{c} (median APE above {args.fail_above:.1%})" for c in over]
        if args.targets:
            from simulator.truth.validation import check_targets

            result["targets"] = check_targets(result, hw.kind, None if args.targets is True else args.targets)
            failed += [f"{hw.id}:{t['class']} (target missed)" for t in result["targets"] if not t["met"]]
        if args.plot:
            _headless_plots()
            path = args.plot if len(_devices_with_traces(args)) == 1 else f"{args.plot.rsplit('.', 1)[0]}-{hw.id}.png"
            _save_figure(lambda: validation_figure(result), path, quiet=True)
            result["plot"] = path
    if args.json:
        clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
        print(json.dumps(clean[0] if len(clean) == 1 else clean, indent=2))
    else:
        for r in results:
            state = r["calibration_state"] if r["calibration_state"] != "spec defaults" else "spec defaults (uncalibrated)"
            print(f"{r['hw']}: held-out rows of {', '.join(r['traces'])}, {state}")
            print(f"  split: {r['split']}")
            print("\n".join(_error_lines(r["classes"])))
            split = [s for s in r["subclasses"] if s.get("modelled") and
                     sum(o["class"].split("/")[0] == s["class"].split("/")[0] for o in r["subclasses"]) > 1]
            if split:
                print("  by dtype, where a class has several:")
                print("\n".join(_error_lines(split, indent="    ")[1:]))
            for c in r["ceilings"]:
                print(f"  ceiling  {c['ceiling']}: measured {c['measured']:.4g} {c['unit']} = "
                      f"{c['fraction']:.0%} of the spec's {c['spec']:.4g}")
            if r.get("excluded"):
                reasons: dict = {}
                for e in r["excluded"]:
                    reasons.setdefault(e["reason"], []).append(e["case_id"].split("/")[-1])
                print(f"  excluded, not scored ({len(r['excluded'])} rows the source says do not time the kernel):")
                for reason, ids in reasons.items():
                    print(f"    {', '.join(ids)}: {reason}")
            if r["worst"]:
                print("  worst held-out cases:")
                for w in r["worst"][:5]:
                    shape = " ".join(f"{key}={w[key]:g}" if isinstance(w[key], (int, float)) else f"{key}={w[key]}"
                                     for key in ("m", "n", "k", "density", "batch", "q_len", "kv_len", "message_bytes",
                                                 "gpus", "topology") if w.get(key) is not None)
                    print(f"    {w['kernel_class']:<6} {w['dtype']:<5} {shape}: measured {w['time_s_median']:.3g} s, "
                          f"model {w['model_time_s']:.3g} s ({w['ape']:.0%} off)")
            if r.get("targets"):
                print("  targets (workloads/validation/targets.yaml):")
                for t in r["targets"]:
                    got = "no rows" if t["median_ape"] is None else f"median {t['median_ape']:.1%}, p90 {t['p90_ape']:.1%}"
                    want = f"median <= {t['target_median_ape']:.0%}" + (
                        f", p90 <= {t['target_p90_ape']:.0%}" if t["target_p90_ape"] else "")
                    print(f"    {t['class']:<18} {got:<28} want {want:<28} {'met' if t['met'] else 'MISSED'}")
            elif args.targets:
                print(f"  targets: none apply to a {load_hw(r['hw']).kind} (workloads/validation/targets.yaml)")
            if "plot" in r:
                print(f"  wrote {r['plot']}")
    if failed:
        print(f"sparsim: validate: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def cmd_calibrate(args) -> int:
    from simulator.truth import calibration

    result = calibration.fit(args.hw)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['device']}: fitted {len(result['parameters'])} parameters on {result['train_rows']} "
              f"training rows; {result['holdout_rows']} rows held out ({result['split']})")
        for name, p in result["parameters"].items():
            print(f"  {name:<24} {p['prior']:>9.4g} -> {p['value']:.4g}")
        if result["not_pinned"]:
            print(f"  not pinned by the training rows (left at the spec's value): {', '.join(result['not_pinned'])}")
        for label, key in (("train, before", "train_before"), ("train, after", "train_after"),
                           ("HELD OUT, before", "holdout_before"), ("HELD OUT, after (report this)", "holdout_after")):
            print(f"  {label}:")
            print("\n".join(_error_lines(result["errors"][key], indent="    ")))
    if not args.dry_run:
        path = calibration.write(result)
        print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    return 0


def cmd_model(args) -> int:
    from simulator.model.llm import estimate_model
    from simulator.report.text import fmt_bytes, fmt_time

    if args.longest_context and (args.output_tokens is not None or args.mix):
        raise SimulatorError("--longest-context: not with --output-tokens (it prices one phase at the context found)")
    if args.phase is not None and (args.output_tokens is not None or args.mix):
        raise SimulatorError(f"--phase {args.phase}: not with --output-tokens, which prices serving whole requests "
                             "(the prefill of --context, then the decode steps); drop one of them")
    args.phase = args.phase or "decode"
    if args.output_tokens is not None or args.mix:
        from simulator.capacity.serving import serve

        r = serve(args.model, args.hw, args.mix or args.context, args.output_tokens, args.batch, args.tp, args.dtype,
                  args.weights, args.recipe, args.kv_method, args.token_budget, _reserve_bytes(args),
                  args.percentile, args.rate, args.kv_dtype, args.dynamic, args.pp, runtime=args.runtime,
                  expert_parallel=args.ep, dp_attention=args.dp_attention)
        if args.json:
            print(json.dumps({k: _json_value(v) for k, v in r.items()}, indent=2))
            return 0
        gpus = f"{args.tp} x {r['hw']}" if args.tp > 1 else r["hw"]
        if args.dp_attention:
            gpus += " (experts parallel, attention data parallel)"
        elif args.ep and args.tp > 1:
            gpus += " (experts parallel)"
        if args.pp > 1:
            gpus = f"{args.pp} stages x {gpus}"
        print(f"{r['model']} on {gpus}: serving {r['mix']}, at most {r['batch']} sequence{'s' if r['batch'] > 1 else ''} held, "
              f"chunked prefill in {r['token_budget']} tokens per step (docs/serving.md), runtime {r['runtime']}")
        if args.output_tokens is not None and not args.mix:
            _trained_context_note(args.model, args.context + args.output_tokens - 1)  # the last step's cache
        pct = f"p{r['percentile']:g}"
        print(f"  steady state  {r['decode_sequences']:.3g} sequences decoding per step, {r['sequences_held']:.3g} held;"
              f" {r['chunk_step_fraction']:.0%} of steps carry a {r['chunk_tokens']:.0f}-token prompt chunk "
              f"({fmt_time(r['step_with_chunk_s'])}; without one {fmt_time(r['step_without_chunk_s'])})"
              + ("; the token budget limits it (more sequences change nothing)" if r["budget_limited"] else ""))
        queue = ""
        if r.get("rate") is not None:
            queue = f" (incl. M/D/1 wait {fmt_time(r['queue_wait_s'])} mean at {r['rate']:g} requests/s)"
        print(f"  TTFT {fmt_time(r['ttft_s'])} mean, {fmt_time(r['ttft_percentile_s'])} {pct}{queue}; "
              f"TPOT {fmt_time(r['tpot_s'])} (inter-token {pct} {fmt_time(r['itl_percentile_s'])})")
        print(f"  sustained {r['output_tokens_per_s']:.4g} output tokens/s ({r['output_tokens_per_s_per_gpu']:.4g} per "
              f"GPU), {r['requests_per_s']:.3g} requests/s")
        verdict = "fits" if r["fits"] else (f"does not fit: needs {fmt_bytes(r['memory_bytes_per_gpu'])}, "
                                            f"has {fmt_bytes(r['memory_capacity_bytes'])}")
        print(f"  peak memory/GPU {fmt_bytes(r['memory_bytes_per_gpu'])} of {fmt_bytes(r['memory_capacity_bytes'])}: "
              f"{verdict}")
        for line in _serving_caveats([r["hw"]]):
            print(line)
        return 0

    for flag, value, default in (("--pp", args.pp, 1), ("--rate", args.rate, None)):
        if value != default:
            raise SimulatorError(f"{flag}: only with --output-tokens or --mix (a steady-state serving estimate)")
    longest = None
    if args.longest_context and args.dp_attention:
        raise SimulatorError("--longest-context: not with --dp-attention yet (the search prices tensor-parallel "
                             "attention); give --context")
    if args.longest_context:
        from simulator.capacity.plan import longest_context

        longest = longest_context(args.model, args.hw, args.phase, args.batch, args.tp, args.dtype, args.weights,
                                  args.recipe, args.kv_method, args.dynamic, args.kv_dtype, _reserve_bytes(args))
        if longest["context"] == 0:
            s = longest["summary"]
            if args.json:
                print(json.dumps({"model": s["model"], "hw": s["hw"], "tp": s["tp"], "phase": s["phase"],
                                  "batch": s["batch"], "longest_context": 0, "longest_context_limit": "memory",
                                  "memory_bytes_per_gpu": s["memory_bytes_per_gpu"],
                                  "memory_capacity_bytes": s["memory_capacity_bytes"]}, indent=2))
                return 0
            print(f"{s['model']} on {s['tp']} x {s['hw']}: not even a 1-token context fits at batch {args.batch}: "
                  f"needs {fmt_bytes(s['memory_bytes_per_gpu'])}, has {fmt_bytes(s['memory_capacity_bytes'])}")
            return 0
        args.context = longest["context"]
    est = estimate_model(args.model, args.hw, args.phase, args.batch, args.context, args.tp, args.dtype,
                         args.weights, args.recipe, args.kv_dtype, kv_method=args.kv_method, dynamic=args.dynamic,
                         memory_reserve_bytes=_reserve_bytes(args), runtime=args.runtime, expert_parallel=args.ep,
                         dp_attention=args.dp_attention)
    if longest is not None and not args.json:
        print(f"longest context at batch {args.batch}: " + _longest_text(longest, args.phase))
    s = est.summary
    if args.json:
        out = dict(s)
        if longest is not None:
            out["longest_context"], out["longest_context_limit"] = longest["context"], longest["limit"]
            if "prefill_context" in longest:
                out["longest_prefill_context"] = longest["prefill_context"]
                out["longest_prefill_context_limit"] = longest["prefill_limit"]
        from simulator.capacity.serving import ACCURACY_NOTE, calibration_note

        out["accuracy"], out["calibration"] = ACCURACY_NOTE, calibration_note(s["hw"])
        out["ops"] = _json_records(est.ops)
        print(json.dumps(out, indent=2))
        return 0
    what = "one decode step" if s["phase"] == "decode" else f"prefill of {s['context']} tokens"
    gpus = f"{s['tp']} x {s['hw']}" if s["tp"] > 1 else s["hw"]
    if s["dp_attention"]:
        gpus += " (experts parallel, attention data parallel)"
    elif s["expert_parallel"] and s["tp"] > 1:
        gpus += " (experts parallel, attention tensor parallel)"
    from simulator.methods.kvcache import parse_kv_method

    print(f"{s['model']} on {gpus}: {what}, batch {s['batch']}, context {s['context']}, {s['dtype']} math, "
          f"weights {s['weights']}, KV {s['kv_dtype']}, recipe {s['recipe']}, "
          f"KV method {parse_kv_method(s['kv_method']).describe()}, dynamic {s['dynamic']}, runtime {s['runtime']}")
    if s["beyond_trained_context"]:
        print(f"  note          context {s['context']:,} is past {s['model']}'s {s['trained_context']:,} trained "
              f"positions: priced as if a long-context (RoPE-scaled) variant ran it")
    print(f"  time          {fmt_time(s['time_s'])} per {'step' if s['phase'] == 'decode' else 'prefill'}: "
          f"{s['tokens_per_s']:.4g} tokens/s")
    verdict = "fits" if s["fits"] else (f"does not fit: needs {fmt_bytes(s['memory_bytes_per_gpu'])}, "
                                        f"has {fmt_bytes(s['memory_capacity_bytes'])}")
    print(f"  memory/GPU    {fmt_bytes(s['memory_bytes_per_gpu'])} = weights {fmt_bytes(s['weight_bytes_per_gpu'])}"
          f" + KV cache {fmt_bytes(s['kv_cache_bytes_per_gpu'])} + activations "
          f"{fmt_bytes(s['activation_bytes_per_gpu'])}"
          + (f" + reserved {fmt_bytes(s['memory_reserve_bytes_per_gpu'])}" if s["memory_reserve_bytes_per_gpu"] else "")
          + f" of {fmt_bytes(s['memory_capacity_bytes'])} "
          f"({s['memory_capacity_bytes'] / 2**30:.1f} GiB): {verdict}")
    if s["phase"] == "decode":
        print(f"  KV cache      {fmt_bytes(s['kv_cache_bytes'])} held (all GPUs), "
              f"{fmt_bytes(s['kv_read_bytes_per_step'])} read per step")
    parts = [f"{name} {fmt_time(t)} ({t / s['time_s']:.0%})" for name, t in s["time_by_category_s"].items() if t > 0]
    print("  time goes to  " + ", ".join(parts))
    table = est.ops[["scope", "layer", "op", "kind", "count", "time_s", "total_time_s", "bound"]].copy()
    table = table[table["count"] > 0]
    table["layer"] = table["layer"].fillna("")
    table["count"] = table["count"].map(lambda c: f"{c:g}")
    table["time_s"] = table["time_s"].map(fmt_time)
    table["share"] = (est.ops["total_time_s"] / s["time_s"]).map(lambda x: f"{x:.1%}")
    table["total_time_s"] = table["total_time_s"].map(fmt_time)
    print(table.rename(columns={"time_s": "each", "total_time_s": "total"}).to_string(index=False))
    for line in _serving_caveats([s["hw"]]):
        print(line)
    return 0


def _add_serving_args(p):
    from simulator.formats.runtimes import DEFAULT_PERCENTILE, DEFAULT_TOKEN_BUDGET

    p.add_argument("--mix", metavar="P:O[:W],...", help="a request mix instead of --context/--output-tokens: "
                   "prompt:output[:weight] classes, e.g. 4096:256:0.7,32768:512:0.3")
    p.add_argument("--token-budget", type=int, default=DEFAULT_TOKEN_BUDGET, metavar="TOKENS",
                   help=f"tokens per step, decode and prefill chunks together (vLLM max_num_batched_tokens; "
                        f"default {DEFAULT_TOKEN_BUDGET})")
    p.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE, metavar="Q",
                   help=f"percentile for TTFT and inter-token latency (default {DEFAULT_PERCENTILE:g})")


def _add_runtime_arg(p):
    from simulator.formats.runtimes import DEFAULT_RUNTIME, RUNTIME_NAMES

    p.add_argument("--runtime", default=DEFAULT_RUNTIME, choices=RUNTIME_NAMES,
                   help="the software's per-step costs: kernel launches (eager, or CUDA graphs) and host time per "
                        f"step and per sequence (workloads/runtimes.yaml, docs/llm.md; default {DEFAULT_RUNTIME})")


def _add_reserve_arg(p):
    p.add_argument("--reserve-gb", type=float, default=0.0, metavar="GB",
                   help="memory per GPU kept for the runtime (CUDA context, workspaces, allocator slack), "
                        "counted against the capacity (default 0; vLLM's default 0.9 utilization of an "
                        "H200 leaves ~15 GB)")


def _add_gemm_args(p, several_formats=False):
    p.add_argument("--hw", default="h100", help="device id, alias or path to a spec YAML (default h100)",
                   repeat_hint="one device per call (`sparsim plan --hw a,b` compares devices)")
    p.add_argument("-m", type=_int_list("-m"), required=True, action=_Extend,
                   help="tokens (rows of x); list '1,16' or range '1:4096:x2'; repeat to add more")
    p.add_argument("-n", type=_int_list("-n"), required=True, action=_Extend,
                   help="output features (rows of W); list or range, repeat to add more")
    p.add_argument("-k", type=_int_list("-k"), required=True, action=_Extend,
                   help="input features (reduction); list or range, repeat to add more")
    p.add_argument("--dtype", default="bf16", help="fp32, tf32, fp16, bf16, fp8, int8, fp4, int4")
    formats = "dense | 2:4 | N:M | unstructured:0.9[:csr|bitmap|tiled-csl|masked] | block:32:0.9 | structured:0.36[:n|k]"
    if several_formats:
        p.add_argument("--sparsity", action="append", help=formats + "; repeat to draw several formats on one "
                       "chart (default dense)")
    else:
        p.add_argument("--sparsity", default="dense", help=formats,
                       repeat_hint="gemm prices one format per call (`sparsim roofline` draws several)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sparsim")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"


class _VersionAction(argparse.Action):
    """``--version``, with the installed version looked up only when asked (importlib.metadata
    costs ~40 ms of every call otherwise)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"sparsim {_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sparsim", description="Roofline and hardware simulator for sparse inference.")
    parser.add_argument("--version", action=_VersionAction, help="show the installed version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, required=True)

    p = sub.add_parser("gemm", help="estimate y = x.W^T for one or many shapes")
    _add_gemm_args(p)
    p.add_argument("--json", action="store_true", help="print JSON (one object, or a list for sweeps)")
    p.set_defaults(func=cmd_gemm)

    p = sub.add_parser("roofline", help="roofline chart with the given GEMMs as points")
    _add_gemm_args(p, several_formats=True)
    p.add_argument("--out", required=True, help="image file to write (.png, .svg, .pdf)")
    p.set_defaults(func=cmd_roofline)

    hw = sub.add_parser("hw", help="list or show hardware specs")
    hw_sub = hw.add_subparsers(dest="hw_command", parser_class=_Parser, required=True)
    p = hw_sub.add_parser("list", help="every shipped device")
    p.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    p.set_defaults(func=cmd_hw_list)
    p = hw_sub.add_parser("show", help="one device's spec with sources")
    p.add_argument("name", help="device id, alias or spec path")
    p.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    p.set_defaults(func=cmd_hw_show)

    p = sub.add_parser("model", help="a whole LLM for one phase: time, tokens/s, memory, where the time goes")
    p.add_argument("--model", required=True, help="model id, e.g. llama-2-70b (see workloads/models/)")
    p.add_argument("--hw", default="h100", help="device id, alias or spec path (default h100)",
                   repeat_hint="one device per call (`sparsim plan --hw a,b` compares devices)")
    p.add_argument("--phase", help="prefill or decode (default decode)")
    p.add_argument("--batch", type=_whole(1, MAX_COUNT), default=1, help="sequences (default 1)")
    p.add_argument("--context", type=_whole(1, MAX_COUNT), default=4096,
                   help="prefill: prompt tokens; decode: tokens in the KV cache (default 4096)")
    p.add_argument("--tp", type=_whole(1, MAX_GPUS), default=1, help="tensor-parallel GPUs (default 1)")
    p.add_argument("--dtype", default="bf16", help="activation and math dtype (default bf16)")
    p.add_argument("--weights", help="weight storage: int8, int4, int4:g128, fp8, fp4 (default: --dtype)")
    p.add_argument("--kv-dtype", help="KV-cache dtype (default: --dtype)")
    p.add_argument("--kv-method", help="KV-cache method(s), name[:key=value,...] joined with '+': h2o, streamingllm, "
                   "snapkv, pyramidkv, adakv, quest, razorattention, kivi, minicache, lazyllm "
                   "(e.g. snapkv:tokens=1024+kivi; default none; see docs/kv.md)")
    p.add_argument("--dynamic", help="input-dependent weight sparsity: teal[:sparsity=0.5], "
                   "dejavu[:mlp_sparsity=0.85,head_sparsity=0.5,predictor_rank=1000], "
                   "naee[:keep_experts=6,skip_second_expert=0], powerinfer[:gpu_fraction=0.2,cpu=i7-5930k], "
                   "flash[:window=5,flash_GBps=6] (docs/dynamic.md)")
    p.add_argument("--output-tokens", type=_whole(1, MAX_OUTPUT_TOKENS), metavar="N",
                   help="price steady-state serving instead (docs/serving.md): requests of --context prompt and N "
                        "output tokens, continuous batching with chunked prefill, at most --batch sequences held "
                        "(not with --phase: a request has both)")
    _add_serving_args(p)
    p.add_argument("--pp", type=_whole(1, MAX_GPUS), default=1, help="with --output-tokens: pipeline stages of --tp "
                   "GPUs each (default 1)")
    p.add_argument("--ep", action="store_true", help="MoE models: expert parallelism over the --tp GPUs (each holds "
                   "experts/tp whole experts; attention stays tensor parallel; docs/llm.md)")
    p.add_argument("--dp-attention", action="store_true", help="MoE models: data-parallel attention with expert "
                   "parallelism over the --tp GPUs (each runs attention whole for batch/tp sequences, holds experts/tp "
                   "experts; two all-to-alls per MoE layer; each GPU schedules its own sequences; docs/llm.md)")
    p.add_argument("--rate", type=_finite(0.0, 1e9, low_open=True, what="a rate in requests/s"), metavar="R",
                   help="with --output-tokens: requests/s arriving at this replica (Poisson); adds the M/D/1 "
                        "queueing wait to TTFT")
    p.add_argument("--longest-context", action="store_true",
                   help="find the longest context that fits at --batch (decode: the context per sequence, with "
                        "the longest prompt a prefill fits; prefill: the prompt) and price the phase there "
                        "(--context is ignored)")
    p.add_argument("--recipe", default="dense", help="pruning recipe, e.g. 2:4, 2:4@mlp, unstructured:0.5:bitmap, "
                   "owl:0.7, width:0.3, depth:0.25, joined with '+' (docs/llm.md)",
                   repeat_hint="join a recipe's parts with '+' (--recipe 2:4+width:0.3); "
                               "`sparsim plan --recipe A --recipe B` compares recipes")
    _add_reserve_arg(p)
    _add_runtime_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser("plan", help="capacity planning: which deployments fit, how large a batch, at what speed")
    p.add_argument("--model", required=True, help="model id, e.g. llama-2-70b (see workloads/models/)")
    p.add_argument("--context", type=int, default=4096, help="prompt tokens per request (default 4096)")
    p.add_argument("--output-tokens", type=int, default=512, metavar="N",
                   help="tokens each request generates (default 512)")
    _add_serving_args(p)
    p.add_argument("--hw", action="append", help="devices, comma-separated or repeated (default h100,h200,b200)")
    p.add_argument("--tp", action="append", help="tensor-parallel degrees, comma-separated or repeated (default 1,2,4,8)")
    p.add_argument("--pp", action="append", help="pipeline stages, comma-separated or repeated (default 1): stages "
                   "over NVLink inside a node, over the spec's internode network between nodes")
    p.add_argument("--ep", action="store_true", help="MoE models: also try expert parallelism over each TP group "
                   "(whole experts per GPU; shown as 'TP 8 EP'), and with data-parallel attention ('TP 8 EP+DP'; "
                   "docs/llm.md)")
    p.add_argument("--recipe", action="append", help="pruning recipe to compare, repeat for several (default dense)")
    p.add_argument("--weights", action="append",
                   help="weight storage to compare (int8, int4:g128, fp8, ...), repeat for several (default: --dtype)")
    p.add_argument("--kv-method", action="append",
                   help="KV-cache method to compare (none, h2o, snapkv:tokens=1024+kivi, ...), repeat for several")
    p.add_argument("--dtype", default="bf16", help="activation and math dtype (default bf16)")
    p.add_argument("--max-tpot-ms", type=float, metavar="MS", help="mean time per output token at most MS ms")
    p.add_argument("--max-ttft-ms", type=float, metavar="MS",
                   help="time to first token at the --percentile at most MS ms (queueing included with --rate)")
    p.add_argument("--rate", type=float, metavar="R", help="requests/s to serve (Poisson): replicas, M/D/1 queueing")
    p.add_argument("--price", metavar="DEV=$,...", help="$ per GPU-hour by device, e.g. h100=2.5,h200=3.7 "
                   "(your prices): $ per million output tokens")
    p.add_argument("--objective", default="throughput", choices=("cost", "throughput", "gpus", "latency"),
                   help="rank by lowest $/M output tokens, most output tokens/s per GPU, fewest GPUs, or lowest "
                        "request latency (default throughput)")
    p.add_argument("--top", type=_whole(1, MAX_COUNT), default=20, help="configurations listed (default 20)")
    p.add_argument("--plot", metavar="FILE", help="also draw the Pareto front (output tokens/s per GPU against "
                   "tokens/s per user) with the recommendation marked, into FILE (png, pdf, svg)")
    _add_reserve_arg(p)
    _add_runtime_arg(p)
    p.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("validate", help="model vs measured traces, held-out split, per kernel class")
    p.add_argument("--hw", help="device with traces (default: every device that has some)")
    p.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    p.add_argument("--plot", metavar="PATH", help="write a predicted-vs-measured chart (log-log)")
    p.add_argument("--uncalibrated", action="store_true", help="use the spec's default efficiencies")
    p.add_argument("--fail-above", type=_finite(0.0, 1e6, low_open=True, what="an error fraction"), metavar="FRACTION",
                   help="exit 1 when a class's held-out median APE exceeds this (e.g. 0.05)")
    p.add_argument("--targets", nargs="?", const=True, metavar="PATH",
                   help="check the held-out errors against per-class targets (default file: "
                        "workloads/validation/targets.yaml, issue 3's); exit 1 on a miss")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("calibrate", help="fit efficiency parameters on the training split of the traces")
    p.add_argument("--hw", required=True, help="device with traces under hwspecs/<id>/traces/")
    p.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    p.add_argument("--dry-run", action="store_true", help="fit and report, but write nothing")
    p.set_defaults(func=cmd_calibrate)

    from simulator.cli.eie import add_parser as add_eie_parser

    add_eie_parser(sub)
    for command in ("traces", "figures", "export"):  # one module per command group, registered here only
        importlib.import_module(f"simulator.cli.{command}").add_parser(sub)

    p = sub.add_parser("anchors", help="the model against published GEMM and whole-model measurements")
    p.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    p.set_defaults(func=cmd_anchors)

    p = sub.add_parser("course", help="every checkable number of the course text, recomputed, with a verdict")
    p.add_argument("--area", help="only one area: hw-fact, gemm, storage, model, dynamic, kv, eie, other")
    p.add_argument("--id", action="append", metavar="CLAIM", help="only these claims (comma-separated or repeated)")
    p.add_argument("--verdict", help="only claims with this verdict: agrees, near, differs, 'not modelled'")
    p.add_argument("--plot", metavar="FILE", help="also draw sparsim / slide per claim into FILE (png, pdf, svg)")
    p.add_argument("--json", action="store_true", help="machine-readable output (strict JSON)")
    p.set_defaults(func=cmd_course)

    p = sub.add_parser("tour", help="headline numbers from the course, computed on built-in data")
    p.add_argument("--plots", metavar="DIR", help="also write the tour's figures into DIR")
    p.set_defaults(func=cmd_tour)
    return parser


def main(argv=None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except SimulatorError as err:
        print(f"sparsim: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `sparsim ... | head`
        return 0

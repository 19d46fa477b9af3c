"""``sparsim eie``: the EIE PE-array model from the command line.

    sparsim eie                               the nine benchmark layers on EIE (64 PEs)
    sparsim eie --layer alex-6 [--pes 64]     one layer, explained (or --json)
    sparsim eie --scaling [--layer alex-7]    1 to 256 PEs: speed-up and load balance
    sparsim eie --compare [--out chart.png]   the nine layers vs CPU / GPU / mobile GPU / A100 / H100
    sparsim eie --compression                 Deep Compression storage of AlexNet and VGG-16

simulator/cli/__init__.py adds the subcommand with ``add_parser(sub)``. Units are formatted here only.
"""

from __future__ import annotations

import argparse
import json
import math

import numpy as np

from simulator.core.errors import SimulatorError


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add the ``eie`` subcommand to sparsim's subparsers (simulator/cli/__init__.py)."""
    p = subparsers.add_parser(
        "eie", help="EIE (ISCA'16) sparse PE-array accelerator: a layer, a PE scaling study, "
                    "the CPU/GPU comparison, Deep Compression storage")
    p.add_argument("--layer", help="benchmark layer: alex-6, alex-7, alex-8, vgg-6, vgg-7, vgg-8, nt-we, "
                                   "nt-wd, nt-lstm (default: all nine)")
    p.add_argument("--matrix", metavar="PATH", help="your own W (outputs x inputs): .npy (dense) or .npz "
                                                    "(scipy.sparse.save_npz) instead of --layer")
    p.add_argument("--activations", metavar="PATH", help="input vector a (.npy); default: random at the "
                                                         "layer's activation density")
    p.add_argument("--spec", default="eie-64pe", help="PE-array spec id or YAML path (default eie-64pe)")
    p.add_argument("--pes", type=int, help="number of PEs (paper: 64 built; 256 in its 28 nm projection)")
    p.add_argument("--clock-mhz", type=float, help="clock in MHz (paper: 800; 1200 in the 28 nm projection)")
    p.add_argument("--queue-depth", type=int, help="activation queue depth (paper: 8)")
    p.add_argument("--weight-density", type=float, help="replace the layer's weight density, in (0, 1]")
    p.add_argument("--act-density", type=float, help="replace the activation density, in (0, 1]")
    p.add_argument("--seed", type=int, default=0, help="seed of the synthetic W and a (default 0)")
    p.add_argument("--no-spill", action="store_true",
                   help="make a layer that does not fit the on-chip SRAM an error (default: flag it)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--scaling", action="store_true", help="speed-up and load balance from 1 to 256 PEs")
    mode.add_argument("--compare", action="store_true", help="EIE vs the 2016 CPU/GPU baselines and A100/H100")
    mode.add_argument("--compression", action="store_true", help="Deep Compression bytes per layer and network")
    from simulator.cli.util import _int_list  # shared list/range syntax ('1,2,4' or '1:256:x2')

    p.add_argument("--scaling-pes", type=_int_list("--scaling-pes"), default=None, metavar="LIST",
                   help="PE counts for --scaling (default 1:256:x2)")
    p.add_argument("--huffman", help="--compression: 'measured' (paper's code lengths, the default) or "
                                     "'index-entropy' (index bits from the random-gap model)")
    p.add_argument("--out", metavar="PATH", help="--compare: also write the log-scale speed-up / energy chart")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_eie)
    return p


# ---- helpers -----------------------------------------------------------------------------------

def _clean(value):
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(df) -> list[dict]:
    return [{k: _clean(v) for k, v in row.items()} for row in df.to_dict(orient="records")]


def _load_matrix(path: str):
    import scipy.sparse as sp

    try:
        if path.endswith(".npz"):
            return sp.load_npz(path)
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SimulatorError(f"--matrix: file {path!r} does not exist") from None
    except (ValueError, OSError, EOFError) as exc:
        raise SimulatorError(f"--matrix: cannot read {path!r} as .npy or scipy .npz "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _load_vector(path: str):
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise SimulatorError(f"--activations: file {path!r} does not exist") from None
    except (ValueError, OSError, EOFError) as exc:
        raise SimulatorError(f"--activations: cannot read {path!r} as .npy "
                             f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None


def _target(args):
    if args.matrix and args.layer:
        raise SimulatorError("give --layer or --matrix, not both")
    if args.matrix:
        return _load_matrix(args.matrix)
    return args.layer


def _spec(args):
    from simulator.kernels.eie import load_eie

    return load_eie(args.spec, pes=args.pes, clock_mhz=args.clock_mhz, queue_depth=args.queue_depth)


def _kwargs(args) -> dict:
    kw = {"activation_density": args.act_density, "allow_spill": not args.no_spill}
    if args.weight_density is not None:
        kw["weight_density"] = args.weight_density
    return kw


def _kib(n_bytes: float) -> str:
    return f"{n_bytes / 1024:.1f} KiB"


def explain_layer(r: dict) -> str:
    """Several lines of text about one ``simulate_layer`` record."""
    from simulator.report.text import fmt_time

    lines = [
        f"EIE (spec {r['spec']}): {r['layer']}, W {r['rows']}x{r['cols']} (outputs x inputs), weight density "
        f"{r['weight_density']:.1%}, activation density {r['activation_density']:.1%}; {r['pes']} PEs at "
        f"{r['clock_mhz']:g} MHz, queue depth {r['queue_depth']}",
        f"  storage       {r['nonzeros']:,} non-zeros + {r['entries'] - r['nonzeros']:,} filler zeros "
        f"({r['padding_fraction']:.1%} of {r['entries']:,} 8-bit entries), {r['output_batches']} output "
        f"batch(es) of <= 64 rows per PE",
        f"  work          {r['broadcasts']:,} broadcasts of non-zero activations; {r['entries_processed']:,} "
        f"entries processed, of which {r['macs']:,} real MACs ({r['real_work_fraction']:.1%})",
        f"  cycles        {r['cycles_ideal']:,.0f} ideal (entries / PEs) vs {r['cycles']:,} simulated: "
        f"load balance {r['load_balance']:.1%}",
        f"  time          {fmt_time(r['time_s'])} simulated ({fmt_time(r['time_s_ideal'])} ideal); "
        f"{r['gop_per_s_effective']:.3g} GOP/s of real work",
        f"  energy        {r['energy_j'] * 1e6:.3g} uJ = SpMat {r['energy_spmat_j'] * 1e6:.3g} + pointers "
        f"{r['energy_pointer_j'] * 1e6:.3g} + arithmetic {r['energy_arithmetic_j'] * 1e6:.3g} + act R/W "
        f"{r['energy_activation_rw_j'] * 1e6:.3g} + queues {r['energy_queue_j'] * 1e6:.3g} + stalled "
        f"{r['energy_idle_j'] * 1e6:.3g} + LNZD {r['energy_lnzd_j'] * 1e6:.2g}; average {r['power_w']:.3g} W "
        f"(time x {r['chip_power_w']:.3g} W chip power: {r['energy_j_chip_power'] * 1e6:.3g} uJ)",
    ]
    verdict = "fits" if r["fits_on_chip"] else f"DOES NOT FIT (short by {_kib(r['sram_shortfall_bytes'])})"
    lines.append(
        f"  SRAM per PE   SpMat {_kib(r['spmat_bytes_per_pe'])}{'' if r['spmat_fits'] else ' (over)'} + pointers "
        f"{_kib(r['pointer_bytes_per_pe'])}{'' if r['pointer_fits'] else ' (over)'} + activations "
        f"{_kib(r['activation_bytes_per_pe'])}{'' if r['activation_fits'] else ' (over)'} of "
        f"{_kib(r['sram_bytes_per_pe'])}: {verdict}")
    if not r["fits_on_chip"]:
        lines.append("                time and energy assume the layer is resident; reloading it is not modelled")
    if r.get("paper_time_s") and math.isfinite(r["paper_time_s"]):
        lines.append(f"  paper         [EIE] Table IV (64 PEs): {fmt_time(r['paper_time_s_theoretical'])} "
                     f"theoretical, {fmt_time(r['paper_time_s'])} actual")
    return "\n".join(lines)


# ---- modes -------------------------------------------------------------------------------------

def _cmd_layers(args) -> int:
    from simulator.kernels.eie import simulate_layer, simulate_layers

    spec = _spec(args)
    target = _target(args)
    activations = _load_vector(args.activations) if args.activations else None
    if target is None:
        if activations is not None:
            raise SimulatorError("--activations needs --layer or --matrix")
        df = simulate_layers(spec, seed=args.seed, **_kwargs(args))
        if args.json:
            print(json.dumps(_records(df), indent=None))
            return 0
        print(f"EIE ({spec.id}): {spec.pes} PEs at {spec.array.clock_MHz:g} MHz, the nine layers of [EIE] "
              "Table III (synthetic W and a, seed {})".format(args.seed))
        header = (f"  {'layer':<8} {'cycles ideal':>12} {'simulated':>10} {'balance':>8} {'time':>9} "
                  f"{'paper':>9} {'energy':>9} {'power':>7} {'SRAM':>5}")
        print(header)
        for r in df.to_dict(orient="records"):
            paper = f"{r['paper_time_s'] * 1e6:.1f} us" if math.isfinite(r["paper_time_s"]) else "-"
            print(f"  {r['layer']:<8} {r['cycles_ideal']:>12,.0f} {r['cycles']:>10,} {r['load_balance']:>8.1%} "
                  f"{r['time_s'] * 1e6:>6.1f} us {paper:>9} {r['energy_j'] * 1e6:>6.2f} uJ {r['power_w']:>5.2f} W "
                  f"{'fits' if r['fits_on_chip'] else 'OVER':>5}")
        return 0
    r = simulate_layer(spec, target, activations, args.seed, **_kwargs(args))
    if args.json:
        print(json.dumps({k: _clean(v) for k, v in r.items()}, indent=2))
    else:
        print(explain_layer(r))
    return 0


def _cmd_scaling(args) -> int:
    from simulator.kernels.eie import SCALING_PES, load_layers, scaling_study

    spec = _spec(args)
    pes = args.scaling_pes or list(SCALING_PES)
    target = _target(args)
    activations = _load_vector(args.activations) if args.activations else None
    if target is None:  # every layer, as [EIE] Fig. 11 / 13
        from simulator.kernels.eie import check_simulation_budget

        check_simulation_budget([(layer.rows, layer.cols, p, spec.pipeline.accumulators_per_pe)
                                 for layer in load_layers().values() for p in pes],
                                f"--scaling-pes: {len(pes):,} PE counts x {len(load_layers())} layers")
        frames = [scaling_study(name, pes, spec, None, args.seed, **_kwargs(args)) for name in load_layers()]
        if args.json:
            print(json.dumps([rec for f in frames for rec in _records(f)]))
            return 0
        print(f"EIE speed-up over {pes[0]} PE(s) (load balance) for each layer, {spec.array.clock_MHz:g} MHz, "
              f"queue depth {spec.pipeline.activation_queue_depth}")
        print(f"  {'layer':<8} " + " ".join(f"{p:>13}" for p in pes))
        for f in frames:
            cells = [f"{s:>6.1f}x ({b:>3.0%})" for s, b in zip(f["speedup"], f["load_balance"])]
            print(f"  {f['layer'].iloc[0]:<8} " + " ".join(f"{c:>13}" for c in cells))
        return 0
    df = scaling_study(target, pes, spec, activations, args.seed, **_kwargs(args))
    if args.json:
        print(json.dumps(_records(df)))
        return 0
    print(f"EIE scaling: {df['layer'].iloc[0]}, W {df['rows'].iloc[0]}x{df['cols'].iloc[0]}, "
          f"{spec.array.clock_MHz:g} MHz, queue depth {spec.pipeline.activation_queue_depth}")
    print(f"  {'PEs':>5} {'cycles':>10} {'ideal':>10} {'speed-up':>9} {'ideal':>7} {'balance':>8} "
          f"{'fillers':>8} {'time':>10} {'SRAM':>5}")
    for r in df.to_dict(orient="records"):
        print(f"  {r['pes']:>5} {r['cycles']:>10,} {r['cycles_ideal']:>10,.0f} {r['speedup']:>8.1f}x "
              f"{r['ideal_speedup']:>6.1f}x {r['load_balance']:>8.1%} {r['padding_fraction']:>8.1%} "
              f"{r['time_s'] * 1e6:>7.1f} us {'fits' if r['fits_on_chip'] else 'OVER':>5}")
    return 0


def _cmd_compare(args) -> int:
    from simulator.kernels.eie import PAPER_HEADLINE, comparison_table, headline_gains

    if args.layer or args.matrix or args.activations:
        raise SimulatorError("--compare runs the nine benchmark layers; drop --layer/--matrix/--activations")
    from simulator.cli.util import _check_output_file

    _check_output_file(args.out, "--out")
    spec = _spec(args)
    df = comparison_table(spec, seed=args.seed)
    gains = headline_gains(df)
    if args.out is not None:
        from simulator.cli.util import _save_figure

        _save_figure(lambda: comparison_figure(df), args.out, "--out", quiet=True)
    if args.json:
        print(json.dumps({"layers": _records(df), "headline": _records(gains)}))
        return 0
    print(f"EIE ({spec.id}, {spec.pes} PEs, {spec.array.clock_MHz:g} MHz) vs batch-1 GEMV on each platform; "
          "time in us, speed-up and energy gain of EIE (paper's Table IV in brackets)")
    for (platform, model), g in df.groupby(["platform", "model"], sort=False):
        print(f"  {g['label'].iloc[0]}, {model} ({g['kernel'].iloc[0]}, {g['dtype'].iloc[0]}, "
              f"{g['power_w'].iloc[0]:g} W {g['power_basis'].iloc[0]}):")
        for r in g.to_dict(orient="records"):
            paper = (f" [{r['paper_time_s'] * 1e6:8.1f} us, {r['paper_speedup']:7.1f}x]"
                     if math.isfinite(r["paper_time_s"]) else "")
            print(f"    {r['layer']:<8} {r['time_s'] * 1e6:9.1f} us  EIE {r['eie_time_s'] * 1e6:5.1f} us  "
                  f"{_times(r['speedup'], 'faster', 'slower', 8, '.2f')}  "
                  f"{_times(r['energy_gain'], 'less energy', 'more energy', 9, '.0f')}{paper}")
    print("  geometric mean over the nine layers (as [EIE] Fig. 6/7):")
    for r in gains.to_dict(orient="records"):
        ref = PAPER_HEADLINE.get((r["platform"], r["model"]))
        quoted = f"; paper's abstract: {ref[0]:g}x, {ref[1]:,.0f}x" if ref else ""
        table4 = (f"; from Table IV: {r['paper_speedup']:.3g}x, {r['paper_energy_gain']:,.0f}x"
                  if math.isfinite(r["paper_speedup"]) else "")
        print(f"    vs {r['label']:<22} {r['model']:<6} EIE {_times(r['speedup'], 'faster', 'slower', 8, '.3g')}, "
              f"{_times(r['energy_gain'], 'less energy', 'more energy', 8, ',.0f')}{table4}{quoted}")
    if args.out is not None:
        print(f"wrote {args.out}")
    return 0


def _cmd_compression(args) -> int:
    from simulator.kernels.deep_compression import compression_table, network_summary

    if args.layer or args.matrix:
        raise SimulatorError("--compression reports the Deep Compression networks; drop --layer/--matrix")
    summary = network_summary(args.huffman)
    if args.json:
        layers = [rec for net in summary["network"] for rec in _records(compression_table(net, args.huffman))]
        print(json.dumps({"networks": _records(summary), "layers": layers}))
        return 0
    print(f"Deep Compression (pruning + {args.huffman} Huffman), fp32 dense = 4 B per weight, MB = 1e6 B")
    for r in summary.to_dict(orient="records"):
        print(f"  {r['network']:<8} {r['bytes_dense'] / 1e6:7.1f} MB -> P {r['bytes_pruned'] / 1e6:6.1f} MB "
              f"({r['ratio_pruned']:.1f}x) -> P+Q {r['bytes_pq'] / 1e6:5.2f} MB ({r['ratio_pq']:.1f}x) -> "
              f"P+Q+H {r['bytes_pqh'] / 1e6:5.2f} MB ({r['ratio_pqh']:.1f}x); paper: "
              f"{r['reported_dense_bytes'] / 1e6:g} MB -> {r['reported_compressed_bytes'] / 1e6:g} MB "
              f"({r['reported_ratio']:g}x; P+Q {r['reported_ratio_pq']:g}x)")
    return 0


def cmd_eie(args) -> int:
    if args.out is not None and not args.compare:
        raise SimulatorError("--out writes the --compare chart; add --compare (other modes draw nothing)")
    if args.huffman is not None and not args.compression:
        raise SimulatorError("--huffman sets the --compression mode's code lengths; add --compression")
    args.huffman = args.huffman or "measured"
    if args.compare:
        return _cmd_compare(args)
    if args.compression:
        return _cmd_compression(args)
    if args.scaling:
        return _cmd_scaling(args)
    if args.scaling_pes is not None:
        raise SimulatorError("--scaling-pes goes with --scaling")
    return _cmd_layers(args)


def comparison_figure(df):
    """Log-scale bars of EIE's speed-up and energy gain over each platform, per layer and their
    geometric mean (Fig. 6/7), in the course style (simulator.report.figures)."""
    import matplotlib.pyplot as plt

    from simulator.report.figures import FIGSIZE, eie_axes, figure_style

    with figure_style():
        fig, axes = plt.subplots(2, 1, figsize=FIGSIZE, sharex=True)
        eie_axes(axes, df)
        handles, labels = axes[0].get_legend_handles_labels()
        axes[0].legend(handles, labels, ncol=4, loc="upper left", fontsize=12)
        axes[0].set_title("EIE vs batch-1 GEMV on each platform (model; >1 means EIE wins)")
    return fig


def _times(ratio: float, better: str, worse: str, width: int, spec: str) -> str:
    """'4.1x slower' rather than '0.24x faster': a ratio below 1 is shown inverted with the other word."""
    if ratio >= 1:
        return f"{format(ratio, spec):>{width}}x {better}"
    return f"{format(1.0 / ratio, spec):>{width}}x {worse}"

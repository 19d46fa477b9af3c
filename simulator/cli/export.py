"""`sparsim export vidur`: sparsim's estimates as Vidur profiling files (simulator/truth/export_vidur.py)."""

from __future__ import annotations

from simulator.cli.util import _list_arg


def cmd_export_vidur(args) -> int:
    from simulator.truth.export_vidur import MANIFEST, write_profiles

    tp = _list_arg(args.tp, "--tp", int) if args.tp else None
    paths = write_profiles(args.out, args.model, args.hw, tp=tp, recipe=args.recipe, dtype=args.dtype,
                           weights=args.weights, kv_method=args.kv_method, max_tokens=args.max_tokens,
                           max_seq_len=args.max_seq_len, max_batch_size=args.max_batch_size)
    for name, path in paths.items():
        print(f"wrote {path} (Vidur {name} layout)")
    print(f"wrote {paths['mlp.csv'].parent / MANIFEST}")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="write sparsim's estimates in another tool's input format (Vidur)")
    export_sub = p.add_subparsers(dest="export_command", required=True)
    v = export_sub.add_parser("vidur", help="Vidur's profiles (mlp.csv, attention.csv, all_reduce.csv) for a model "
                                            "on a device, from sparsim's kernel times (docs/llm.md, 'Exporting to Vidur')")
    v.add_argument("--model", required=True, help="model id, alias or .yaml path (dense decoders)")
    v.add_argument("--hw", required=True, help="device id, alias or spec path")
    v.add_argument("--tp", action="append", help="tensor-parallel degrees, comma-separated or repeated "
                                                 "(default: those of 1,2,4,8 the model's heads and FFN split over)")
    v.add_argument("--recipe", default="dense", help="sparsity recipe (2:4, unstructured:0.5, owl:0.7, ...; "
                                                     "no structured cuts)")
    v.add_argument("--dtype", default="fp16", help="math and activation dtype (default fp16, as Vidur profiles)")
    v.add_argument("--weights", help="weight storage: int8, int4, int4:g128, fp8, fp4 (default: --dtype)")
    v.add_argument("--kv-method", help="KV-cache method (h2o, snapkv, quest, ...): prices attention.csv's decode rows")
    v.add_argument("--max-tokens", type=int, default=4096, help="mlp.csv's largest token count (default 4096, as Vidur's)")
    v.add_argument("--max-seq-len", type=int, default=4096, help="attention.csv's longest sequence (default 4096)")
    v.add_argument("--max-batch-size", type=int, default=128, help="attention.csv's largest decode batch (default 128)")
    v.add_argument("--out", required=True, metavar="DIR", help="folder to write profiling/compute/<hw>/<model>/ and "
                                                               "profiling/network/<hw>/ into")
    v.set_defaults(func=cmd_export_vidur)

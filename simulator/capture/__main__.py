"""Command line: ``python -m simulator.capture --suite NAME --out DIR`` (see docs/traces.md).

Exit codes: 0 done (failed cases are rows, not failures), 2 bad input, 3 the CUDA context was
lost, 4 one case hung past --case-timeout-s (for both: run again with --resume to measure the
rest in a fresh process), 130 interrupted.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import socket
import sys
import time
from pathlib import Path

from .suites import SUITES, build_suite, groups_in_order, rough_seconds


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, no usage block
        self.exit(2, f"capture: error: {message}\n")


class UsageError(Exception):
    pass


def parse_args(argv):
    p = _Parser(prog="python -m simulator.capture",
                description="Measure kernel timings with torch and write them as a trace CSV + env JSON.")
    p.add_argument("--suite", choices=sorted(SUITES), help="which cases to run (see --list-suites)")
    p.add_argument("--out", type=Path, help="output folder, e.g. hwspecs/<device-id>/traces/")
    p.add_argument("--device", choices=("cpu", "cuda"),
                   help="default: the suite's own device, else cuda if available, else cpu")
    p.add_argument("--budget-s", type=float, help="wall-clock budget for the cases (default: the suite's)")
    p.add_argument("--max-cases", type=int, help="run only the first N cases (quick tests)")
    p.add_argument("--groups", help="comma-separated groups to run (default all; see --dry-run)")
    p.add_argument("--dry-run", action="store_true", help="list the cases and exit; runs nothing")
    p.add_argument("--list-suites", action="store_true", help="list the suites and exit")
    p.add_argument("--resume", action="store_true",
                   help="continue today's file of this suite: keep its rows, run the missing cases")
    p.add_argument("--tag", help="file-name tag (default: GPU name, or cpu-<hostname>)")
    p.add_argument("--case-timeout-s", type=float, default=120.0,
                   help="end the process (exit 4) if one case runs longer; --resume then skips it")
    p.add_argument("--no-profile", action="store_true", help="skip torch.profiler kernel names")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.max_cases is not None and args.max_cases < 1:
        p.error("--max-cases must be at least 1")
    if args.budget_s is not None and args.budget_s <= 0:
        p.error("--budget-s must be positive")
    if args.tag is not None and not re.fullmatch(r"[A-Za-z0-9._-]+", args.tag):
        p.error("--tag may hold only letters, digits, '.', '_' and '-'")
    return args


def resolve_device(requested: str | None, suite_device: str, need_torch: bool) -> str:
    if suite_device != "any":
        if requested and requested != suite_device:
            raise UsageError(f"this suite runs on {suite_device} only; drop --device {requested}")
        return suite_device
    if requested:
        return requested
    if not need_torch:
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def select_cases(args, device):
    cases = build_suite(args.suite, device)
    if args.groups:
        wanted = [g.strip() for g in args.groups.split(",") if g.strip()]
        known = groups_in_order(cases)
        unknown = [g for g in wanted if g not in known]
        if unknown:
            raise UsageError(f"unknown group(s) {', '.join(unknown)}; suite {args.suite} has: {', '.join(known)}")
        cases = [c for c in cases if c.group in wanted]
    if args.max_cases:
        cases = cases[: args.max_cases]
    return cases


def dry_run(args, cases, device) -> int:
    for i, case in enumerate(cases):
        print(f"{i:5d}  {case.case_id}")
    groups = groups_in_order(cases)
    per_group = {g: sum(1 for c in cases if c.group == g) for g in groups}
    print(f"{len(cases)} cases in {len(groups)} groups: " + ", ".join(f"{g} {n}" for g, n in per_group.items()))
    kernel_s = sum(rough_seconds(c, device) for c in cases)
    print(f"suite {args.suite} on {device}: budget {args.budget_s or SUITES[args.suite].budget_s:.0f} s; "
          f"rough kernel time of one rep of each case {kernel_s:.1f} s (a sizing guess, not a prediction)")
    return 0


def file_tag(env: dict, device: str) -> str:
    from .env import gpu_tag

    if device == "cuda":
        return gpu_tag(env["gpu_name"])
    host = re.sub(r"[^a-z0-9]+", "-", socket.gethostname().lower()).strip("-")[:16] or "host"
    return f"cpu-{host}"


def real_run(args, cases, device) -> int:
    try:
        import torch
    except ImportError as exc:
        raise UsageError(f"torch is not importable ({exc}); only --dry-run and --list-suites work without it")
    if device == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"suite {args.suite} needs CUDA but torch.cuda.is_available() is False "
                         "(use --dry-run to list its cases)")
    if args.out is None:
        raise UsageError("--out is required (e.g. --out hwspecs/<device-id>/traces/)")

    from .env import ClockSampler, collect, command_line, load_average, nvidia_smi
    from .runner import ContextLost, Runner, TraceFiles, choose_stem

    suite = SUITES[args.suite]
    budget_s = args.budget_s or suite.budget_s
    args.out.mkdir(parents=True, exist_ok=True)
    env = collect(args.suite, device)
    date = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d")
    stem = choose_stem(args.out, f"{args.suite}-{date}-{args.tag or file_tag(env, device)}", args.resume)
    files = TraceFiles(args.out, stem)
    if args.resume and files.env.exists():
        env = {**json.loads(files.env.read_text()), "nvidia_smi_after": None}
    run_record = {"started_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "command": command_line(), "budget_s": budget_s, "resume": args.resume,
                  "cases_selected": len(cases)}
    env.setdefault("runs", []).append(run_record)
    env["complete"] = False
    files.write_env(env)

    runner = Runner(suite, cases, device, files, budget_s, profile=not args.no_profile,
                    case_timeout_s=args.case_timeout_s, log=lambda msg: print(msg, flush=True))
    previous = runner.load_previous() if args.resume else []
    torch.manual_seed(args.seed)
    sampler = ClockSampler().start() if device == "cuda" else None
    print(f"capture: suite {args.suite} on {device}, {len(cases)} cases, budget {budget_s:.0f} s -> {files.csv}",
          flush=True)
    load = env.get("load_average_start")
    if device == "cpu" and load and load[0] > 0.5:
        print(f"capture: warning: load average {load[0]:.2f}; other busy processes distort CPU timings",
              file=sys.stderr, flush=True)
    t0, rc, counts = time.monotonic(), 0, {}
    try:
        counts = runner.run(previous)
    except KeyboardInterrupt:
        rc = 130
    except ContextLost:
        rc = 3
    finally:
        run_record.update(finished_utc=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                          wall_s=round(time.monotonic() - t0, 1), status_counts=runner.state.counts,
                          profile_s=round(runner.state.profile_s, 1), exit_code=rc)
        if sampler is not None:
            env.setdefault("clock_samples", []).extend(sampler.stop())
        env["nvidia_smi_after"] = nvidia_smi()
        env["load_average_end"] = load_average()
        rows = files.read_rows()
        env["complete"] = rc == 0 and {r["case_id"] for r in rows} >= {c.case_id for c in cases}
        files.write_env(env)
    counts = counts or runner.state.counts  # an interrupted run still wrote (and counted) rows
    print(f"capture: {sum(counts.values()) if counts else 0} rows this run in {time.monotonic() - t0:.0f} s "
          f"({', '.join(f'{n} {k}' for k, n in counts.items())}); wrote {files.csv} and {files.env}", flush=True)
    if rc == 3:
        print("capture: the CUDA context was lost; run the same command with --resume to measure the rest",
              file=sys.stderr)
    return rc


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.list_suites:
        for name, suite in SUITES.items():
            print(f"{name:10s} device={suite.device:4s} budget={suite.budget_s:.0f}s  {suite.description}")
        return 0
    if args.suite is None:
        print("capture: error: --suite is required (see --list-suites)", file=sys.stderr)
        return 2
    try:
        device = resolve_device(args.device, SUITES[args.suite].device, need_torch=not args.dry_run)
        cases = select_cases(args, device)
        return dry_run(args, cases, device) if args.dry_run else real_run(args, cases, device)
    except UsageError as exc:
        print(f"capture: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

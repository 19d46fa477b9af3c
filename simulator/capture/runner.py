"""Run a suite's cases under a time budget and write one CSV row per case as it finishes.

Rows are flushed one by one, and the id of the case being run is kept in a ``.progress`` file,
so a run that dies (segfault in a library, lost CUDA context) can be resumed with ``--resume``:
the case that was running is recorded as ``error:crashed`` and the rest of its group skipped.
"""

from __future__ import annotations

import csv
import gc
import json
import math
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .suites import Case, Suite, case_flops, groups_in_order, rough_seconds

COLUMNS = (
    "case_id", "suite", "group", "kernel_class", "op", "backend", "dtype", "weight_dtype", "phase",
    "m", "n", "k", "density", "nnz", "block_size", "group_size",
    "batch", "heads", "kv_heads", "head_dim", "q_len", "kv_len", "causal",
    "model_hidden", "model_ffn", "bytes_copied", "shape_source", "flops",
    "time_s_median", "time_s_p10", "time_s_p90", "time_s_min", "reps", "timing_method",
    "rotation_sets", "kernel_names", "profiled_device_s", "torch_calls", "status",
)
# Statuses that a --resume run measures again (the case never got a fair try).
RESUMABLE = ("skipped:cuda-context-lost", "skipped:interrupted")

PROFILE_SHARE_OF_BUDGET = 0.1
FAIL_FAST_CASES = 8
CONTEXT_LOST = "cuda-context-lost"
EXIT_WATCHDOG = 4


class ContextLost(Exception):
    """The CUDA context is unusable; the process must end (a new one can --resume)."""


@dataclass
class RunState:
    """What the loop learns as it goes."""

    done: set = field(default_factory=set)
    dead_groups: dict = field(default_factory=dict)  # group -> skip status for its remaining cases
    profiled: set = field(default_factory=set)
    profile_s: float = 0.0
    counts: dict = field(default_factory=dict)


def case_row(case: Case, suite: str) -> dict:
    row = {name: getattr(case, name) for name in COLUMNS if hasattr(case, name) and name != "case_id"}
    row.update(case_id=case.case_id, suite=suite, flops=case_flops(case))
    return row


def format_cell(value):
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    return value


def status_bucket(status: str) -> str:
    """'ok', 'error' or the full 'skipped:<reason>' (for counts)."""
    return status if status.startswith("skipped") else status.split(":", 1)[0]


def error_status(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    first = lines[0].strip() if lines else ""
    return f"error:{type(exc).__name__}: {first[:200]}".rstrip(": ").replace("\n", " ")


class TraceFiles:
    """The CSV, its .env.json and the .progress marker of one stem in ``out_dir``."""

    def __init__(self, out_dir: Path, stem: str):
        self.csv = out_dir / f"{stem}.csv"
        self.env = out_dir / f"{stem}.env.json"
        self.progress = out_dir / f"{stem}.progress"

    def read_rows(self) -> list[dict]:
        if not self.csv.exists():
            return []
        with self.csv.open(newline="") as f:
            return list(csv.DictReader(f))

    def write_env(self, env: dict):
        tmp = self.env.with_suffix(".tmp")
        tmp.write_text(json.dumps(env, indent=2, default=str) + "\n")
        tmp.replace(self.env)


def choose_stem(out_dir: Path, base: str, resume: bool) -> str:
    """File stem for this run: ``base``, or ``base-2``, ``base-3``, ... when those exist.

    A new run takes the first free one; ``resume`` takes the last existing one (or ``base``).
    """
    taken = [base] if (out_dir / f"{base}.csv").exists() else []
    n = 2
    while (out_dir / f"{base}-{n}.csv").exists():
        taken.append(f"{base}-{n}")
        n += 1
    if resume:
        return taken[-1] if taken else base
    return f"{base}-{n}" if taken else base


class Runner:
    def __init__(self, suite: Suite, cases: list[Case], device: str, files: TraceFiles,
                 budget_s: float, profile: bool, case_timeout_s: float = 120.0, log=print):
        self.suite, self.cases, self.device, self.files = suite, cases, device, files
        self.budget_s, self.profile, self.case_timeout_s, self.log = budget_s, profile, case_timeout_s, log
        self.state = RunState()
        self.status_of: dict[str, str] = {}
        self.current: tuple[str, float] | None = None  # (case id, start) of the case being run

    # ---- resume ---------------------------------------------------------------------------
    def load_previous(self) -> list[dict]:
        """Rows kept from an earlier run of this stem; marks crashed cases and their groups."""
        rows = [r for r in self.files.read_rows() if r["status"] not in RESUMABLE]
        by_id = {c.case_id: c for c in self.cases}
        for row in rows:
            if row["status"].startswith("error:crashed") or row["status"].startswith(f"error:{CONTEXT_LOST}"):
                self.state.dead_groups[row["group"]] = "skipped:group-crashed"
        started = self.files.progress.read_text().strip() if self.files.progress.exists() else ""
        if started and started in by_id and started not in {r["case_id"] for r in rows}:
            case = by_id[started]
            row = case_row(case, self.suite.name)
            row["status"] = "error:crashed: the process died (or hung past --case-timeout-s) in this case"
            rows.append({k: format_cell(v) for k, v in row.items()})
            self.state.dead_groups[case.group] = "skipped:group-crashed"
            self.log(f"resume: {started} crashed the previous run; skipping the rest of group {case.group}")
        self.state.done = {r["case_id"] for r in rows}
        return rows

    # ---- main loop --------------------------------------------------------------------------
    def run(self, previous_rows: list[dict]) -> dict:
        """Run every case not already done; returns status counts. Raises ContextLost."""
        import warnings

        import torch

        from . import kernels

        warnings.filterwarnings("ignore", message=".*[Ss]parse.*beta.*")

        self.torch, self.kernels = torch, kernels
        self.cache = kernels.WeightCache()
        self.cache_bytes, self.cap_bytes = self._cache_and_cap_bytes()
        if self.device == "cuda":
            self._warm_gpu()
        self._start_watchdog()
        groups = groups_in_order(self.cases)
        weights = [self.suite.group_weights.get(g, 1.0) for g in groups]
        t0 = time.monotonic()
        self.t0 = t0
        with self.files.csv.open("w", newline="") as f:
            self.writer = csv.DictWriter(f, fieldnames=COLUMNS)
            self.writer.writeheader()
            for row in previous_rows:
                self.writer.writerow(row)
            f.flush()
            self.csv_file = f
            try:
                for index, group in enumerate(groups):
                    deadline = t0 + self.budget_s * sum(weights[: index + 1]) / sum(weights)
                    self._run_group(group, [c for c in self.cases if c.group == group], deadline)
            except (KeyboardInterrupt, ContextLost) as stop:
                status = "skipped:interrupted" if isinstance(stop, KeyboardInterrupt) else f"skipped:{CONTEXT_LOST}"
                for case in self.cases:
                    if case.case_id not in self.state.done:
                        self._write(case_row(case, self.suite.name), status)
                self.files.progress.unlink(missing_ok=True)
                raise
        self.files.progress.unlink(missing_ok=True)
        return self.state.counts

    def _start_watchdog(self):
        """End the process if one case hangs; the .progress file lets --resume record and skip it."""

        def watch():
            while True:
                time.sleep(1.0)
                current = self.current
                if current and time.monotonic() - current[1] > self.case_timeout_s:
                    self.log(f"watchdog: {current[0]} has run {self.case_timeout_s:g} s; exiting "
                             f"with code {EXIT_WATCHDOG} so that --resume skips it")
                    os._exit(EXIT_WATCHDOG)

        if self.case_timeout_s > 0:
            threading.Thread(target=watch, daemon=True, name="capture-watchdog").start()

    def _warm_gpu(self, seconds: float = 2.0):
        """Run matmuls for a moment so the first cases don't meet an idle, down-clocked GPU."""
        torch = self.torch
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            for _ in range(10):
                a @ a
            torch.cuda.synchronize()
        del a
        torch.cuda.empty_cache()

    def _cache_and_cap_bytes(self) -> tuple[int, int]:
        """Cache size to defeat with rotation, and the most memory the rotated copies may take."""
        if self.device == "cuda":
            props = self.torch.cuda.get_device_properties(0)
            l2_bytes = getattr(props, "L2_cache_size", 0) or 50 * 2**20
            return l2_bytes, min(8 * 2**30, props.total_memory // 8)
        from .env import last_level_cache_bytes

        return last_level_cache_bytes(), 1 * 2**30

    def _run_group(self, group: str, cases: list[Case], deadline: float):
        todo = [c for c in cases if c.case_id not in self.state.done]
        if not todo:
            return
        start = time.monotonic()
        self.log(f"[{group}] {len(todo)} cases, {deadline - start:.0f} s for this group, "
                 f"{self.t0 + self.budget_s - start:.0f} s of budget left")
        rough = [rough_seconds(c, self.device) for c in todo]
        last_log, skip_status, errors = start, None, 0
        for i, case in enumerate(todo):
            skip_status = self.state.dead_groups.get(group) or skip_status
            if skip_status is None and time.monotonic() >= deadline:
                skip_status = "skipped:budget"
            if skip_status:
                self._write(case_row(case, self.suite.name), skip_status)
                continue
            errors += self._run_case(case) != "ok"
            if errors == i + 1 == FAIL_FAST_CASES:
                # A backend that fails on every one of the first cases (missing library, wrong
                # architecture) would fail on the rest too; don't spend the budget proving it.
                skip_status = "skipped:group-failing"
                self.log(f"[{group}] the first {FAIL_FAST_CASES} cases all failed; skipping the rest")
            now = time.monotonic()
            if now - last_log > 10 and i + 1 < len(todo):
                # Remaining-time guess: rough per-case model scaled by what this group has cost so far.
                scale = (now - start) / max(sum(rough[: i + 1]), 1e-9)
                left_s = scale * sum(rough[i + 1:])
                self.log(f"[{group}] {i + 1}/{len(todo)} in {now - start:.0f} s, ~{left_s:.0f} s to go "
                         f"(group deadline in {deadline - now:.0f} s)")
                last_log = now
        self.cache.clear()
        gc.collect()
        if self.device == "cuda":
            self.torch.cuda.empty_cache()
        counts: dict[str, int] = {}
        for case in todo:
            bucket = status_bucket(self.status_of[case.case_id])
            counts[bucket] = counts.get(bucket, 0) + 1
        self.log(f"[{group}] done in {time.monotonic() - start:.1f} s: "
                 + ", ".join(f"{n} {bucket}" for bucket, n in counts.items()))

    def _write(self, row: dict, status: str):
        row["status"] = status
        self.writer.writerow({k: format_cell(row.get(k)) for k in COLUMNS})
        self.csv_file.flush()
        self.state.done.add(row["case_id"])
        self.status_of[row["case_id"]] = status
        bucket = status_bucket(status)
        self.state.counts[bucket] = self.state.counts.get(bucket, 0) + 1

    def _run_case(self, case: Case) -> str:
        torch, kernels = self.torch, self.kernels
        from .timing import measure

        self.files.progress.write_text(case.case_id + "\n")
        self.current = (case.case_id, time.monotonic())
        row = case_row(case, self.suite.name)
        prep = None
        try:
            prep = kernels.prepare(case, self.device, self.cache, self.cache_bytes, self.cap_bytes)
            timing = measure(prep, self.device, case.timing, self.suite.target_s,
                             self.suite.min_reps, self.suite.max_reps)
            row.update(time_s_median=timing.median_s, time_s_p10=timing.p10_s, time_s_p90=timing.p90_s,
                       time_s_min=timing.min_s, reps=timing.reps, timing_method=timing.method,
                       rotation_sets=prep.n_sets, nnz=prep.nnz)
            row["kernel_names"], row["profiled_device_s"] = self._maybe_profile(case, prep)
            if case.kernel_class == "layer":
                from .timing import torch_calls

                row["torch_calls"] = torch_calls(prep)
            status = "ok"
        except Exception as exc:  # noqa: BLE001 - every failure becomes a row
            status = error_status(exc)
            prep = None
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                self.cache.clear()
            gc.collect()
            if self.device == "cuda":
                if not self._cuda_alive():
                    self._lose_context(case, f"error:{CONTEXT_LOST}: " + status[len("error:"):])
                    raise ContextLost(status) from exc
                torch.cuda.empty_cache()
        finally:
            del prep
            self.current = None
        self._write(row, status)
        if status != "ok":
            self.log(f"[{case.group}] {case.case_id}: {status}")
        return status

    def _lose_context(self, case: Case, status: str):
        """Record the case that broke the CUDA context and give up on the rest of its group."""
        self._write(case_row(case, self.suite.name), status)
        for other in self.cases:
            if other.group == case.group and other.case_id not in self.state.done:
                self._write(case_row(other, self.suite.name), "skipped:group-crashed")
        self.log(f"[{case.group}] {case.case_id}: {status}; the CUDA context is lost, stopping")

    def _maybe_profile(self, case: Case, prep) -> tuple[str, float | None]:
        """Kernel names (and CUDA device time per rep) for the first case of each kind (and GEMM
        size class), within a time share; ("", None) for the others."""
        from .timing import kernel_names

        size_class = None if case.m is None else ("m<=16" if case.m <= 16 else "m>16")
        # BSR: torch picks Triton only when M is a multiple of the block (else an aten composite),
        # so each block size and divisibility gets its own profiled case.
        block_class = None if not case.block_size else (case.block_size, case.m % case.block_size == 0)
        key = (case.kernel_class, case.op, case.backend, case.dtype, case.timing, size_class, block_class)
        if not self.profile or key in self.state.profiled:
            return "", None
        if self.state.profile_s > PROFILE_SHARE_OF_BUDGET * self.budget_s:
            return "", None
        start = time.monotonic()
        try:
            names = kernel_names(prep, self.device)
        except Exception as exc:  # noqa: BLE001 - profiling is best effort
            names = "", None
            self.log(f"[{case.group}] profiler failed on {case.case_id}: {error_status(exc)}")
        self.state.profile_s += time.monotonic() - start
        self.state.profiled.add(key)
        return names

    def _cuda_alive(self) -> bool:
        torch = self.torch
        try:
            torch.cuda.synchronize()
            return torch.ones(1, device="cuda").add_(1).item() == 2.0
        except Exception:  # noqa: BLE001 - any failure means the context is gone
            return False


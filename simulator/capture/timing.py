"""Time one prepared case: warm up, pick a rep count, time each rep, summarize.

CUDA ("events"): each rep is bracketed by a pair of CUDA events. Before each chunk of reps the
stream gets a spin kernel (``torch.cuda._sleep``) long enough for the host to enqueue the whole
chunk behind it, so the GPU then runs the reps back to back and the events measure device time,
not Python launch overhead (the "blocking kernel" of NVIDIA's nvbench). Operand rotation, not an
L2 flush, keeps caches cold (see kernels.py): a flush write leaves dirty lines that the timed
kernel would have to write back.

CUDA ("wall") and CPU: ``time.perf_counter`` around each rep; on CUDA followed by a synchronize,
so it includes the host's launch overhead (what an eager, unbatched call costs end to end).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from .kernels import Prepared

# Spin-kernel rate used to turn seconds into cycles; an overestimate of the SM clock only
# makes the spin longer, which is harmless.
SPIN_CYCLES_PER_S = 2.0e9
CHUNK_REPS = 50


@dataclass(frozen=True)
class Timing:
    median_s: float
    p10_s: float
    p90_s: float
    min_s: float
    reps: int
    method: str


def summarize(times_s: list[float], method: str) -> Timing:
    """Median and 10th/90th percentiles; times are clamped to a positive floor."""
    t = np.maximum(np.asarray(times_s, dtype=np.float64), 1e-9)
    p10, median, p90 = np.percentile(t, [10, 50, 90])
    return Timing(float(median), float(p10), float(p90), float(t.min()), len(t), method)


def rep_count(estimate_s: float, target_s: float, min_reps: int, max_reps: int) -> int:
    return int(min(max(math.ceil(target_s / max(estimate_s, 1e-9)), min_reps), max_reps))


def measure(prep: Prepared, device: str, method: str, target_s: float, min_reps: int, max_reps: int) -> Timing:
    """Time ``prep.run`` per rep on ``device`` with ``method`` ("events" or "wall")."""
    with prep.context():
        if device == "cuda" and method == "events":
            return _measure_cuda_events(prep, target_s, min_reps, max_reps)
        return _measure_wall(prep, device, target_s, min_reps, max_reps)


def _sync(device: str):
    if device == "cuda":
        torch.cuda.synchronize()


def _measure_wall(prep: Prepared, device: str, target_s, min_reps, max_reps) -> Timing:
    run, n = prep.run, prep.n_sets

    def one(i):
        start = time.perf_counter()
        run(i)
        _sync(device)
        return time.perf_counter() - start

    # Warm-up: at least 2 reps, then on through the rotation sets while within ~target_s.
    warm, started = [], time.perf_counter()
    while len(warm) < 2 or (len(warm) < n and time.perf_counter() - started < target_s):
        warm.append(one(len(warm)))
    reps = rep_count(warm[-1], target_s, min_reps, max_reps)
    return summarize([one(i) for i in range(reps)], "perf-counter" if device == "cpu" else "wall-sync")


def _measure_cuda_events(prep: Prepared, target_s, min_reps, max_reps) -> Timing:
    run, n = prep.run, prep.n_sets
    for i in range(max(2, min(n, 8))):  # warm-up: library handles, autotuning, first touch
        run(i)
    torch.cuda.synchronize()

    # Estimate device time and host enqueue time per rep from a short batch.
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    host_start = time.perf_counter()
    start.record()
    for i in range(3):
        run(i)
    end.record()
    host_per_rep_s = (time.perf_counter() - host_start) / 3
    torch.cuda.synchronize()
    estimate = start.elapsed_time(end) * 1e-3 / 3
    reps = rep_count(estimate, target_s, min_reps, max_reps)

    times = []
    for chunk_start in range(0, reps, CHUNK_REPS):
        chunk = min(CHUNK_REPS, reps - chunk_start)
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(chunk)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(chunk)]
        # Spin long enough for the host to enqueue the chunk (2× margin, 50 µs floor, 200 ms cap).
        spin_s = min(max(2 * chunk * host_per_rep_s, 50e-6), 0.2)
        torch.cuda._sleep(int(spin_s * SPIN_CYCLES_PER_S))
        for j in range(chunk):
            starts[j].record()
            run(chunk_start + j)
            ends[j].record()
        torch.cuda.synchronize()
        times += [s.elapsed_time(e) * 1e-3 for s, e in zip(starts, ends)]
    return summarize(times, "cuda-events")


def torch_calls(prep: Prepared) -> int:
    """Python-level torch calls (functions and tensor methods, views included) in one rep, counted
    with a TorchFunctionMode after the timing: what drives an eager rep's host time (layer rows)."""
    from torch.overrides import TorchFunctionMode

    class Count(TorchFunctionMode):
        calls = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            Count.calls += 1
            return func(*args, **(kwargs or {}))

    with prep.context(), Count():
        prep.run(0)
    return Count.calls


def kernel_names(prep: Prepared, device: str, limit: int = 24) -> tuple[str, float | None]:
    """Semicolon-joined names of what ran in two reps, from torch.profiler, and (CUDA) the device
    time per rep: the summed durations of its kernels, copies and memsets.

    On CUDA: the device kernels in launch order (their names tell the library: cuBLAS, CUTLASS,
    cuSPARSE, cuSPARSELt, Triton, flash). On CPU: the three aten ops with the most self time.
    The device time cross-checks the event timing: an event median well above it means the rep
    has gaps the GPU sat idle in (a host sync or host work inside the call).
    """
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with prep.context(), profile(activities=activities) as prof:
        for i in range(2):
            prep.run(i)
        _sync(device)
    device_s = None
    if device == "cuda":
        events = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
        names = [e.name for e in events]
        device_s = sum(e.time_range.elapsed_us() for e in events) * 1e-6 / 2 if events else None
    else:  # the aten ops that took the most self time
        ops = [e for e in prof.key_averages() if e.key.startswith("aten::") and e.self_cpu_time_total > 0]
        names = [e.key for e in sorted(ops, key=lambda e: -e.self_cpu_time_total)[:3]]
    names = list(dict.fromkeys(names))[:limit]
    return ";".join(name.replace(";", ",") for name in names), device_s

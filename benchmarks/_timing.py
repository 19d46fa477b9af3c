"""Shared by the benchmark scripts (run as `python benchmarks/<script>.py`)."""

import time


def best_of(fn, repeats: int = 3) -> float:
    """Fastest of ``repeats`` wall-clock runs of ``fn()``, in seconds."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)

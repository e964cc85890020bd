"""Shared helpers for benchmark scripts: timing by interleaved rounds, medians, result files."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

__all__ = ["median_time_s", "paired_median_times_s", "median", "ratio_median", "use_threads"]


def median_time_s(fn: Callable[[], object], calls: int) -> float:
    """Median wall time of ``calls`` calls of ``fn``."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def paired_median_times_s(fa: Callable[[], object], fb: Callable[[], object], calls: int, chunk: int = 4) -> tuple[float, float]:
    """Median wall times of ``fa`` and ``fb`` over ``calls`` calls each, taken in alternating chunks
    of ``chunk`` calls (a a a a b b b b a ...): on a shared host a slow spell lasts longer than a
    chunk, so it slows both sides of a ratio alike instead of whichever ran during it."""
    times: tuple[list[float], list[float]] = ([], [])
    done = 0
    while done < calls:
        n = min(chunk, calls - done)
        for fn, out in ((fa, times[0]), (fb, times[1])):
            for _ in range(n):
                start = time.perf_counter()
                fn()
                out.append(time.perf_counter() - start)
        done += n
    return statistics.median(times[0]), statistics.median(times[1])


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio_median(num: list[float], den: list[float]) -> float:
    """Median over rounds of num/den: robust to machine drift that hits both alike."""
    return statistics.median(a / b for a, b in zip(num, den))


def use_threads(threads: int | None) -> int:
    """Set torch's thread count when ``threads`` is given; the count in use (for the result's settings)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()

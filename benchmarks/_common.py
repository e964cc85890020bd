"""Shared helpers for benchmark scripts: timing by interleaved rounds, medians, result files."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

__all__ = ["median_time_s", "median", "ratio_median", "use_threads"]


def median_time_s(fn: Callable[[], object], calls: int) -> float:
    """Median wall time of ``calls`` calls of ``fn``."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


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

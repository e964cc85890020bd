"""Timing one callable: warm-up, repeats, median/p95/std; CUDA events on GPU."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["Timing", "measure"]


@dataclass(frozen=True)
class Timing:
    latency_ms_median: float
    latency_ms_p95: float
    latency_ms_std: float
    count: int

    def to_dict(self) -> dict[str, float | int]:
        return {"latency_ms_median": self.latency_ms_median, "latency_ms_p95": self.latency_ms_p95,
                "latency_ms_std": self.latency_ms_std, "count": self.count}


def measure(fn: Callable[[], object], *, warmup: int, repeats: int, device: torch.device | str = "cpu") -> Timing:
    """Time ``fn`` ``repeats`` times after ``warmup`` calls (CUDA: events around each call)."""
    for _ in range(warmup):
        fn()
    times_ms = []
    cuda = torch.device(device).type == "cuda"
    for _ in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize()
            times_ms.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times_ms.append((time.perf_counter() - t0) * 1e3)
    times_ms.sort()
    p95 = times_ms[min(len(times_ms) - 1, int(round(0.95 * (len(times_ms) - 1))))]
    std = statistics.pstdev(times_ms) if len(times_ms) > 1 else 0.0
    return Timing(statistics.median(times_ms), p95, std, len(times_ms))

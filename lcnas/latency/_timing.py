"""Timing one callable: warm-up, repeats, median/p95/std; CUDA events on GPU."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

__all__ = ["Timing", "measure", "measure_difference", "measure_interleaved"]


@dataclass(frozen=True)
class Timing:
    """Summary of repeated timings in milliseconds: median, 95th percentile (nearest rank),
    population standard deviation, and the number of timed runs."""

    latency_ms_median: float
    latency_ms_p95: float
    latency_ms_std: float
    count: int

    def to_dict(self) -> dict[str, float | int]:
        """The statistics under the field names a latency-table entry uses."""
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
    return _summary(times_ms)


def _summary(times_ms: list[float]) -> Timing:
    """Median, p95 (nearest rank), population std and count of a list of times."""
    times_ms = sorted(times_ms)
    p95 = times_ms[min(len(times_ms) - 1, int(round(0.95 * (len(times_ms) - 1))))]
    std = statistics.pstdev(times_ms) if len(times_ms) > 1 else 0.0
    return Timing(statistics.median(times_ms), p95, std, len(times_ms))


def measure_interleaved(n: int, call: Callable[[int], object], *, context: Callable[[int], AbstractContextManager] | None = None,
                        warmup: int = 2, repeats: int = 15, device: torch.device | str = "cpu", warmup_s: float = 1.5) -> list[Timing]:
    """Time ``n`` executions round-robin: each round calls every ``call(i)`` once untimed (it warms
    that path, as a repeated single measurement would) then once timed, inside ``context(i)``,
    after ``warmup`` untimed rounds lasting at least ``warmup_s`` seconds.

    A machine that drifts while measuring (a shared host) then shifts all ``n`` alike, instead of
    making the first executions fast and the last slow.
    """
    context = context or (lambda i: nullcontext())
    # Warm-up rounds for at least ``warmup_s``: a process's first second or two of a new workload
    # runs slower (clock ramp, allocator and kernel caches), which would bias a short probe.
    start = time.perf_counter()
    r = 0
    while r < warmup or time.perf_counter() - start < warmup_s:
        for i in range(n):
            with context(i):
                call(i)
        r += 1
    times: list[list[float]] = [[] for _ in range(n)]
    for r in range(repeats):
        for i in range(n):
            with context(i):
                call(i)
                times[i].append(measure(lambda: call(i), warmup=0, repeats=1, device=device).latency_ms_median)
    return [_summary(t) for t in times]


def measure_difference(fn: Callable[[], object], base: Callable[[], object], *, warmup: int, repeats: int,
                       device: torch.device | str = "cpu") -> Timing:
    """What ``fn`` costs beyond ``base``: the median of per-round differences, ``fn`` and ``base``
    timed back to back in each round. A small cost (a gate: tens of µs) on top of a large, noisy
    one (a block: hundreds) survives this; a difference of two separately taken medians does not.
    """
    for _ in range(warmup):
        base()
        fn()
    diffs = []
    for r in range(repeats):
        first, second = (base, fn) if r % 2 == 0 else (fn, base)  # alternate order: no position bias
        a = measure(first, warmup=0, repeats=1, device=device).latency_ms_median
        b = measure(second, warmup=0, repeats=1, device=device).latency_ms_median
        diffs.append(b - a if first is base else a - b)
    t = _summary(diffs)  # a cost below the noise floor reads as zero, never negative
    return Timing(max(0.0, t.latency_ms_median), max(0.0, t.latency_ms_p95), t.latency_ms_std, t.count)

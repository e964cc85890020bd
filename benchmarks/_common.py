"""Shared helpers for benchmark scripts: lcnas's timing rules in the units the scripts record
(seconds), medians, thread settings and result files. Public lcnas API only."""

from __future__ import annotations

import json
import os
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lcnas.latency import latency_ratio, measure, measure_alternating  # noqa: E402

__all__ = ["kendall_tau", "median_time_s", "paired_median_times_s", "median", "ratio_median", "use_threads", "write_json"]


def median_time_s(fn: Callable[[], object], calls: int) -> float:
    """Median wall time of ``calls`` calls of ``fn`` (:func:`lcnas.latency.measure`)."""
    return measure(fn, warmup=0, repeats=calls).latency_ms_median / 1e3


def paired_median_times_s(fa: Callable[[], object], fb: Callable[[], object], calls: int, chunk: int = 4) -> tuple[float, float]:
    """Median wall times of ``fa`` and ``fb`` over ``calls`` calls each, taken in alternating chunks
    of ``chunk`` calls (:func:`lcnas.latency.measure_alternating`)."""
    a, b = measure_alternating([fa, fb], repeats=calls, chunk=chunk)
    return a.latency_ms_median / 1e3, b.latency_ms_median / 1e3


def median(values: list[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def ratio_median(num: list[float], den: list[float]) -> float:
    """Median over rounds of num/den: robust to machine drift that hits both alike (:func:`lcnas.latency.latency_ratio`)."""
    return latency_ratio(num, den)


def use_threads(threads: int | None) -> int:
    """Set torch's thread count when ``threads`` is given; the count in use (for the result's settings)."""
    import torch

    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def write_json(path: str | os.PathLike[str], result: Any) -> Path:
    """Write a benchmark result as indented JSON: a temporary file beside ``path``, then renamed over
    it, so an interrupted run never leaves half a result."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(result, indent=2, sort_keys=False) + "\n")
    os.replace(tmp, path)
    return path


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's tau-b of two equally long sequences (ties in either count as neither order)."""
    if len(a) != len(b) or len(a) < 2:
        raise ValueError("kendall_tau needs two sequences of the same length >= 2")
    concordant = discordant = ties_a = ties_b = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denom = ((concordant + discordant + ties_a) * (concordant + discordant + ties_b)) ** 0.5
    return (concordant - discordant) / denom if denom else 0.0

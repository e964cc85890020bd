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

__all__ = ["median_time_s", "paired_median_times_s", "median", "ratio_median", "use_threads", "write_json"]


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

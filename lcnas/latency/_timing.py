"""Timing rules, the one place lcnas reads a clock to measure latency: one call, repeats with
median/p95/std, interleaved and paired schedules that let a drifting machine hit every execution
alike, and round-by-round ratios. CUDA events on GPU, ``time.perf_counter`` on CPU."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch

__all__ = ["RoundTimes", "Timing", "call_ms", "latency_ratio", "measure", "measure_alternating", "measure_difference",
           "measure_interleaved", "measure_paired", "measure_rounds", "round_ratios", "summarize"]

Context = Callable[[int], AbstractContextManager[object]]


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


@dataclass(frozen=True)
class RoundTimes:
    """One execution's timed calls from :func:`measure_rounds`, in milliseconds."""

    ms: list[float]  # every call, in round order
    round_medians_ms: list[float]  # each round's median: compare executions round by round (drift cancels)


def call_ms(fn: Callable[[], object], *, device: torch.device | str = "cpu") -> float:
    """Wall time of one call of ``fn`` in milliseconds (CUDA: events around the call, then a sync)."""
    if torch.device(device).type == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        return float(start.elapsed_time(end))
    t0 = time.perf_counter()
    fn()
    return (time.perf_counter() - t0) * 1e3


def summarize(times_ms: Sequence[float]) -> Timing:
    """Median, p95 (nearest rank), population std and count of a list of times."""
    ordered = sorted(times_ms)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    std = statistics.pstdev(ordered) if len(ordered) > 1 else 0.0
    return Timing(statistics.median(ordered), p95, std, len(ordered))


def measure(fn: Callable[[], object], *, warmup: int, repeats: int, device: torch.device | str = "cpu") -> Timing:
    """Time ``fn`` ``repeats`` times after ``warmup`` calls (CUDA: events around each call)."""
    for _ in range(warmup):
        fn()
    return summarize([call_ms(fn, device=device) for _ in range(repeats)])


def measure_interleaved(n: int, call: Callable[[int], object], *, context: Context | None = None,
                        warmup: int = 2, repeats: int = 15, device: torch.device | str = "cpu", warmup_s: float = 1.5) -> list[Timing]:
    """Time ``n`` executions round-robin: each round calls every ``call(i)`` once untimed (it warms
    that path, as a repeated single measurement would) then once timed, inside ``context(i)``,
    after ``warmup`` untimed rounds lasting at least ``warmup_s`` seconds.

    A machine that drifts while measuring (a shared host) then shifts all ``n`` alike, instead of
    making the first executions fast and the last slow.
    """
    enter = context or _no_context
    # Warm-up rounds for at least ``warmup_s``: a process's first second or two of a new workload
    # runs slower (clock ramp, allocator and kernel caches), which would bias a short probe.
    start = time.perf_counter()
    r = 0
    while r < warmup or time.perf_counter() - start < warmup_s:
        for i in range(n):
            with enter(i):
                call(i)
        r += 1
    times: list[list[float]] = [[] for _ in range(n)]
    for _ in range(repeats):
        for i in range(n):
            with enter(i):
                call(i)
                times[i].append(call_ms(lambda: call(i), device=device))
    return [summarize(t) for t in times]


def measure_paired(n: int, call: Callable[[int], object], reference: Callable[[], object], *, context: Context | None = None,
                   rounds: int = 11, warm: int = 3, device: torch.device | str = "cpu",
                   after_round: Callable[[], object] | None = None) -> tuple[list[float], list[float]]:
    """(median ms, median ratio to ``reference``) of ``n`` executions timed round-robin over
    ``rounds`` rounds: in each round every execution's timed call (inside ``context(i)``) is
    followed by a timed call of ``reference``, each after ``warm`` untimed calls of the same path.
    An execution's ratio in a round is its time over the median of that round's ``n`` reference
    calls, which spans a fraction of a second.

    A ratio taken within a round carries no drift of a shared host, which moves its speed by tens
    of percent between hours: what relative predictions are judged on. The round's median reference
    rather than the one call beside each execution: one call scatters by several percent. The
    untimed calls matter too: the first pass after another execution finds that execution's
    weights in the caches and runs a few percent slower. ``after_round()`` is called between
    rounds, outside every timed call (a progress bar's update).
    """
    enter = context or _no_context
    for i in range(n):  # every path once: packing caches, gathered channel sets
        with enter(i):
            call(i)
        reference()
    ms: list[list[float]] = [[] for _ in range(n)]
    ratio: list[list[float]] = [[] for _ in range(n)]
    for _ in range(rounds):
        times, refs = [], []
        for i in range(n):
            with enter(i):
                for _ in range(warm):
                    call(i)
                times.append(call_ms(lambda: call(i), device=device))
            for _ in range(warm):
                reference()
            refs.append(call_ms(reference, device=device))
        level = statistics.median(refs)
        for i, t in enumerate(times):
            ms[i].append(t)
            ratio[i].append(t / level)
        if after_round is not None:
            after_round()
    return [statistics.median(v) for v in ms], [statistics.median(v) for v in ratio]


def measure_rounds(n: int, call: Callable[[int, int], object], inputs: int, *, rounds: int = 5, warmup_inputs: int = 10,
                   context: Context | None = None) -> list[RoundTimes]:
    """Time ``n`` executions on ``inputs`` inputs, each input once per execution: ``call(i, j)``
    runs execution ``i`` on input ``j``. Round ``r`` times execution 0 on inputs ``r, r + rounds,
    ...``, then execution 1 on the same inputs, and so on, each inside ``context(i)``; first every
    execution runs untimed on the first ``warmup_inputs`` inputs.

    A drifting host then hits every execution alike, and :func:`latency_ratio` of two executions'
    round medians compares them with the drift cancelled.
    """
    enter = context or _no_context
    rounds = max(1, min(rounds, inputs))  # every round times at least one input
    calls: list[list[float]] = [[] for _ in range(n)]
    medians: list[list[float]] = [[] for _ in range(n)]
    for i in range(n):
        with enter(i):
            for j in range(min(warmup_inputs, inputs)):
                call(i, j)
    for r in range(rounds):
        for i in range(n):
            with enter(i):
                this_round = [call_ms(lambda: call(i, j)) for j in range(r, inputs, rounds)]
            calls[i] += this_round
            medians[i].append(statistics.median(this_round))
    return [RoundTimes(ms=calls[i], round_medians_ms=medians[i]) for i in range(n)]


def measure_alternating(fns: Sequence[Callable[[], object]], *, repeats: int, chunk: int = 4,
                        device: torch.device | str = "cpu") -> list[Timing]:
    """Time every one of ``fns`` ``repeats`` times, in alternating chunks of ``chunk`` calls
    (a a a a b b b b a ...): on a shared host a slow spell lasts longer than a chunk, so it slows
    every side of a ratio alike instead of whichever ran during it."""
    times: list[list[float]] = [[] for _ in fns]
    done = 0
    while done < repeats:
        k = min(chunk, repeats - done)
        for fn, out in zip(fns, times, strict=True):
            out.extend(call_ms(fn, device=device) for _ in range(k))
        done += k
    return [summarize(t) for t in times]


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
        a = call_ms(first, device=device)
        b = call_ms(second, device=device)
        diffs.append(b - a if first is base else a - b)
    t = summarize(diffs)  # a cost below the noise floor reads as zero, never negative
    return Timing(max(0.0, t.latency_ms_median), max(0.0, t.latency_ms_p95), t.latency_ms_std, t.count)


def round_ratios(a_rounds: Sequence[float], b_rounds: Sequence[float]) -> list[float]:
    """a's time over b's, round by round (same-length lists, e.g. :attr:`RoundTimes.round_medians_ms`)."""
    return [a / b for a, b in zip(a_rounds, b_rounds, strict=True)]


def latency_ratio(a_rounds: Sequence[float], b_rounds: Sequence[float]) -> float:
    """Median over rounds of a's time over b's in the same round (< 1: a is faster); machine drift
    that hits both within a round cancels."""
    return statistics.median(round_ratios(a_rounds, b_rounds))


def _no_context(i: int) -> AbstractContextManager[object]:
    return nullcontext()

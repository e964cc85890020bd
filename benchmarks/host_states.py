"""How a shared host's speed states move relative latency: can this machine judge a table to ±5 %?

    python benchmarks/host_states.py --threads 1 --seconds 60 --out benchmarks/results/host_states_amd_1t.json

A virtual machine shares its cores (and their caches and memory bandwidth) with other tenants, and
its speed changes within a second. The changes do not hit all work alike: pure-Python work (a
forward call's fixed cost) slows more than SIMD convolutions do, so the ratio of a nearly empty
execution to the static network, which a latency table predicts, moves with the host's state.

The script samples three things back to back, over and over, for --seconds: a fixed pure-Python
loop (the state probe), the model with every block skipped (the fixed per-call cost: stem, head,
the call itself), and the static network (every block at full width, no gates). Samples whose
probe lies within --fast-margin of the fastest probes are the "fast" state, the rest "slow".
Recorded: the fraction of time in each state (overall and per 5-second stretch), how long a
state lasts, each workload's slow/fast ratio, and how far the empty ÷ static ratio moves between
the states (``relative_shift``). Where that shift exceeds 5 % and the mix of states is not steady
(both common, or the fast fraction moving by 20 points between stretches), two measurements of the
same small execution agree within ±5 % only when they happen to see the same mix: the limit of
any ±5 % judgement of relative latency on this host (``benchmarks/latency_validation.py`` records the
same limit as its repeatability).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from _common import median, use_threads, write_json

from lcnas import create_model, environment_metadata
from lcnas.latency import call_ms
from lcnas.models import ForcedDecisions, GateConfig

PROBE_ITERATIONS = 3000  # about 70-130 µs of interpreter work on current x86 cores
WINDOW_S = 5  # seconds per stretch over which the mix of states is counted
SERIES_ROWS = 600  # samples kept in the result file's series
FAST_MARGIN = 0.15  # a probe within this fraction of the fastest probes is the fast state


def probe_us() -> float:
    """Microseconds of a fixed pure-Python loop: the state probe."""
    t = time.perf_counter()
    s = 0
    for i in range(PROBE_ITERATIONS):
        s += i
    return (time.perf_counter() - t) * 1e6


def sample(model, x: torch.Tensor, empty: ForcedDecisions, full: ForcedDecisions, calls: int) -> tuple[float, float, float]:
    """(probe µs, empty µs, static µs), each the median of ``calls`` calls taken back to back."""
    p = median([probe_us() for _ in range(calls)])
    with model.forced(empty):
        model(x)
        e = median([call_ms(lambda: model(x)) for _ in range(calls)]) * 1e3
    with model.forced(full):
        model(x)
        f = median([call_ms(lambda: model(x)) for _ in range(calls)]) * 1e3
    return p, e, f


def runs_s(fast: list[bool], times: list[float]) -> dict[str, float | None]:
    """Median duration (s) of an unbroken stretch of each state."""
    out: dict[str, list[float]] = {"fast": [], "slow": []}
    start = 0
    for i in range(1, len(fast) + 1):
        if i == len(fast) or fast[i] != fast[start]:
            out["fast" if fast[start] else "slow"].append(times[i - 1] - times[start] + (times[1] - times[0] if len(times) > 1 else 0.0))
            start = i
    return {k: (statistics.median(v) if v else None) for k, v in out.items()}


def summarize(rows: list[tuple[float, float, float, float]], fast_margin: float = FAST_MARGIN) -> dict:
    """State fractions, persistence, per-workload slow/fast ratios and the relative shift."""
    times = [r[0] for r in rows]
    probes = sorted(r[1] for r in rows)
    floor = probes[max(0, len(probes) // 20)]  # the 5th percentile: the fast state's level
    fast = [r[1] <= floor * (1 + fast_margin) for r in rows]
    out: dict = {"samples": len(rows), "probe_floor_us": floor, "fast_fraction": sum(fast) / len(rows), "state_duration_s": runs_s(fast, times)}
    by_state = {"fast": [r for r, f in zip(rows, fast, strict=True) if f], "slow": [r for r, f in zip(rows, fast, strict=True) if not f]}
    for k, rs in by_state.items():
        out[k] = None if not rs else {"probe_us": median([r[1] for r in rs]), "empty_us": median([r[2] for r in rs]),
                                       "static_us": median([r[3] for r in rs]), "empty_over_static": median([r[2] / r[3] for r in rs])}
    # The mix of states changes from one stretch of seconds to the next: a measurement's median
    # follows whichever state dominated while it ran.
    windows = [[f for t, f in zip(times, fast, strict=True) if w <= t < w + WINDOW_S] for w in range(0, int(times[-1]) + 1, WINDOW_S)]
    out["fast_fraction_per_window"] = [sum(w) / len(w) for w in windows if w]
    if out["fast"] and out["slow"]:
        f, s = out["fast"], out["slow"]
        out["slow_over_fast"] = {k: s[k] / f[k] for k in ("probe_us", "empty_us", "static_us")}
        out["relative_shift"] = s["empty_over_static"] / f["empty_over_static"] - 1
        mix = out["fast_fraction_per_window"]
        mixed = min(out["fast_fraction"], 1 - out["fast_fraction"]) >= 0.1 or max(mix) - min(mix) >= 0.2
        out["can_judge_5pct"] = not (mixed and abs(out["relative_shift"]) > 0.05)
    else:
        out["slow_over_fast"] = out["relative_shift"] = None
        out["can_judge_5pct"] = True
    return out


def thinned(rows: list[tuple[float, float, float, float]], keep: int = SERIES_ROWS) -> list[list[float]]:
    """Every k-th sample (t s, probe µs, empty µs, static µs), at most ``keep`` of them: the series
    to plot; the summary is computed from all samples."""
    step = max(1, -(-len(rows) // keep))
    return [[round(v, 4) for v in r] for r in rows[::step]]


def sample_host(model_name: str = "resnet20", seconds: float = 60.0, calls: int = 5) -> list[tuple[float, float, float, float]]:
    """(t s, probe µs, empty µs, static µs) samples taken back to back for ``seconds`` with the
    LC-gated ``model_name`` (hidden-16 gates, as the tables' calibration); :func:`summarize` reads them."""
    with torch.no_grad():
        model = create_model(model_name, gating="lc", gate_config=GateConfig(group_size=4, hidden=16, pooling="avg")).eval()
        x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
        blocks = len(model.blocks())
        empty = ForcedDecisions(block_run=torch.zeros(1, blocks, dtype=torch.bool), evaluate_gates=False)
        full = ForcedDecisions(block_run=torch.ones(1, blocks, dtype=torch.bool), evaluate_gates=False)
        for _ in range(20):
            sample(model, x, empty, full, 1)
        rows: list[tuple[float, float, float, float]] = []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            rows.append((time.perf_counter() - t0, *sample(model, x, empty, full, calls)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet20",
                    help="registered model, LC-gated with hidden-16 gates as the tables' calibration (default: resnet20)")
    ap.add_argument("--seconds", type=float, default=60.0, help="how long to sample (default: 60)")
    ap.add_argument("--calls", type=int, default=5, help="calls per workload per sample, their median kept (default: 5)")
    ap.add_argument("--fast-margin", type=float, default=FAST_MARGIN,
                    help=f"a probe within this fraction of the fastest probes is the fast state (default: {FAST_MARGIN})")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", required=True, help="result JSON")
    args = ap.parse_args()
    threads = use_threads(args.threads)
    rows = sample_host(args.model, args.seconds, args.calls)
    result = {"benchmark": "host_states", "settings": {**vars(args), "threads": threads}, **summarize(rows, args.fast_margin),
              "series": thinned(rows), "environment": environment_metadata()}
    write_json(args.out, result)
    print(verdict(result))


def verdict(s: dict) -> str:
    """One line: the fast state's share, the relative shift, whether ±5 % can be judged."""
    shift = "n/a" if s["relative_shift"] is None else format(s["relative_shift"], "+.1%")
    return (f"fast state {s['fast_fraction']:.0%} of {s['samples']} samples; relative shift of an empty execution {shift}; "
            f"can judge ±5 %: {s['can_judge_5pct']}")


if __name__ == "__main__":
    main()

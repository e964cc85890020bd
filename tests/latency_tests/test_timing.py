"""The timing rules (lcnas.latency._timing) behind the tables, the report and the benchmarks: interleaved
rounds, alternating chunks, paired differences, round-by-round ratios; the relative line fit."""

from __future__ import annotations

import itertools
import types

import pytest
import torch

import lcnas.latency._timing as timing
from lcnas import create_model
from lcnas.cost import describe
from lcnas.latency import (
    fit_relative,
    latency_ratio,
    measure,
    measure_alternating,
    measure_difference,
    measure_interleaved,
    measure_paired,
    measure_rounds,
    round_ratios,
    summarize,
)


class FakeClock:
    """perf_counter that advances by what the called function says it costs."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(timing, "time", types.SimpleNamespace(perf_counter=c))  # this module only
    return c


def test_fit_relative_recovers_a_line_and_weighs_points_by_relative_error():
    assert fit_relative([1.0, 2.0, 4.0], [2.5, 4.5, 8.5]) == pytest.approx((2.0, 0.5))
    # one point, or no spread: a pure ratio, no invented offset
    assert fit_relative([2.0], [3.0]) == pytest.approx((1.5, 0.0))
    assert fit_relative([2.0, 2.0], [3.0, 3.0]) == pytest.approx((1.5, 0.0))
    # falling points would give a negative slope: a ratio instead
    scale, offset = fit_relative([1.0, 2.0], [2.0, 1.0])
    assert scale > 0 and offset == 0.0


def test_fit_relative_minimises_relative_not_absolute_error():
    raw = [1.0, 10.0, 100.0]
    measured = [1.3, 10.0, 100.0]  # the cheap execution is 30 % off a pure scale
    scale, offset = fit_relative(raw, measured)
    rel = [abs((scale * r + offset) / m - 1) for r, m in zip(raw, measured)]
    # ordinary least squares on milliseconds: dominated by the 100 ms point
    n = len(raw)
    mr, mm = sum(raw) / n, sum(measured) / n
    a = sum((r - mr) * (m - mm) for r, m in zip(raw, measured)) / sum((r - mr) ** 2 for r in raw)
    b = mm - a * mr
    rel_ols = [abs((a * r + b) / m - 1) for r, m in zip(raw, measured)]
    assert sum(e * e for e in rel) < sum(e * e for e in rel_ols)
    assert rel[0] < rel_ols[0]


def test_measure_interleaved_spreads_a_drift_over_every_execution(clock):
    # The machine slows down steadily while measuring; two identical executions must come out equal.
    calls = itertools.count()

    def call(i):
        clock.now += 1.0 + 0.01 * next(calls)  # every call a bit slower than the last

    a, b = measure_interleaved(2, call, warmup=1, repeats=20)
    assert a.count == b.count == 20
    assert abs(a.latency_ms_median - b.latency_ms_median) / a.latency_ms_median < 0.02


def test_measure_difference_is_the_extra_cost_even_on_a_noisy_base(clock):
    noise = itertools.cycle([0.0, 5.0, 1.0, 9.0, 2.0])  # base cost jumps around by far more than the gate

    def base():
        clock.now += 0.100 + 0.001 * next(noise)

    extra = iter(itertools.cycle([0.0, 5.0, 1.0, 9.0, 2.0]))

    def fn():
        clock.now += 0.100 + 0.001 * next(extra) + 0.010  # the same noise pattern plus 10 ms

    t = measure_difference(fn, base, warmup=1, repeats=40)
    assert t.latency_ms_median == pytest.approx(10.0, rel=0.05)  # ms
    # never negative: a cost below the noise floor is clamped at zero
    assert measure_difference(base, base, warmup=0, repeats=10).latency_ms_median >= 0.0


def test_fit_calibration_gives_gates_their_own_scale():
    from lcnas.latency import fit_calibration

    # truth: compute × 1.2, gates × 0.8, + 0.2 ms; half the executions without gates
    rest = [1.0, 2.0, 3.0, 4.0, 1.5, 2.5, 3.5, 0.5]
    gates = [0.0, 0.5, 0.0, 1.0, 0.0, 0.7, 0.0, 0.3]
    measured = [1.2 * r + 0.8 * g + 0.2 for r, g in zip(rest, gates, strict=True)]
    raw = [r + g for r, g in zip(rest, gates, strict=True)]
    fit = fit_calibration(raw, gates, measured)
    assert (fit.scale, fit.gate_scale, fit.offset_ms, fit.spill_ms_per_mib) == pytest.approx((1.2, 0.8, 0.2, 0.0))
    # gates that never vary: one line for everything
    fit = fit_calibration(raw, [0.0] * len(raw), measured)
    assert fit.gate_scale == fit.scale


def test_fit_calibration_draws_a_noisy_gate_scale_toward_the_compute_scale():
    from lcnas.latency import fit_calibration

    # truth: gates cost what compute does (× 1.0); gates are ~2 % of each execution and every
    # measurement carries 4 % noise, as on a shared host: without the prior the gate scale swings
    gen = torch.Generator().manual_seed(3)
    errors_with, errors_without = [], []
    import lcnas.latency._profile as prof

    for trial in range(12):
        rest = (torch.rand(96, generator=gen) * 0.9 + 0.1).tolist()
        gates = [0.01 * (i % 2) for i in range(96)]
        noise = (1 + 0.04 * torch.randn(96, generator=gen)).tolist()
        measured = [(r + g + 0.01) * n for r, g, n in zip(rest, gates, noise, strict=True)]
        raw = [r + g for r, g in zip(rest, gates, strict=True)]
        fit = fit_calibration(raw, gates, measured)
        errors_with.append(abs(fit.gate_scale / fit.scale - 1))
        prior, prof.GATE_SCALE_PRIOR = prof.GATE_SCALE_PRIOR, 1e9  # no prior
        try:
            loose = fit_calibration(raw, gates, measured)
        finally:
            prof.GATE_SCALE_PRIOR = prior
        errors_without.append(abs(loose.gate_scale / loose.scale - 1))
    assert sorted(errors_without)[6] > 0.3  # the gate scale alone is mostly noise
    assert sorted(errors_with)[6] < 0.5 * sorted(errors_without)[6]


def test_fit_calibration_finds_the_weight_spill():
    from lcnas.latency import fit_calibration

    # truth: compute × 1.1 + 0.05 ms, and 0.4 ms per MiB of weights past 1 MiB; weights vary
    # independently of the compute sum (executions of equal cost reading early or late blocks)
    gen = torch.Generator().manual_seed(0)
    rest = (torch.rand(40, generator=gen) * 3 + 0.2).tolist()
    weights = (torch.rand(40, generator=gen) * 3).tolist()
    gates = [0.1 * (i % 2) for i in range(40)]
    measured = [1.1 * r + 0.9 * g + 0.05 + 0.4 * max(0.0, w - 1.0) for r, g, w in zip(rest, gates, weights, strict=True)]
    raw = [r + g for r, g in zip(rest, gates, strict=True)]
    fit = fit_calibration(raw, gates, measured, weights)
    assert fit.scale == pytest.approx(1.1, rel=0.02)
    assert fit.spill_ms_per_mib == pytest.approx(0.4, rel=0.1)
    assert fit.spill_free_mib == pytest.approx(1.0, abs=0.15)
    # no spill in the data: none fitted (or a negligible one)
    flat = [1.1 * r + 0.9 * g + 0.05 for r, g in zip(rest, gates, strict=True)]
    assert fit_calibration(raw, gates, flat, weights).spill_ms_per_mib < 0.01


def test_latency_ratio_compares_executions_round_by_round():
    assert latency_ratio([1.0, 2.0, 1.0], [2.0, 4.0, 2.0]) == 0.5
    assert latency_ratio([1.0, 3.0, 1.2], [1.0, 2.0, 1.0]) == pytest.approx(1.2)
    assert round_ratios([1.0, 3.0], [2.0, 3.0]) == [0.5, 1.0]
    with pytest.raises(ValueError):
        latency_ratio([1.0], [1.0, 2.0])


def test_summarize_and_measure_read_milliseconds(clock):
    t = summarize([3.0, 1.0, 2.0, 10.0])
    assert (t.latency_ms_median, t.latency_ms_p95, t.count) == (2.5, 10.0, 4)
    assert summarize([4.0]).latency_ms_std == 0.0

    def fn():
        clock.now += 0.002  # 2 ms

    m = measure(fn, warmup=2, repeats=5)
    assert m.count == 5 and m.latency_ms_median == pytest.approx(2.0)


def test_measure_rounds_times_each_input_once_per_execution_and_spreads_a_drift(clock):
    calls = itertools.count()
    seen: list[tuple[int, int]] = []
    entered: list[int] = []

    class Enter:
        def __init__(self, i):
            self.i = i

        def __enter__(self):
            entered.append(self.i)

        def __exit__(self, *exc):
            return False

    def call(i, j):
        seen.append((i, j))
        clock.now += 0.001 if next(calls) < 12 else 0.003  # after warm-up and round 0 the host is 3x slower

    a, b = measure_rounds(2, call, 12, rounds=3, warmup_inputs=2, context=Enter)
    assert seen[:4] == [(0, 0), (0, 1), (1, 0), (1, 1)]  # warm-up: each execution on the first inputs
    timed = seen[4:]
    assert timed[:8] == [(0, 0), (0, 3), (0, 6), (0, 9), (1, 0), (1, 3), (1, 6), (1, 9)]  # round 0
    assert sorted(j for i, j in timed if i == 0) == list(range(12))
    assert len(a.ms) == len(b.ms) == 12 and len(a.round_medians_ms) == len(b.round_medians_ms) == 3
    assert set(entered) == {0, 1}
    assert a.round_medians_ms == pytest.approx([1.0, 3.0, 3.0])
    assert latency_ratio(a.round_medians_ms, b.round_medians_ms) == pytest.approx(1.0)


def test_measure_alternating_runs_chunks_in_turn(clock):
    order: list[str] = []

    def make(name, cost_s):
        def fn():
            order.append(name)
            clock.now += cost_s
        return fn

    a, b = measure_alternating([make("a", 0.001), make("b", 0.003)], repeats=6, chunk=4)
    assert "".join(order) == "aaaabbbbaabb"
    assert (a.count, b.count) == (6, 6)
    assert a.latency_ms_median == pytest.approx(1.0) and b.latency_ms_median == pytest.approx(3.0)


def test_measure_paired_takes_ratios_to_the_rounds_reference_through_a_drift(clock):
    # The machine slows by 3 % a round; execution i costs (i + 1) × the reference. The first call of
    # a path after another one costs 50 % more (cold caches): the untimed calls absorb it.
    state = {"last": None, "round_speed": 1.0}
    calls = itertools.count()

    def run(path, cost):
        speed = 1.0 + 0.03 * (next(calls) // 40)
        clock.now += cost * speed * (1.5 if state["last"] != path else 1.0)
        state["last"] = path

    ms, ratios = measure_paired(3, lambda i: run(i, 0.001 * (i + 1)), lambda: run("ref", 0.001), rounds=9, warm=2)
    assert ratios == pytest.approx([1.0, 2.0, 3.0], rel=0.02)
    assert ms[2] / ms[0] == pytest.approx(3.0, rel=0.05)


def test_gates_timed_alone_are_scaled_to_their_sum_inside_the_pass():
    from lcnas.latency import Timing
    from lcnas.latency._keys import block_key
    from lcnas.latency._profile import _gates_in_network
    from lcnas.models import GateConfig

    arch = describe(create_model("resnet20", gating="lc"))
    cfg = GateConfig(hidden=16)
    shapes = list(dict.fromkeys(block_key(b) for b in arch.blocks))
    alone = {(cfg, family, key): (f"{family}:{key}", Timing(0.001 * (1 + i), 0.001, 0.0, 5))
             for family in ("layer_gate", "channel_gate", "channel_gate_alone") for i, key in enumerate(shapes)}
    totals = iter([0.020, 0.050, 0.030])  # in the pass: layer gates, layer + channel gates, channel-only gates

    def diff(fn, base, rounds=2):
        return Timing(next(totals), 0.0, 0.0, 1)

    out = _gates_in_network(alone, lambda c: (None, None), arch, len(arch.blocks), lambda *a: None, True, diff)
    for family, total in (("layer_gate", 0.020), ("channel_gate", 0.030), ("channel_gate_alone", 0.030)):
        summed = sum(out[cfg, family, block_key(b)][1].latency_ms_median for b in arch.blocks)
        assert summed == pytest.approx(total)
        # the split between shapes is the one timed alone
        first, second = (out[cfg, family, k][1].latency_ms_median for k in shapes[:2])
        assert second / first == pytest.approx(2.0)
    # off the whole-network engine the gates keep their timings alone
    assert _gates_in_network(alone, None, arch, len(arch.blocks), None, False, None) == alone


def test_random_plans_cycle_through_four_families():
    from lcnas.latency import random_plans

    model = create_model("resnet20", gating="lc")
    static, *plans = random_plans(model, 17, 1, torch.Generator().manual_seed(0))
    # first the static network: every block, every channel, no gates
    assert bool(static.block_run.all()) and static.channel_keep is None and not static.evaluate_gates
    assert len(plans) == 16
    assert [p.evaluate_gates for p in plans[:4]] == [False, True, False, True]
    layers_only = [p for i, p in enumerate(plans) if i // 2 % 4 == 2]
    channels_only = [p for i, p in enumerate(plans) if i // 2 % 4 == 3]
    assert all(p.channel_keep is None for p in layers_only)
    assert all(bool(p.block_run.all()) and p.channel_keep is not None for p in channels_only)
    per_stage = [p for i, p in enumerate(plans) if i // 2 % 4 == 1]
    assert all(p.channel_keep is not None for p in per_stage)


def test_fit_calibration_prices_each_gathered_channel_set():
    from lcnas.latency import fit_calibration

    # truth: compute × 0.9 + 0.3 ms + 0.01 ms per distinct channel set, sets varying on their own
    gen = torch.Generator().manual_seed(1)
    rest = (torch.rand(32, generator=gen) * 20 + 5).tolist()
    sets = (torch.rand(32, generator=gen) * 400).round().tolist()
    gates = [0.2 * (i % 2) for i in range(32)]
    measured = [0.9 * r + 1.5 * g + 0.3 + 0.01 * s for r, g, s in zip(rest, gates, sets, strict=True)]
    raw = [r + g for r, g in zip(rest, gates, strict=True)]
    fit = fit_calibration(raw, gates, measured, None, sets)
    assert (fit.scale, fit.offset_ms, fit.set_ms, fit.regather_ms_per_mib) == pytest.approx((0.9, 0.3, 0.01, 0.0), rel=1e-6)
    # sets that cost nothing are not priced
    free = [0.9 * r + 1.5 * g + 0.3 for r, g in zip(rest, gates, strict=True)]
    assert fit_calibration(raw, gates, free, None, sets).set_ms < 1e-6
    # sets that outgrow the cache: their MiB priced as well
    regather = [0.0 if i % 3 else 70.0 + i for i in range(32)]
    slow = [t + 0.05 * g for t, g in zip(measured, regather, strict=True)]
    fit = fit_calibration(raw, gates, slow, None, sets, regather)
    assert (fit.set_ms, fit.regather_ms_per_mib) == pytest.approx((0.01, 0.05), rel=1e-6)


def test_measure_paired_calls_after_round_between_rounds_only():
    events: list[str] = []
    measure_paired(3, lambda i: events.append(f"call{i}"), lambda: events.append("ref"), rounds=4, warm=1,
                   after_round=lambda: events.append("round"))
    assert events.count("round") == 4
    rounds = "|".join(events).split("round")[:-1]
    # the first round follows the untimed pass over every path; each round times every execution
    assert all(sum(f"call{i}|" in r for i in range(3)) == 3 for r in rounds)
    assert events[-1] == "round"

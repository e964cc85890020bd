"""Benchmark arithmetic: the static front, its interpolation, cascades (frontier.py), Kendall tau (proxy_fidelity.py) and runtime ratios (runtimes.py)."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

from lcnas.report import FrontStanding, front_accuracy_at, front_standing, static_front

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(name: str):
    """A benchmark script imported as a module (it puts the repository on sys.path itself)."""
    sys.path.insert(0, str(BENCH))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def frontier():
    return _script("frontier")


@pytest.fixture(scope="module")
def fidelity():
    return _script("proxy_fidelity")


def test_front_keeps_points_faster_than_every_more_accurate_one():
    pts = [(1.0, 91.0), (1.5, 90.0), (2.0, 92.0), (0.5, 85.0), (3.0, 91.5)]
    assert static_front(pts) == [(0.5, 85.0), (1.0, 91.0), (2.0, 92.0)]


def test_interpolation_is_linear_and_undefined_below_the_fastest_point():
    front = [(1.0, 90.0), (2.0, 92.0)]
    assert front_accuracy_at(front, 1.5) == pytest.approx(91.0)
    assert front_accuracy_at(front, 5.0) == 92.0
    assert front_accuracy_at(front, 0.5) is None


def test_cascade_accuracy_and_expected_latency(frontier):
    # fast model: right on images 0-5, confident on 0-7; slow model: right on every image
    conf = np.array([0.9] * 8 + [0.2] * 2)
    fast = {"name": "fast", "confidence": conf, "correct": np.array([True] * 6 + [False] * 4)}
    slow = {"name": "slow", "confidence": np.ones(10), "correct": np.ones(10, bool)}
    points = frontier._cascades([fast, slow], {"fast": 1.0, "slow": 3.0}, steps=4)
    # a threshold between 0.2 and 0.9 sends the two unsure images on: 80 % right, 1 + 0.2 * 3 ms
    assert any(p["accuracy"] == pytest.approx(80.0) and p["latency_ms"] == pytest.approx(1.6) for p in points)
    # the envelope never holds a point that another beats on both axes
    for p in points:
        assert not any(q["latency_ms"] <= p["latency_ms"] and q["accuracy"] > p["accuracy"] for q in points)


def test_kendall_tau(fidelity):
    assert fidelity.kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert fidelity.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # one swapped pair of six: (5 - 1) / 6
    assert fidelity.kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    # tau-b with a tie in one sequence: (4 - 1) / sqrt(5 * 6)... computed by hand below
    c, d, ta = 4, 1, 1
    assert fidelity.kendall_tau([1, 1, 2, 3], [1, 3, 2, 4]) == pytest.approx((c - d) / ((c + d + ta) * (c + d)) ** 0.5)
    with pytest.raises(ValueError):
        fidelity.kendall_tau([1], [1])


def test_front_standing_margin_and_dominance():
    static = {"resnet14": (0.6, 89.0), "resnet20": (1.0, 91.4), "resnet32": (1.6, 92.2)}
    above = front_standing(0.8, 91.0, static)
    assert above.front_accuracy == pytest.approx(90.2) and above.margin_pt == pytest.approx(0.8)
    assert above.dominated_by == () and "0.80 points above" in above.sentence()
    below = front_standing(1.2, 90.0, static)
    assert below.margin_pt < 0 and below.dominated_by == ("resnet20",) and "dominated by resnet20" in below.sentence()
    fastest = front_standing(0.5, 85.0, static)
    assert isinstance(fastest, FrontStanding) and fastest.margin_pt is None and "below the static front's latency range" in fastest.sentence()


def test_a_static_network_is_distilled_only_when_its_config_names_a_teacher(frontier, tmp_path):
    import argparse

    import torch

    import lcnas
    from lcnas.checkpoint import read_checkpoint

    ck = read_checkpoint(str(Path(lcnas.__file__).parent / "pretrained" / "resnet8_cifar10.pt"))
    assert frontier._static_family(ck["config"]) == "trained"
    kd = {**ck["config"], "teacher": "resnet32", "loss": {**ck["config"]["loss"], "distill": 1.0}}
    assert frontier._static_family(kd) == "distilled"
    kd_in_no_name = tmp_path / "plain" / "final.pt"  # the folder name says nothing: the config decides
    kd_in_no_name.parent.mkdir()
    torch.save({**ck, "config": kd}, kd_in_no_name)
    rows = frontier._models(argparse.Namespace(models=["resnet8"], static=[str(kd_in_no_name)], dynamic=None))
    assert [(r["name"], r["kind"], r["family"]) for r in rows] == [("resnet8", "static", "trained"), ("plain", "static", "distilled")]


@pytest.fixture(scope="module")
def runtimes():
    return _script("runtimes")


def test_runtime_configurations_parse_and_bad_ones_name_the_form(runtimes):
    assert runtimes.parse_config("64x2") == (64, 2)
    assert runtimes.parse_config("1X1") == (1, 1)
    for bad in ("64", "x2", "0x1", "ax2"):
        with pytest.raises(Exception, match="batch"):
            runtimes.parse_config(bad)


def test_runtime_ratios_are_per_input_medians_against_the_engine(runtimes):
    times = {"lcnas": [1.0, 2.0, 1.0], "openvino": [0.5, 3.0, 1.5], "eager": [3.0, 6.0, 3.0]}
    stats = runtimes.summarize(times, batch=4)
    assert stats["lcnas"]["ratio_to_lcnas"] == 1.0
    assert stats["openvino"]["ratio_to_lcnas"] == pytest.approx(1.5)  # of 0.5, 1.5, 1.5
    assert stats["eager"]["ratio_to_lcnas"] == pytest.approx(3.0)
    assert stats["openvino"]["images_per_s"] == pytest.approx(1000.0 * 4 / 1.5)


def test_interleaved_timing_runs_every_runner_on_every_input_in_blocks(runtimes):
    calls = []
    runners = {k: (lambda x, k=k: calls.append((k, int(x)))) for k in ("a", "b")}
    times = runtimes.time_interleaved(runners, [0, 1, 2, 3, 4], threads=2, block=2, warmup=1)
    assert {k: len(v) for k, v in times.items()} == {"a": 5, "b": 5}
    timed = calls[2:]  # after one warm-up call each
    assert sorted(timed) == sorted((k, i) for k in "ab" for i in range(5))
    assert [i for _, i in timed[:4]] in ([0, 1, 0, 1],)  # a block of 2 inputs per runner, both runners, then the next block


def test_runtimes_time_the_shipped_static_weights(runtimes):
    import torch

    import lcnas

    model, source = runtimes.load_static("resnet20")
    shipped = lcnas.load_model("resnet20")
    assert source.startswith("shipped resnet20")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), shipped.state_dict().values()))
    _, fresh = runtimes.load_static("resnet110")  # no shipped checkpoint: the architecture, said so
    assert fresh.startswith("untrained")


@pytest.fixture(scope="module")
def validation():
    return _script("latency_validation")


def test_validation_sweeps_every_job_once_per_pass_and_keeps_each_execution_in_its_slot(validation, monkeypatch):
    sequence: list[str] = []

    def fake_paired(n, call, reference, *, context=None, rounds=11, **_):
        order = []
        for j in range(n):
            with context(j):
                order.append(call(j))
        sequence.append(f"time {n}")
        # ms = the execution's index + the pass number, ratio a tenth of the index
        return [float(i[1]) + len([s for s in sequence if s == f"time {n}"]) for i in order], [float(i[1]) / 10 for i in order]

    monkeypatch.setattr(validation, "measure_paired", fake_paired)
    speeds = {"a": iter([0.8, 1.25] * 3), "b": iter([1.0] * 6)}
    entered: list[int] = []
    import contextlib

    def job(key: str, n: int, probe_log: str):
        def probe():
            sequence.append(probe_log)
            return next(speeds[key])
        return validation.Job(key, [{"predicted_ms": 2.0 + i} for i in range(n)], lambda i, k=key: (k, i), lambda: None,
                              lambda i: (entered.append(i), contextlib.nullcontext())[1], 2, probe)

    rows, probes = validation.run_jobs([job("a", 4, "probe a"), job("b", 3, "probe b")], 3)
    # pass after pass over both jobs, each bracketed by its probes
    assert sequence == ["probe a", "time 4", "probe a", "probe b", "time 3", "probe b"] * 3
    assert sorted(entered) == sorted(list(range(4)) * 3 + list(range(3)) * 3)
    a = rows[:4]
    assert [r["measured_relative"] for r in a] == pytest.approx([0.0, 0.1, 0.2, 0.3])  # each in its own slot, whatever the order
    assert [r["measured_ms"] for r in a] == pytest.approx([2.0, 3.0, 4.0, 5.0])  # the median over passes 1, 2, 3
    assert all(len(r["measured_relative_passes"]) == 3 for r in rows)
    assert probes["a"] == [0.8, 1.25] * 3
    assert [r["predicted_probed_ms"] for r in a] == pytest.approx([2.0, 3.0, 4.0, 5.0])  # geometric mean of 0.8 and 1.25: 1


def test_validation_reports_how_often_two_passes_agree(validation):
    rows = [{"predicted_ms": 1.0, "predicted_probed_ms": 1.0, "predicted_relative": 0.5, "measured_ms": 1.0, "measured_relative": 0.5,
             "measured_relative_passes": [0.5, b]} for b in (0.5, 0.51, 0.54, 0.6)]
    rep = validation.summarize(rows)["repeatability"]
    assert rep["within_5pct"] == pytest.approx(0.5)  # 0.5/0.5 and 0.5/0.51
    assert rep["within_10pct"] == pytest.approx(0.75)  # 0.5/0.54 = -7.4 %; 0.5/0.6 = -17 %


def test_validation_judges_compared_tables_on_the_same_measurements(validation):
    rows = [{"predicted_ms": 1.0, "predicted_probed_ms": 1.0, "predicted_relative": 0.5, "measured_ms": 1.0, "measured_relative": m,
             "predicted_relative_compared": {"other.json": o}} for m, o in ((0.5, 0.5), (0.52, 0.6), (0.5, 0.56), (0.55, 0.5))]
    s = validation.summarize(rows)
    assert s["relative"]["within_10pct"] == pytest.approx(1.0)
    other = s["relative_compared"]["other.json"]
    assert other["within_5pct"] == pytest.approx(0.25)  # 0.5/0.5 only
    assert other["within_10pct"] == pytest.approx(0.5)  # and 0.5/0.55 (-9 %); 0.6/0.52 and 0.56/0.5 are 15 % and 12 % off
    assert "relative_compared" not in validation.summarize([{k: v for k, v in r.items() if k != "predicted_relative_compared"} for r in rows])


def test_host_states_finds_the_two_states_and_the_shift_they_put_on_a_ratio():
    hs = _script("host_states")
    # every third sample fast: probe 75 µs, empty call 20 µs, static 800 µs; slow: 125, 30, 880
    rows = [(i * 0.01, *((75.0, 20.0, 800.0) if i % 3 == 0 else (125.0, 30.0, 880.0))) for i in range(3000)]
    s = hs.summarize(rows, fast_margin=0.15)
    assert s["fast_fraction"] == pytest.approx(1 / 3, abs=1e-3)
    assert s["slow_over_fast"]["probe_us"] == pytest.approx(125 / 75)
    assert s["relative_shift"] == pytest.approx((30 / 880) / (20 / 800) - 1)
    assert s["can_judge_5pct"] is False
    assert len(s["fast_fraction_per_window"]) == 6 and s["state_duration_s"]["fast"] == pytest.approx(0.01)
    steady = [(i * 0.01, 75.0 + (i % 2), 20.0, 800.0) for i in range(500)]  # one state: nothing moves
    t = hs.summarize(steady, fast_margin=0.15)
    assert t["fast_fraction"] == 1.0 and t["relative_shift"] is None and t["can_judge_5pct"] is True


def test_the_in_run_refit_recovers_a_calibration_the_shipped_one_missed():
    lv = _script("latency_validation")
    gen = np.random.default_rng(0)
    # executions of one table model whose true cost is 1.2·compute + 0.9·gates + 0.01 ms
    rows = []
    static = [1.0, 0.0, 0.5]
    true_static = 1.2 * 1.0 + 0.01
    for i in range(200):
        raw, gates = float(gen.uniform(0.05, 1.0)), float(gen.uniform(0.0, 0.05)) * (i % 2)
        truth = 1.2 * (raw - gates) + 0.9 * gates + 0.01
        rows.append({"table_model": "resnet20", "kind": "uniform" if i % 4 < 2 else "layers", "parts": [raw, gates, 0.1],
                     "static_parts": static, "measured_relative": truth / true_static})
    refit = lv.in_run_refit(rows)
    assert set(refit) == {"uniform", "layers"}
    assert all(s["within_5pct"] == 1.0 and s["n"] > 100 for s in refit.values())
    # a form that cannot hold (a cost the parts do not carry) is not rescued by refitting
    for r in rows:
        r["measured_relative"] *= 1.0 + 0.3 * (hash(str(r["parts"])) % 2)
    assert all(s["within_5pct"] < 0.8 for s in lv.in_run_refit(rows).values())


def test_gate_cost_counts_the_gates_and_times_a_pass_with_them_against_one_without():
    gate_cost = _script("gate_cost")
    import lcnas
    from lcnas.models import GateConfig

    model = lcnas.create_model("resnet20", gating="lc", gate_config=GateConfig(stages=(2, 3))).eval()
    assert gate_cost.gate_count(model) == 2 * 6  # a layer and a channel gate on each of stages 2 and 3's blocks
    calls = []
    diff, base = gate_cost.paired_difference_us(lambda: calls.append("g"), lambda: calls.append("b"), 4)
    assert calls == ["g", "b", "b", "g", "g", "b", "b", "g"]  # alternating which goes first
    assert base >= 0.0 and isinstance(diff, float)
    r = gate_cost.measure(model, 1, rounds=1, pairs=2)
    assert r["gates"] == 12 and len(r["gates_us_per_round"]) == 1 and r["static_pass_us"] > 0

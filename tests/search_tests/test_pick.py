"""Picking from a known front, and retraining the pick."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from lcnas.errors import ConfigError
from lcnas.search import SearchResults, TrialResult, pick_trial, retrain_config
from lcnas.train import LossWeights

PARAMS = {"gating": "layer", "gate.hidden": 0, "loss.flops": 1.0, "loss.flops_target": 0.5}


def _t(n, acc, mflops, lat=None):
    return TrialResult(number=n, state="complete", params=dict(PARAMS), accuracy=acc, mflops_mean=mflops, mflops_p95=mflops + 5,
                       latency_ms_mean=lat, latency_ms_p95=None if lat is None else lat * 1.2, feasible=True)


@pytest.fixture
def results(tiny_settings):
    # front by cost: 20→80 %, 40→89 % (the knee), 60→90 %, 80→91 %; trial 4 is dominated
    trials = (_t(0, 80.0, 20.0, 1.0), _t(1, 89.0, 40.0, 1.5), _t(2, 90.0, 60.0, 2.0), _t(3, 91.0, 80.0, 2.5), _t(4, 85.0, 70.0, 2.2))
    return SearchResults(backend="optuna", settings=tiny_settings, trials=trials)


def test_pick_knee_and_max_accuracy(results):
    assert [t.number for t in results.front] == [0, 1, 2, 3]
    assert pick_trial(results, "knee").number == 1
    assert pick_trial(results, "max-accuracy").number == 3


def test_a_front_without_a_knee_gives_its_most_accurate_point(tiny_settings):
    # seen in a real search: a cheap, wrecked trial and two good ones at nearly the same cost
    trials = (_t(5, 19.28, 70.0, 1.980), _t(3, 89.96, 80.93, 2.123), _t(4, 90.98, 81.0, 2.124))
    results = SearchResults(backend="optuna", settings=tiny_settings, trials=trials)
    assert [t.number for t in results.front] == [5, 3, 4]
    assert pick_trial(results, "knee").number == 4


def test_budgets_are_respected(results):
    assert pick_trial(results, "max-accuracy", max_mflops=65).number == 2
    assert pick_trial(results, "max-accuracy", max_mflops=60, budget_stat="p95").number == 1  # p95 = mean + 5
    assert pick_trial(results, "max-accuracy", max_latency_ms=1.6).number == 1


def test_no_feasible_trial_is_a_clear_error(results):
    with pytest.raises(ConfigError, match=r"no trial on the Pareto front .* meets the budget \(mflops_mean ≤ 5.0\).*cheapest reach mflops_mean 20"):
        pick_trial(results, "knee", max_mflops=5.0)
    no_latency = replace(results, trials=tuple(replace(t, latency_ms_mean=None) for t in results.trials))
    with pytest.raises(ConfigError, match="--lut"):
        pick_trial(no_latency, max_latency_ms=1.0)
    with pytest.raises(ConfigError, match="--pick"):
        pick_trial(results, "best")


def test_retrain_config_uses_the_full_split_and_the_overrides(results):
    cfg = retrain_config(results, results.trials[1], name="r", overrides={"epochs": 3})
    assert cfg.train_subset is None and cfg.epochs == 3 and cfg.name == "r" and cfg.gating == "layer"
    assert cfg.loss == LossWeights(flops=1.0, flops_target=0.5)


def test_cli_retrain_trains_the_pick_and_records_it(results, tmp_path, monkeypatch):
    from lcnas.cli import main

    results.write(tmp_path / "search", plot=False)
    monkeypatch.chdir(tmp_path)
    assert main(["retrain", str(tmp_path / "search"), "--pick", "knee", "--epochs", "1", "--name", "r1", "--no-progress",
                 "--set", "train_subset=128"]) == 0
    picked = json.loads((tmp_path / "runs" / "r1" / "picked.json").read_text())
    assert picked["trial"]["number"] == 1 and 0 <= picked["final"]["test_accuracy"] <= 100
    assert (tmp_path / "runs" / "r1" / "final.pt").exists()
    assert main(["retrain", str(tmp_path / "search"), "--max-mflops", "1", "--name", "r2"]) == 2  # no feasible pick

"""One objective for every engine: metric names, directions, constraints, feasibility and the
per-engine policies (single-objective score, scheduler metric) come from lcnas.search.Objective."""

from __future__ import annotations

import dataclasses
import math

import pytest

from lcnas.errors import ConfigError
from lcnas.search import BUDGET_PENALTY, COST_METRICS, METRICS, Objective, OptunaObjective, TrialResult, trial_metrics


def test_metric_names_are_listed_once():
    assert METRICS[0] == "accuracy" and set(COST_METRICS) == set(METRICS[1:])
    assert COST_METRICS[0] == "latency_ms_mean"  # the default cost with a table comes first
    result_fields = {f.name for f in dataclasses.fields(TrialResult)}
    assert set(METRICS) <= result_fields


def test_directions_constraints_and_feasibility():
    o = Objective(cost_metric="latency_ms_p95", budgets=(("latency_ms_p95", 2.0), ("mflops_mean", 30.0)))
    assert o.metric_names() == ["accuracy", "latency_ms_p95"] and o.directions() == ["maximize", "minimize"]
    assert o.modes() == ["max", "min"] and o.metric_names(single=True) == ["accuracy"] and o.directions(single=True) == ["maximize"]
    within = {"accuracy": 90.0, "latency_ms_p95": 1.5, "mflops_mean": 30.0}
    assert o.violations(within) == [-0.5, 0.0] and o.feasible(within) is True
    over = {**within, "mflops_mean": 31.0}
    assert o.feasible(over) is False and o.score(over) == 90.0 - BUDGET_PENALTY and o.score(within) == 90.0
    assert o.feasible({"accuracy": 90.0, "latency_ms_p95": 1.5}) is None  # a budget metric missing: not judged
    assert o.score({"accuracy": 90.0}) == 90.0 and o.score({"mflops_mean": 3.0}) is None
    assert o.values(within) == (90.0, 1.5) and math.isnan(o.values({"accuracy": 90.0})[1])
    result = TrialResult(number=0, state="complete", params={}, **within)
    assert o.feasible(result) is True and o.values(result, single=True) == (90.0,)


def test_policy_fields_are_explicit():
    assert Objective().penalty == BUDGET_PENALTY and Objective().scheduler_metric == "accuracy"
    lenient = Objective(budgets=(("mflops_mean", 10.0),), penalty=5.0)
    assert lenient.score({"accuracy": 70.0, "mflops_mean": 11.0}) == 65.0
    with pytest.raises(ConfigError, match="cost metric 'accuracy'"):
        Objective(cost_metric="accuracy")
    with pytest.raises(ConfigError, match="budget on mflops_mean must be > 0"):
        Objective(budgets=(("mflops_mean", 0.0),))


def test_settings_engines_and_plugins_read_the_same_objective(tiny_settings):
    s = dataclasses.replace(tiny_settings, max_mflops=20.0, budget_stat="p95")
    assert s.objective == Objective(cost_metric="mflops_mean", budgets=(("mflops_p95", 20.0),))
    assert s.budgets == {"mflops_p95": 20.0}
    metrics = {"accuracy": 80.0, "mflops_mean": 15.0, "mflops_p95": 25.0}
    assert trial_metrics(s, metrics) == s.objective.reported(metrics) == {**metrics, "feasible": False, "score": 80.0 - BUDGET_PENALTY}
    for single in (False, True):
        plugin = OptunaObjective(s, single_objective=single)
        assert plugin.directions == s.objective.directions(single=single)
        assert plugin.metric_names == s.objective.metric_names(single=single)

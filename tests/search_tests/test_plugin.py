"""The plugin entry points (an Optuna objective, a Ray Tune trainable, an NNI trial function) and
the docs examples that use them, run on synthetic data."""

from __future__ import annotations

import dataclasses
import json
import os
import runpy
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from lcnas.errors import ConfigError
from lcnas.search import (
    BUDGET_PENALTY,
    OptunaObjective,
    SearchSpace,
    nni_search_space,
    nni_trial,
    optuna_results,
    ray_param_space,
    ray_trainable,
    to_nni,
    trial_metrics,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
LAYER_PARAMS = {"gating": "layer", "gate.hidden": 0, "loss.flops": 1.0, "loss.flops_target": 0.5}


@pytest.fixture
def tiny_example(monkeypatch, tmp_path):
    """Run docs examples on their tiny budget, in a fresh folder."""
    monkeypatch.setenv("LCNAS_EXAMPLE_TINY", "1")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _budgeted(settings, **budgets):
    return dataclasses.replace(settings, **budgets)


# ---------------------------------------------------------------- the shared metrics

def test_trial_metrics_score_is_accuracy_less_the_penalty_over_budget(tiny_settings):
    metrics = {"accuracy": 80.0, "mflops_mean": 30.0, "mflops_p95": 35.0, "latency_ms_mean": None, "latency_ms_p95": float("nan")}
    assert trial_metrics(tiny_settings, metrics) == {"accuracy": 80.0, "mflops_mean": 30.0, "mflops_p95": 35.0,
                                                     "feasible": True, "score": 80.0}
    over = _budgeted(tiny_settings, max_mflops=20.0)
    assert trial_metrics(over, metrics)["feasible"] is False
    assert trial_metrics(over, metrics)["score"] == 80.0 - BUDGET_PENALTY
    assert "score" not in trial_metrics(over, {"mflops_mean": 10.0}) and trial_metrics(over, {"mflops_mean": 10.0})["feasible"]


# ---------------------------------------------------------------- Optuna

def test_optuna_docs_example_runs_a_two_objective_study(tiny_example):
    optuna = pytest.importorskip("optuna")
    runpy.run_path(str(EXAMPLES / "optuna_objective.py"), run_name="__main__")
    out = tiny_example / "runs" / "optuna_objective"
    study = optuna.load_study(study_name="lcnet", storage=f"sqlite:///{out / 'study.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert study.metric_names == ["accuracy", "mflops_mean"]
    done = study.get_trials(states=[optuna.trial.TrialState.COMPLETE])
    assert len(done) == 2, [t.user_attrs.get("error") for t in study.trials]
    for t in done:
        assert t.values == [t.user_attrs["accuracy"], t.user_attrs["mflops_mean"]]
        assert 0 <= t.values[0] <= 100 and t.values[1] > 0
        assert t.user_attrs["result"]["state"] == "complete" and t.user_attrs["params"]["gating"] in ("layer", "channel", "lc")
    results = json.loads((out / "results.json").read_text())
    assert len(results["trials"]) == 2 and (out / "pareto.json").exists()


def test_optuna_objective_single_objective_prunes_through_the_study_pruner(tiny_settings):
    optuna = pytest.importorskip("optuna")

    class PruneAll(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return True

    objective = OptunaObjective(tiny_settings, single_objective=True)
    assert objective.directions == ["maximize"] and objective.metric_names == ["accuracy"]
    study = optuna.create_study(directions=objective.directions, pruner=PruneAll())
    study.optimize(objective, n_trials=1)
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    assert study.trials[0].intermediate_values  # the accuracy of epoch 1
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE and trial.value == trial.user_attrs["accuracy"]


def test_optuna_objective_budgets_are_constraints_and_results_convert(tiny_settings):
    optuna = pytest.importorskip("optuna")
    settings = _budgeted(tiny_settings, max_mflops=1.0)  # nothing fits: every trial infeasible
    objective = OptunaObjective(settings)
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.user_attrs["constraints"][0] == pytest.approx(trial.user_attrs["mflops_mean"] - 1.0)
    assert OptunaObjective.constraints(trial) == trial.user_attrs["constraints"]
    assert trial.user_attrs["feasible"] is False
    results = optuna_results(study, settings)
    assert [t.state for t in results.trials] == ["complete"] and results.trials[0].feasible is False


def test_optuna_objective_refuses_other_directions_runs_fixed_trials_and_records_errors(tiny_settings, monkeypatch):
    optuna = pytest.importorskip("optuna")
    objective = OptunaObjective(tiny_settings)
    study = optuna.create_study(direction="maximize")
    with pytest.raises(ConfigError, match="directions=objective.directions"):
        study.optimize(objective, n_trials=1)

    import lcnas.search._plugin as plugin

    def broken(*args, **kwargs):
        raise RuntimeError("out of memory")

    accuracy, mflops = objective(optuna.trial.FixedTrial(LAYER_PARAMS))  # one chosen configuration, no study
    assert 0 <= accuracy <= 100 and mflops > 0

    monkeypatch.setattr(plugin, "run_trial", broken)
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=1, catch=(RuntimeError,))
    assert study.trials[0].state == optuna.trial.TrialState.FAIL
    assert study.trials[0].user_attrs["error"] == "RuntimeError: out of memory"


# ---------------------------------------------------------------- Ray Tune

@pytest.mark.filterwarnings("ignore:`get_trial_id` is meant")  # no Tuner here: trial number 0
def test_ray_trainable_decodes_its_config_and_reports_each_epoch(tiny_settings, monkeypatch):
    pytest.importorskip("ray.tune")
    from ray import tune
    from ray.tune.search.variant_generator import generate_variants

    space = ray_param_space(tiny_settings)
    configs = [spec["config"] for _ in range(30) for _, spec in generate_variants({"config": space})]
    assert {c["gating"] for c in configs} == {"layer", "lc"}
    assert all((c["gate.group_size"] is None) == (c["gating"] == "layer") for c in configs)

    reports = []
    monkeypatch.setattr(tune, "report", lambda metrics, **kw: reports.append(metrics))
    trainable = ray_trainable(tiny_settings)
    assert trainable.__name__ == "lcnas_trial"
    trainable({"gating": "layer", "gate.hidden": 16, "gate.group_size": None, "loss.flops": 1.0, "loss.flops_target": 0.5,
               "note": "constants pass"})
    assert [r["epoch"] for r in reports] == [1]
    assert {"accuracy", "mflops_mean", "score", "feasible", "trial_number"} <= set(reports[0])
    with pytest.raises(ConfigError, match="gate.group_size"):  # inactive when gating=layer
        trainable({**LAYER_PARAMS, "gate.group_size": 4})


def test_ray_docs_example_runs_a_tuner(tiny_example):
    pytest.importorskip("ray.tune")
    done = subprocess.run([sys.executable, str(EXAMPLES / "ray_tune_trainable.py")], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "RAY_DEDUP_LOGS": "0"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = tiny_example / "runs" / "ray_tune_trainable"
    assert (out / "ray" / "lcnet").is_dir()
    assert len(list((out / "trials").iterdir())) == 2  # trial runs (a trial ASHA stops writes no result.json)
    assert "best: " in done.stdout
    table = done.stdout.split("score\n", 1)[1].split()  # trial_number accuracy mflops_mean feasible score, per trial
    rows = [table[i:i + 5] for i in range(0, len(table), 5)]
    assert sorted(int(r[0]) for r in rows) == [0, 1]
    for _, accuracy, mflops, feasible, score in rows:  # the budget is 60 MFLOPs
        assert (feasible == "True") == (float(mflops) <= 60.0)
        assert float(score) == pytest.approx(float(accuracy) - (0 if feasible == "True" else BUDGET_PENALTY))


# ---------------------------------------------------------------- NNI

class _FeedChannel:
    """An NNI trial command channel that hands out one parameter set and keeps the metrics."""

    def __init__(self, parameters):
        self.parameters, self.metrics = parameters, []

    def receive_parameter(self):
        return {"parameter_id": 7, "parameters": self.parameters}

    def send_metric(self, type, parameter_id, trial_job_id, sequence, value):  # noqa: A002 (NNI's name)
        self.metrics.append((type, value))


@pytest.fixture
def nni_channel(monkeypatch):
    """Install a channel for nni's trial API (restored afterwards)."""
    pytest.importorskip("nni")
    import nni.runtime.trial_command_channel as channels

    monkeypatch.setattr(channels, "_channel", None)

    def install(parameters):
        channel = _FeedChannel(parameters)
        monkeypatch.setattr(channels, "_channel", channel)
        return channel

    return install


def test_nni_search_space_is_the_spaces_translation(tiny_settings):
    assert nni_search_space(tiny_settings) == to_nni(tiny_settings.space)
    assert nni_search_space(tiny_settings)["gating"]["_value"][1] == {"_name": "lc", "gate.group_size":
                                                                      {"_type": "choice", "_value": [4, 8]}}


def test_nni_trial_runs_what_the_tuner_gave_and_reports_to_nni(tiny_settings, nni_channel, monkeypatch):
    import nni.trial

    monkeypatch.setattr(nni.trial, "_sequence_id", 3)
    settings = _budgeted(tiny_settings, max_mflops=1.0)
    channel = nni_channel({"gating": {"_name": "lc", "gate.group_size": 8}, "gate.hidden": 16, "loss.flops": 2.0,
                           "loss.flops_target": 0.6})
    result = nni_trial(settings)
    assert result.number == 3 and result.params == {"gating": "lc", "gate.group_size": 8, "gate.hidden": 16,
                                                    "loss.flops": 2.0, "loss.flops_target": 0.6}
    (kind, epoch1), (final_kind, final) = channel.metrics
    assert (kind, final_kind) == ("PERIODICAL", "FINAL")
    assert epoch1["default"] == epoch1["accuracy"] == result.accuracy
    assert final["default"] == final["score"] == result.accuracy - BUDGET_PENALTY  # over the 1-MFLOP budget
    assert final["mflops_mean"] == result.mflops_mean and "feasible" not in final
    json.dumps(channel.metrics)  # what NNI sends on must be JSON


def test_nni_trial_refuses_parameters_of_another_space(tiny_settings, nni_channel):
    nni_channel({"gating": "lc", "gate.hidden": 16, "loss.flops": 2.0, "loss.flops_target": 0.6})  # no group size
    with pytest.raises(ConfigError, match="gate.group_size"):
        nni_trial(tiny_settings)


def test_nni_docs_trial_runs_standalone(tiny_example, nni_channel):
    with pytest.warns(RuntimeWarning, match="outside an experiment"):
        runpy.run_path(str(EXAMPLES / "nni_trial.py"), run_name="__main__")  # no experiment: NNI's standalone mode
    (result,) = [json.loads(p.read_text()) for p in (tiny_example / "runs" / "nni" / "trials").glob("*/result.json")]
    space: SearchSpace = runpy.run_path(str(EXAMPLES / "nni_trial.py"))["make_search_settings"]().space
    assert result["state"] == "complete" and space.check(result["params"])


def _as_nni(values: dict, space: SearchSpace) -> dict:
    """lcnas values as an NNI tuner hands them to a trial of ``to_nni(space)``: nested choices."""
    from lcnas.search._space import encode_choice

    def one(p):
        value = encode_choice(values[p.name]) if p.kind == "categorical" else values[p.name]
        children = [c for c in space.children(p.name) if c.name in values]
        return {"_name": value, **{c.name: one(c) for c in children}} if space.children(p.name) else value

    return {p.name: one(p) for p in space.params if p.condition is None}


def test_nni_docs_trial_runs_the_tuners_parameters(tiny_example, nni_channel):
    from lcnas.search._objective import example_params

    space = runpy.run_path(str(EXAMPLES / "nni_trial.py"))["make_search_settings"]().space
    values = example_params(space)
    channel = nni_channel(_as_nni(values, space))
    runpy.run_path(str(EXAMPLES / "nni_trial.py"), run_name="__main__")
    assert [kind for kind, _ in channel.metrics] == ["PERIODICAL", "FINAL"]
    (run,) = (tiny_example / "runs" / "nni" / "trials").iterdir()
    result = json.loads((run / "result.json").read_text())
    assert space.check(result["params"], merge_fixed=False) == space.check(values, merge_fixed=False)
    assert channel.metrics[1][1]["default"] == channel.metrics[1][1]["score"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not os.environ.get("LCNAS_TEST_NNI_EXPERIMENT"),
                    reason="starts NNI's web server and two trial processes (about a minute): set LCNAS_TEST_NNI_EXPERIMENT=1")
def test_nni_docs_experiment_runs_two_trials(tiny_example):
    pytest.importorskip("nni")
    done = subprocess.run([sys.executable, str(EXAMPLES / "nni_experiment.py"), str(_free_port())], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = [json.loads(p.read_text()) for p in (tiny_example / "runs" / "nni" / "trials").glob("*/result.json")]
    assert len(results) == 2 and all(r["state"] == "complete" for r in results)
    assert done.stdout.count("score ") == 2

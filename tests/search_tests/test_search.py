"""The search objective, the common results format and the Optuna backend, end to end on synthetic data."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from lcnas.errors import ConfigError
from lcnas.search import SearchResults, TrialResult, load_results, make_settings, pareto_front, run_trial, search, trial_config
from lcnas.train import LossWeights

from .conftest import TINY_BASE

optuna = pytest.importorskip("optuna")


def test_trial_config_layers_defaults_base_fixed_and_params(tiny_settings):
    cfg = trial_config(tiny_settings, {"gating": "lc", "gate.hidden": 0, "loss.flops": 2.0, "loss.flops_target": 0.5,
                                       "gate.group_size": 8}, number=7)
    assert cfg.gating == "lc" and cfg.gate.hidden == 0 and cfg.gate.group_size == 8
    assert cfg.loss == LossWeights(flops=2.0, flops_target=0.5)
    assert cfg.dataset == "synthetic" and cfg.train_subset == 128 and cfg.init_from == "pretrained"
    assert cfg.name == "trial_0007" and Path(cfg.out_dir) == Path(tiny_settings.out_dir) / "trials"
    with pytest.raises(ConfigError, match="gate.group_size"):  # inactive when gating=layer
        trial_config(tiny_settings, {"gating": "layer", "gate.hidden": 0, "loss.flops": 2.0, "loss.flops_target": 0.5,
                                     "gate.group_size": 8}, number=0)


def test_run_trial_reports_each_epoch_and_writes_its_result(tiny_settings):
    seen = []
    params = {"gating": "layer", "gate.hidden": 16, "loss.flops": 1.0, "loss.flops_target": 0.5}
    result = run_trial(tiny_settings, params, number=0, report=lambda epoch, m: seen.append((epoch, m)))
    assert result.state == "complete" and 0 <= result.accuracy <= 100
    assert 0 < result.mflops_mean <= result.mflops_p95 + 1e-6
    assert result.latency_ms_mean is None  # no table given
    assert seen and seen[-1][0] == 1 and seen[-1][1]["accuracy"] == result.accuracy
    saved = json.loads((Path(result.run_dir) / "result.json").read_text())
    assert saved["accuracy"] == result.accuracy and saved["params"]["gating"] == "layer"
    assert not (Path(result.run_dir) / "final.pt").stat().st_size == 0


def test_settings_check_cost_and_budgets(tiny_space_file, tmp_path):
    with pytest.raises(ConfigError, match="--lut"):
        make_settings(str(tiny_space_file), out_dir=tmp_path, overrides=dict(TINY_BASE), cost_metric="latency_ms_mean")
    with pytest.raises(ConfigError, match="--lut"):
        make_settings(str(tiny_space_file), out_dir=tmp_path, overrides=dict(TINY_BASE), max_latency_ms=1.0)
    with pytest.raises(ConfigError, match="unknown setting 'epochz'"):
        make_settings(str(tiny_space_file), out_dir=tmp_path, overrides={**TINY_BASE, "epochz": 1})
    from lcnas.latency import LatencyTableError

    with pytest.raises(LatencyTableError, match="not found"):
        make_settings(str(tiny_space_file), out_dir=tmp_path, overrides=dict(TINY_BASE), lut=str(tmp_path / "nope.json"))
    s = make_settings(str(tiny_space_file), out_dir=tmp_path, overrides=dict(TINY_BASE), max_mflops=30.0, budget_stat="p95")
    assert s.budgets == {"mflops_p95": 30.0} and s.violations({"mflops_p95": 31.0}) == [1.0]


def _trial(n, acc, mflops, state="complete", feasible=True):
    return TrialResult(number=n, state=state, params={}, accuracy=acc, mflops_mean=mflops, feasible=feasible)


def test_pareto_front_of_a_known_set():
    trials = [_trial(0, 90, 50), _trial(1, 91, 60), _trial(2, 89, 55), _trial(3, 92, 80), _trial(4, 95, 10, state="failed"),
              _trial(5, 93, 40, feasible=False), _trial(6, 91, 60)]
    assert [t.number for t in pareto_front(trials, "mflops_mean")] == [0, 1, 6, 3]


def test_results_files_round_trip(tiny_settings, tmp_path):
    trials = (_trial(0, 90.0, 50.0), _trial(1, 91.0, 60.0), _trial(2, 80.0, 70.0))
    results = SearchResults(backend="optuna", settings=tiny_settings, trials=trials, study="x")
    paths = results.write(tmp_path / "out")
    back = load_results(tmp_path / "out")
    assert back.trials == trials and back.settings == tiny_settings and [t.number for t in back.front] == [0, 1]
    csv_lines = paths["trials"].read_text().splitlines()
    assert len(csv_lines) == 4 and csv_lines[0].startswith("number,state,accuracy")
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_results(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(ConfigError, match="not an lcnas search results file"):
        load_results(tmp_path / "other.json")


def test_optuna_study_runs_writes_results_and_refuses_other_settings(tiny_settings, tiny_space_file, tmp_path):
    results = search(tiny_settings, backend="optuna", n_trials=3, seed=0, progress=False)
    assert len(results.trials) == 3 and all(t.state == "complete" for t in results.trials)
    assert results.front and (Path(tiny_settings.out_dir) / "study.db").exists()
    for name in ("results.json", "trials.csv", "pareto.json", "pareto.png"):
        assert (Path(tiny_settings.out_dir) / name).exists()
    # the same study continued with more trials keeps the first three
    more = search(tiny_settings, backend="optuna", n_trials=4, seed=0, progress=False)
    assert [t.to_dict() for t in more.trials[:3]] == [t.to_dict() for t in results.trials] and len(more.trials) == 4
    other = make_settings(str(tiny_space_file), out_dir=tiny_settings.out_dir, overrides={**TINY_BASE, "epochs": 2})
    with pytest.raises(ConfigError, match="other search settings"):
        search(other, backend="optuna", n_trials=5, progress=False)


def test_optuna_dashboard_opens_the_study(tiny_settings):
    dashboard = pytest.importorskip("optuna_dashboard")
    import io

    search(tiny_settings, backend="optuna", n_trials=1, seed=0, progress=False)
    app = dashboard.wsgi(f"sqlite:///{Path(tiny_settings.out_dir) / 'study.db'}")
    status = []
    body = b"".join(app({"REQUEST_METHOD": "GET", "PATH_INFO": "/api/studies", "QUERY_STRING": "", "SERVER_NAME": "x", "SERVER_PORT": "80",
                         "wsgi.input": io.BytesIO(), "wsgi.errors": io.StringIO(), "wsgi.url_scheme": "http"},
                        lambda s, h, *exc: status.append(s)))
    assert status[0].startswith("200") and json.loads(body)["study_summaries"][0]["study_name"] == "lcnas"


def test_failing_and_nan_trials_are_marked_failed_and_the_study_goes_on(tiny_settings, monkeypatch):
    from lcnas.search import _optuna

    real = _optuna.run_trial

    def flaky(settings, params, *, number, report=None):
        if number == 0:
            raise RuntimeError("boom in trial 0")
        result = real(settings, params, number=number, report=report)
        return result if number != 1 else TrialResult(**{**result.__dict__, "accuracy": math.nan})

    monkeypatch.setattr(_optuna, "run_trial", flaky)
    results = search(tiny_settings, backend="optuna", n_trials=3, seed=0, progress=False)
    states = {t.number: t.state for t in results.trials}
    assert states == {0: "failed", 1: "failed", 2: "complete"}
    assert "boom in trial 0" in results.trials[0].error
    assert [t.number for t in results.front] == [2]


def test_budgets_are_constraints(tiny_space_file, tmp_path):
    s = make_settings(str(tiny_space_file), out_dir=tmp_path / "s", overrides=dict(TINY_BASE), max_mflops=1.0)
    results = search(s, backend="optuna", n_trials=2, seed=0, progress=False)
    assert all(t.feasible is False for t in results.trials) and results.front == []
    study = optuna.load_study(study_name="lcnas", storage=f"sqlite:///{tmp_path / 's' / 'study.db'}")
    assert all(t.user_attrs["constraints"][0] > 0 for t in study.trials)


def _cli(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "lcnas.cli", "search", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kw)


def _base_flags() -> list[str]:
    return [f"--set={k}={'null' if v is None else v}" for k, v in TINY_BASE.items()]


def test_malformed_space_fails_before_anything_starts(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nparams:\n  gate.hiden: {type: int, low: 0, high: 8}\n")
    proc = _cli("--space", str(bad), "--out", str(tmp_path / "out"), "--no-progress")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "gate.hiden" in err, err
    assert not (tmp_path / "out").exists()


def test_sigkill_mid_study_then_resume_keeps_completed_trials(tiny_space_file, tmp_path):
    out = tmp_path / "killed"
    args = ["--space", str(tiny_space_file), "--out", str(out), "--trials", "5", "--seed", "1", "--no-progress", *_base_flags()]
    storage = f"sqlite:///{out / 'study.db'}"
    proc = _cli(*args)
    deadline = time.time() + 240
    complete = []
    while time.time() < deadline:
        time.sleep(1)
        try:
            study = optuna.load_study(study_name="lcnas", storage=storage)
            complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        except Exception:  # database not created yet
            continue
        if len(complete) >= 2:
            break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(complete) >= 2, "the study did not complete two trials in time"
    before = {t.number: t.values for t in complete}
    proc = _cli(*args, "--format", "json")
    stdout, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads(stdout)
    assert summary["complete"] >= 5 - 1  # the trial killed mid-run may stay RUNNING (not counted) or be failed
    study = optuna.load_study(study_name="lcnas", storage=storage)
    after = {t.number: t.values for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE}
    assert all(after[n] == v for n, v in before.items())
    finished = [t for t in study.trials if t.state.is_finished()]
    assert len(finished) >= 5


def test_storage_retries_the_schema_race_of_workers_started_together(monkeypatch):
    """Two workers on an empty PostgreSQL database both create the schema; the loser gets a
    duplicate-table error (seen in CI) and must retry, not fail; a lasting error still surfaces."""
    import optuna
    import sqlalchemy.exc

    from lcnas.search import _optuna as mod

    monkeypatch.setattr(mod.time, "sleep", lambda s: None)
    calls = []

    def flaky(url, **kw):
        calls.append(url)
        if len(calls) == 1:
            raise sqlalchemy.exc.ProgrammingError("CREATE TABLE studies", {}, Exception("relation already exists"))
        return "storage"

    monkeypatch.setattr(optuna.storages, "RDBStorage", flaky)
    assert mod._rdb_storage(optuna, "postgresql://x") == "storage" and len(calls) == 2

    def broken(url, **kw):
        raise sqlalchemy.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", broken)
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        mod._rdb_storage(optuna, "postgresql://x", attempts=3)


def test_two_workers_share_one_postgresql_study(tiny_space_file, tmp_path, postgres_url):
    args = ["--space", str(tiny_space_file), "--trials", "4", "--storage", postgres_url, "--study-name", "shared",
            "--no-progress", "--format", "json", *_base_flags()]
    workers = [_cli(*args, "--out", str(tmp_path / f"w{i}"), "--seed", str(i)) for i in range(2)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert all(w.returncode == 0 for w in workers), [o[1][-2000:] for o in outputs]
    study = optuna.load_study(study_name="shared", storage=postgres_url)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 4
    assert len({t.user_attrs["worker"] for t in done}) == 2, "both workers should have run trials"


def test_trial_with_the_shipped_latency_table_reports_predicted_latency(tiny_space_file, tmp_path):
    s = make_settings(str(tiny_space_file), out_dir=tmp_path, overrides=dict(TINY_BASE), lut="cpu-amd-epyc-2t.json", max_latency_ms=1e-6)
    assert s.cost_metric == "latency_ms_mean" and s.budgets == {"latency_ms_mean": 1e-6}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the table may describe another CPU model than this machine's
        result = run_trial(s, {"gating": "lc", "gate.hidden": 16, "loss.flops": 1.0, "loss.flops_target": 0.5, "gate.group_size": 8}, number=0)
    assert 0 < result.latency_ms_mean <= result.latency_ms_p95 * (1 + 1e-6)  # float32 mean of equal values
    assert result.feasible is False  # nothing runs in a microsecond



def test_resumed_seeded_study_does_not_replay_its_first_trials(tiny_settings):
    first = search(tiny_settings, backend="optuna", n_trials=2, progress=False, seed=3, sampler="random")
    resumed = search(tiny_settings, backend="optuna", n_trials=4, progress=False, seed=3, sampler="random")
    params = [t.params for t in resumed.trials]
    assert [t.params for t in first.trials] == params[:2]  # completed trials intact
    assert len(params) == 4 and params[2] not in params[:2] and params[3] not in params[:2]


def test_stratified_start_up_tries_every_categorical_choice(tiny_settings):
    from collections import Counter

    from lcnas.search._optuna import startup_trials, stratified_choices

    space = tiny_settings.space
    assert startup_trials(space, 2) == 2 and startup_trials(space, 16) == 5 and startup_trials(space, 100) == 10
    rows = stratified_choices(space, 6, seed=0)
    assert Counter(r["gating"] for r in rows) == {"layer": 3, "lc": 3}
    assert Counter(r["gate.hidden"] for r in rows) == {0: 3, 16: 3}
    assert all("gate.group_size" not in r and "loss.flops" not in r for r in rows)  # conditional and numeric: sampled
    assert rows == stratified_choices(space, 6, seed=0)
    # A real TPE study: its two start-up trials differ in gating, whatever the seed's random draws.
    results = search(tiny_settings, backend="optuna", n_trials=2, progress=False, seed=5, sampler="tpe")
    assert sorted(t.params["gating"] for t in results.trials) == ["layer", "lc"]

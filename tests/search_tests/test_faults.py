"""Faults and bad input on the Optuna backend: kills, shared studies, bad storage URLs, changed settings."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lcnas.cli import main
from lcnas.errors import ConfigError

from .conftest import TINY_BASE

optuna = pytest.importorskip("optuna")


def _cli_sets() -> list[str]:
    out = []
    for key, value in TINY_BASE.items():
        out += ["--set", f"{key}={'null' if value is None else value}"]
    return out


def _states(url: str, name: str = "lcnas") -> list[str]:
    study = optuna.load_study(study_name=name, storage=url)
    return [t.state.name for t in study.get_trials(deepcopy=False)]


def test_kill_9_then_immediate_rerun_finishes_the_exact_count_with_nothing_left_running(tiny_space_file, tmp_path):
    out = tmp_path / "s"
    url = f"sqlite:///{out / 'study.db'}"
    cmd = [sys.executable, "-m", "lcnas", "search", "--space", str(tiny_space_file), "--out", str(out), "--trials", "3",
           "--seed", "0", "--no-progress", *_cli_sets()]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    try:
        while time.time() < deadline:  # kill -9 while the first (enqueued start-up) trial runs
            if (out / "study.db").exists():
                try:
                    if "RUNNING" in _states(url):
                        break
                except Exception:
                    pass
            time.sleep(0.2)
        else:
            pytest.fail("no trial started within 120 s")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert main(["search", "--space", str(tiny_space_file), "--out", str(out), "--trials", "3", "--seed", "0", "--no-progress",
                 "--format", "json", *_cli_sets()]) == 0
    study = optuna.load_study(study_name="lcnas", storage=url)
    trials = study.get_trials(deepcopy=False)
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]
    done = [t for t in trials if t.state.name != "FAIL" or not t.user_attrs.get("lcnas_interrupted")]
    assert len(done) == 3 and all(t.state.name == "COMPLETE" for t in done)
    killed = [t for t in trials if t.user_attrs.get("lcnas_interrupted")]
    assert len(killed) == 1
    # the killed trial's start-up configuration ran again
    retried = [t for t in done if t.user_attrs.get("lcnas_retry_of") == killed[0].number]
    assert len(retried) == 1 and retried[0].params["gating"] == killed[0].params.get("gating", retried[0].params["gating"])
    import json

    results = json.loads((out / "results.json").read_text())
    assert len(results["trials"]) == 3 and all(t["state"] == "complete" for t in results["trials"])


def test_a_slot_held_by_a_live_worker_is_not_run_twice(tiny_settings):
    """Two workers on one study never run more than --trials: a running trial of a live worker holds its slot."""
    from lcnas.search import search
    from lcnas.search._optuna import default_storage

    search(tiny_settings, backend="optuna", n_trials=3, progress=False, seed=0, write=False)
    url = default_storage(tiny_settings.out_dir)
    study = optuna.load_study(study_name="lcnas", storage=url)
    other = study.ask()  # another worker, alive (this test's parent process), running the fourth trial
    other.set_user_attr("lcnas_owner", {"host": socket.gethostname(), "pid": os.getppid()})
    import threading

    threading.Timer(3.0, lambda: study.tell(other, [50.0, 40.0])).start()  # ... which it finishes a little later
    results = search(tiny_settings, backend="optuna", n_trials=4, progress=False, seed=0, write=False)
    assert len(study.get_trials(deepcopy=False)) == 4
    assert len(results.trials) == 4  # this worker waited for the other's last trial: its results hold the whole study


def test_changed_sampler_on_an_existing_study_is_refused(tiny_settings):
    from lcnas.search import search

    search(tiny_settings, backend="optuna", n_trials=1, progress=False, sampler="tpe", write=False)
    with pytest.raises(ConfigError, match="--sampler tpe"):
        search(tiny_settings, backend="optuna", n_trials=2, progress=False, sampler="random", write=False)


def test_study_names_its_objectives_for_the_dashboard(tiny_settings):
    from lcnas.search import search
    from lcnas.search._optuna import default_storage

    search(tiny_settings, backend="optuna", n_trials=1, progress=False, write=False)
    study = optuna.load_study(study_name="lcnas", storage=default_storage(tiny_settings.out_dir))
    assert study.metric_names == ["accuracy", "mflops_mean"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("storage, expect", [
    ("not-a-url", "is not a database URL"),
    ("foo://bar/baz", "unknown database"),
    ("mysql://u@127.0.0.1/db", "driver"),
    ("postgresql+psycopg2://u@127.0.0.1:{port}/db", "cannot connect"),
    ("sqlite:////nonexistent-lcnas-dir/x/y.db", "does not exist"),
])
def test_bad_storage_is_one_clear_line_exit_2(tiny_space_file, tmp_path, capsys, storage, expect):
    storage = storage.format(port=_free_port())
    out = tmp_path / "s"
    rc = main(["search", "--space", str(tiny_space_file), "--out", str(out), "--trials", "1", "--storage", storage,
               "--no-progress", *_cli_sets()])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and expect in err[0] and "--storage" in err[0], err
    assert not Path("/nonexistent-lcnas-dir").exists()
    assert not (out / "results.json").exists()


def test_retrain_on_an_unreachable_database_is_one_clear_line(capsys):
    rc = main(["retrain", "--storage", f"postgresql+psycopg2://u@127.0.0.1:{_free_port()}/db", "--dry-run"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "cannot connect" in err[0]


def test_plain_postgresql_url_works_with_the_installed_driver(tiny_settings, postgres_url):
    """``postgresql://`` is what users write (the README's form); SQLAlchemy 2 maps it to psycopg 3."""
    from lcnas.search import search

    plain = postgres_url.replace("postgresql+psycopg2://", "postgresql://")
    name = f"plain_{os.getpid()}_{time.time_ns()}"
    results = search(tiny_settings, backend="optuna", n_trials=1, progress=False, storage=plain, study_name=name, write=False)
    assert [t.state for t in results.trials] == ["complete"]


def test_unknown_set_key_names_the_flag(tiny_space_file, tmp_path, capsys):
    rc = main(["search", "--space", str(tiny_space_file), "--out", str(tmp_path / "s"), "--set", "epochz=1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--set epochz=1" in err[0] and "epochs" in err[0], err
    assert not (tmp_path / "s").exists()

"""NNI backend: an NNI experiment (local training service) running the same objective, with NNI's
web UI. Each trial is a process (``python -m lcnas.search._nni_trial``) that reads its parameters
from NNI and writes its result file, which is how the common results format is assembled.

NNI tuners are single-objective: they maximise the search objective's score
(:meth:`~lcnas.search.Objective.score`: validation accuracy, less its ``penalty`` of 100 points when
a budget is broken); the Pareto front is computed afterwards from every trial's metrics.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import sys
import time
import uuid
import warnings
from pathlib import Path

from .._io import write_json
from .._optional import import_optional
from ..errors import ConfigError
from ._objective import SearchSettings, TrialResult
from ._results import SearchResults

__all__ = ["run_nni", "NNI_TUNERS"]

NNI_TUNERS = {"tpe": "TPE", "random": "Random", "anneal": "Anneal", "evolution": "Evolution"}
_FINAL = ("DONE", "STOPPED", "ERROR")


def run_nni(
    settings: SearchSettings,
    *,
    n_trials: int,
    port: int = 8080,
    tuner: str = "tpe",
    concurrency: int = 1,
    seed: int | None = None,
    progress: bool = True,
    poll_s: float = 2.0,
) -> SearchResults:
    """Run an NNI experiment of ``n_trials`` trials; the web UI is on ``port`` while it runs."""
    import_optional("nni", extra="nni")
    from ._translate import to_nni

    if n_trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {n_trials}")
    if tuner not in NNI_TUNERS:
        raise ConfigError(f"NNI tuner {tuner!r} is not one of {', '.join(NNI_TUNERS)}")
    out = Path(settings.out_dir).resolve()
    results_dir = out / "nni_results"
    state_file = out / "nni_run.json"
    mine = json.loads(json.dumps(settings.to_dict()))
    done = finished_trials(results_dir)
    saved = _read(out / "nni_settings.json")
    if (done or state_file.exists()) and saved is not None and saved != mine:
        raise ConfigError(f"{str(out)!r} holds an NNI search with other settings: continue it with the same arguments, "
                          "or use another --out")
    stopped = stop_leftovers(out)  # a killed driver's NNI manager still holds the port
    check_port(port, wait_s=15.0 if stopped else 0.0)  # before anything is written
    if done or state_file.exists():
        if done:
            print(f"lcnas search: continuing the NNI search in {str(out)!r} ({min(len(done), n_trials)}/{n_trials} trials done)",
                  file=sys.stderr)
    fresh = [p for p in (out / "nni", out / "nni_settings.json", state_file) if not p.exists()]
    settings_file = write_json(out / "nni_settings.json", mine)
    space_json = to_nni(settings.space)
    exp_id, stalls = "", 0
    # One NNI experiment per pass: a pass that ends short (a killed trial, NNI's tuner not connecting
    # within its hard-coded 10 s on a loaded machine) is followed by another for the trials missing.
    while len(done) < n_trials and stalls < 3:
        before = len(done)
        offset = max(done, default=-1) + 1
        lease = {"token": uuid.uuid4().hex, "offset": offset, "manager_pid": None}
        write_json(state_file, lease)
        try:
            exp_id, status = _run_experiment(settings, settings_file, space_json, out, n_trials=n_trials - len(done), port=port,
                                             tuner=tuner, concurrency=concurrency, progress=progress, poll_s=poll_s,
                                             # a later pass must not replay the tuner's first draws (duplicate trials)
                                             seed=seed if seed is None or not offset else seed * 100_003 + offset,
                                             lease=lease, state_file=state_file, target=n_trials)
        except KeyboardInterrupt:
            raise KeyboardInterrupt("rerun the same command to continue the NNI search (finished trials are kept)") from None
        except ConfigError:
            if not done:
                for path in fresh:
                    shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
            raise
        stop_leftovers(out)
        done = finished_trials(results_dir)
        stalls = 0 if len(done) > before else stalls + 1
        if len(done) < n_trials:
            print(f"lcnas search: NNI experiment {exp_id} ended ({status}) with {len(done)}/{n_trials} trials done; "
                  f"running the rest (logs in {out / 'nni'})", file=sys.stderr)
    if len(done) < n_trials:
        raise ConfigError(f"NNI finished {len(done)} of {n_trials} trials: its experiments keep failing (logs in {out / 'nni'}); "
                          "rerun the same command to continue")
    trials = [TrialResult.from_dict(json.loads(path.read_text())) for path in sorted(results_dir.glob("*.json"))]
    return SearchResults(backend="nni", settings=settings, trials=tuple(sorted(trials, key=lambda t: t.number)), study=exp_id)


def check_port(port: int, *, wait_s: float = 0.0) -> None:
    """NNI's web server listens on every interface: the port must be free there (within ``wait_s``,
    the time a just-killed manager may take to let it go)."""
    deadline = time.monotonic() + wait_s
    while True:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("0.0.0.0", port))
                return
            except OSError as e:
                if time.monotonic() >= deadline:
                    raise ConfigError(f"port {port} is not free for NNI's web UI ({e.strerror or e}); pick a free --port") from None
        time.sleep(0.25)


def finished_trials(results_dir: Path) -> set[int]:
    """Numbers of the trials with a result file (complete or failed on their own)."""
    return {int(path.stem) for path in results_dir.glob("*.json") if path.stem.isdigit()}


def stop_leftovers(out: Path) -> int:
    """Kill what a killed driver left running for this folder: its NNI manager (a Node.js process in
    a process group of its own, with the tuner) and its trial processes."""
    experiments = f"\0--experiments-directory\0{out / 'nni'}\0"
    settings = f"\0{out / 'nni_settings.json'}\0"
    killed = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            pid = int(proc.name)
            if pid == os.getpid():
                continue
            if "main.js" in cmdline and experiments in cmdline + "\0":
                os.killpg(pid, signal.SIGKILL)
            elif "lcnas.search._nni_trial" in cmdline and settings in cmdline + "\0":
                os.kill(pid, signal.SIGKILL)
            else:
                continue
            killed.append(pid)
        except (OSError, ValueError):
            continue
    for pid in killed:
        for _ in range(200):
            if not Path(f"/proc/{pid}").exists() or "Z" in _proc_state(pid):
                break
            time.sleep(0.05)
    for path in (out / "nni_pids").glob("*"):
        path.unlink(missing_ok=True)
    return len(killed)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "Z"


def _read(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _run_experiment(settings, settings_file: Path, space_json: dict, out: Path, *, n_trials: int, port: int, tuner: str,
                    concurrency: int, seed: int | None, progress: bool, poll_s: float, lease: dict, state_file: Path, target: int):
    """Start one NNI experiment, wait for it to end, stop it: (experiment id, final status)."""
    from nni.experiment import Experiment

    exp = Experiment("local")
    cfg = exp.config
    cfg.experiment_name = f"lcnas {settings.space.name}"
    cfg.experiment_working_directory = str(out / "nni")
    cfg.trial_command = f"{sys.executable} -m lcnas.search._nni_trial {settings_file} {lease['token']} {lease['offset']}"
    cfg.trial_code_directory = str(Path.cwd())
    cfg.search_space = space_json
    cfg.tuner.name = NNI_TUNERS[tuner]
    cfg.tuner.class_args = {"optimize_mode": "maximize", **({"seed": seed} if seed is not None and tuner != "evolution" else {})}
    cfg.max_trial_number = n_trials
    cfg.trial_concurrency = concurrency
    cfg.trial_gpu_number = 0
    cfg.training_service.use_active_gpu = False
    warnings.warn(f"NNI 3.0's web server listens on all network interfaces (0.0.0.0:{port}), not only on localhost: "
                  "anyone who can reach this machine can see and control the experiment while it runs", stacklevel=3)
    try:
        with _patient_server_check():
            exp.start(port)
    except Exception as e:
        raise ConfigError(f"NNI experiment did not start on port {port} ({type(e).__name__}: {e}); pick a free --port") from None
    proc = getattr(exp, "_proc", None)
    if proc is not None:  # so that a rerun after kill -9 can stop this manager and its trials
        write_json(state_file, {**lease, "manager_pid": proc.pid})
    print(f"lcnas search: NNI experiment {exp.id}: web UI at http://localhost:{port} (while it runs)", file=sys.stderr)
    status = "?"
    try:
        status = _wait(exp, n_trials, progress, poll_s, out / "nni_results", target)
    finally:
        with contextlib.redirect_stdout(sys.stderr):
            exp.stop()
    return exp.id, status


def _wait(exp, n_trials: int, progress: bool, poll_s: float, results_dir: Path, target: int) -> str:
    from tqdm.auto import tqdm

    bar = tqdm(total=n_trials, desc="NNI trials", disable=not progress, dynamic_ncols=True)
    try:
        while True:
            status = exp.get_status()
            done = sum(int(s.get("trialJobNumber", 0)) for s in (exp.get_job_statistics() or [])
                       if s.get("trialJobStatus") in ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"))
            bar.n = done
            bar.refresh()
            if status in _FINAL or (status == "NO_MORE_TRIAL" and done >= n_trials) or len(finished_trials(results_dir)) >= target:
                return status
            time.sleep(poll_s)
    finally:
        bar.close()


@contextlib.contextmanager
def _patient_server_check(seconds: int = 90):
    """NNI 3.0 gives its Node.js server 3 s to answer before failing the start; on a busy 2-core
    machine it needs longer (seen: 'Connection refused' while training ran beside it)."""
    import nni.experiment.launcher as launcher

    original = launcher._check_rest_server

    def patient(port, retry=3, url_prefix=None):
        return original(port, retry=max(retry, seconds), url_prefix=url_prefix)

    launcher._check_rest_server = patient
    try:
        yield
    finally:
        launcher._check_rest_server = original

"""NNI backend: an NNI experiment (local training service) running the same objective, with NNI's
web UI. Each trial is a process (``python -m lcnas.search._nni_trial``) that reads its parameters
from NNI and writes its result file, which is how the common results format is assembled.

NNI tuners are single-objective: they maximise validation accuracy, with a budget violation
counted as −100 points; the Pareto front is computed afterwards from every trial's metrics.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
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
    if results_dir.exists() and any(results_dir.iterdir()):
        raise ConfigError(f"{str(results_dir)!r} already holds NNI trial results: use another --out")
    settings_file = write_json(out / "nni_settings.json", settings.to_dict())
    space_json = to_nni(settings.space)

    for attempt in (1, 2):
        exp, status = _run_experiment(settings, settings_file, space_json, out, n_trials=n_trials, port=port, tuner=tuner,
                                      concurrency=concurrency, seed=seed, progress=progress, poll_s=poll_s)
        # NNI 3.0's server gives up when the tuner process has not connected within 10 s (hard-coded):
        # on a loaded machine that happens before any trial ran; start a fresh experiment once.
        if status != "ERROR" or attempt == 2 or (results_dir.exists() and any(results_dir.iterdir())):
            break
        print("lcnas search: NNI's experiment failed before any trial ran (its tuner did not connect in time); starting it again",
              file=sys.stderr)
    if status == "ERROR":
        print(f"lcnas search: NNI reported an experiment error; logs in {out / 'nni'}", file=sys.stderr)
    trials = [TrialResult.from_dict(json.loads(p.read_text())) for p in sorted(results_dir.glob("*.json"))]
    return SearchResults(backend="nni", settings=settings, trials=tuple(sorted(trials, key=lambda t: t.number)), study=exp.id)


def _run_experiment(settings, settings_file: Path, space_json: dict, out: Path, *, n_trials: int, port: int, tuner: str,
                    concurrency: int, seed: int | None, progress: bool, poll_s: float):
    """Start one NNI experiment, wait for it to end, stop it: (experiment, final status)."""
    from nni.experiment import Experiment

    exp = Experiment("local")
    cfg = exp.config
    cfg.experiment_name = f"lcnas {settings.space.name}"
    cfg.experiment_working_directory = str(out / "nni")
    cfg.trial_command = f"{sys.executable} -m lcnas.search._nni_trial {settings_file}"
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
    print(f"lcnas search: NNI experiment {exp.id}: web UI at http://localhost:{port} (while it runs)", file=sys.stderr)
    status = "?"
    try:
        status = _wait(exp, n_trials, progress, poll_s)
    finally:
        exp.stop()
    return exp, status


def _wait(exp, n_trials: int, progress: bool, poll_s: float) -> str:
    from tqdm.auto import tqdm

    bar = tqdm(total=n_trials, desc="NNI trials", disable=not progress, dynamic_ncols=True)
    try:
        while True:
            status = exp.get_status()
            done = sum(int(s.get("trialJobNumber", 0)) for s in (exp.get_job_statistics() or [])
                       if s.get("trialJobStatus") in ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED"))
            bar.n = done
            bar.refresh()
            if status in _FINAL or (status == "NO_MORE_TRIAL" and done >= n_trials):
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

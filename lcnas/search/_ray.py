"""Ray Tune backend: ``Tuner`` + Optuna's sampler (define-by-run, so conditional parameters work)
on the search objective's two metrics + ASHA early stopping on its per-epoch ``scheduler_metric``
(validation accuracy); local or on an existing cluster."""

from __future__ import annotations

import functools
import math
import os
import sys
import warnings
from pathlib import Path
from typing import Any, cast

from .._optional import import_optional
from ..errors import ConfigError
from ._metrics import METRICS
from ._objective import SearchSettings, TrialResult, run_trial, worker_id
from ._results import SearchResults

__all__ = ["run_ray"]

_NUMBER = "lcnas_trial_number"


def run_ray(
    settings: SearchSettings,
    *,
    n_trials: int,
    address: str | None = None,
    cpus_per_trial: float = 1.0,
    gpus_per_trial: float = 0.0,
    concurrency: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    name: str = "lcnas",
    progress: bool = True,
) -> SearchResults:
    """Run ``n_trials`` trials with Ray Tune; ``resume`` continues an interrupted run of the same
    ``name`` in ``<out_dir>/ray`` (finished trials are kept, unfinished ones run again)."""
    ray = import_optional("ray", extra="ray")
    import_optional("optuna", extra="ray")
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    if n_trials < 1:
        raise ConfigError(f"--trials must be >= 1, got {n_trials}")
    storage = Path(settings.out_dir).resolve() / "ray"
    path = storage / name
    if (path.exists() and any(path.iterdir())) and not resume:
        raise ConfigError(f"a Ray Tune run already exists in {str(path)!r}: continue it with --resume, or use another --out")
    if resume and not (path.is_dir() and tune.Tuner.can_restore(str(path))):
        # Killed before Tune saved any state (or never started): nothing finished is on record, so
        # --resume starts the run; the same command works after a kill at any moment.
        print(f"lcnas search: no saved Ray Tune state in {str(path)!r} yet; starting the run", file=sys.stderr)
        resume = False
    started = False
    if not ray.is_initialized():
        if address:
            check_ray_address(address)
        # Workers inherit this environment; the driver's folder stays their working directory so
        # relative data paths resolve the same way everywhere.
        env = {"env_vars": {"RAY_CHDIR_TO_TRIAL_DIR": "0"}, "working_dir": None}
        try:
            ray.init(log_to_driver=progress, runtime_env={k: v for k, v in env.items() if v}, **local_init_options(address))
        except ConnectionError as e:  # "auto" with no cluster on this machine
            raise ConfigError(f"--ray-address {address!r}: no Ray cluster found ({str(e).splitlines()[0]}); start one with "
                              "`ray start --head --node-ip-address 127.0.0.1`, or leave --ray-address out for a local instance") from None
        started = True
    trainable = tune.with_resources(functools.partial(_trainable, settings=settings.to_dict(), cwd=os.getcwd()),
                                    {"cpu": cpus_per_trial, "gpu": gpus_per_trial})
    if resume:
        tuner = tune.Tuner.restore(str(path), trainable=trainable, resume_errored=True, restart_errored=False)
    else:
        objective = settings.objective
        searcher = OptunaSearch(space=functools.partial(_define_by_run, space=settings.space), metric=objective.metric_names(),
                                mode=objective.modes(), seed=seed)
        epochs = int(_base_epochs(settings))
        scheduler = ASHAScheduler(metric=objective.scheduler_metric, mode="max", time_attr="training_iteration", max_t=max(epochs, 1),
                                  grace_period=1, reduction_factor=2)
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=n_trials,
                                        max_concurrent_trials=concurrency),
            run_config=tune.RunConfig(name=name, storage_path=str(storage), verbose=1 if progress else 0,
                                      # a trial whose worker process died runs again (from scratch: trials keep no checkpoint)
                                      failure_config=tune.FailureConfig(max_failures=3)),
        )
    print(f"lcnas search: Ray Tune run {str(path)!r} on {address or 'a local Ray instance'}", file=sys.stderr)
    try:
        grid = tuner.fit()
        unfinished = [t for t in grid._experiment_analysis.trials if t.status not in ("TERMINATED", "ERROR")]
    finally:
        if started:
            ray.shutdown()
    if unfinished or len(grid) < n_trials:
        # Tune ends fit() quietly on Ctrl-C: this is not a finished search, so no results are written.
        raise KeyboardInterrupt(f"{len(grid) - len(unfinished)} of {n_trials} Ray Tune trials finished; "
                                f"continue with the same command and --resume (state in {str(path)!r})")
    trials = [_result(r, settings, i) for i, r in enumerate(cast(Any, grid))]  # a ResultGrid indexes like a list
    return SearchResults(backend="ray", settings=settings, trials=tuple(sorted(trials, key=lambda t: t.number)), study=str(path))


def local_init_options(address: str | None) -> dict[str, Any]:
    """``ray.init`` options: join ``address``, or start a local instance bound to 127.0.0.1 with no
    dashboard and usage statistics off (a cluster started by hand keeps its own settings)."""
    if address:
        return {"address": address}
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    warnings.warn("Ray 2.x's own servers (GCS, raylet, workers) listen on all network interfaces even for a local instance "
                  "given node address 127.0.0.1 (Ray has no option to confine them); Ray's token authentication, on by default "
                  "for a local instance, is what guards them while the search runs", stacklevel=2)
    # address "local": a new instance even where `ray start` left a cluster (or its stale address file)
    return {"address": "local", "include_dashboard": False, "_node_ip_address": "127.0.0.1"}


def check_ray_address(address: str, timeout_s: float = 5.0) -> None:
    """Fail at once when nothing listens at ``address`` (Ray itself retries for minutes)."""
    import socket

    target = address
    if address == "auto":
        try:
            from ray._private.utils import get_ray_temp_dir  # type: ignore[attr-defined]  # private, present in Ray 2.x

            target = (Path(get_ray_temp_dir()) / "ray_current_cluster").read_text().strip()
        except (OSError, ImportError):
            return  # ray.init raises ConnectionError itself: no cluster on this machine
    host, _, port = target.split("://", 1)[-1].rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
            return
    except ValueError:
        raise ConfigError(f"--ray-address {address!r} is not host:port, ray://host:port or auto") from None
    except OSError as e:
        raise ConfigError(f"--ray-address {address!r}: nothing answers at {host}:{port} ({e.strerror or e}); start the cluster with "
                          f"`ray start --head --node-ip-address {host} --port {port}`, or fix the address") from None


def _define_by_run(trial, *, space) -> dict[str, int]:
    from ._translate import suggest_optuna

    suggest_optuna(trial, space)  # OptunaSearch records the suggested (encoded) values as the config
    return {_NUMBER: trial.number}  # constants join the config: the trial's number in the common format


def _trainable(config: dict[str, Any], *, settings: dict[str, Any], cwd: str) -> None:
    from ray import tune

    from ._translate import decode_optuna

    os.chdir(cwd)
    s = SearchSettings.from_dict(settings)
    params = decode_optuna({k: v for k, v in config.items() if k != _NUMBER}, s.space)
    number = int(config[_NUMBER])
    node = _node_id()

    def report(epoch: int, metrics: dict[str, float]) -> None:
        tune.report({**{k: v for k, v in metrics.items() if v is not None}, "epoch": epoch, "trial_number": number,
                     "worker": f"{worker_id()}@{node}"})

    run_trial(s, params, number=number, report=report)


def _node_id() -> str:
    import ray

    return ray.get_runtime_context().get_node_id()[:12]


def _base_epochs(settings: SearchSettings) -> int:
    from ._objective import example_params, trial_config

    return trial_config(settings, example_params(settings.space), number=0).epochs


def _result(r, settings: SearchSettings, index: int) -> TrialResult:
    from ._translate import decode_optuna

    metrics = r.metrics or {}
    config = dict(r.config or {})
    number = int(config.pop(_NUMBER, metrics.get("trial_number", index)))
    params = decode_optuna(config, settings.space)
    if r.error is not None or metrics.get("accuracy") is None or not math.isfinite(metrics["accuracy"]):
        return TrialResult(number=number, state="failed", params=params, worker=metrics.get("worker"),
                           error=str(r.error).splitlines()[0][:500] if r.error is not None else "no finite accuracy reported")
    values = {k: metrics.get(k) for k in METRICS}
    finished = int(metrics.get("epoch", 0)) >= _base_epochs(settings)
    feasible = settings.objective.feasible(values) is True  # a budget that cannot be judged counts as broken
    return TrialResult(number=number, state="complete" if finished else "pruned", params=params, **values, feasible=feasible,
                       worker=metrics.get("worker"), run_dir=r.path)

"""``search()``: build the settings, run one backend, write the common results."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._io import check_writable
from ..errors import ConfigError
from ._objective import SearchSettings, example_params, trial_config
from ._results import SearchResults
from ._space import load_space

__all__ = ["search", "make_settings", "BACKENDS"]

BACKENDS = ("optuna", "ray", "nni")


def make_settings(
    space: str,
    *,
    out_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    lut: str | None = None,
    cost_metric: str | None = None,
    max_latency_ms: float | None = None,
    max_mflops: float | None = None,
    budget_stat: str = "mean",
) -> SearchSettings:
    """Settings from a space (shipped name or YAML path) and base-config overrides (``{"epochs": 2}``).

    The cost objective defaults to the mean table-predicted latency with a table, else mean MFLOPs.
    Relative paths (data root, table, checkpoints) become absolute: Ray and NNI run trials elsewhere.
    """
    from ..train import apply_overrides

    base = apply_overrides({}, overrides or {}, source="--set")  # groups as mappings, as stored settings hold them
    check_overrides(base)
    for key in ("data_root", "init_from", "teacher"):
        value = base.get(key)
        if isinstance(value, str) and value != "pretrained" and Path(value).exists():
            base[key] = str(Path(value).resolve())
    if lut and Path(lut).exists():
        lut = str(Path(lut).resolve())
    check_writable(out_dir, what="--out", folder=True)  # before anything: a bad one leaves no folder
    settings = SearchSettings(space=load_space(space), base=base, out_dir=str(Path(out_dir).resolve()),
                              cost_metric=cost_metric or ("latency_ms_mean" if lut else "mflops_mean"), lut=lut,
                              max_latency_ms=max_latency_ms, max_mflops=max_mflops, budget_stat=budget_stat)
    if lut:  # a missing or foreign table fails before any trial
        from ..latency import LatencyTable

        LatencyTable.load(lut).check_for(trial_config(settings, example_params(settings.space), number=0).model, 1)
    return settings


def check_overrides(base: dict[str, Any]) -> None:
    """Name the ``--set`` flag (not a file or a trial) when a base setting is unknown or invalid."""
    from ..train import TrainConfig, apply_overrides
    from ._objective import PROXY_DEFAULTS

    TrainConfig.from_dict(apply_overrides(PROXY_DEFAULTS, base, source="--set"), source="--set")


def search(settings: SearchSettings, *, backend: str = "optuna", n_trials: int = 20, progress: bool = True,
           write: bool = True, **backend_options: Any) -> SearchResults:
    """Run a search and (by default) write ``results.json``, ``trials.csv``, ``pareto.json`` and
    ``pareto.png`` into ``settings.out_dir``. ``backend_options`` go to the backend:

    - optuna: ``storage``, ``study_name``, ``sampler`` (tpe | nsga2 | random), ``single_objective``, ``seed``
    - ray: ``address``, ``cpus_per_trial``, ``gpus_per_trial``, ``concurrency``, ``seed``, ``resume``, ``name``
    - nni: ``port``, ``tuner``, ``concurrency``, ``seed``
    """
    run: Callable[..., SearchResults]
    if backend == "optuna":
        from ._optuna import run_optuna as run
    elif backend == "ray":
        from ._ray import run_ray as run
    elif backend == "nni":
        from ._nni import run_nni as run
    else:
        raise ConfigError(f"backend {backend!r} is not one of {', '.join(BACKENDS)}")
    results = run(settings, n_trials=n_trials, progress=progress, **backend_options)
    if write:
        results.write(settings.out_dir)
    return results

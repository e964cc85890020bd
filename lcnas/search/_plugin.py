"""lcnas inside a study of one's own: an Optuna objective, a Ray Tune trainable with its
``param_space``, and an NNI trial function. All three run the one objective, :func:`run_trial`
(trial parameters → LC-Net → proxy training → validation metrics), and translate the space with
the space's translators; they differ only in how the engine hands out parameters and takes
metrics back. What each optimises comes from the settings' :class:`~lcnas.search.Objective`:

- Optuna, two objectives: its :meth:`~lcnas.search.Objective.metric_names` and
  :meth:`~lcnas.search.Objective.directions` (``accuracy`` max, ``settings.cost_metric`` min);
  budgets (``max_latency_ms``, ``max_mflops``) are the trial's constraints.
- Optuna, one objective: ``accuracy`` (max), reported per epoch for pruning; budgets are
  constraints.
- Ray Tune: every epoch reports the metrics of :func:`trial_metrics`; ``TuneConfig(metric=...,
  mode="max")`` picks ``accuracy`` (the objective's ``scheduler_metric``), or ``score`` to
  respect the budgets.
- NNI: tuners maximise ``default``, which is ``score``.

``score`` (:meth:`~lcnas.search.Objective.score`) is the validation accuracy (%) less
:data:`BUDGET_PENALTY` points when a budget is broken: the one number a single-objective engine
ranks by (what ``lcnas search --backend nni`` maximises too).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from .._optional import import_optional
from ..errors import ConfigError
from ._metrics import BUDGET_PENALTY
from ._objective import SearchSettings, TrialResult, example_params, run_trial, worker_id

__all__ = ["BUDGET_PENALTY", "OptunaObjective", "ray_trainable", "ray_param_space", "nni_trial", "nni_search_space",
           "trial_metrics"]


def trial_metrics(settings: SearchSettings, metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics every engine is given: the finite ones of ``metrics``, ``feasible`` (when the
    budgets' metrics are there) and ``score``.

    Args:
        settings: the search settings (for the budgets).
        metrics: one epoch's or trial's metrics under :class:`TrialResult` names (``accuracy``,
            ``mflops_mean``, ...); ``None`` values are left out.

    Returns:
        ``{"accuracy": ..., "mflops_mean": ..., ..., "feasible": bool, "score": float}``; no
        ``score`` without an accuracy (:meth:`~lcnas.search.Objective.reported`).
    """
    return settings.objective.reported(metrics)


# --------------------------------------------------------------------------- Optuna

class OptunaObjective:
    """An objective for ``study.optimize``: suggests the space's parameters on the trial, trains
    and evaluates, records the metrics as user attributes and returns the objective values.

    With two objectives (the default) it returns ``(accuracy, cost)`` for a study created with
    ``directions=["maximize", "minimize"]``, the cost being ``settings.cost_metric``; with
    ``single_objective=True`` it returns the accuracy for ``direction="maximize"`` and reports it
    per epoch, so the study's pruner can stop a trial (``optuna.TrialPruned``). Budgets become the
    trial's constraints (``trial.set_constraint`` on Optuna 5; on Optuna 4 pass
    :meth:`constraints` as the sampler's ``constraints_func``). A study created with other
    directions is refused at the first trial.

    User attributes per trial: ``params`` (lcnas values), ``worker``, ``result`` (the
    :class:`TrialResult` as a dict, so :func:`~lcnas.search.optuna_results` reads the study),
    each metric of :func:`trial_metrics` under its own name, ``constraints`` (with budgets),
    ``error`` (when the trial fails).

    Args:
        settings: the search settings (e.g. from :func:`~lcnas.search.make_settings`).
        single_objective: maximise accuracy alone (and allow pruning).

    Example:
        >>> objective = OptunaObjective(settings)  # doctest: +SKIP
        >>> study = optuna.create_study(directions=objective.directions)  # doctest: +SKIP
        >>> study.set_metric_names(objective.metric_names)  # doctest: +SKIP
        >>> study.optimize(objective, n_trials=20)  # doctest: +SKIP
    """

    def __init__(self, settings: SearchSettings, *, single_objective: bool = False) -> None:
        self.settings = settings
        self.single_objective = single_objective

    @property
    def directions(self) -> list[str]:
        """The study's ``directions``: ``["maximize", "minimize"]``, or ``["maximize"]``."""
        return self.settings.objective.directions(single=self.single_objective)

    @property
    def metric_names(self) -> list[str]:
        """Names of the objective values, for ``study.set_metric_names``: ``["accuracy", cost]``."""
        return self.settings.objective.metric_names(single=self.single_objective)

    @staticmethod
    def constraints(trial: Any) -> list[float]:
        """A sampler's ``constraints_func`` (Optuna 4): the trial's budget violations (≤ 0 is within).

        Args:
            trial: an ``optuna.trial.FrozenTrial`` this objective ran.

        Returns:
            One value per budget, value − bound; ``[0.0]`` when the trial recorded none.
        """
        from ._optuna import _constraints

        return _constraints(trial)

    def __call__(self, trial: Any) -> float | tuple[float, ...]:
        """Run one trial.

        Args:
            trial: the ``optuna.trial.Trial`` that ``study.optimize`` passes (or an
                ``optuna.trial.FixedTrial`` of chosen parameters, as Optuna stores them).

        Returns:
            ``accuracy`` with ``single_objective``, else ``(accuracy, cost)``.

        Raises:
            ConfigError: the study's directions are not :attr:`directions`.
            optuna.TrialPruned: the study's pruner stopped the trial (single objective).
        """
        optuna = import_optional("optuna", extra="optuna")
        from ._optuna import _jsonable, set_constraints
        from ._translate import suggest_optuna

        study = getattr(trial, "study", None)  # none on an optuna.trial.FixedTrial: nothing to check
        directions = [d.name.lower() for d in study.directions] if study is not None else self.directions
        if directions != self.directions:
            raise ConfigError(f"the study optimises {directions}, this objective returns {self.metric_names} to "
                              f"{self.directions}: create the study with directions=objective.directions")
        params = suggest_optuna(trial, self.settings.space)
        trial.set_user_attr("params", _jsonable(params))
        trial.set_user_attr("worker", worker_id())

        objective = self.settings.objective

        def report(epoch: int, metrics: dict[str, float]) -> None:
            value = metrics.get(objective.scheduler_metric)
            if self.single_objective and value is not None and math.isfinite(value):
                trial.report(value, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned after epoch {epoch} at validation {objective.scheduler_metric} {value:.2f}")

        try:
            result = run_trial(self.settings, params, number=trial.number, report=report)
        except optuna.TrialPruned:
            raise
        except Exception as e:  # recorded on the trial; Optuna marks it FAIL
            trial.set_user_attr("error", f"{type(e).__name__}: {e}")
            raise
        trial.set_user_attr("result", result.to_dict())
        for key, value in objective.reported(result.to_dict()).items():
            trial.set_user_attr(key, value)
        set_constraints(trial, objective, result)
        values = objective.values(result, single=self.single_objective)  # NaN for a missing one: Optuna marks the trial FAIL
        return values[0] if self.single_objective else values


# --------------------------------------------------------------------------- Ray Tune

def ray_param_space(settings: SearchSettings) -> dict[str, Any]:
    """The ``param_space`` for ``tune.Tuner(ray_trainable(settings), param_space=...)``.

    Conditional parameters are sampled only when active, under Tune's default search (see
    :func:`~lcnas.search.to_ray`). Constants may be added to the dict; the trainable ignores keys
    that are not parameters of the space.

    Args:
        settings: the search settings.

    Returns:
        ``{parameter name: Ray Tune domain}``.
    """
    from ._translate import to_ray

    return to_ray(settings.space)


def ray_trainable(settings: SearchSettings) -> Callable[[dict[str, Any]], None]:
    """A Ray Tune function trainable running one trial per config.

    It decodes and validates the config (:func:`~lcnas.search._translate.from_ray`), trains, and
    calls ``ray.tune.report`` once per epoch with :func:`trial_metrics` plus ``epoch``, so a
    scheduler such as ASHA (``metric="accuracy"`` or ``"score"``, ``mode="max"``) can stop it
    early. A trial that fails raises, and Tune records it as errored. Give it resources with
    ``tune.with_resources``. Paths in ``settings`` should be absolute (as
    :func:`~lcnas.search.make_settings` makes them): Tune runs trials in their own folders.

    Args:
        settings: the search settings.

    Returns:
        The trainable, ``trainable(config) -> None``.
    """
    trainable = functools.partial(_ray_trial, settings=settings.to_dict())
    trainable.__name__ = "lcnas_trial"  # type: ignore[attr-defined]  # Tune names the trials after it
    return trainable


def _ray_trial(config: dict[str, Any], *, settings: dict[str, Any]) -> None:
    from ray import tune

    from ._translate import from_ray

    s = SearchSettings.from_dict(settings)
    params = from_ray(config, s.space)
    number = _ray_trial_number(tune)

    def report(epoch: int, metrics: dict[str, float]) -> None:
        tune.report({**trial_metrics(s, metrics), "epoch": epoch, "trial_number": number})

    run_trial(s, params, number=number, report=report)


def _ray_trial_number(tune: Any) -> int:
    """The index Tune gives the trial (``"1a2b3_00004"`` → 4); 0 outside a Tune run."""
    try:
        return int(str(tune.get_context().get_trial_id()).rsplit("_", 1)[-1])
    except (ValueError, TypeError, AttributeError, RuntimeError):
        return 0


# --------------------------------------------------------------------------- NNI

def nni_search_space(settings: SearchSettings) -> dict[str, Any]:
    """NNI's search-space JSON for ``experiment.config.search_space`` (see
    :func:`~lcnas.search.to_nni`: conditions become nested choices).

    Args:
        settings: the search settings.

    Returns:
        The search space as NNI takes it (JSON-serialisable).
    """
    from ._translate import to_nni

    return to_nni(settings.space)


def nni_trial(settings: SearchSettings, *, params: Mapping[str, Any] | None = None) -> TrialResult:
    """Run one NNI trial: parameters from ``nni.get_next_parameter()``, each epoch's metrics to
    ``nni.report_intermediate_result`` and the trial's to ``nni.report_final_result``, as dicts
    whose ``default`` (what tuners and assessors read) is the accuracy per epoch and ``score`` at
    the end; the other numbers of :func:`trial_metrics` appear in NNI's web UI.

    Outside an experiment (NNI's standalone mode, where ``nni.get_next_parameter()`` gives no
    parameters) it runs ``params`` if given, else the space's first choices and lower bounds,
    with a warning; the metrics then go to NNI's log.

    Args:
        settings: the search settings (build them in the trial script as in the experiment's).
        params: lcnas values to run instead of asking NNI (fixed values left out); for runs
            outside an experiment, where NNI has no parameters to give.

    Returns:
        The trial's result (also in ``<run_dir>/result.json``).

    Raises:
        ConfigError: the parameters do not fit the space (e.g. the experiment's search space is
            not ``nni_search_space(settings)``). Training errors propagate: NNI marks the trial
            failed.
    """
    nni = import_optional("nni", extra="nni")
    from ._translate import from_nni

    space = settings.space
    if params is not None:
        values = space.check(params, merge_fixed=False)
    else:
        raw = nni.get_next_parameter()
        if raw:
            values = from_nni(raw, space)
        else:
            warnings.warn("NNI gave no parameters (the trial runs outside an experiment): running the space's first "
                          "choices and lower bounds", RuntimeWarning, stacklevel=2)
            values = example_params(space)

    def report(epoch: int, metrics: dict[str, float]) -> None:
        reported = trial_metrics(settings, metrics)
        nni.report_intermediate_result({**_numbers(reported), "default": reported.get("accuracy", -1.0)})

    result = run_trial(settings, values, number=nni.get_sequence_id(), report=report)
    final = trial_metrics(settings, result.to_dict())
    nni.report_final_result({**_numbers(final), "default": final.get("score", -1.0)})
    return result


def _numbers(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if not isinstance(v, bool)}  # NNI's web UI plots numbers only

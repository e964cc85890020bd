"""Choosing a trial from a search's Pareto front, and turning it into a full training run."""

from __future__ import annotations

import dataclasses
from typing import Any, cast

from ..errors import ConfigError
from ..train import TrainConfig
from ._metrics import Objective
from ._objective import TrialResult, trial_config
from ._results import SearchResults

__all__ = ["pick_trial", "retrain_config", "PICKS", "load_study_results"]

PICKS = ("knee", "max-accuracy")


def pick_trial(results: SearchResults, how: str = "knee", *, max_latency_ms: float | None = None,
               max_mflops: float | None = None, budget_stat: str = "mean") -> TrialResult:
    """A trial of ``results``' front within the budgets: the most accurate (``max-accuracy``), or
    the knee — the front point farthest above the straight line between its two ends, in
    (accuracy, cost) scaled to [0, 1], i.e. where extra cost stops buying much accuracy; a front
    with no point above that line has no knee, and gives its most accurate point."""
    if how not in PICKS:
        raise ConfigError(f"--pick {how!r} is not one of {', '.join(PICKS)}")
    if budget_stat not in ("mean", "p95"):
        raise ConfigError(f"budget statistic must be mean or p95, got {budget_stat!r}")
    metric = results.settings.cost_metric
    bounds = {f"latency_ms_{budget_stat}": max_latency_ms, f"mflops_{budget_stat}": max_mflops}
    budgets = Objective(cost_metric=metric, budgets=tuple((k, v) for k, v in bounds.items() if v is not None))
    front = results.front
    feasible = []
    for t in front:
        ok = budgets.feasible(t)
        if ok is None:
            key = next(k for k, _ in budgets.budgets if t.metric(k) is None)
            raise ConfigError(f"budget on {key} but the search recorded no {key} (search with --lut for latency budgets)")
        if ok:
            feasible.append(t)
    if not feasible:
        wanted = ", ".join(f"{k} ≤ {v}" for k, v in bounds.items() if v is not None) or "none"
        best = ", ".join(f"{k} {min(_value(t, k) for t in front):.4g}" for k, v in bounds.items() if v is not None and front)
        raise ConfigError(f"no trial on the Pareto front ({len(front)} trials) meets the budget ({wanted}); "
                          f"the cheapest reach {best or 'nothing (empty front)'}: relax the budget or search more")
    if how == "max-accuracy" or len(feasible) <= 2:
        return max(feasible, key=lambda t: (_value(t, "accuracy"), -_value(t, metric)))
    return _knee(feasible, metric)


def _value(t: TrialResult, name: str) -> float:
    """A metric every Pareto-front trial holds (the front keeps only trials with accuracy and cost)."""
    return cast(float, t.metric(name))


def _knee(front: list[TrialResult], metric: str) -> TrialResult:
    costs = [_value(t, metric) for t in front]
    accs = [_value(t, "accuracy") for t in front]
    c0, c1, a0, a1 = min(costs), max(costs), min(accs), max(accs)
    pts = [((c - c0) / ((c1 - c0) or 1.0), (a - a0) / ((a1 - a0) or 1.0)) for c, a in zip(costs, accs, strict=True)]
    (x0, y0), (x1, y1) = pts[0], pts[-1]  # the front is sorted by cost: its two ends
    norm = ((x1 - x0) ** 2 + (y1 - y0) ** 2) ** 0.5 or 1.0

    def distance(p: tuple[float, float]) -> float:  # above the end-to-end line counts positive
        return ((x1 - x0) * (p[1] - y0) - (y1 - y0) * (p[0] - x0)) / norm

    best, p = max(zip(front, pts, strict=True), key=lambda tp: distance(tp[1]))
    if distance(p) <= 1e-9:
        # No point bulges above the end-to-end line: accuracy keeps coming at a steady or rising
        # price, so there is no knee. Take the most accurate end, not the cheap one (which on a real
        # front is often a gate setting that wrecked accuracy).
        return front[-1]
    return best


def retrain_config(results: SearchResults, trial: TrialResult, *, name: str, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The trial's training config with a full schedule: the whole training split, the backbone
    trained too (the proxy's slow backbone rate becomes the trial's ``lr``), ``overrides`` (e.g.
    ``{"epochs": 15}``), a new run name; validation split kept, test evaluated at the end."""
    cfg = trial_config(results.settings, trial.params, number=trial.number)
    source = f"retrain of trial {trial.number}"
    full = {"train_subset": None, "backbone_lr": None, "name": name, "out_dir": "runs"}
    try:
        return cfg.with_overrides({**full, **(overrides or {})}, source=source)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:
        raise ConfigError(f"retrain of trial {trial.number}: {e}") from None


def load_study_results(storage: str, study_name: str) -> SearchResults:
    """The common results of an Optuna study in ``storage`` (the settings are stored in the study)."""
    import optuna

    from ._objective import SearchSettings
    from ._optuna import _masked, open_storage, optuna_results, storage_url

    url = storage_url(storage)
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(optuna, url, heartbeat=False))
    except KeyError:
        shown = _masked(url)
        raise ConfigError(f"no optuna study {study_name!r} in {shown}; list them with: optuna studies --storage {shown}") from None
    saved = study.user_attrs.get("lcnas_settings")
    if not saved:
        raise ConfigError(f"optuna study {study_name!r} in {storage} was not made by lcnas search (no lcnas_settings)")
    settings = SearchSettings.from_dict({**saved, "out_dir": saved.get("out_dir", ".")})
    return dataclasses.replace(optuna_results(study, settings, label=f"{storage}#{study_name}"), backend="optuna")

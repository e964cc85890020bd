"""What a search optimises, stated once for every engine: the metric names, the objective
(directions, budget constraints, the feasibility rule) and the policy for what an engine cannot
express itself.

Optuna, Ray Tune and NNI all take their metric names, directions, constraints, feasibility and
scores from one :class:`Objective`; the engines differ only in which of its views they use:

- Optuna: :meth:`Objective.values` for :meth:`Objective.directions`, :meth:`Objective.violations`
  as the trial's constraints; with one objective, accuracy alone, pruned per epoch on
  :attr:`Objective.scheduler_metric`.
- Ray Tune: the same two objectives for its Optuna searcher; its ASHA scheduler stops trials on
  :attr:`Objective.scheduler_metric` (a per-epoch number; budgets are judged on finished trials).
- NNI (single-objective tuners): :meth:`Objective.score`, accuracy less
  :attr:`Objective.penalty` points when a budget is broken.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

__all__ = ["METRICS", "COST_METRICS", "BUDGET_PENALTY", "Objective"]

# Every metric a trial reports (validation split; latency is the device table's prediction).
METRICS = ("accuracy", "mflops_mean", "mflops_p95", "latency_ms_mean", "latency_ms_p95")
# Cost metrics a search can minimise (every metric but accuracy, alphabetical); the latency ones
# need a device table.
COST_METRICS = tuple(sorted(METRICS[1:]))
BUDGET_PENALTY = 100.0  # accuracy points an over-budget trial's score loses (single-objective engines)


def _get(metrics: Any, name: str) -> float | None:
    value = metrics.metric(name) if hasattr(metrics, "metric") else metrics.get(name)
    return None if value is None else float(value)


@dataclass(frozen=True)
class Objective:
    """Validation accuracy (maximised) against one cost (minimised), within budgets.

    Args:
        cost_metric: the cost objective, one of :data:`COST_METRICS`.
        budgets: ``(metric, upper bound)`` pairs, the constraints: a trial is feasible when each
            budget metric is at most its bound.
        penalty: single-objective policy: the points :meth:`score` takes off an over-budget
            trial's accuracy (NNI's tuners rank by the score).
        scheduler_metric: early-stopping policy: the per-epoch metric (maximised) that Ray's ASHA
            and Optuna's pruner (single objective) compare trials on; budgets are not judged
            before a trial ends.

    Raises:
        ConfigError: an unknown cost or budget metric, or a bound that is not positive.

    Example:
        >>> objective = Objective(cost_metric="mflops_mean", budgets=(("mflops_mean", 30.0),))
        >>> objective.feasible({"accuracy": 90.0, "mflops_mean": 25.0})
        True
        >>> objective.score({"accuracy": 90.0, "mflops_mean": 35.0})
        -10.0
    """

    cost_metric: str = "mflops_mean"
    budgets: tuple[tuple[str, float], ...] = ()
    penalty: float = BUDGET_PENALTY
    scheduler_metric: str = "accuracy"

    def __post_init__(self) -> None:
        if self.cost_metric not in COST_METRICS:
            raise ConfigError(f"cost metric {self.cost_metric!r} is not one of {', '.join(COST_METRICS)}")
        for name, bound in self.budgets:
            if name not in COST_METRICS:
                raise ConfigError(f"budget metric {name!r} is not one of {', '.join(COST_METRICS)}")
            if not bound > 0:
                raise ConfigError(f"the budget on {name} must be > 0, got {bound}")
        if self.scheduler_metric not in METRICS:
            raise ConfigError(f"scheduler metric {self.scheduler_metric!r} is not one of {', '.join(METRICS)}")

    def metric_names(self, *, single: bool = False) -> list[str]:
        """The objective values' names: ``["accuracy", cost_metric]``, or ``["accuracy"]`` for one objective."""
        return ["accuracy"] if single else ["accuracy", self.cost_metric]

    def directions(self, *, single: bool = False) -> list[str]:
        """Optuna's ``directions`` for :meth:`metric_names`: ``["maximize", "minimize"]`` or ``["maximize"]``."""
        return ["maximize"] if single else ["maximize", "minimize"]

    def modes(self, *, single: bool = False) -> list[str]:
        """The same directions in Ray Tune's words: ``["max", "min"]`` or ``["max"]``."""
        return [d[:3] for d in self.directions(single=single)]

    def values(self, metrics: Any, *, single: bool = False) -> tuple[float, ...]:
        """The objective values of a trial's ``metrics`` (a mapping or a :class:`TrialResult`), NaN
        for a missing one (Optuna marks such a trial failed)."""
        return tuple(float("nan") if (v := _get(metrics, k)) is None else v for k in self.metric_names(single=single))

    def violations(self, metrics: Any) -> list[float]:
        """Per budget: value − bound (≤ 0 means within it), the form Optuna's constraints take.

        Raises:
            KeyError: a budget's metric is missing from ``metrics``.
        """
        out = []
        for name, bound in self.budgets:
            value = _get(metrics, name)
            if value is None:
                raise KeyError(name)
            out.append(value - bound)
        return out

    def feasible(self, metrics: Any) -> bool | None:
        """Whether ``metrics`` meet every budget; ``None`` when a budget's metric is missing."""
        if any(_get(metrics, name) is None for name, _ in self.budgets):
            return None
        return all(v <= 0 for v in self.violations(metrics))

    def score(self, metrics: Any) -> float | None:
        """The single number a single-objective engine maximises: accuracy, less :attr:`penalty`
        when a budget is broken (a trial whose budgets cannot be judged is not penalised);
        ``None`` without an accuracy."""
        accuracy = _get(metrics, "accuracy")
        if accuracy is None:
            return None
        return accuracy - (self.penalty if self.feasible(metrics) is False else 0.0)

    def reported(self, metrics: Mapping[str, Any]) -> dict[str, Any]:
        """The metrics every engine is given: the finite ones of :data:`METRICS`, ``feasible``
        (when the budgets' metrics are there) and ``score`` (when there is an accuracy)."""
        out: dict[str, Any] = {k: float(metrics[k]) for k in METRICS
                               if metrics.get(k) is not None and math.isfinite(float(metrics[k]))}
        feasible = self.feasible(out)
        if feasible is not None:
            out["feasible"] = feasible
        score = self.score(out)
        if score is not None:
            out["score"] = score
        return out

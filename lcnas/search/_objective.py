"""The search objective: trial parameters → LC-Net from a pretrained backbone → proxy training →
validation metrics (accuracy, MFLOPs, table-predicted latency). Backend-neutral: Optuna, Ray Tune
and NNI all call :func:`run_trial`."""

from __future__ import annotations

import dataclasses
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .._io import write_json
from ..errors import ConfigError
from ..train import TrainConfig, apply_overrides
from ._metrics import COST_METRICS, METRICS, Objective
from ._space import SearchSpace

__all__ = ["SearchSettings", "TrialResult", "trial_config", "run_trial", "example_params", "COST_METRICS"]

# What a proxy trial trains unless the space's ``fixed`` section or ``--set`` says otherwise:
# the gates at their rate and the shipped backbone at a small one (0.002; the shipped spaces retrain
# it at 0.01-0.02), one epoch on 10,000 training images, distilled from that backbone. The backbone
# must move a little: skipping pays off only once the kept layers adapt, and with a frozen one most
# trials' gates still run every block after one epoch, so trials tie near the static accuracy and
# rank apart only once retrained. At the retrain's full rate one epoch damages the backbone by an
# amount that differs from trial to trial. benchmarks/proxy_fidelity.py measures the ranking.
PROXY_DEFAULTS: dict[str, Any] = {
    "model": "resnet20",
    "gating": "lc",
    "init_from": "pretrained",
    "teacher": "pretrained",
    "backbone_lr": 0.002,
    "epochs": 1,
    "train_subset": 10000,
    "val_size": 5000,
    "lr": 0.02,
    "gate_lr": 0.1,
    "warmup_epochs": 0.0,
    "amp": "auto",
}


@dataclass(frozen=True)
class SearchSettings:
    """What every trial of one search shares.

    Args:
        space: the search space.
        base: training settings under the trial's parameters (:data:`PROXY_DEFAULTS` + the
            space's ``fixed`` values + ``--set`` overrides); ``name`` and ``out_dir`` are per trial.
        out_dir: the search folder; trial runs go to ``<out_dir>/trials/``.
        cost_metric: the cost objective, one of :data:`COST_METRICS`.
        lut: latency table (path or shipped name) for the latency metrics; ``None`` → FLOPs only.
        max_latency_ms: hard latency budget in ms (a constraint); needs ``lut``.
        max_mflops: hard compute budget in MFLOPs (a constraint).
        budget_stat: which per-sample statistic the budgets bound: ``"mean"`` or ``"p95"``.

    What every engine optimises (metrics, directions, constraints, feasibility) is
    :attr:`objective`, built from these fields.

    Raises:
        ConfigError: an unknown cost metric or budget statistic, a latency metric or budget
            without ``lut``, a budget that is not positive, or a base config that no trial could
            train with.
    """

    space: SearchSpace
    base: dict[str, Any]
    out_dir: str
    cost_metric: str = "latency_ms_mean"
    lut: str | None = None
    max_latency_ms: float | None = None
    max_mflops: float | None = None
    budget_stat: str = "mean"

    def __post_init__(self) -> None:
        if self.cost_metric not in COST_METRICS:
            raise ConfigError(f"cost metric {self.cost_metric!r} is not one of {', '.join(COST_METRICS)}")
        if self.cost_metric.startswith("latency") and not self.lut:
            raise ConfigError(f"cost metric {self.cost_metric!r} needs a latency table: pass --lut (a file from `lcnas profile` "
                              "or a shipped device name), or use --cost mflops_mean")
        if self.max_latency_ms is not None and not self.lut:
            raise ConfigError("--max-latency-ms needs a latency table: pass --lut")
        if self.budget_stat not in ("mean", "p95"):
            raise ConfigError(f"budget statistic must be mean or p95, got {self.budget_stat!r}")
        for name in ("max_latency_ms", "max_mflops"):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{name} must be > 0, got {value}")
        self.objective  # noqa: B018  (an objective that cannot be built fails here)
        trial_config(self, example_params(self.space), number=0)  # a bad base config fails before any trial

    @property
    def objective(self) -> Objective:
        """The search's :class:`~lcnas.search.Objective`: accuracy against ``cost_metric``, the
        budgets (``max_latency_ms``, ``max_mflops`` on ``budget_stat``) as constraints."""
        budgets = []
        if self.max_latency_ms is not None:
            budgets.append((f"latency_ms_{self.budget_stat}", self.max_latency_ms))
        if self.max_mflops is not None:
            budgets.append((f"mflops_{self.budget_stat}", self.max_mflops))
        return Objective(cost_metric=self.cost_metric, budgets=tuple(budgets))

    @property
    def budgets(self) -> dict[str, float]:
        """Metric name → upper bound, e.g. ``{"latency_ms_p95": 2.0}`` (:attr:`objective`'s budgets)."""
        return dict(self.objective.budgets)

    def violations(self, metrics: dict[str, Any]) -> list[float]:
        """Per budget: value − bound (≤ 0 means satisfied); see :meth:`Objective.violations`."""
        return self.objective.violations(metrics)

    def to_dict(self) -> dict[str, Any]:
        """The settings as a JSON-ready dict (what workers receive; :meth:`from_dict` reads it back)."""
        d = dataclasses.asdict(self)
        d["space"] = self.space.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchSettings:
        """Settings from a dict such as :meth:`to_dict` returns (validated as on construction)."""
        return cls(**{**data, "space": SearchSpace.from_dict(data["space"])})


@dataclass(frozen=True)
class TrialResult:
    """One trial in the common results format (every backend writes these)."""

    number: int
    state: str  # complete | pruned | failed
    params: dict[str, Any]
    accuracy: float | None = None  # validation top-1 (%), never the test set
    mflops_mean: float | None = None
    mflops_p95: float | None = None
    latency_ms_mean: float | None = None
    latency_ms_p95: float | None = None
    feasible: bool | None = None
    train_time_s: float | None = None
    worker: str | None = None  # host:pid (or Ray node) that ran it
    run_dir: str | None = None
    error: str | None = None

    def metric(self, name: str) -> float | None:
        """The value of result field ``name`` (e.g. ``"accuracy"``, ``"latency_ms_mean"``); ``None`` if not measured."""
        return getattr(self, name)

    def to_dict(self) -> dict[str, Any]:
        """The result as a JSON-ready dict (tuple parameter values as lists)."""
        d = dataclasses.asdict(self)
        d["params"] = {k: list(v) if isinstance(v, tuple) else v for k, v in self.params.items()}
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrialResult:
        """A result from a dict such as :meth:`to_dict` returns; keys that are not fields are ignored."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def trial_config(settings: SearchSettings, params: dict[str, Any], *, number: int) -> TrainConfig:
    """The training config of one trial: :data:`PROXY_DEFAULTS`, the base settings, then the
    trial's parameters (fixed values included), applied by :func:`~lcnas.train.apply_overrides`."""
    source = f"trial {number}"
    values = settings.space.check(params)  # fixed values merged in
    data = apply_overrides(apply_overrides(PROXY_DEFAULTS, settings.base, source=source),
                           {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}, source=source)
    extra: dict[str, Any] = {"name": f"trial_{number:04d}", "out_dir": str(Path(settings.out_dir) / "trials")}
    if settings.lut and "lut" not in data:
        extra["lut"] = settings.lut
    if not (data.get("loss") or {}).get("distill"):
        extra["teacher"] = None  # no distillation term, no teacher to load
    return TrainConfig.from_dict(apply_overrides(data, extra, source=source), source=source)


def run_trial(
    settings: SearchSettings,
    params: dict[str, Any],
    *,
    number: int,
    report: Callable[[int, dict[str, float]], None] | None = None,
    progress: bool = False,
) -> TrialResult:
    """Train and evaluate one trial on the validation split.

    ``report(epoch, metrics)`` sees each epoch's validation metrics (``accuracy``, ``mflops_mean``,
    …, the keys of :class:`TrialResult`) and may raise to prune the trial. Other exceptions
    propagate: each backend records the trial as failed. Writes ``<run_dir>/result.json``.
    """
    from ..train import train

    cfg = trial_config(settings, params, number=number)
    if cfg.run_dir.exists():  # a retried or resumed trial number starts clean, never over another's files
        cfg = dataclasses.replace(cfg, name=f"{cfg.name}_{os.getpid()}_{time.time_ns() % 10**6}")
    start = time.perf_counter()
    last: dict[str, Any] = {}

    def on_epoch(row: dict[str, Any]) -> None:
        last.clear()
        last.update(epoch_metrics(row))
        if report is not None:
            report(row["epoch"], dict(last))

    train(cfg, progress=progress, on_epoch=on_epoch, test=False)
    objective = settings.objective
    feasible = objective.feasible(last)
    if feasible is None:
        missing = [k for k, _ in objective.budgets if last.get(k) is None]
        raise ConfigError(f"budget on {', '.join(missing)} but the trial produced no such metric (is the model gated and --lut given?)")
    result = TrialResult(number=number, state="complete", params=dict(params), **last, feasible=feasible,
                         train_time_s=time.perf_counter() - start, worker=worker_id(), run_dir=str(cfg.run_dir))
    write_json(cfg.run_dir / "result.json", result.to_dict())
    return result


def epoch_metrics(row: dict[str, Any]) -> dict[str, float | None]:
    """A training epoch row's validation metrics under result names (``val_accuracy`` → ``accuracy``)."""
    return {k: float(row[f"val_{k}"]) if row.get(f"val_{k}") is not None else None for k in METRICS}


def worker_id() -> str:
    """This process as ``host:pid``, recorded as the worker that ran a trial."""
    return f"{socket.gethostname()}:{os.getpid()}"


def example_params(space: SearchSpace) -> dict[str, Any]:
    """A valid assignment (each parameter's first choice or lower bound, conditionals respected)."""
    values: dict[str, Any] = {}
    for p in space.params:  # parents come before their children
        if p.condition is None or values.get(p.condition[0], object()) in p.condition[1]:
            values[p.name] = (p.choices or ())[0] if p.kind == "categorical" else int(p.bounds[0]) if p.kind == "int" else float(p.bounds[0])
    return values

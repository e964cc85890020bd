"""One results format for every backend: trials (CSV + JSON), the Pareto front (JSON + PNG)."""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from .._env import environment_metadata
from .._io import read_json, write_bytes, write_json
from ..errors import ConfigError
from ._metrics import METRICS
from ._objective import SearchSettings, TrialResult

__all__ = ["SearchResults", "pareto_front", "load_results", "RESULTS_SCHEMA"]

RESULTS_SCHEMA = 1
_FIGURE_HOOK = None  # tests look at the figure before it is saved


def cost_label(metric: str) -> str:
    """An axis label for a cost metric, with its unit; latency in a search is the table's prediction."""
    stat = "p95" if metric.endswith("_p95") else "mean"
    if metric.startswith("latency_ms"):
        return f"predicted batch-1 latency, {stat} (ms, latency table)"
    return f"MFLOPs per sample, {stat}"


def pareto_front(trials: list[TrialResult], cost_metric: str) -> list[TrialResult]:
    """Completed, feasible trials no other such trial beats on both accuracy (higher) and
    ``cost_metric`` (lower); sorted by cost."""
    pool = [t for t in trials if t.state == "complete" and t.feasible is not False
            and t.accuracy is not None and t.metric(cost_metric) is not None]

    def point(t: TrialResult) -> tuple[float, float]:  # (cost, accuracy), both present in the pool
        return cast(float, t.metric(cost_metric)), cast(float, t.accuracy)

    def dominates(a: TrialResult, b: TrialResult) -> bool:
        (ca, aa), (cb, ab) = point(a), point(b)
        return aa >= ab and ca <= cb and (aa > ab or ca < cb)

    front = [t for t in pool if not any(dominates(o, t) for o in pool)]
    return sorted(front, key=lambda t: (point(t)[0], -point(t)[1]))


@dataclass(frozen=True)
class SearchResults:
    """What ``lcnas search`` writes and ``lcnas retrain`` reads."""

    backend: str
    settings: SearchSettings
    trials: tuple[TrialResult, ...]
    study: str = ""  # storage URL + study name, Ray experiment path, or NNI experiment id

    @property
    def front(self) -> list[TrialResult]:
        """The Pareto front of the trials on accuracy and the settings' cost metric (see :func:`pareto_front`)."""
        return pareto_front(list(self.trials), self.settings.cost_metric)

    def to_dict(self) -> dict[str, Any]:
        """The ``results.json`` content: settings, budgets, this machine's environment, every trial and the front."""
        return {"schema_version": RESULTS_SCHEMA, "backend": self.backend, "study": self.study,
                "cost_metric": self.settings.cost_metric, "budgets": self.settings.budgets,
                "settings": self.settings.to_dict(), "environment": environment_metadata(),
                "trials": [t.to_dict() for t in self.trials], "pareto_front": [t.number for t in self.front]}

    def write(self, out_dir: str | os.PathLike[str], *, plot: bool = True) -> dict[str, Path]:
        """Write ``results.json``, ``trials.csv``, ``pareto.json`` (and ``pareto.png``) atomically."""
        out = Path(out_dir)
        paths = {"results": write_json(out / "results.json", self.to_dict()),
                 "trials": write_bytes(out / "trials.csv", self._csv().encode()),
                 "pareto": write_json(out / "pareto.json", {"cost_metric": self.settings.cost_metric,
                                                            "trials": [t.to_dict() for t in self.front]})}
        if plot:
            png = plot_front(self, out / "pareto.png")
            if png:
                paths["plot"] = png
        return paths

    def _csv(self) -> str:
        names = sorted({k for t in self.trials for k in t.params})
        metrics = [*METRICS, "feasible", "train_time_s"]
        buf = io.StringIO()
        w = csv.writer(buf)
        front = {t.number for t in self.front}
        w.writerow(["number", "state", *metrics, "pareto", "worker", *names, "error"])
        for t in self.trials:
            w.writerow([t.number, t.state, *[_cell(t.metric(m)) for m in metrics], t.number in front, t.worker or "",
                        *[_cell(t.params.get(n)) for n in names], t.error or ""])
        return buf.getvalue()


def load_results(path: str | os.PathLike[str]) -> SearchResults:
    """Read a ``results.json`` (or the search folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    data = read_json(path, what="search results", missing_hint=": pass the folder `lcnas search --out` wrote, or its results.json",
                     error=ConfigError)
    if not isinstance(data, dict) or data.get("schema_version") != RESULTS_SCHEMA or "trials" not in data:
        raise ConfigError(f"{str(path)!r} is not an lcnas search results file (schema_version {RESULTS_SCHEMA} with trials expected)")
    try:
        settings = SearchSettings.from_dict(data["settings"])
        trials = tuple(TrialResult.from_dict(t) for t in data["trials"])
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"search results {str(path)!r} are damaged: {e}") from None
    return SearchResults(backend=data.get("backend", "?"), settings=settings, trials=trials, study=data.get("study", ""))


def plot_front(results: SearchResults, path: Path, *, picked: TrialResult | None = None) -> Path | None:
    """PNG of every completed trial and the front (accuracy vs cost); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    metric = results.settings.cost_metric
    done = [t for t in results.trials if t.state == "complete" and t.accuracy is not None and t.metric(metric) is not None]
    front = results.front
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=120)
    infeasible = [t for t in done if t.feasible is False]
    feasible = [t for t in done if t.feasible is not False]
    def xy(trials: list[TrialResult]) -> tuple[list[Any], list[Any]]:  # (costs, accuracies) to plot
        return [t.metric(metric) for t in trials], [t.accuracy for t in trials]

    ax.scatter(*xy(feasible), s=18, c="#9aa5b1", label="trials")
    if infeasible:
        ax.scatter(*xy(infeasible), s=18, marker="x", c="#d08770", label="over budget")
    # markers only: the points between two front points are not known to be reachable
    ax.plot(*xy(front), "o", ls="None", c="#2e6fd8", ms=5, label="Pareto front")
    if picked is not None:
        ax.scatter(*xy([picked]), s=120, facecolors="none", edgecolors="#c0392b", linewidths=2, label="picked")
    for k, bound in results.settings.budgets.items():
        if k == metric:
            ax.axvline(bound, ls="--", c="#d08770", lw=1)
    ax.set_xlabel(cost_label(metric))
    ax.set_ylabel("validation accuracy (%)")
    ax.set_title(f"lcnas search ({results.backend}): {len(done)} completed trials")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    if _FIGURE_HOOK is not None:
        _FIGURE_HOOK(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return write_bytes(path, buf.getvalue())


def _cell(value: Any) -> Any:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return "" if value is None else value

"""The report's timing and plots say what they measure: eager PyTorch timed in its own process,
predicted latency labelled as predicted, no lines between front points, labelled axes and legends."""

from __future__ import annotations

import json
import warnings

import pytest

from lcnas.cli import main
from lcnas.train import load_train_config, train

pytest.importorskip("matplotlib")


@pytest.fixture
def figures(monkeypatch):
    import lcnas.report._report as report

    seen = {}

    def hook(fig):
        seen[fig.get_label()] = [
            {"xlabel": ax.get_xlabel(), "ylabel": ax.get_ylabel(),
             "labels": [c.get_label() for c in ax.collections + ax.lines + ax.containers if not c.get_label().startswith("_")],
             "legend": [t.get_text() for t in ax.get_legend().get_texts()] if ax.get_legend() else None,
             "legend_outside": bool(ax.get_legend() and ax.get_legend().get_bbox_to_anchor().y0 >= ax.get_position().y1 * 0.99 *
                                    fig.bbox.height),
             "linestyles": [line.get_linestyle() for line in ax.lines]}
            for ax in fig.axes]

    monkeypatch.setattr(report, "_FIGURE_HOOK", hook, raising=False)
    return seen


def _run(tmp_path, gating: str) -> None:
    cfg = load_train_config(None, [f"name=r_{gating}", "model=resnet20", f"gating={gating}", "dataset=synthetic", "val_size=64",
                                   "train_subset=64", "epochs=1", "batch_size=32", "amp=none", "init_from=pretrained"])
    train(cfg, progress=False, test=False)


@pytest.mark.slow  # builds the whole report, eager baselines in a subprocess
def test_report_times_eager_apart_and_labels_its_plots(tmp_path, cifar_tree, monkeypatch, figures):
    monkeypatch.chdir(tmp_path)
    _run(tmp_path, "layer")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert main(["report", "runs/r_layer", "--data-root", str(cifar_tree), "--lut", "cpu-amd-epyc-2t.json",
                     "--latency-images", "3", "--baselines", "resnet20", "--format", "json"]) == 0
    out = tmp_path / "runs" / "r_layer" / "report"
    data = json.loads((out / "report.json").read_text())
    timing = {m["model"]: m["bs1_latency_timed"] for m in data["models"]}
    assert timing["resnet20 (static)"].startswith("own process")  # eager PyTorch: not disturbed by the engine
    assert timing["r_layer"].startswith("interleaved") and timing["resnet20 (static, lcnas engine)"].startswith("interleaved")
    tradeoff = figures["accuracy_vs_cost"]
    assert "resnet20 (static)" not in tradeoff[1]["labels"]  # eager points do not stretch the latency axis
    assert "resnet20 (static)" in tradeoff[0]["labels"]
    rates = figures["block_rates"][0]
    assert rates["labels"] == ["block executed"]  # a layer-only model keeps every channel: no constant bar
    assert figures["flops_per_class"][0]["xlabel"]
    latency = figures["latency_predicted_vs_measured"][0]
    assert latency["legend"] and len(latency["legend"]) >= 2
    md = (out / "report.md").read_text()
    assert "Retrain budget" in md and "1 epoch" in md
    assert "Against resnet20 (static, lcnas engine)" in md


def test_block_rate_legend_does_not_cover_bars(figures):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from lcnas.report._report import ModelStats, _rates_figure

    stats = ModelStats(name="m", accuracy=90.0, mflops=[1.0], latency_ms_measured=[1.0], latency_ms_predicted=[], block_rate=[1.0, 0.9],
                       keep_rate=[0.5, 0.7], class_mflops=[1.0])
    _rates_figure(plt, stats)
    rates = figures["block_rates"][0]
    assert rates["labels"] == ["block executed", "channels kept (when run)"]
    assert rates["legend_outside"]


def test_search_front_plot_says_predicted_and_joins_no_points(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import lcnas.search._results as results_mod
    from lcnas.search import SearchResults, TrialResult
    from lcnas.search._results import cost_label

    assert "predicted" in cost_label("latency_ms_mean") and "ms" in cost_label("latency_ms_mean")
    assert "predicted" not in cost_label("mflops_mean")
    seen = {}
    monkeypatch.setattr(results_mod, "_FIGURE_HOOK", lambda fig: seen.update(ax=fig.axes[0]), raising=False)
    from lcnas.search import make_settings

    from ..search_tests.conftest import TINY_BASE, TINY_SPACE
    import yaml

    space = tmp_path / "tiny.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    settings = make_settings(str(space), out_dir=tmp_path / "s", overrides=dict(TINY_BASE))
    trials = tuple(TrialResult(number=i, state="complete", params={}, accuracy=a, mflops_mean=c, feasible=True)
                   for i, (a, c) in enumerate([(80.0, 10.0), (85.0, 20.0), (84.0, 30.0), (90.0, 40.0)]))
    results_mod.plot_front(SearchResults(backend="optuna", settings=settings, trials=trials), tmp_path / "p.png")
    ax = seen["ax"]
    front = [line for line in ax.lines if line.get_label() == "Pareto front"]
    assert front and all(line.get_linestyle() == "None" for line in front)

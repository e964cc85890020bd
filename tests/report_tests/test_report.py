"""lcnas report builds from a tiny run."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

from lcnas.cli import main
from lcnas.train import load_train_config, train


@pytest.mark.slow  # trains a tiny run, builds the whole report, times eager baselines in a subprocess
def test_report_builds_from_a_tiny_run(tmp_path, cifar_tree, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    cfg = load_train_config(None, ["name=tiny", "model=resnet20", "gating=lc", "dataset=synthetic", "val_size=64", "train_subset=64",
                                   "epochs=1", "batch_size=32", "amp=none", "init_from=pretrained"])
    train(cfg, progress=False, test=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the shipped table may describe another CPU model
        assert main(["report", "runs/tiny", "--data-root", str(cifar_tree), "--lut", "cpu-amd-epyc-2t.json",
                     "--latency-images", "3", "--baselines", "resnet20", "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    # the last lines say where the model stands against the static front on the same engine
    assert printed["static_front"] and "static" in printed["static_front"] and "dominated_by" in printed
    out = tmp_path / "runs" / "tiny" / "report"
    md = (out / "report.md").read_text()
    assert "| tiny |" in md and "| resnet20 (static) |" in md
    for png in ("accuracy_vs_cost.png", "flops_histogram.png", "block_rates.png", "latency_predicted_vs_measured.png", "flops_per_class.png"):
        assert (out / png).read_bytes()[:4] == b"\x89PNG" and f"]({png})" in md
    data = json.loads((out / "report.json").read_text())
    tiny, static, engine = data["models"]
    assert engine["model"] == "resnet20 (static, lcnas engine)" and "| resnet20 (static, lcnas engine) |" in md
    assert tiny["predicted_latency_ms_mean"] > 0 and static["predicted_latency_ms_mean"] is None
    assert engine["predicted_latency_ms_mean"] is None  # gates bypassed: counted as the static network
    assert engine["mflops_mean"] == static["mflops_mean"] and engine["test_accuracy"] == static["test_accuracy"]
    assert 0 < tiny["mflops_mean"] <= static["mflops_mean"] * 1.1
    front = data["static_front"]
    assert front["static"] == ["resnet20"] and front["accuracy"] == tiny["test_accuracy"]
    assert front["sentence"] in md and front["sentence"] == printed["static_front"]
    if front["margin_pt"] is not None:  # at or past static ResNet-20's latency: a margin against it
        assert front["margin_pt"] == pytest.approx(tiny["test_accuracy"] - engine["test_accuracy"])


def test_report_of_a_missing_run_is_a_clear_error(tmp_path):
    assert main(["report", str(tmp_path / "nothing")]) == 2


def test_the_default_static_front_is_every_shipped_static_network():
    from lcnas.pretrained import pretrained_manifest
    from lcnas.report import shipped_static

    names = shipped_static()
    manifest = pretrained_manifest()
    static = {n for n, e in manifest.items() if e["config"]["gating"] == "none" and e["dataset"] == "cifar10"}
    assert set(names) == static and {"resnet8", "resnet20", "resnet56"} <= static
    assert not any(manifest[n]["config"]["gating"] != "none" for n in names)  # no LC-Net in the front
    accuracy = [manifest[n]["test_accuracy"] for n in names]
    assert accuracy == sorted(accuracy)


@pytest.mark.parametrize("option", ["--baselines", "--eager"])
def test_an_unknown_baseline_is_named_with_the_shipped_ones(tmp_path, option, capsys):
    (tmp_path / "run").mkdir()
    assert main(["report", str(tmp_path / "run"), option, "resnet20,resnet99"]) == 2
    err = capsys.readouterr().err
    assert "resnet99" in err and "resnet56" in err and "Traceback" not in err


def test_dominance_names_what_the_reported_model_beats_and_what_it_does_not():
    from lcnas.report._report import dominance

    def row(name, acc, rounds):
        return {"model": name, "test_accuracy": acc, "bs1_latency_ms_median": sorted(rounds)[len(rounds) // 2], "bs1_latency_ms_per_round": rounds}

    # Rounds 3-5 ran on a host three times as slow: per-round ratios see through it.
    summary = [row("searched", 91.0, [1.0, 1.0, 3.0, 3.0, 3.0]), row("slower_worse", 90.0, [2.0, 2.0, 6.0, 6.0, 6.0]),
               row("faster", 89.0, [0.8, 0.8, 2.4, 2.4, 2.4]), row("more_accurate", 92.0, [1.1, 1.1, 3.3, 3.3, 3.3]),
               row("resnet20 (static)", 95.0, [0.1, 0.1, 0.3, 0.3, 0.3]),
               # Faster by plain medians (1.1 vs 3.0 ms), slower than "searched" in four rounds of five.
               row("round_by_round_slower", 90.5, [1.1, 1.1, 3.1, 3.1, 0.9])]
    lines = dominance(summary)
    assert "dominates" in lines[0] and "slower_worse" in lines[0] and "round_by_round_slower" in lines[0] and "faster" not in lines[0]
    assert "faster" in lines[1] and "more_accurate" in lines[1]
    assert not any("resnet20" in line for line in lines)  # static baselines are not part of the claim
    assert dominance([row("alone", 90.0, [1.0, 1.0, 1.0])]) == []


def test_the_search_of_a_pick_is_found_from_its_optuna_sqlite_url(tmp_path):
    from lcnas.report._report import search_results_path

    (tmp_path / "search").mkdir()
    (tmp_path / "search" / "results.json").write_text("{}")
    assert search_results_path(f"sqlite:///{tmp_path}/search/study.db#lcnas") == tmp_path / "search"
    assert search_results_path(str(tmp_path / "search")) == tmp_path / "search"
    assert search_results_path(str(tmp_path / "search" / "results.json")) == tmp_path / "search" / "results.json"
    assert search_results_path("postgresql://user@host/db#lcnas") is None
    assert search_results_path(str(tmp_path / "nowhere")) is None


def test_model_stats_skips_its_own_timing_when_the_caller_times_models_interleaved():
    import torch

    from lcnas import create_model
    from lcnas.report import model_stats

    model = create_model("resnet20").eval()
    calls = []
    model.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    images = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(6) % 10
    with torch.no_grad():
        timed = model_stats("m", model, images, labels, latency_images=4, batch_size=3)
        assert len(timed.latency_ms_measured) == 4 and calls.count(1) == 14  # 10 warm-up calls + 4 timed
        calls.clear()
        untimed = model_stats("m", model, images, labels, latency_images=4, batch_size=3, time_latency=False)
    assert untimed.latency_ms_measured == [] and calls == [3, 3]  # the two accuracy batches only: no batch-1 pass
    assert untimed.accuracy == timed.accuracy and untimed.mflops == timed.mflops


def test_eager_baseline_runs_plain_pytorch_not_the_engine(monkeypatch):
    """Static models run lcnas's engine in eval; the report's eager rows must time PyTorch itself."""
    from lcnas.engine import Engine
    from lcnas.report._report import _eager_worker

    def engine_called(*args, **kwargs):
        raise AssertionError("the eager baseline ran lcnas's engine")

    monkeypatch.setattr(Engine, "forward_native", engine_called)
    timing = _eager_worker("resnet20", torch.rand(2, 3, 32, 32), 1, 1)
    assert len(timing.ms) == 2 and all(t > 0 for t in timing.ms)


def test_the_static_baseline_is_the_plain_static_model_on_the_engine():
    from lcnas.engine import compiler_available
    from lcnas.models import DynamicResNet
    from lcnas.report import static_engine

    model, forced = static_engine("resnet20")
    assert forced is None and not isinstance(model, DynamicResNet)
    assert not model.training
    if compiler_available():
        with torch.no_grad():
            model(torch.rand(1, 3, 32, 32))
        assert model.engine.native_mflops is not None, "the static baseline did not run lcnas's native engine"


def test_report_shows_its_steps_on_a_progress_bar(tmp_path, cifar_tree, monkeypatch, capsys):
    from lcnas.report import build_report

    monkeypatch.chdir(tmp_path)
    cfg = load_train_config(None, ["name=tiny", "model=resnet8", "gating=layer", "dataset=synthetic", "val_size=32", "train_subset=32",
                                   "epochs=1", "batch_size=16", "amp=none"])
    train(cfg, progress=False, test=False)
    build_report("runs/tiny", data_root=str(cifar_tree), baselines=("resnet8",), eager=(), latency_images=2, test_images=50, progress=True)
    err = capsys.readouterr().err
    # two models evaluated, the interleaved timing, the figures: four steps, each named as it runs
    assert "evaluating tiny" in err and "evaluating resnet8 (static, lcnas engine)" in err and "timing 2 models" in err
    assert "4/4" in err
    build_report("runs/tiny", data_root=str(cifar_tree), baselines=("resnet8",), eager=(), latency_images=2, test_images=50, progress=False)
    assert capsys.readouterr().err == ""

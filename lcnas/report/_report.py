"""``lcnas report RUN_DIR``: a Markdown report with PNG plots of a trained dynamic model.

What it shows: the search's Pareto front with the picked trial (when the run came from
``lcnas retrain``); accuracy against mean MFLOPs and against measured batch-1 latency, beside the
static backbones; the per-sample FLOPs histogram; per-block execution and channel-keep rates;
predicted against measured latency; mean FLOPs per class. Everything on the test set.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

import torch
from tqdm.auto import tqdm

from .._env import environment_metadata
from .._io import write_bytes, write_json
from ..errors import ConfigError
from ..latency._timing import RoundTimes, call_ms, latency_ratio, measure_rounds

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from ..latency import LatencyTable
    from ..models import DynamicResNet, ResNet

__all__ = ["build_report", "ModelStats", "model_stats", "interleaved_bs1_ms", "static_engine"]

_FIGURE_HOOK = None  # tests look at each figure (labels, legends) before it is saved
_EAGER_TIMING = "own process (eager PyTorch, alone)"
_INTERLEAVED_TIMING = "interleaved with the other lcnas models in one process"

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class ModelStats:
    """Test-set statistics of one model (per-sample arrays as lists)."""

    name: str
    accuracy: float
    mflops: list[float]
    latency_ms_measured: list[float]  # batch 1, first ``latency_images`` test images
    latency_ms_predicted: list[float]  # same images, from the table (empty without one)
    block_rate: list[float]
    keep_rate: list[float]  # mean fraction of inner channels kept where the block ran
    class_mflops: list[float]
    gating: str = "none"  # layer / channel / lc: which rates the block plot shows

    @property
    def mflops_mean(self) -> float:
        """Mean per-sample MFLOPs over the test set."""
        return statistics.fmean(self.mflops)

    @property
    def latency_ms_median(self) -> float:
        """Median measured batch-1 latency (ms); raises :class:`statistics.StatisticsError` when none was measured."""
        return statistics.median(self.latency_ms_measured)


@torch.no_grad()
def model_stats(name: str, model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, *, table: LatencyTable | None = None,
                latency_images: int = 200, batch_size: int = 500, time_latency: bool = True) -> ModelStats:
    """Accuracy, per-sample MFLOPs, block/channel rates and measured (and predicted) batch-1 latency.
    A gated model run with every block forced on and its gates bypassed counts as static.
    ``time_latency=False`` leaves the measured latency empty (a caller that times models
    interleaved); the batch-1 pass then runs only when there are predictions to make."""
    from ..cost import describe, sample_mflops, static_mflops

    model.eval()
    forced = getattr(model, "_forced", None)
    gated = getattr(model, "gating", "none") != "none" and (forced is None or forced.evaluate_gates)
    c, h, w = images.shape[1:]
    arch = describe(model, (c, h, w))
    correct = 0
    mflops: list[torch.Tensor] = []
    runs: list[torch.Tensor] = []
    kept: list[torch.Tensor] = []
    for i in range(0, images.shape[0], batch_size):
        x = images[i : i + batch_size].float().div(255)
        logits = model(x)
        correct += int((logits.argmax(1) == labels[i : i + batch_size]).sum())
        if gated:
            mflops.append(sample_mflops(model, arch=arch))
            trace = cast("DynamicResNet", model).last_trace  # a gated model records one per call
            assert trace is not None
            runs.append(trace.block_run)
            kept.append(trace.channels_kept)
    n = images.shape[0]
    if gated:
        per_sample = torch.cat(mflops)
        run = torch.cat(runs).float()
        widths = torch.tensor([float(b.width) for b in arch.blocks])
        frac = torch.cat(kept).float() / widths
        keep_rate = ((frac * run).sum(0) / run.sum(0).clamp(min=1)).tolist()
        block_rate = run.mean(0).tolist()
    else:
        per_sample = torch.full((n,), static_mflops(model, (c, h, w)))
        block_rate, keep_rate = [1.0] * len(arch.blocks), [1.0] * len(arch.blocks)
    class_mflops = [float(per_sample[labels == c].mean()) if (labels == c).any() else 0.0 for c in range(int(labels.max()) + 1)]
    measured: list[float] = []
    predicted: list[float] = []
    predict = table is not None and gated
    for i in range(min(latency_images, n) if time_latency or predict else 0):
        x = images[i : i + 1].float().div(255)
        if i == 0 and time_latency:
            for _ in range(10):
                model(x)
        ms = call_ms(lambda: model(x))
        if time_latency:
            measured.append(ms)
        if table is not None and gated:
            from ..latency import sample_latency_ms

            predicted.append(float(sample_latency_ms(model, table, arch=arch)[0]))
    return ModelStats(name=name, accuracy=100.0 * correct / n, mflops=per_sample.tolist(), latency_ms_measured=measured,
                      latency_ms_predicted=predicted, block_rate=block_rate, keep_rate=keep_rate, class_mflops=class_mflops,
                      gating=str(getattr(model, "gating", "none")) if gated else "none")


def shipped_static(dataset: str = "cifar10") -> tuple[str, ...]:
    """Every shipped static network trained on ``dataset``, the least accurate first: the static
    front a dynamic model is reported against."""
    from ..pretrained import list_pretrained

    static = [p for p in list_pretrained() if p.dataset == dataset and p.gating == "none"]
    return tuple(p.name for p in sorted(static, key=lambda p: p.test_accuracy or 0.0))


def build_report(run_dir: str | Path, *, data_root: str | None = None, lut: str | None = None, baselines: tuple[str, ...] | None = None,
                 eager: tuple[str, ...] = ("resnet20",), others: tuple[str, ...] = (), latency_images: int = 200,
                 test_images: int | None = None, progress: bool | None = None) -> Path:
    """Write ``<run_dir>/report/report.md`` with its PNGs and ``report.json``; return the Markdown path.

    ``baselines``: shipped static networks timed through lcnas's engine beside the model, the
    static front it is placed against (default: every shipped static CIFAR-10 network,
    :func:`shipped_static`); ``eager``: those also timed in eager PyTorch, for reference.
    ``progress``: a bar of the steps on stderr (None: when stderr is a terminal)."""
    from ..checkpoint import load_model
    from ..data import load_cifar10
    from ..models import create_model

    run_dir = Path(run_dir)
    ckpt = run_dir / "final.pt"
    if run_dir.is_file():
        raise ConfigError(f"{str(run_dir)!r} is a file; lcnas report takes a run folder (the one holding final.pt, written by "
                          "lcnas train / lcnas retrain): the report is written into it")
    if not ckpt.exists():
        raise ConfigError(f"{str(run_dir)!r} holds no final.pt: report a finished run (lcnas train / lcnas retrain)")
    plt = _pyplot()
    out = run_dir / "report"
    table = None
    if lut:
        from ..latency import LatencyTable

        table = LatencyTable.load(lut)
    test = load_cifar10(data_root, train=False, download=False)
    images, labels = (test.images, test.labels) if test_images is None else (test.images[:test_images], test.labels[:test_images])
    models = {run_dir.name: (load_model(ckpt), None)}
    for other in others:
        models[Path(other).parent.name] = (load_model(other), None)
    for name in eager:
        models[f"{name} (static)"] = (create_model(name, pretrained=True), None)
    for name in shipped_static() if baselines is None else baselines:
        models[f"{name} (static, lcnas engine)"] = static_engine(name)
    eager_rows = {name for name in models if name.endswith("(static)")}
    # Steps: each model evaluated, the interleaved timing, each eager baseline, the figures.
    bar = tqdm(total=len(models) + 1 + len(eager_rows) + 1, desc="report", unit="step", leave=False, file=sys.stderr,
               disable=None if progress is None else not progress, dynamic_ncols=True)
    rows = []
    for name, (model, forced) in models.items():
        bar.set_postfix_str(f"evaluating {name}")
        with _engine_context(model, forced):
            rows.append(model_stats(name, model, images, labels, table=table if forced is None else None, latency_images=latency_images,
                                    time_latency=False))
        bar.update()
    # Batch-1 latency of lcnas's models interleaved round by round, so a drifting machine hits every
    # model alike and the comparison between them holds. Eager PyTorch runs slower right after
    # lcnas's engine in the same process (thread pools, caches: 7-9 ms against 4 ms alone for
    # ResNet-20), so each eager baseline is timed alone in a process of its own.
    bar.set_postfix_str(f"timing {len(models) - len(eager_rows)} models at batch 1, interleaved")
    measured = interleaved_bs1_ms({k: v for k, v in models.items() if k not in eager_rows}, images[:latency_images])
    bar.update()
    for name in eager_rows:
        bar.set_postfix_str(f"timing {name} in eager PyTorch")
        measured[name] = eager_bs1_ms(name[: -len(" (static)")], images[:latency_images])
        bar.update()
    bar.set_postfix_str("figures")
    rows = [replace(r, latency_ms_measured=measured[r.name].ms) for r in rows]
    main = rows[0]
    figures = {}
    picked_path = run_dir / "picked.json"
    picked = json.loads(picked_path.read_text()) if picked_path.exists() else None
    if picked is not None:
        figures["pareto.png"] = _front_figure(plt, picked)
    figures["accuracy_vs_cost.png"] = _tradeoff_figure(plt, rows)
    figures["flops_histogram.png"] = _hist_figure(plt, main)
    figures["block_rates.png"] = _rates_figure(plt, main)
    if main.latency_ms_predicted:
        figures["latency_predicted_vs_measured.png"] = _latency_figure(plt, main)
    figures["flops_per_class.png"] = _class_figure(plt, main)
    for fname, data in figures.items():
        if data is not None:
            write_bytes(out / fname, data)
    summary = [{"model": r.name, "test_accuracy": r.accuracy, "mflops_mean": r.mflops_mean,
                "mflops_p95": float(torch.tensor(r.mflops).quantile(0.95)), "bs1_latency_ms_median": r.latency_ms_median,
                "bs1_latency_ms_per_round": measured[r.name].round_medians_ms,
                "bs1_latency_timed": _EAGER_TIMING if r.name in eager_rows else _INTERLEAVED_TIMING,
                "predicted_latency_ms_mean": statistics.fmean(r.latency_ms_predicted) if r.latency_ms_predicted else None} for r in rows]
    front = _front_standing(summary)
    write_json(out / "report.json", {"run": str(run_dir), "models": summary, "picked": picked, "lut": lut, "static_front": front,
                                     "test_images": int(images.shape[0]), "latency_images": latency_images,
                                     "environment": environment_metadata()})
    bar.update()
    bar.close()
    md = _markdown(run_dir, summary, main, picked, [f for f, d in figures.items() if d is not None], lut, _budget(ckpt))
    if front is not None:
        md += f"\n**Against the static front on lcnas's engine** ({', '.join(front['static'])}): {front['sentence']}\n"
    return write_bytes(out / "report.md", md.encode())


def _front_standing(summary: list[dict]) -> dict[str, Any] | None:
    """Where the reported model (``summary[0]``) stands against the static models timed on lcnas's
    engine beside it, at its measured batch-1 latency (None without such models)."""
    from ._front import front_standing

    static = {r["model"].split(" (static")[0]: (r["bs1_latency_ms_median"], r["test_accuracy"])
              for r in summary[1:] if "(static, lcnas engine)" in r["model"]}
    if not static:
        return None
    main = summary[0]
    st = front_standing(main["bs1_latency_ms_median"], main["test_accuracy"], static)
    return {"static": sorted(static), "latency_ms": st.latency_ms, "accuracy": st.accuracy, "front_accuracy": st.front_accuracy,
            "margin_pt": st.margin_pt, "dominated_by": list(st.dominated_by), "sentence": st.sentence()}


def _budget(ckpt: Path) -> dict[str, Any]:
    from ..checkpoint import read_checkpoint

    cfg = read_checkpoint(ckpt).get("config", {}) or {}
    return {k: cfg.get(k) for k in ("epochs", "train_subset", "dataset", "model", "gating")}


def eager_bs1_ms(name: str, images: torch.Tensor, rounds: int = 5) -> RoundTimes:
    """Batch-1 timing of the shipped static ``name`` in eager PyTorch, in a fresh process of its own
    with this process's thread count (nothing of lcnas's engine ran there before it)."""
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(_eager_worker, name, images.clone(), torch.get_num_threads(), rounds).result()


def _eager_worker(name: str, images: torch.Tensor, threads: int, rounds: int) -> RoundTimes:
    from ..models import create_model

    torch.set_num_threads(threads)
    model = cast("ResNet", create_model(name, pretrained=True).eval())
    model.execution = "mask"  # plain PyTorch: a static model in eval otherwise runs lcnas's engine
    return interleaved_bs1_ms({name: (model, None)}, images, rounds)[name]


def _engine_context(model: torch.nn.Module, forced: Any) -> AbstractContextManager[object]:
    """Inside it the model runs with ``forced`` decisions (the static-engine rows), else as it is."""
    return nullcontext() if forced is None else cast("DynamicResNet", model).forced(forced)


def static_engine(name: str) -> tuple[torch.nn.Module, Any]:
    """The shipped static ``name`` through lcnas's engine (BN folded, channels-last, every block on),
    as (model, None): the fastest static execution here, so the fair latency baseline for a dynamic
    model. A static model runs the engine in ``eval()`` as a gated one does, with no gates to bypass."""
    from ..models import create_model

    return create_model(name, gating="none", pretrained=True).eval(), None


@torch.no_grad()
def interleaved_bs1_ms(models: dict[str, tuple[torch.nn.Module, Any]], images: torch.Tensor, rounds: int = 5) -> dict[str, RoundTimes]:
    """Per model (name → (model, forced decisions or None)), one timed batch-1 call per uint8 image,
    in milliseconds; models alternate within every round (:func:`lcnas.latency.measure_rounds`), so
    a drifting host hits every model alike."""
    xs = [images[i : i + 1].float().div(255) for i in range(images.shape[0])]
    entries = list(models.values())
    for model, _ in entries:
        model.eval()
    times = measure_rounds(len(entries), lambda i, j: entries[i][0](xs[j]), len(xs), rounds=rounds,
                           context=lambda i: _engine_context(*entries[i]))
    return dict(zip(models, times, strict=True))


def dominance(summary: list[dict]) -> list[str]:
    """For the first (reported) model: which other dynamic models it beats on accuracy and measured
    latency together, and which it does not (Pareto dominance: at least as accurate and at least as
    fast, the latter by the median per-round latency ratio, as the benchmarks judge it)."""
    main, others = summary[0], [r for r in summary[1:] if "(static" not in r["model"]]
    beaten = [r["model"] for r in others if main["test_accuracy"] >= r["test_accuracy"]
              and latency_ratio(main["bs1_latency_ms_per_round"], r["bs1_latency_ms_per_round"]) <= 1.0]
    not_beaten = [r["model"] for r in others if r["model"] not in beaten]
    lines = []
    if beaten:
        lines.append(f"**{main['model']} dominates** (at least as accurate and at least as fast at batch 1): {', '.join(beaten)}.")
    if not_beaten:
        lines.append(f"It does not dominate: {', '.join(not_beaten)}.")
    return lines


def _markdown(run_dir: Path, summary: list[dict], main: ModelStats, picked: dict | None, figures: list[str], lut: str | None,
              budget: dict[str, Any] | None = None) -> str:
    lines = [f"# lcnas report: {run_dir.name}", ""]
    if budget and budget.get("epochs") is not None:
        epochs, subset = int(budget["epochs"]), budget.get("train_subset")
        data = "the whole training split" if subset is None else f"{subset} training images"
        lines += [f"Retrain budget: {epochs} epoch{'s' if epochs != 1 else ''} on {data} of {budget.get('dataset') or 'the dataset'} "
                  f"({budget.get('model')}, {budget.get('gating')} gating).", ""]
    if picked:
        t = picked["trial"]
        lines += [f"Picked trial **{t['number']}** ({picked['pick']}) of search `{picked['search']}`: validation accuracy "
                  f"{t['accuracy']:.2f} %, {t['mflops_mean']:.1f} MFLOPs in the proxy search.", ""]
    lines += ["| model | test acc. (%) | mean MFLOPs | p95 MFLOPs | measured bs-1 latency (ms, median) | predicted latency (ms, mean) |",
              "|---|---|---|---|---|---|"]
    for r in summary:
        pred = f"{r['predicted_latency_ms_mean']:.3f}" if r["predicted_latency_ms_mean"] is not None else "–"
        lines.append(f"| {r['model']} | {r['test_accuracy']:.2f} | {r['mflops_mean']:.1f} | {r['mflops_p95']:.1f} | "
                     f"{r['bs1_latency_ms_median']:.3f} | {pred} |")
    eager = [r["model"] for r in summary if r.get("bs1_latency_timed") == _EAGER_TIMING]
    lines += ["", f"Latency: batch 1, {len(main.latency_ms_measured)} test images, this machine; lcnas's models interleaved round by round"
              + (f", eager PyTorch ({', '.join(eager)}) timed alone in a process of its own" if eager else "")
              + (f"; predictions from `{lut}`." if lut else "."), ""]
    lines += [*standing(summary), ""]
    if len(summary) > 1:
        lines += [*dominance(summary), ""]
    for f in figures:
        lines += [f"![{f[:-4].replace('_', ' ')}]({f})", ""]
    return "\n".join(lines)


def standing(summary: list[dict]) -> list[str]:
    """Where the reported model stands against each static model on lcnas's engine (the same
    engine, interleaved timing: the comparison that holds)."""
    main, lines = summary[0], []
    for r in summary[1:]:
        if "(static, lcnas engine)" not in r["model"]:
            continue
        ratio = latency_ratio(main["bs1_latency_ms_per_round"], r["bs1_latency_ms_per_round"])
        lines.append(f"Against {r['model']}: {main['test_accuracy'] - r['test_accuracy']:+.2f} points test accuracy, "
                     f"{100 * main['mflops_mean'] / r['mflops_mean']:.0f} % of its mean MFLOPs, batch-1 latency × {ratio:.2f} "
                     f"({'faster' if ratio < 1 else 'not faster'}; median of per-round ratios).")
    return lines


def _pyplot() -> ModuleType:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("lcnas report draws with matplotlib: pip install matplotlib (or lcnas[optuna])") from None
    return plt


def _png(plt: ModuleType, fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    if _FIGURE_HOOK is not None:
        _FIGURE_HOOK(fig)
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()


def search_results_path(source: str) -> Path | None:
    """The results file or folder of the search a pick came from: a path as given, or, for an
    Optuna SQLite URL (``sqlite:///<out>/study.db#name``), the search folder holding the study."""
    location = source.split("#")[0]
    if location.startswith("sqlite:///"):
        location = str(Path(location[len("sqlite:///"):]).parent)
    path = Path(location)
    if path.is_dir() and (path / "results.json").exists() or path.is_file() and path.suffix == ".json":
        return path
    return None


def _front_figure(plt: ModuleType, picked: dict[str, Any]) -> bytes | None:
    from ..search import load_results
    from ..search._results import cost_label

    path = search_results_path(picked.get("search", ""))
    if path is None:
        return None
    results = load_results(path)
    metric = results.settings.cost_metric
    fig, ax = plt.subplots(figsize=(6, 4.2))
    fig.set_label("pareto")
    done = [t for t in results.trials if t.state == "complete" and t.metric(metric) is not None]
    ax.scatter([t.metric(metric) for t in done], [t.accuracy for t in done], s=16, c="#9aa5b1", label="trials")
    front = results.front
    # markers only: the points between two front points are not known to be reachable
    ax.plot([t.metric(metric) for t in front], [t.accuracy for t in front], "o", ls="None", c="#2e6fd8", label="Pareto front")
    t = picked["trial"]
    if t.get(metric) is not None:
        ax.scatter([t[metric]], [t["accuracy"]], s=140, facecolors="none", edgecolors="#c0392b", linewidths=2, label="picked")
    ax.set_xlabel(cost_label(metric))
    ax.set_ylabel("validation accuracy (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return _png(plt, fig)


def _tradeoff_figure(plt: ModuleType, rows: list[ModelStats]) -> bytes:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    fig.set_label("accuracy_vs_cost")
    for r in rows:
        static = "static" in r.name
        kw = dict(marker="s" if static else "o", s=50)
        axes[0].scatter([r.mflops_mean], [r.accuracy], label=r.name, **kw)
        if not r.name.endswith("(static)"):  # eager PyTorch is timed apart and would stretch the axis: in the table only
            axes[1].scatter([r.latency_ms_median], [r.accuracy], label=r.name, **kw)
    axes[0].set_xlabel("mean MFLOPs per sample")
    axes[1].set_xlabel("measured batch-1 latency (ms, median; lcnas engine, interleaved)")
    axes[0].legend(fontsize=7)
    for ax in axes:
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=7)
    return _png(plt, fig)


def _hist_figure(plt: ModuleType, r: ModelStats) -> bytes:
    fig, ax = plt.subplots(figsize=(6, 3.6))
    fig.set_label("flops_histogram")
    ax.hist(r.mflops, bins=40, color="#2e6fd8")
    ax.axvline(r.mflops_mean, c="#c0392b", ls="--", label=f"mean {r.mflops_mean:.1f}")
    ax.set_xlabel("MFLOPs per sample (test set)")
    ax.set_ylabel("images")
    ax.legend()
    return _png(plt, fig)


def _rates_figure(plt: ModuleType, r: ModelStats) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    fig.set_label("block_rates")
    idx = list(range(len(r.block_rate)))
    channels = r.gating in ("channel", "lc") or any(k < 1.0 for k in r.keep_rate)  # a layer-only model keeps every channel
    width = 0.4 if channels else 0.7
    ax.bar([i - 0.2 for i in idx] if channels else idx, r.block_rate, width=width, label="block executed")
    if channels:
        ax.bar([i + 0.2 for i in idx], r.keep_rate, width=width, label="channels kept (when run)")
    ax.set_xlabel("residual block")
    ax.set_ylabel("rate over the test set")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2, frameon=False)  # above the bars
    return _png(plt, fig)


def _latency_figure(plt: ModuleType, r: ModelStats) -> bytes:
    fig, ax = plt.subplots(figsize=(4.8, 4.2))
    fig.set_label("latency_predicted_vs_measured")
    ax.scatter(r.latency_ms_measured, r.latency_ms_predicted, s=10, label="test image (batch 1)")
    lo = min(r.latency_ms_measured + r.latency_ms_predicted)
    hi = max(r.latency_ms_measured + r.latency_ms_predicted)
    ax.plot([lo, hi], [lo, hi], c="k", lw=1, label="predicted = measured")
    ax.plot([lo, hi], [lo * 1.1, hi * 1.1], c="#9aa5b1", lw=1, ls="--", label="±10 %")
    ax.plot([lo, hi], [lo * 0.9, hi * 0.9], c="#9aa5b1", lw=1, ls="--")
    ax.legend(fontsize=8)
    ax.set_xlabel("measured (ms)")
    ax.set_ylabel("predicted (ms)")
    return _png(plt, fig)


def _class_figure(plt: ModuleType, r: ModelStats) -> bytes:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    fig.set_label("flops_per_class")
    names = CIFAR10_CLASSES if len(r.class_mflops) == 10 else [str(i) for i in range(len(r.class_mflops))]
    ax.bar(names, r.class_mflops, color="#2e6fd8")
    ax.set_ylabel("mean MFLOPs")
    ax.set_xlabel("test-set class (true label)")
    ax.tick_params(axis="x", rotation=45)
    return _png(plt, fig)

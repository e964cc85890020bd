"""``lcnas search``: one CLI for the Optuna, Ray Tune and NNI backends."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ._args import SEED_MAX, integer, nonempty
from ._format import add_format_argument, check_set, emit, stdout_to_stderr

__all__ = ["Search", "Retrain", "Report", "Export"]


class Search:
    """The ``lcnas search`` sub-command; ``lcnas search --help`` shows its ``description`` and options."""

    name = "search"
    help = "search LC-Net gate shapes and loss weights (Optuna, Ray Tune or NNI)"
    description = (
        "Search a space of LC-Net gate architectures and loss weights (search_spaces/*.yaml) for the best "
        "validation accuracy at the lowest cost: table-predicted latency (--lut) or FLOPs. Each trial fine-tunes "
        "gates on the shipped pretrained backbone for a short proxy budget (set it with --set epochs=2 "
        "--set train_subset=10000 ...) and is scored on the validation split, never the test set. Writes "
        "results.json, trials.csv, pareto.json and pareto.png to --out. Optuna (default) keeps the study in "
        "<out>/study.db (or --storage URL): rerun the same command to continue an interrupted study."
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Add ``lcnas search``'s arguments and options to ``p``."""
        from ..search import COST_METRICS

        p.add_argument("--space", default="lcnet_cifar10", help="search space: a shipped name or a YAML path (default: lcnet_cifar10)")
        p.add_argument("--backend", choices=("optuna", "ray", "nni"), default="optuna", help="search engine (default: optuna)")
        p.add_argument("--trials", type=integer(1), default=20, help="number of finished trials (default: 20)")
        p.add_argument("--out", type=Path, default=None, help="search folder (default: runs/search/<space name>)")
        p.add_argument("--lut", help="latency table: a file from `lcnas profile`, a shipped table's name, or 'auto' "
                                           "(the shipped table measured on this CPU)")
        p.add_argument("--cost", choices=COST_METRICS,
                       help="cost objective (default: latency_ms_mean with --lut, else mflops_mean)")
        p.add_argument("--max-latency-ms", type=float, help="hard budget on predicted latency (needs --lut)")
        p.add_argument("--max-mflops", type=float, help="hard budget on MFLOPs per sample")
        p.add_argument("--budget-stat", choices=("mean", "p95"), default="mean", help="budgets apply to the mean or the p95 (default: mean)")
        p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE",
                       help="base training setting for every trial (repeatable), e.g. --set epochs=2 --set model=resnet32")
        p.add_argument("--data-root", help="folder holding cifar-10-batches-py")
        p.add_argument("--seed", type=integer(0, SEED_MAX), default=None, help="sampler seed (0 to 2**32-1)")
        g = p.add_argument_group("optuna")
        g.add_argument("--storage", help="RDB URL shared by workers, e.g. postgresql://user@host/db (default: sqlite in --out)")
        g.add_argument("--study-name", type=nonempty, default="lcnas", help="study name (default: lcnas)")
        g.add_argument("--sampler", choices=("tpe", "nsga2", "random"), default="tpe", help="sampler (default: tpe, multi-objective)")
        g.add_argument("--single-objective", action="store_true", help="maximise accuracy only (budgets stay constraints); enables pruning")
        g = p.add_argument_group("ray")
        g.add_argument("--ray-address", help="an existing Ray cluster (e.g. auto or ray://host:10001); default: a local instance")
        g.add_argument("--cpus-per-trial", type=float, default=1.0)
        g.add_argument("--gpus-per-trial", type=float, default=0.0)
        g.add_argument("--concurrency", type=integer(1), default=None, help="trials at once (ray, nni)")
        g.add_argument("--resume", action="store_true", help="ray: continue an interrupted run in --out")
        g = p.add_argument_group("nni")
        g.add_argument("--port", type=integer(1, 65535), default=8080, help="NNI web UI port (default: 8080; NNI listens on all interfaces)")
        g.add_argument("--tuner", choices=("tpe", "random", "anneal", "evolution"), default="tpe", help="NNI tuner (default: tpe)")
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
        """Run ``lcnas search`` with the parsed ``args``; returns the process exit status."""
        from ..search import load_space, make_settings, search
        from ..train import parse_overrides

        check_set(args.overrides)
        overrides = parse_overrides(args.overrides)
        if args.data_root:
            overrides["data_root"] = args.data_root
        out = args.out or Path("runs") / "search" / load_space(args.space).name
        from ..latency import resolve_table

        lut = None if args.lut is None else str(resolve_table(args.lut))  # the study records the table it used
        settings = make_settings(args.space, out_dir=out, overrides=overrides, lut=lut, cost_metric=args.cost,
                                 max_latency_ms=args.max_latency_ms, max_mflops=args.max_mflops, budget_stat=args.budget_stat)
        options: dict = {"seed": args.seed}
        if args.backend == "optuna":
            options.update(storage=args.storage, study_name=args.study_name, sampler=args.sampler, single_objective=args.single_objective)
        elif args.backend == "ray":
            options.update(address=args.ray_address, cpus_per_trial=args.cpus_per_trial, gpus_per_trial=args.gpus_per_trial,
                           concurrency=args.concurrency, resume=args.resume)
        else:
            options.update(port=args.port, tuner=args.tuner, concurrency=args.concurrency or 1)
        with stdout_to_stderr():  # engines print tables and logs; stdout carries only the summary (JSON with --format json)
            results = search(settings, backend=args.backend, n_trials=args.trials, progress=not args.no_progress, **options)
        front = results.front
        summary = {"backend": results.backend, "out": str(settings.out_dir), "study": results.study,
                   "trials": len(results.trials), "complete": sum(t.state == "complete" for t in results.trials),
                   "failed": sum(t.state == "failed" for t in results.trials), "cost_metric": settings.cost_metric,
                   "pareto_front": [{"number": t.number, "accuracy": t.accuracy, settings.cost_metric: t.metric(settings.cost_metric)}
                                    for t in front]}
        if args.format == "json":
            emit(summary, "json")
        else:
            emit({k: v for k, v in summary.items() if k != "pareto_front"}, "table")
            print()
            emit(summary["pareto_front"] or [{"pareto_front": "empty (no completed feasible trial)"}], "table")
        return 0


class Retrain:
    """The ``lcnas retrain`` sub-command; ``lcnas retrain --help`` shows its ``description`` and options."""

    name = "retrain"
    help = "retrain a trial picked from a search's Pareto front with a full schedule"
    description = (
        "Pick a trial from a search's Pareto front (the knee, or the most accurate) within optional budgets, "
        "retrain its LC-Net from the pretrained backbone with a full schedule on the whole training split, "
        "evaluate it on the test set and write runs/<name>/final.pt. The search is a results folder/file from "
        "`lcnas search`, or an Optuna study (--storage URL --study-name NAME)."
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Add ``lcnas retrain``'s arguments and options to ``p``."""
        p.add_argument("results", nargs="?", type=Path, help="search folder or its results.json")
        p.add_argument("--storage", help="Optuna storage URL instead of a results file")
        p.add_argument("--study-name", type=nonempty, default="lcnas", help="the study to pick from with --storage (default: lcnas)")
        p.add_argument("--pick", choices=("knee", "max-accuracy"), default="knee", help="which front point (default: knee)")
        p.add_argument("--max-latency-ms", type=float, help="budget on predicted latency")
        p.add_argument("--max-mflops", type=float, help="budget on MFLOPs per sample")
        p.add_argument("--budget-stat", choices=("mean", "p95"), default="mean")
        p.add_argument("--epochs", type=integer(1), default=15, help="full-schedule epochs (default: 15)")
        p.add_argument("--name", type=nonempty, help="run name (default: retrain_<search name>_trial<N>)")
        p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help="training setting override (repeatable)")
        p.add_argument("--data-root", help="folder holding cifar-10-batches-py")
        p.add_argument("--dry-run", action="store_true", help="print the pick and its training config, train nothing")
        p.add_argument("--no-progress", action="store_true")
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
        """Run ``lcnas retrain`` with the parsed ``args``; returns the process exit status."""
        from .._io import write_json
        from ..errors import ConfigError
        from ..search import load_results, load_study_results, pick_trial, retrain_config
        from ..train import parse_overrides, train

        check_set(args.overrides)
        if (args.results is None) == (args.storage is None):
            raise ConfigError("give either a search results folder/file or --storage URL (with --study-name)")
        results = load_results(args.results) if args.results else load_study_results(args.storage, args.study_name)
        trial = pick_trial(results, args.pick, max_latency_ms=args.max_latency_ms, max_mflops=args.max_mflops, budget_stat=args.budget_stat)
        overrides = {"epochs": args.epochs, **parse_overrides(args.overrides)}
        if args.data_root:
            overrides["data_root"] = args.data_root
        name = args.name or f"retrain_{results.settings.space.name}_trial{trial.number}"
        cfg = retrain_config(results, trial, name=name, overrides=overrides)
        import sys

        picked = {"command": "lcnas " + " ".join(sys.argv[1:]), "trial": trial.to_dict(), "pick": args.pick,
                  "search": results.study or str(args.results),
                  "budgets": {"max_latency_ms": args.max_latency_ms, "max_mflops": args.max_mflops, "stat": args.budget_stat}}
        if args.dry_run:
            emit({"picked_trial": trial.number, "val_accuracy": trial.accuracy, "config": cfg.to_dict()}, "json")
            return 0
        final = train(cfg, progress=False if args.no_progress else None)
        write_json(cfg.run_dir / "picked.json", {**picked, "final": final})
        emit({"run_dir": str(cfg.run_dir), "picked_trial": trial.number, "search_val_accuracy": trial.accuracy, **final}, args.format)
        return 0


class Report:
    """The ``lcnas report`` sub-command; ``lcnas report --help`` shows its ``description`` and options."""

    name = "report"
    help = "Markdown report with plots of a trained dynamic model"
    description = (
        "Evaluate a finished run (runs/<name>/final.pt) on the CIFAR-10 test set and write <run>/report/report.md "
        "with PNG plots: the search front with the picked trial (runs from `lcnas retrain`), accuracy vs MFLOPs and "
        "vs measured batch-1 latency beside the static backbones, the per-sample FLOPs histogram, per-block execution "
        "and channel-keep rates, predicted vs measured latency (--lut) and mean FLOPs per class."
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Add ``lcnas report``'s arguments and options to ``p``."""
        p.add_argument("run_dir", type=Path, help="a finished run folder")
        p.add_argument("--data-root", help="folder holding cifar-10-batches-py")
        p.add_argument("--lut", help="latency table for predicted latency (path, shipped name, or 'auto')")
        p.add_argument("--compare", action="append", default=[], metavar="CKPT", help="another checkpoint to plot beside it (repeatable)")
        p.add_argument("--baselines", default=None,
                       help="shipped static networks timed on lcnas's engine beside the model: the static front it is placed "
                            "against (comma-separated; default: every shipped static CIFAR-10 ResNet)")
        p.add_argument("--eager", default="resnet20", help="shipped static networks also timed in eager PyTorch, for reference "
                                                            "(comma-separated; '' for none)")
        p.add_argument("--latency-images", type=integer(1), default=200, help="test images timed at batch 1")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar of the report's steps")
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
        """Run ``lcnas report`` with the parsed ``args``; returns the process exit status."""
        from ..latency import resolve_table
        from ..report import build_report

        lut = None if args.lut is None else str(resolve_table(args.lut))
        path = build_report(args.run_dir, data_root=args.data_root, lut=lut, others=tuple(args.compare),
                            baselines=None if args.baselines is None else _names(args.baselines, "--baselines"),
                            eager=_names(args.eager, "--eager"), latency_images=args.latency_images,
                            progress=False if args.no_progress else None)
        front = json.loads((path.parent / "report.json").read_text()).get("static_front")
        # the last lines: where the model stands against the static networks on the same engine
        emit({"report": str(path), **({} if front is None else {"static_front": front["sentence"], "margin_pt": front["margin_pt"],
                                                                 "dominated_by": front["dominated_by"]})}, args.format)
        return 0


class Export:
    """The ``lcnas export`` sub-command; ``lcnas export --help`` shows its ``description`` and options."""

    name = "export"
    help = "export a checkpoint to TorchScript that keeps real control flow"
    description = (
        "Script a CIFAR (basic-block) checkpoint: gates decide per sample with real `if`s and kept-channel gathers, "
        "so skipped blocks and channels are not computed; outputs equal eager hard execution. Load it with "
        "torch.jit.load(PATH) without lcnas. Prints the max difference to eager on random inputs."
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Add ``lcnas export``'s arguments and options to ``p``."""
        p.add_argument("checkpoint", type=Path, help="an lcnas checkpoint (.pt)")
        p.add_argument("--out", type=Path, required=True, help="TorchScript file to write")
        p.add_argument("--replace", action="store_true", help="replace --out where it exists (else an error: nothing is overwritten)")
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
        """Run ``lcnas export`` with the parsed ``args``; returns the process exit status."""
        import torch

        from .._io import check_writable
        from ..checkpoint import load_model
        from ..errors import ConfigError
        from ..export import export_torchscript

        if args.out.exists() and args.out.resolve() == args.checkpoint.resolve():
            raise ConfigError("--out is the checkpoint itself: pick another file")
        if args.out.exists() and not args.replace:
            raise ConfigError(f"--out {str(args.out)!r} already exists: pick another file, or pass --replace to overwrite it")
        check_writable(args.out, what="--out")
        model = load_model(args.checkpoint)
        scripted = export_torchscript(model, args.out)
        x = torch.rand(4, 3, 32, 32)
        with torch.no_grad():
            eager = torch.cat([model(x[i : i + 1]) for i in range(4)])
            diff = float((scripted(x) - eager).abs().max())
        emit({"out": str(args.out), "max_abs_diff_vs_eager": diff}, args.format)
        return 0


def _names(value: str, option: str) -> tuple[str, ...]:
    """Comma-separated shipped static network names; an unknown one is an error naming the shipped ones."""
    from ..errors import ConfigError
    from ..report import shipped_static

    names = tuple(n.strip() for n in value.split(",") if n.strip())
    known = shipped_static()
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"{option}: {', '.join(unknown)} is not a shipped static network; shipped: {', '.join(known)}")
    return names

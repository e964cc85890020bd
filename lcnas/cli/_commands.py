"""The CLI verbs, each a small class: ``add_arguments`` and ``run``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..models._gates import POOLINGS
from ._args import int_list, integer, name_list
from ._format import add_format_argument, check_set, emit

__all__ = ["COMMANDS"]


class Train:
    """The ``lcnas train`` sub-command; ``lcnas train --help`` shows its ``description`` and options."""

    name = "train"
    help = "train a model from a study config (YAML)"
    description = (
        "Train a model. Settings come from --config (see studies/), then --set key=value overrides. "
        "A checkpoint is written atomically after every epoch to <out_dir>/<name>/last.pt; "
        "stop at any time and continue with --resume."
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Add ``lcnas train``'s arguments and options to ``p``."""
        p.add_argument("--config", "-c", help="training YAML, e.g. studies/resnet20_cifar10.yaml (defaults if omitted)")
        p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help="override a setting (repeatable), e.g. --set epochs=5")
        p.add_argument("--data-root", help="folder holding cifar-10-batches-py (else $LCNAS_DATA_ROOT, else ~/.cache/lcnas/data)")
        p.add_argument("--resume", action="store_true", help="continue the run from its last.pt")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
        """Run ``lcnas train`` with the parsed ``args``; returns the process exit status."""
        from ..train import load_train_config, train

        check_set(args.overrides)
        overrides = list(args.overrides or [])
        if args.data_root:
            overrides.append(f"data_root={args.data_root}")
        cfg = load_train_config(args.config, overrides)
        final = train(cfg, resume=args.resume, progress=False if args.no_progress else None)
        emit({"run_dir": str(cfg.run_dir), **final}, args.format)
        return 0


class Evaluate:
    """The ``lcnas evaluate`` sub-command; ``lcnas evaluate --help`` shows its ``description`` and options."""

    name = "evaluate"
    help = "evaluate a checkpoint on CIFAR-10 (test or validation split)"
    description = "Accuracy and loss of a checkpoint on the test split (default) or the validation split."

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Add ``lcnas evaluate``'s arguments and options to ``p``."""
        p.add_argument("checkpoint", type=Path, help="an lcnas checkpoint (.pt)")
        p.add_argument("--data-root", help="folder holding cifar-10-batches-py")
        p.add_argument("--split", choices=("test", "val"), default="test", help="which split (default: test)")
        p.add_argument("--dataset", default=None, help="dataset (default: the one the checkpoint was trained on)")
        p.add_argument("--batch-size", type=integer(1), default=500, help="images per forward pass (default: 500)")
        p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
        """Run ``lcnas evaluate`` with the parsed ``args``; returns the process exit status."""
        from ..checkpoint import model_from_checkpoint, read_checkpoint
        from ..data import load_splits
        from ..train import evaluate, resolve_device

        ckpt = read_checkpoint(args.checkpoint)
        cfg = ckpt.get("config", {})
        device = resolve_device(args.device)
        model = model_from_checkpoint(ckpt, source=str(args.checkpoint)).to(device)
        splits = load_splits(args.dataset or cfg.get("dataset", "cifar10"), data_root=args.data_root or cfg.get("data_root"),
                             val_size=cfg.get("val_size", 5000), split_seed=cfg.get("split_seed", 0))
        data = splits.test if args.split == "test" else splits.val
        if data is None:
            from ..errors import ConfigError

            raise ConfigError(f"{args.checkpoint} was trained without a validation split (val_size=0); use --split test")
        result = evaluate(model, data, batch_size=args.batch_size, device=device)
        emit({"checkpoint": str(args.checkpoint), "model": ckpt["model"]["name"], "split": args.split, **result}, args.format)
        return 0


class Models:
    """The ``lcnas models`` sub-command; ``lcnas models --help`` shows its ``description`` and options."""

    name = "models"
    help = "list registered models"
    description = ("List the registered backbones (shell-style pattern filter); with --pretrained, the weights shipped "
                   "with lcnas (static ResNets and trained LC-Nets), each loadable by name with lcnas.load_model.")

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Add ``lcnas models``'s arguments and options to ``p``."""
        p.add_argument("pattern", nargs="?", default="*", help="e.g. 'resnet*' or 'lcnet-*'")
        p.add_argument("--pretrained", action="store_true",
                       help="list the shipped weights (static and LC-Nets) with their test accuracy instead of the backbones")
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
        """Run ``lcnas models`` with the parsed ``args``; returns the process exit status."""
        from ..models import list_models, model_info
        from ..pretrained import list_pretrained, pretrained_manifest

        if args.pretrained:
            emit([{"name": r.name, "model": r.model, "gating": r.gating, "dataset": r.dataset,
                   "test_accuracy": r.test_accuracy} for r in list_pretrained(args.pattern)], args.format)
            return 0
        shipped = pretrained_manifest()
        rows = []
        for name in list_models(args.pattern):
            info = model_info(name)
            rows.append({"name": name, "dataset": info.dataset, "input_size": "x".join(map(str, info.input_size)),
                         "num_classes": info.num_classes, "pretrained": name in shipped})
        emit(rows, args.format)
        return 0


class Profile:
    """The ``lcnas profile`` sub-command; ``lcnas profile --help`` shows its ``description`` and options."""

    name = "profile"
    help = "measure a latency lookup table for a model on this device"
    description = (
        "Measure every unit a dynamic model can execute (stem, head, each block at every kept-channel count, "
        "skipped blocks, the gates, batch gather/scatter) and write a latency table (JSON). An existing table "
        "of the same device is extended, never silently overwritten."
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Add ``lcnas profile``'s arguments and options to ``p``."""
        p.add_argument("--model", required=True, help="a registered model, e.g. resnet32")
        p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
        p.add_argument("--threads", type=integer(1), default=None, help="torch threads (default: all cores)")
        p.add_argument("--batch", type=int_list(1, "1,64"), default=(1,), help="comma-separated batch sizes, e.g. 1,64 (default: 1)")
        p.add_argument("--group-size", type=integer(1), default=4, help="channel group size; kept counts are its multiples")
        p.add_argument("--hidden", type=int_list(0, "0,16"), default=(0, 16),
                       help="gate hidden widths to measure, e.g. 0,16 (default; 0: a linear gate)")
        p.add_argument("--pooling", type=name_list(POOLINGS), default=("avg",),
                       help="gate poolings to measure, comma-separated: avg, max, avgmax (default: avg)")
        p.add_argument("--warmup", type=integer(0), default=10, help="untimed calls before each unit is timed (default: 10)")
        p.add_argument("--repeats", type=integer(1), default=30, help="timed calls per unit, their median kept (default: 30)")
        p.add_argument("--sweeps", type=integer(1), default=3,
                       help="complete sweeps over the units, each entry the median of its sweeps: a slow stretch of the host "
                            "lands on one sweep and moves no entry (default: 3)")
        p.add_argument("--out", type=Path, required=True, help="table file (latency_models/<device>.json)")
        p.add_argument("--calibration-executions", type=integer(0), default=96,
                       help="random end-to-end executions at batch 1 the calibration line is fitted on (a third of it at larger batches; 0: none)")
        p.add_argument("--replace", action="store_true", help="replace entries the file already holds for the same keys")
        p.add_argument("--calibrate-only", action="store_true",
                       help="keep the entries of --out and only fit its calibration for --model and --batch anew (seconds; "
                            "for a machine whose state moved since the table was made)")
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
        """Run ``lcnas profile`` with the parsed ``args``; returns the process exit status."""
        import sys

        from .._io import check_writable
        from ..latency import LatencyTable, LatencyTableError, profile_model
        from ..models import model_info

        model_info(args.model)  # unknown model: one clear error before measuring anything
        check_writable(args.out, what="--out")  # and a place to put the table
        existing = LatencyTable.load(args.out) if args.out.exists() else None
        if args.calibrate_only:
            from ..latency import recalibrate

            if existing is None:
                raise LatencyTableError(f"--calibrate-only needs an existing table at {args.out}; make one first without it")
            batches = args.batch
            missing = [b for b in batches if b not in existing.batches(args.model)]
            if missing:
                raise LatencyTableError(f"{args.out} has no {args.model} entries at batch {missing[0]}; profile them first")
            table = recalibrate(existing, args.model, batches=batches, executions=args.calibration_executions,
                                threads=args.threads or int(existing.device["threads"]), device=args.device)
            table.save(args.out)
            emit({"out": str(args.out), "model": args.model, "calibration": [c.to_dict() for c in table.calibration if c.model == args.model]},
                 args.format)
            return 0
        table = profile_model(args.model, batches=args.batch, group_size=args.group_size,
                              hiddens=args.hidden, poolings=args.pooling,
                              device=args.device, threads=args.threads, warmup=args.warmup, repeats=args.repeats,
                              calibration_executions=args.calibration_executions, sweeps=args.sweeps, argv=["lcnas", *sys.argv[1:]])
        if existing is not None:
            clash = {e.key for e in existing.entries} & {e.key for e in table.entries}
            if clash and not args.replace:
                raise LatencyTableError(f"{args.out} already holds {len(clash)} of these entries (e.g. {sorted(clash)[0]}); "
                                        "pass --replace to re-measure them")
            table = existing.merged(table)
        table.save(args.out)
        emit({"out": str(args.out), "model": args.model, "entries": len(table.entries), "device": table.device["name"],
              "threads": table.device["threads"]}, args.format)
        return 0


class Latency:
    """The ``lcnas latency`` sub-command; ``lcnas latency --help`` shows its ``description`` and options."""

    name = "latency"
    help = "predicted vs measured latency of a trained model on real images"
    description = (
        "Run a gated checkpoint on real CIFAR-10 test images at batch 1 and compare measured latency with the table's prediction, "
        "twice: in milliseconds, and relative to the same model's static network (every block at full width, no gates) timed in "
        "pairs with it. Quote the relative figure where executions are compared or ranked: a shared host's speed drifts by tens of "
        "percent between hours and the ratio cancels it. For milliseconds on this machine now, pass --probe."
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        """Add ``lcnas latency``'s arguments and options to ``p``."""
        p.add_argument("checkpoint", type=Path)
        p.add_argument("--lut", required=True, help="latency table (path or shipped name)")
        p.add_argument("--data-root", help="folder holding cifar-10-batches-py")
        p.add_argument("--images", type=integer(1), default=200, help="test images to run (default: 200)")
        p.add_argument("--repeats", type=integer(1), default=10,
                       help="timed rounds per image (images interleaved; each timed call paired with one of the static network; medians)")
        p.add_argument("--threads", type=integer(1), default=None, help="torch threads (default: the table's, so the two compare)")
        p.add_argument("--probe", action="store_true",
                       help="first time a dozen random executions and rescale the table to this machine's current speed")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar of the timed rounds")
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
        """Run ``lcnas latency`` with the parsed ``args``; returns the process exit status."""
        import statistics
        import sys

        import torch
        from tqdm.auto import tqdm

        from .. import load_model
        from ..data import load_cifar10
        from ..errors import ConfigError
        from ..latency import LatencyTable, measure_paired, relative_latency, sample_latency_ms, speed_factor
        from ..models import ForcedDecisions

        model = load_model(args.checkpoint)
        if getattr(model, "gating", "none") == "none":
            raise ConfigError(f"{args.checkpoint} is a static model; latency prediction needs a gated (layer/channel/lc) checkpoint")
        table = LatencyTable.load(args.lut)
        torch.set_num_threads(args.threads or int(table.device["threads"]))
        images = load_cifar10(args.data_root, train=False).images[: args.images].float().div(255)
        speed = speed_factor(model, table) if args.probe else 1.0
        predicted, relative = [], []
        static = ForcedDecisions(block_run=torch.ones(1, len(model.blocks()), dtype=torch.bool))  # type: ignore[operator]

        def run_static():
            with model.forced(static):
                model(images[:1])
        with torch.no_grad():
            for i in range(images.shape[0]):
                model(images[i : i + 1])
                predicted.append(float(sample_latency_ms(model, table, speed=speed)[0]))
                relative.append(float(relative_latency(model, table)[0]))
            with tqdm(total=args.repeats, desc=f"timing {images.shape[0]} images paired with the static network", unit="round",
                      leave=False, file=sys.stderr, disable=True if args.no_progress else None, dynamic_ncols=True) as bar:
                measured, ratios = measure_paired(images.shape[0], lambda i: model(images[i : i + 1]), run_static, rounds=args.repeats,
                                                  after_round=bar.update)
        errors = [p / m - 1 for p, m in zip(predicted, measured, strict=True)]
        rel_errors = [p / m - 1 for p, m in zip(relative, ratios, strict=True)]
        q = lambda v: statistics.quantiles(v, n=20)[-1] if len(v) > 1 else v[0]  # noqa: E731
        emit({"checkpoint": str(args.checkpoint), "images": len(measured), "threads": torch.get_num_threads(), "speed_factor": speed,
              "predicted_ms_mean": statistics.fmean(predicted), "predicted_ms_p95": q(predicted),
              "measured_ms_mean": statistics.fmean(measured), "measured_ms_p95": q(measured),
              "mape": statistics.fmean(abs(e) for e in errors), "within_10pct": sum(abs(e) <= 0.1 for e in errors) / len(errors),
              "predicted_relative_mean": statistics.fmean(relative), "measured_relative_mean": statistics.fmean(ratios),
              "relative_mape": statistics.fmean(abs(e) for e in rel_errors),
              "relative_within_10pct": sum(abs(e) <= 0.1 for e in rel_errors) / len(rel_errors)},
             args.format)
        return 0


from ._search import Export, Report, Retrain, Search  # noqa: E402

COMMANDS = (Train(), Evaluate(), Models(), Profile(), Latency(), Search(), Retrain(), Report(), Export())

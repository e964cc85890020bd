"""The CLI verbs, each a small class: ``add_arguments`` and ``run``."""

from __future__ import annotations

import argparse
from pathlib import Path

from ._format import add_format_argument, emit

__all__ = ["COMMANDS"]


class Train:
    name = "train"
    help = "train a model from a study config (YAML)"
    description = (
        "Train a model. Settings come from --config (see studies/), then --set key=value overrides. "
        "A checkpoint is written atomically after every epoch to <out_dir>/<name>/last.pt; "
        "stop at any time and continue with --resume."
    )

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", "-c", help="training YAML, e.g. studies/resnet20_cifar10.yaml (defaults if omitted)")
        p.add_argument("--set", dest="overrides", action="append", metavar="KEY=VALUE", help="override a setting (repeatable), e.g. --set epochs=5")
        p.add_argument("--data-root", help="folder holding cifar-10-batches-py (else $LCNAS_DATA_ROOT, else ~/.cache/lcnas/data)")
        p.add_argument("--resume", action="store_true", help="continue the run from its last.pt")
        p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
        from ..train import load_train_config, train

        overrides = list(args.overrides or [])
        if args.data_root:
            overrides.append(f"data_root={args.data_root}")
        cfg = load_train_config(args.config, overrides)
        final = train(cfg, resume=args.resume, progress=False if args.no_progress else None)
        emit({"run_dir": str(cfg.run_dir), **final}, args.format)
        return 0


class Evaluate:
    name = "evaluate"
    help = "evaluate a checkpoint on CIFAR-10 (test or validation split)"
    description = "Accuracy and loss of a checkpoint on the test split (default) or the validation split."

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("checkpoint", type=Path, help="an lcnas checkpoint (.pt)")
        p.add_argument("--data-root", help="folder holding cifar-10-batches-py")
        p.add_argument("--split", choices=("test", "val"), default="test", help="which split (default: test)")
        p.add_argument("--dataset", default=None, help="dataset (default: the one the checkpoint was trained on)")
        p.add_argument("--batch-size", type=int, default=500)
        p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
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
    name = "models"
    help = "list registered models"
    description = "List the registered backbones (shell-style pattern filter)."

    def add_arguments(self, p: argparse.ArgumentParser) -> None:
        p.add_argument("pattern", nargs="?", default="*", help="e.g. 'resnet*'")
        add_format_argument(p)

    def run(self, args: argparse.Namespace) -> int:
        from ..models import list_models, model_info
        from ..pretrained import pretrained_manifest

        shipped = pretrained_manifest()
        rows = []
        for name in list_models(args.pattern):
            info = model_info(name)
            rows.append({"name": name, "dataset": info.dataset, "input_size": "x".join(map(str, info.input_size)),
                         "num_classes": info.num_classes, "pretrained": name in shipped})
        emit(rows, args.format)
        return 0


COMMANDS = (Train(), Evaluate(), Models())

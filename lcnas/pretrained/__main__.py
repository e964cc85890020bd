"""Publish a finished training run as shipped weights: ``python -m lcnas.pretrained RUN_DIR``.

Copies the run's ``final.pt`` (weights, config and metrics only) into this folder as
``<model>_<dataset>.pt`` and records sha256, the exact command, epochs, wall time and test
accuracy in ``manifest.json``. An existing entry is replaced only with ``--replace``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

from .._checkpoint_file import read_checkpoint
from .._io import write_json
from . import PRETRAINED_DIR, pretrained_manifest


def main(argv: list[str] | None = None) -> int:
    """Publish the run folder named in ``argv`` (see the module docstring); returns the exit status."""
    ap = argparse.ArgumentParser(prog="python -m lcnas.pretrained", description=__doc__.split("\n")[0])
    ap.add_argument("run_dir", type=Path, help="a finished run folder (holds final.pt and metrics.json)")
    ap.add_argument("--command", required=True, help="the exact command that produced the run (recorded in the manifest)")
    ap.add_argument("--replace", action="store_true", help="replace an existing manifest entry for this model")
    ap.add_argument("--name", help="manifest entry (default: the model name; required for gated models, "
                                   "e.g. lcnet-resnet32-cifar10, then lcnas.load_model(NAME) loads it)")
    args = ap.parse_args(argv)

    ckpt = read_checkpoint(args.run_dir / "final.pt")
    metrics = json.loads((args.run_dir / "metrics.json").read_text())
    model_name, dataset = ckpt["model"]["name"], ckpt["config"].get("dataset", "cifar10")
    gating = ckpt["model"].get("gating", "none")
    name = args.name or model_name
    if gating != "none" and name == model_name:
        print(f"error: {args.run_dir} is a gated ({gating}) {model_name}; the entry {model_name!r} is the static backbone that "
              "create_model(..., pretrained=True) loads: pass --name, e.g. --name lcnet-" + model_name, file=sys.stderr)
        return 2
    if gating == "none" and name != model_name:
        print(f"error: a static model is shipped under its model name ({model_name!r}), not {name!r}", file=sys.stderr)
        return 2
    manifest = pretrained_manifest()
    if name in manifest and not args.replace:
        print(f"error: {name!r} is already shipped ({manifest[name]['file']}); pass --replace to replace it", file=sys.stderr)
        return 2
    target = PRETRAINED_DIR / (f"{name}_{dataset}.pt" if gating == "none" else f"{name}.pt")
    shutil.copyfile(args.run_dir / "final.pt", target)
    final = metrics["final"]
    manifest[name] = {
        "file": target.name,
        "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
        "size_bytes": target.stat().st_size,
        "dataset": dataset,
        "command": args.command,
        "epochs": final["epochs"],
        "train_wall_time_s": round(final["train_time_s"], 1),
        "test_accuracy": round(final["test_accuracy"], 2),
        "val_accuracy": None if final.get("val_accuracy") is None else round(final["val_accuracy"], 2),
        "train_images": 50000 - ckpt["config"].get("val_size", 0),
        "config": ckpt["config"],
        "throughput_images_per_s_median": round(sorted(r["images_per_s"] for r in metrics["epochs"])[len(metrics["epochs"]) // 2], 1),
    }
    if gating != "none":
        manifest[name].update(model=model_name, gating=gating,
                              test_mflops_mean=round(final["test_mflops_mean"], 2), test_mflops_p95=round(final["test_mflops_p95"], 2))
    write_json(PRETRAINED_DIR / "manifest.json", manifest)
    print(f"published {target} ({manifest[name]['test_accuracy']} % test accuracy)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

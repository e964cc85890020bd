"""Training throughput: lcnas's in-memory pipeline vs the bare model step vs torchvision's DataLoader.

    python benchmarks/pipeline.py --data-root ../shared/data/cifar10 --out benchmarks/results/pipeline_cpu.json

Every mode runs the same full training step (forward, loss, backward, SGD) of the same model;
they differ only in where batches come from:
  bare         one pre-loaded batch, already float and on the device (no data work at all)
  lcnas        lcnas.data.BatchLoader: shuffled uint8 in memory, batched crop/flip, float per batch
  torchvision  torchvision.datasets.CIFAR10 + PIL RandomCrop/RandomHorizontalFlip/ToTensor + DataLoader
Modes are interleaved round by round so drift in machine load hits them alike; figures are medians
over rounds and the overhead ratios are medians of per-round ratios.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import statistics
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import write_json  # noqa: E402

from lcnas import create_model, environment_metadata  # noqa: E402
from lcnas.data import BatchLoader, find_cifar10, load_cifar10  # noqa: E402
from lcnas.latency import call_ms  # noqa: E402


def torchvision_loader(root: Path, batch_size: int, workers: int):
    from torchvision import datasets, transforms

    class LocalCIFAR10(datasets.CIFAR10):
        # The shared copy has other `filenames` inside the pickles, so torchvision's per-file MD5
        # check refuses it; the pixels and labels are the official ones.
        def _check_integrity(self) -> bool:
            return True

    tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor()])
    ds = LocalCIFAR10(str(root), train=True, transform=tf, download=False)
    return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=workers, drop_last=True,
                                       persistent_workers=workers > 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--model", default="resnet20")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=25, help="training steps per measurement")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--amp", choices=("none", "bf16"), default="bf16")
    ap.add_argument("--workers", default="0,2", help="torchvision DataLoader worker counts to measure")
    ap.add_argument("--out", default="benchmarks/results/pipeline_cpu.json")
    args = ap.parse_args()

    torch.manual_seed(0)
    folder = find_cifar10(args.data_root, download=False)
    data = load_cifar10(args.data_root, train=True, download=False)
    model = create_model(args.model).to(memory_format=torch.channels_last).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if args.amp == "bf16" else contextlib.nullcontext()
        with ctx:
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    bare_x = data.images[: args.batch_size].float().div(255).contiguous(memory_format=torch.channels_last)
    bare_y = data.labels[: args.batch_size]
    lcnas_loader = BatchLoader(data, batch_size=args.batch_size, shuffle=True, augment=True, drop_last=True, channels_last=True)
    worker_counts = [int(w) for w in args.workers.split(",") if w != ""]
    tv_loaders = {w: torchvision_loader(folder.parent, args.batch_size, w) for w in worker_counts}

    def batches(mode: str):
        if mode == "bare":
            return itertools.repeat((bare_x, bare_y))
        if mode == "lcnas":
            lcnas_loader.set_epoch(lcnas_loader.epoch + 1)
            return iter(lcnas_loader)
        loader = tv_loaders[int(mode.split("_w")[1])]
        return ((x.contiguous(memory_format=torch.channels_last), y) for x, y in loader)

    def measure(mode: str, *, train_step: bool) -> float:
        it = batches(mode)
        x, y = next(it)  # first batch outside the clock (worker start-up, shuffling)
        if train_step:
            step(x, y)
        def steps() -> None:
            for _ in range(args.steps):
                x, y = next(it)
                if train_step:
                    step(x, y)
        return args.steps * args.batch_size / (call_ms(steps) / 1e3)

    modes = ["bare", "lcnas"] + [f"torchvision_w{w}" for w in worker_counts]
    measure("bare", train_step=True)  # warm-up: oneDNN kernel selection
    per_round: dict[str, list[float]] = {m: [] for m in modes}
    data_only: dict[str, list[float]] = {m: [] for m in modes if m != "bare"}
    for r in range(args.rounds):
        for m in modes:
            per_round[m].append(measure(m, train_step=True))
        for m in data_only:
            data_only[m].append(measure(m, train_step=False))
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(f"{m} {per_round[m][-1]:.0f} img/s" for m in modes), file=sys.stderr)

    med = {m: statistics.median(v) for m, v in per_round.items()}
    overhead = {m: statistics.median(1 - a / b for a, b in zip(per_round[m], per_round["bare"])) for m in modes if m != "bare"}
    speedup_vs_tv = {f"lcnas_vs_{m}": statistics.median(a / b for a, b in zip(per_round["lcnas"], per_round[m]))
                     for m in modes if m.startswith("torchvision")}
    result = {
        "benchmark": "pipeline",
        "settings": {"model": args.model, "batch_size": args.batch_size, "steps_per_measurement": args.steps,
                     "rounds": args.rounds, "amp": args.amp, "channels_last": True, "dataset": "cifar10 train (50k)"},
        "train_images_per_s_median": med,
        "train_images_per_s_rounds": per_round,
        "data_only_images_per_s_median": {m: statistics.median(v) for m, v in data_only.items()},
        "overhead_vs_bare_median": overhead,
        "goal_lcnas_overhead_max": 0.05,
        "goal_met": overhead["lcnas"] <= 0.05,
        **speedup_vs_tv,
        "environment": environment_metadata(),
    }
    write_json(args.out, result)
    print(f"bare {med['bare']:.0f} img/s | lcnas {med['lcnas']:.0f} img/s (overhead {100 * overhead['lcnas']:.1f} %) | "
          + " | ".join(f"{m} {med[m]:.0f} img/s (overhead {100 * overhead[m]:.1f} %)" for m in modes if m.startswith("torchvision")))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

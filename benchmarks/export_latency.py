"""Batch-1 latency of exported TorchScript vs eager hard execution, same checkpoints, same images.

    python benchmarks/export_latency.py runs/lc32_t35/final.pt runs/lc32_t45/final.pt --data-root ../shared/data/cifar10

Per checkpoint: the max output difference on the timed images, and the median batch-1 latency of
eager hard execution and of the TorchScript module, interleaved image by image.
"""

from __future__ import annotations

import argparse
import warnings

import torch

from _common import median, write_json

from lcnas import environment_metadata, load_model
from lcnas.data import load_cifar10
from lcnas.export import export_torchscript
from lcnas.latency import call_ms


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--out", default="benchmarks/results/export_latency_cpu.json")
    args = ap.parse_args()
    warnings.simplefilter("ignore", FutureWarning)
    torch.set_grad_enabled(False)
    images = load_cifar10(args.data_root, train=False, download=False).images[: args.images].float().div(255)
    rows = []
    for path in args.checkpoints:
        eager = load_model(path)
        scripted = export_torchscript(eager)
        diff = max(float((scripted(images[i : i + 1]) - eager(images[i : i + 1])).abs().max()) for i in range(20))
        for _ in range(10):
            eager(images[:1])
            scripted(images[:1])
        t_eager, t_script = [], []
        for i in range(images.shape[0]):
            x = images[i : i + 1]
            t_eager.append(call_ms(lambda: eager(x)))
            t_script.append(call_ms(lambda: scripted(x)))
        rows.append({"checkpoint": path, "max_abs_diff": diff, "eager_bs1_ms_median": median(t_eager),
                     "torchscript_bs1_ms_median": median(t_script), "torchscript_over_eager": median(t_script) / median(t_eager)})
        print(rows[-1])
    write_json(args.out, {"benchmark": "export_latency", "images": int(images.shape[0]), "rows": rows, "environment": environment_metadata()})


if __name__ == "__main__":
    main()

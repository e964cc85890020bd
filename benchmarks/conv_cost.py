"""What a kept-channel count costs: batch-1 time of a CIFAR basic block's two 3×3 convs vs kept channels.

    python benchmarks/conv_cost.py --out benchmarks/results/conv_cost_cpu.json

A Channel-Net that keeps k of a block's C inner channels runs conv1 with k output channels
(C → k) and conv2 with k input channels (k → C): k/C of the FLOPs of each. This measures, per
CIFAR stage, how much of the full convs' time they take, through the same call the hard executor
makes (``F.conv2d``, BN-folded bias, channels-last). It is what bounds the channel-skip
efficiency in benchmarks/skip_speed.py: at batch 1, PyTorch's CPU convolution for these shapes is
im2col + GEMM, and the im2col of conv1's input does not shrink with its output channels.
Rounds interleave every configuration; figures are medians of per-round ratios to the full conv.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from _common import median, median_time_s, ratio_median

from lcnas._env import environment_metadata
from lcnas._io import write_json

STAGES = ((16, 32), (32, 16), (64, 8))  # (width, feature-map side) of CIFAR ResNet stages 1-3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--step", type=int, default=4, help="kept-channel step (the channel group size)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--calls", type=int, default=60)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--out", default="benchmarks/results/conv_cost_cpu.json")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    gen = torch.Generator().manual_seed(0)
    cl = torch.channels_last

    def conv(cin: int, cout: int, side: int):
        x = torch.rand(1, cin, side, side, generator=gen).contiguous(memory_format=cl)
        w = torch.rand(cout, cin, 3, 3, generator=gen).contiguous(memory_format=cl)
        b = torch.rand(cout, generator=gen)
        return lambda: F.conv2d(x, w, b, 1, 1)

    configs = {}
    for width, side in STAGES:
        for k in range(args.step, width + 1, args.step):
            configs[(width, "conv1", k)] = conv(width, k, side)
            configs[(width, "conv2", k)] = conv(k, width, side)
    times = {key: [] for key in configs}
    for fn in configs.values():
        for _ in range(10):
            fn()
    for _ in range(args.rounds):
        for key, fn in configs.items():
            times[key].append(median_time_s(fn, args.calls) * 1e6)
    stages = []
    for width, side in STAGES:
        full1, full2 = times[(width, "conv1", width)], times[(width, "conv2", width)]
        rows = []
        for k in range(args.step, width + 1, args.step):
            t1, t2 = times[(width, "conv1", k)], times[(width, "conv2", k)]
            block = [a + b for a, b in zip(t1, t2)]
            rows.append({"kept": k, "flops_fraction": k / width,
                         "conv1_us": median(t1), "conv2_us": median(t2),
                         "conv1_time_fraction": ratio_median(t1, full1), "conv2_time_fraction": ratio_median(t2, full2),
                         "block_time_fraction": ratio_median(block, [a + b for a, b in zip(full1, full2)])})
        stages.append({"width": width, "side": side, "kept": rows})
        print(f"stage width {width} ({side}×{side}): full convs {median(full1):.1f} + {median(full2):.1f} µs", flush=True)
        for r in rows:
            print(f"  keep {r['kept']:2d}/{width} (FLOPs {r['flops_fraction']:.2f}): conv1 {r['conv1_time_fraction']:.2f}  "
                  f"conv2 {r['conv2_time_fraction']:.2f}  both {r['block_time_fraction']:.2f} of the full time", flush=True)
    write_json(args.out, {"benchmark": "conv_cost", "settings": vars(args), "threads": torch.get_num_threads(), "stages": stages,
                          "environment": environment_metadata()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

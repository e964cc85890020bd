"""What a kept-channel count costs: batch-1 time of a CIFAR basic block's two 3×3 convs vs kept channels.

    python benchmarks/conv_cost.py --threads 1 --rounds 15 --calls 100 --out benchmarks/results/conv_cost_cpu_1t.json

A Channel-Net that keeps k of a block's C inner channels runs conv1 with k output channels
(C → k) and conv2 with k input channels (k → C): k/C of the FLOPs of each. This measures, per
CIFAR stage, how much of the full convs' time they take, with the calls the hard executor makes
at batch 1, for both of its kernels:
  pytorch  ``F.conv2d`` (BN-folded bias, channels-last) then ReLU / shortcut add + ReLU. For these
           shapes PyTorch's CPU convolution is im2col + GEMM, and the im2col of conv1's input does
           not shrink with its output channels.
  native   lcnas's direct convolution (lcnas/engine/_native_conv.cpp), epilogue fused; kept widths
           padded as the network engine runs them (``lcnas.engine.kept_width``: multiples of 4, past 12
           of 8).
Rounds interleave every configuration; figures are medians of per-round ratios to the same
kernel's full convs, and of the native kernel's time to PyTorch's.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from _common import median, median_time_s, ratio_median, write_json

from lcnas import environment_metadata
from lcnas.engine import kept_width, native, native_status

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

    nat = native()
    if nat is None:
        raise SystemExit(f"conv_cost compares PyTorch's convs with lcnas's native kernel: {native_status()}")

    def pytorch(cin: int, cout: int, side: int, residual: bool):
        x = torch.rand(1, cin, side, side, generator=gen).contiguous(memory_format=cl)
        w = torch.rand(cout, cin, 3, 3, generator=gen).contiguous(memory_format=cl)
        b = torch.rand(cout, generator=gen)
        if residual:
            r = torch.rand(1, cout, side, side, generator=gen).contiguous(memory_format=cl)
            return lambda: F.conv2d(x, w, b, 1, 1).add_(r).relu_()
        return lambda: F.conv2d(x, w, b, 1, 1).relu_()

    def native_conv(cin: int, cout: int, side: int, residual: bool):
        # As the engine runs a kept set: conv1 computes kept_width(k) outputs (the extra ones zero)
        # and conv2 reads all of them
        cin_p = kept_width(cin) if residual else cin
        x = torch.rand(1, cin_p, side, side, generator=gen).contiguous(memory_format=cl)
        c = nat.pack(torch.rand(cout, cin, 3, 3, generator=gen), torch.rand(cout, generator=gen), 1, 1, in_channels=cin_p,
                     width=None if residual else kept_width(cout))
        if residual:
            r = torch.rand(1, cout, side, side, generator=gen).contiguous(memory_format=cl)
            return lambda: nat(x, c, residual=r, relu=True)
        return lambda: nat(x, c, relu=True)

    kernels = {"pytorch": pytorch, "native": native_conv}
    configs = {}
    for width, side in STAGES:
        for k in range(args.step, width + 1, args.step):
            for name, make in kernels.items():
                configs[(name, width, "conv1", k)] = make(width, k, side, False)
                configs[(name, width, "conv2", k)] = make(k, width, side, True)
    times = {key: [] for key in configs}
    for fn in configs.values():
        for _ in range(10):
            fn()
    for _ in range(args.rounds):
        for key, fn in configs.items():
            times[key].append(median_time_s(fn, args.calls) * 1e6)

    def both(name, width, k):
        return [a + b for a, b in zip(times[(name, width, "conv1", k)], times[(name, width, "conv2", k)])]

    stages = []
    for width, side in STAGES:
        rows = []
        for k in range(args.step, width + 1, args.step):
            row = {"kept": k, "flops_fraction": k / width}
            for name in kernels:
                t1, t2 = times[(name, width, "conv1", k)], times[(name, width, "conv2", k)]
                full1, full2 = times[(name, width, "conv1", width)], times[(name, width, "conv2", width)]
                row[name] = {"conv1_us": median(t1), "conv2_us": median(t2),
                             "conv1_time_fraction": ratio_median(t1, full1), "conv2_time_fraction": ratio_median(t2, full2),
                             "block_time_fraction": ratio_median(both(name, width, k), both(name, width, width))}
            row["native_time_vs_pytorch"] = ratio_median(both("native", width, k), both("pytorch", width, k))
            rows.append(row)
        stages.append({"width": width, "side": side, "kept": rows})
        print(f"stage width {width} ({side}×{side}): full convs, pytorch {median(both('pytorch', width, width)):.1f} µs, "
              f"native {median(both('native', width, width)):.1f} µs", flush=True)
        for r in rows:
            print(f"  keep {r['kept']:2d}/{width} (FLOPs {r['flops_fraction']:.2f}): both convs "
                  f"pytorch {r['pytorch']['block_time_fraction']:.2f}, native {r['native']['block_time_fraction']:.2f} "
                  f"of the full time; native/pytorch {r['native_time_vs_pytorch']:.2f}", flush=True)
    write_json(args.out, {"benchmark": "conv_cost", "settings": vars(args), "threads": torch.get_num_threads(), "stages": stages,
                          "native_kernel": native_status(),
                          "environment": environment_metadata()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

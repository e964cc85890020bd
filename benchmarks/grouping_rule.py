"""Measures the per-group overhead behind lcnas's batch rule (grouping vs union of channels).

    python benchmarks/grouping_rule.py --out benchmarks/results/grouping_rule_cpu.json

For each CIFAR ResNet stage shape, times one BN-folded residual branch on n samples at k kept
channels (n in 1..64, k in 25/50/75/100 % of the width), including the gather and scatter a group
needs, and fits  time = overhead + seconds_per_mflop × MFLOPs  by least squares. The overhead in
MFLOP-equivalents (overhead / seconds_per_mflop) is what `lcnas.cost.GROUP_OVERHEAD_MFLOPS`
encodes. It then replays mixed batches (several channel sets per batch),
times both strategies head to head and reports how often the rule picked the faster one.
"""

from __future__ import annotations

import argparse
import statistics

import torch
import torch.nn.functional as F
from _common import median_time_s, write_json

from lcnas import cost as rule  # the grouping rule and the FLOP formula the engine uses
from lcnas import environment_metadata

CL = torch.channels_last
STAGES = [(16, 32), (32, 16), (64, 8)]  # (width, spatial size) of CIFAR ResNet stages


def residual_time_s(width: int, hw: int, n: int, k: int, calls: int, full_n: int = 64) -> float:
    x = torch.rand(full_n, width, hw, hw).contiguous(memory_format=CL)
    w1 = torch.rand(k, width, 3, 3).contiguous(memory_format=CL)
    w2 = torch.rand(width, k, 3, 3).contiguous(memory_format=CL)
    b1, b2 = torch.rand(k), torch.rand(width)
    idx = torch.randperm(full_n)[:n]
    out = torch.empty_like(x)

    def group():
        xs = x[idx]
        h = F.conv2d(xs, w1, b1, 1, 1).relu_()
        out[idx] = F.conv2d(h, w2, b2, 1, 1)
    return median_time_s(group, calls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=7)
    ap.add_argument("--out", default="benchmarks/results/grouping_rule_cpu.json")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    points, fits = [], {}
    for width, hw in STAGES:
        xs, ys = [], []
        per_channel = rule.residual_mflops_per_channel(width, width, hw * hw)
        for n in (1, 4, 16, 32, 64):
            for frac in (0.25, 0.5, 0.75, 1.0):
                k = max(1, int(width * frac))
                t = residual_time_s(width, hw, n, k, args.calls)
                mflops = n * k * per_channel
                xs.append(mflops)
                ys.append(t)
                points.append({"width": width, "hw": hw, "n": n, "k": k, "mflops": mflops, "time_ms": t * 1e3})
        mx, my = statistics.fmean(xs), statistics.fmean(ys)
        slope = sum((a - mx) * (b - my) for a, b in zip(xs, ys, strict=True)) / sum((a - mx) ** 2 for a in xs)
        overhead = my - slope * mx
        fits[f"w{width}_hw{hw}"] = {"overhead_ms": overhead * 1e3, "ms_per_mflop": slope * 1e3,
                                    "overhead_mflops_equivalent": overhead / slope}
        print(f"width {width} @ {hw}x{hw}: overhead {overhead * 1e6:.0f} µs = {overhead / slope:.2f} MFLOPs of conv work")

    # Head to head: mixed batches, grouping vs union, and what the rule picks.
    gen = torch.Generator().manual_seed(0)
    correct, trials = 0, []
    for width, hw in STAGES:
        g = 4
        groups = width // g
        for sets in (2, 4, 8):
            for drop in (0.25, 0.5, 0.75):
                pool = torch.ones(sets, groups, dtype=torch.bool)
                for s in range(sets):
                    pool[s, torch.randperm(groups, generator=gen)[: int(drop * groups)]] = False
                keep = pool[torch.randint(0, sets, (64,), generator=gen)]
                uniq, inverse = torch.unique(keep, dim=0, return_inverse=True)
                counts = torch.bincount(inverse).tolist()
                t_group = sum(residual_time_s(width, hw, c, int(uniq[s].sum()) * g, args.calls) for s, c in enumerate(counts))
                t_union = residual_time_s(width, hw, 64, int(keep.any(0).sum()) * g, args.calls)
                per_channel = rule.residual_mflops_per_channel(width, width, hw * hw)
                picks_group = uniq.shape[0] > 1 and rule.grouping_is_cheaper(per_channel, g, keep, uniq, inverse)
                right = picks_group == (t_group < t_union)
                correct += right
                trials.append({"width": width, "sets": int(uniq.shape[0]), "drop": drop, "group_ms": t_group * 1e3,
                               "union_ms": t_union * 1e3, "rule_picks": "group" if picks_group else "union", "rule_right": bool(right)})
    print(f"rule picked the faster strategy in {correct}/{len(trials)} mixed batches "
          f"(GROUP_OVERHEAD_MFLOPS = {rule.GROUP_OVERHEAD_MFLOPS})")
    write_json(args.out, {"benchmark": "grouping_rule", "group_overhead_mflops_in_code": rule.GROUP_OVERHEAD_MFLOPS,
                          "fits": fits, "points": points, "head_to_head": trials,
                          "rule_accuracy": correct / len(trials), "environment": environment_metadata()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

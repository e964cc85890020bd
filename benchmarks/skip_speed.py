"""Real speedup of skipping: lcnas hard execution vs the static backbone vs mask-only execution.

    python benchmarks/skip_speed.py --out benchmarks/results/skip_speed_cpu.json

For ResNet-20/32/56 and forced decisions at several levels (25/50/75 % of blocks skipped, 25/50/75 %
of each block's channel groups skipped, and both), measures the median latency at batch 1 and the
throughput at batch 64 of:
  static      the same network with every block and channel on, through the same engine
              (BN folded, channels-last): the honest baseline for the ratios
  hard        lcnas hard execution of the decisions (skipped work not computed)
  static_pytorch_convs  `static` at batch 1 with PyTorch's convolutions instead of lcnas's native
              kernel (LCNAS_NATIVE=0): what the kernel itself gains
  static_per_block  `static` on the engine before the whole-network native call: blocks driven
              from Python at batch 1 (native convs), batches grouped on oneDNN
  mask        the same decisions executed densely and multiplied by zero (SkipNet/ConvNet-AIG style)
plus the plain PyTorch static model (NCHW and channels-last) for reference. Decisions differ per
sample: at batch 1 calls cycle over 16 samples' decisions; at batch 64 block decisions are drawn per
sample and channel sets from a pool of --patterns sets per block (a trained C-Net produces a few
recurring sets; a pool of 1 is one set for the whole batch). Gates are bypassed (decisions forced),
so the figures measure the execution engine; the gate overhead is reported separately.

Efficiency = speedup ÷ FLOPs reduction, against `static` and against the faster of `static` and
`static_per_block` in the same round (at batch 64 oneDNN's batched convs beat the native engine at
full compute); goals are judged on the latter. FLOPs from the execution trace.
Configurations are interleaved round by round; figures are medians over rounds and ratios are
medians of per-round ratios. Each level's hard execution is timed paired with the static one, in
alternating chunks of --pair-chunk calls (``_common.paired_median_times_s``), and its speedups
taken against that paired static time: on this shared host a slow spell of a few hundred ms
otherwise lands on one side of a ratio only (single figures moved by up to 0.10 between runs
before pairing). Chunks much shorter than that cost accuracy the other way: the first calls after
a switch find the other network's weights in the cache, which slows the shorter (skipping) pass
more than the full one, and a deployed model does not alternate with its static baseline. Hence
one chunk per side and round by default (--pair-chunk 40 = --calls-bs1): both sides of a round's
ratio stay within tens of ms of each other, and the switch's cold calls are a few of 40. On
ResNet-20 at batch 1, 1 thread, chunks of 10 read 0.04-0.06 lower efficiencies at the 75 % levels
than chunks of 40 in back-to-back runs.
"""

from __future__ import annotations

import argparse
import os
import sys

import torch

from _common import median, median_time_s, paired_median_times_s, ratio_median, use_threads, write_json

from lcnas import create_model, environment_metadata
from lcnas.cost import sample_mflops, static_mflops
from lcnas.models import ForcedDecisions, GateConfig
from lcnas.engine import native_status, options

GOALS = {"layer": (0.90, 0.85), "channel": (0.80, 0.70), "both": (0.75, 0.75)}
LEVELS = {"layer": [(0.25, 0.0), (0.5, 0.0), (0.75, 0.0)], "channel": [(0.0, 0.25), (0.0, 0.5), (0.0, 0.75)],
          "both": [(0.25, 0.25), (0.5, 0.5)]}


def decisions(model, n: int, block_skip: float, channel_skip: float, patterns: int, gen: torch.Generator) -> ForcedDecisions:
    blocks = model.blocks()
    nb = len(blocks)
    run = torch.ones(n, nb, dtype=torch.bool)
    k = round(block_skip * nb)
    for i in range(n):  # exactly k blocks skipped per sample, at random positions
        run[i, torch.randperm(nb, generator=gen)[:k]] = False
    keep = None
    if channel_skip:
        keep = []
        for b in blocks:
            groups = b.channel_gate.outputs
            drop = round(channel_skip * groups)
            pool = torch.ones(patterns, groups, dtype=torch.bool)
            for p in range(patterns):
                pool[p, torch.randperm(groups, generator=gen)[:drop]] = False
            keep.append(pool[torch.randint(0, patterns, (n,), generator=gen)])
        keep = tuple(keep)
    return ForcedDecisions(block_run=run, channel_keep=keep)


def row(forced: ForcedDecisions, i: int) -> ForcedDecisions:
    keep = None if forced.channel_keep is None else tuple(k[i : i + 1] for k in forced.channel_keep)
    return ForcedDecisions(block_run=forced.block_run[i : i + 1], channel_keep=keep)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="resnet20,resnet32,resnet56")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls-bs1", type=int, default=40)
    ap.add_argument("--calls-bs64", type=int, default=3)
    ap.add_argument("--patterns", type=int, default=4, help="distinct channel sets per block in a batch")
    ap.add_argument("--pair-chunk", type=int, default=40,
                    help="batch-1 calls per chunk when a level and the static network are timed alternately")
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for every measurement (default: torch's, the core count); batch 1 on "
                         "2 threads splits each conv's rows, with a fork/join per conv")
    ap.add_argument("--out", default="benchmarks/results/skip_speed_cpu.json")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    args.threads = use_threads(args.threads)  # recorded with the settings
    gen = torch.Generator().manual_seed(0)
    results = {}
    for name in args.models.split(","):
        torch.manual_seed(0)
        plain = create_model(name).eval()
        plain_cl = create_model(name).eval().to(memory_format=torch.channels_last)
        plain_cl.load_state_dict(plain.state_dict())
        plain.execution = plain_cl.execution = "mask"  # PyTorch's own kernels: the reference, not lcnas's engine
        gated = create_model(name, gating="lc", gate_config=GateConfig(group_size=args.group_size, init_logit=10.0)).eval()
        gated.load_backbone(plain.state_dict())
        static_fl = static_mflops(gated)
        x1 = torch.rand(16, 3, 32, 32, generator=gen)
        singles_x = list(x1.split(1))  # batch-1 inputs made once: slicing is a torch op, not the model's work
        x1_cl = x1[:1].contiguous(memory_format=torch.channels_last)
        x64 = torch.rand(64, 3, 32, 32, generator=gen)
        x64_cl = x64.contiguous(memory_format=torch.channels_last)

        # name -> (bs1 callable, bs64 callable, decisions or None)
        configs = {
            "plain_nchw": (lambda: plain(singles_x[0]), lambda: plain(x64), None),
            "plain_channels_last": (lambda: plain_cl(x1_cl), lambda: plain_cl(x64_cl), None),
        }

        def use(mode: str) -> None:
            # Set only on a change: nn.Module.__setattr__ costs a few µs at batch 1, which no
            # deployed model pays per call (hard and mask configurations share one model).
            if gated.execution != mode:
                gated.execution = mode

        def engine(forced64: ForcedDecisions, mode: str):
            singles = [row(forced64, i) for i in range(16)]
            state = {"i": 0}

            def bs1():
                use(mode)
                i = state["i"] = (state["i"] + 1) % 16
                with gated.forced(singles[i]):
                    gated(singles_x[i])

            def bs64():
                use(mode)
                with gated.forced(forced64):
                    gated(x64)
            return bs1, bs64

        all_on = ForcedDecisions()
        configs["static"] = (*engine(ForcedDecisions(block_run=torch.ones(64, len(gated.blocks()), dtype=torch.bool)), "hard"), None)

        def gates_on_bs1():
            use("hard")
            gated(singles_x[0])

        def gates_on_bs64():
            use("hard")
            gated(x64)
        configs["static_with_gates"] = (gates_on_bs1, gates_on_bs64, None)
        static_bs1 = configs["static"][0]

        def static_bs1_pytorch_convs():  # the engine with PyTorch's batch-1 convs instead of the native kernel
            before = os.environ.get("LCNAS_NATIVE")
            os.environ["LCNAS_NATIVE"] = "0"
            try:
                static_bs1()
            finally:  # the caller's own setting back, whatever it was
                if before is None:
                    os.environ.pop("LCNAS_NATIVE")
                else:
                    os.environ["LCNAS_NATIVE"] = before
        configs["static_pytorch_convs"] = (static_bs1_pytorch_convs, configs["static"][1], None)
        static_bs64 = configs["static"][1]

        def per_block(fn):  # the engine before the whole-network call: blocks from Python, batches on oneDNN
            def run():
                with options(gated, whole_network=False, batch_native=False):
                    fn()
            return run
        configs["static_per_block"] = (per_block(static_bs1), per_block(static_bs64), None)
        configs["static_with_gates_per_block"] = (per_block(gates_on_bs1), per_block(gates_on_bs64), None)
        flops = {}
        for kind, levels in LEVELS.items():
            for block_skip, channel_skip in levels:
                forced = decisions(gated, 64, block_skip, channel_skip, args.patterns, gen)
                label = f"{kind}_{int(100 * max(block_skip, channel_skip))}"
                gated.execution = "hard"
                with gated.forced(forced):
                    gated(x64)
                flops[label] = float(sample_mflops(gated).mean())
                for mode in ("hard", "mask"):
                    configs[f"{label}_{mode}"] = (*engine(forced, mode), forced)
        del all_on

        lat = {k: [] for k in configs}
        thr = {k: [] for k in configs}
        paired1 = {label: [] for label in flops}  # the static time measured beside each level's hard one
        paired64 = {label: [] for label in flops}
        for _, (f1, f64, _) in configs.items():  # warm-up: kernel selection, packing caches
            for _ in range(16):  # batch 1 cycles over 16 samples' decisions: each one's caches
                f1()
            for _ in range(3):
                f64()
        for r in range(args.rounds):
            for k, (f1, f64, _) in configs.items():
                label = k[: -len("_hard")] if k.endswith("_hard") else None
                if label is None:
                    lat[k].append(median_time_s(f1, args.calls_bs1) * 1e3)
                    thr[k].append(64 / median_time_s(f64, args.calls_bs64))
                    continue
                s1, h1 = paired_median_times_s(static_bs1, f1, args.calls_bs1, chunk=args.pair_chunk)
                s64, h64 = paired_median_times_s(static_bs64, f64, args.calls_bs64, chunk=1)
                lat[k].append(h1 * 1e3)
                thr[k].append(64 / h64)
                paired1[label].append(s1 * 1e3)
                paired64[label].append(64 / s64)
            print(f"{name} round {r + 1}/{args.rounds}: static {lat['static'][-1]:.2f} ms, layer_50_hard {lat['layer_50_hard'][-1]:.2f} ms",
                  file=sys.stderr)

        levels_out = {}
        for label, fl in flops.items():
            kind = label.split("_")[0]
            reduction = static_fl / fl
            # The fastest static execution of each round: at batch 64 oneDNN's batched convs (the
            # grouped engine) may beat the native one-image-per-thread engine at full compute, so
            # speedups are also taken against whichever static run was faster, and goals judged on that.
            fastest_bs1 = [min(a, b) for a, b in zip(paired1[label], lat["static_per_block"])]
            fastest_bs64 = [max(a, b) for a, b in zip(paired64[label], thr["static_per_block"])]
            speed1 = ratio_median(paired1[label], lat[f"{label}_hard"])
            speed64 = ratio_median(thr[f"{label}_hard"], paired64[label])
            speed1_fastest = ratio_median(fastest_bs1, lat[f"{label}_hard"])
            speed64_fastest = ratio_median(thr[f"{label}_hard"], fastest_bs64)
            levels_out[label] = {
                "mflops_per_sample": fl, "flops_reduction": reduction,
                "bs1_latency_ms": {**{m: median(lat[f"{label}_{m}"]) for m in ("hard", "mask")}, "static_paired": median(paired1[label])},
                "bs64_images_per_s": {**{m: median(thr[f"{label}_{m}"]) for m in ("hard", "mask")},
                                      "static_paired": median(paired64[label])},
                "bs1_speedup_vs_static": speed1, "bs64_speedup_vs_static": speed64,
                "bs1_efficiency": speed1 / reduction, "bs64_efficiency": speed64 / reduction,
                "bs1_speedup_vs_fastest_static": speed1_fastest, "bs64_speedup_vs_fastest_static": speed64_fastest,
                "bs1_efficiency_vs_fastest_static": speed1_fastest / reduction,
                "bs64_efficiency_vs_fastest_static": speed64_fastest / reduction,
                "bs1_speedup_vs_mask": ratio_median(lat[f"{label}_mask"], lat[f"{label}_hard"]),
                "bs64_speedup_vs_mask": ratio_median(thr[f"{label}_hard"], thr[f"{label}_mask"]),
                "goal_bs1": GOALS[kind][0], "goal_bs64": GOALS[kind][1],
                "goal_met": speed1_fastest / reduction >= GOALS[kind][0] and speed64_fastest / reduction >= GOALS[kind][1],
            }
        results[name] = {
            "static_mflops": static_fl,
            "bs1_latency_ms": {k: median(lat[k]) for k in ("plain_nchw", "plain_channels_last", "static_pytorch_convs", "static_per_block",
                                                           "static", "static_with_gates", "static_with_gates_per_block")},
            "bs1_native_speedup": ratio_median(lat["static_pytorch_convs"], lat["static"]),
            "bs1_whole_network_speedup": ratio_median(lat["static_per_block"], lat["static"]),
            "bs64_native_batch_speedup": ratio_median(thr["static"], thr["static_per_block"]),
            "gate_overhead_bs1_per_block": ratio_median(lat["static_with_gates_per_block"], lat["static_per_block"]) - 1,
            "native_kernel": native_status(),
            "bs64_images_per_s": {k: median(thr[k]) for k in ("plain_nchw", "plain_channels_last", "static_per_block", "static",
                                                              "static_with_gates", "static_with_gates_per_block")},
            "gate_overhead_bs1": ratio_median(lat["static_with_gates"], lat["static"]) - 1,
            "gate_overhead_bs64": ratio_median(thr["static"], thr["static_with_gates"]) - 1,
            "levels": levels_out,
        }
        for label, v in levels_out.items():
            print(f"{name} {label:12s} FLOPs ÷{v['flops_reduction']:.2f}  bs1 ×{v['bs1_speedup_vs_static']:.2f} (eff {v['bs1_efficiency']:.2f}, "
                  f"vs mask ×{v['bs1_speedup_vs_mask']:.1f})  bs64 ×{v['bs64_speedup_vs_static']:.2f} (eff {v['bs64_efficiency']:.2f}; "
                  f"vs fastest static {v['bs64_efficiency_vs_fastest_static']:.2f}; vs mask ×{v['bs64_speedup_vs_mask']:.1f})  "
                  f"{'ok' if v['goal_met'] else 'below goal'}")
    write_json(args.out, {"benchmark": "skip_speed", "settings": vars(args), "results": results, "environment": environment_metadata()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

"""What a trained LC-Net's gates cost inside a batch-1 pass, on 1 and on 2 threads.

    python benchmarks/gate_cost.py --out benchmarks/results/gate_cost_cpu.json

For each model, every block forced to run with every channel group, the same pass is timed with
its gates evaluated (pooling, gate layers, decisions; the forcing overrides what they decide) and with them
bypassed, back to back in pairs, alternating which goes first; the gates' cost is the median of the
pairs' differences in each round, and the file keeps every round's figure and their median. On
several threads a batch-1 pass runs as one team, and a gate that reads the whole activation
reads the other threads' rows from their cores' caches: this is what shows it (the engine's guide,
"Batch 1 on several threads").
"""

from __future__ import annotations

import argparse
import statistics

import torch

from _common import write_json

from lcnas import environment_metadata, load_model
from lcnas.latency import call_ms
from lcnas.models import ForcedDecisions

MODELS = "lcnet-resnet20-layer-kd32,lcnet-resnet32-searched"


def gate_count(model) -> int:
    """The gates a pass evaluates: one per Layer-Net and one per Channel-Net."""
    return sum((getattr(b, "layer_gate", None) is not None) + (getattr(b, "channel_gate", None) is not None) for b in model.blocks())


def paired_difference_us(with_gates, without, pairs: int) -> tuple[float, float]:
    """(median µs of ``with_gates()`` minus ``without()`` over ``pairs`` back-to-back pairs, median
    µs of ``without()``), the order alternating from pair to pair."""
    diffs, base = [], []
    for k in range(pairs):
        if k % 2:
            b, a = call_ms(without), call_ms(with_gates)
        else:
            a, b = call_ms(with_gates), call_ms(without)
        diffs.append((a - b) * 1e3)
        base.append(b * 1e3)
    return statistics.median(diffs), statistics.median(base)


def measure(model, threads: int, rounds: int, pairs: int) -> dict:
    """The gates' in-pass cost of ``model`` on ``threads`` threads (see the module docstring)."""
    torch.set_num_threads(threads)
    n = len(model.blocks())
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    # every channel group kept too: evaluated Channel-Nets would otherwise narrow the pass they are timed in
    keep = tuple(torch.ones(1, b.channel_gate.outputs, dtype=torch.bool) if getattr(b, "channel_gate", None) is not None else None
                 for b in model.blocks())
    gated = ForcedDecisions(block_run=torch.ones(1, n, dtype=torch.bool), channel_keep=keep, evaluate_gates=True)
    bypassed = ForcedDecisions(block_run=torch.ones(1, n, dtype=torch.bool), channel_keep=keep, evaluate_gates=False)

    def run(forced: ForcedDecisions):
        with model.forced(forced):
            model(x)

    for _ in range(50):
        run(gated)
        run(bypassed)
    per_round = [paired_difference_us(lambda: run(gated), lambda: run(bypassed), pairs) for _ in range(rounds)]
    gates_us, gates = statistics.median(r[0] for r in per_round), gate_count(model)
    return {"threads": threads, "gates": gates, "gates_us": gates_us, "per_gate_us": gates_us / max(1, gates),
            "static_pass_us": statistics.median(r[1] for r in per_round), "gates_us_per_round": [r[0] for r in per_round]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=MODELS, help=f"shipped LC-Nets or checkpoints, comma-separated (default: {MODELS})")
    ap.add_argument("--threads", default="1,2", help="thread counts, comma-separated (default: 1,2)")
    ap.add_argument("--rounds", type=int, default=8, help="rounds per model and thread count (default: 8)")
    ap.add_argument("--pairs", type=int, default=200, help="timed pairs per round (default: 200)")
    ap.add_argument("--out", default="benchmarks/results/gate_cost_cpu.json")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    before = torch.get_num_threads()
    results = []
    try:
        for name in filter(None, args.models.split(",")):
            model = load_model(name)
            for threads in (int(t) for t in args.threads.split(",")):
                r = {"model": name, **measure(model, threads, args.rounds, args.pairs)}
                results.append(r)
                print(f"{name}, {threads} thread(s): {r['gates']} gates cost {r['gates_us']:.1f} µs in the pass "
                      f"({r['per_gate_us']:.2f} µs each; pass without gates {r['static_pass_us']:.0f} µs)")
    finally:
        torch.set_num_threads(before)
    write_json(args.out, {"benchmark": "gate_cost", "settings": vars(args), "results": results, "environment": environment_metadata()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

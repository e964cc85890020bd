"""The skip-speed table (docs/results.md) from two skip_speed.py results (batch 1 on 1 thread, everything on 2).

    python benchmarks/skip_speed_table.py benchmarks/results/skip_speed_cpu_1t.json benchmarks/results/skip_speed_cpu.json

Efficiency = speedup against the fastest static execution of the same round ÷ FLOPs reduction.
Goals: batch 1 judged on the 1-thread run, batch 64 on the 2-thread run (benchmarks/README.md says why).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

GOALS = {"layer": (0.90, 0.85), "channel": (0.80, 0.70), "both": (0.75, 0.75)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("one_thread", type=Path, help="skip_speed.py --threads 1 result")
    ap.add_argument("two_threads", type=Path, help="skip_speed.py --threads 2 result")
    args = ap.parse_args()
    one, two = (json.loads(p.read_text())["results"] for p in (args.one_thread, args.two_threads))
    print("| model | forced decisions | FLOPs ÷ | bs1, 1 thread | bs1, 2 threads | bs64, 2 threads | vs mask-only, bs1 / bs64 | goals |")
    print("|---|---|---|---|---|---|---|---|")
    for model, r1 in one.items():
        for label, v1 in r1["levels"].items():
            v2 = two[model]["levels"][label]
            kind, pct = label.split("_")
            red = v1["flops_reduction"]
            b1, b1t, b64 = (v1["bs1_speedup_vs_fastest_static"], v2["bs1_speedup_vs_fastest_static"],
                            v2["bs64_speedup_vs_fastest_static"])
            met = b1 / red >= GOALS[kind][0] and b64 / red >= GOALS[kind][1]
            cell = lambda s: f"×{s:.2f} ({s / red:.2f})"  # noqa: E731
            print(f"| {model} | {kind} {pct} % skipped | {red:.2f} | {cell(b1)} | {cell(b1t)} | {cell(b64)} | "
                  f"×{v1['bs1_speedup_vs_mask']:.1f} / ×{v2['bs64_speedup_vs_mask']:.1f} | {'**met**' if met else ''} |")


if __name__ == "__main__":
    main()

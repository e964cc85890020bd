"""Static networks on every runtime a user would pick: lcnas's engine, OpenVINO, ONNX Runtime and
eager PyTorch, the same networks and the same CIFAR-10 test images, in one process.

Configurations (``--configs``, each ``<batch>x<threads>``; default ``1x1 1x2 64x2``):
- batch 1 on 1 thread: every runtime on each image in turn, in a new random order per image;
- more threads: runtimes with spinning thread pools disturb each other when interleaved call by
  call on a small host, so each runtime takes blocks of ``--block`` inputs in turn (random order
  per block).
Per (configuration, network, runtime): median, mean and p95 time per call, images/s, and the median
over inputs of the per-input ratio of each runtime's time to lcnas's engine on the same input
(``ratio_to_lcnas``; below 1: faster than the engine). ``engine_over_openvino`` is the engine's
time over OpenVINO's (median of per-input ratios); the goal is <= 1.0 at batch 1 on 1 thread.
OpenVINO (LATENCY hint, one stream, f32) and ONNX Runtime (sequential, all graph optimisations) come
from the optional ``bench`` extra; a runtime that is not installed is left out and named.

    python benchmarks/runtimes.py --data-root ../shared/data/cifar10
        → benchmarks/results/runtimes_cpu.json
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
import torch
from _common import use_threads, write_json
from _runtimes import RUNTIMES, available_runtimes, make_runner, runtime_versions, time_interleaved

import lcnas
from lcnas import environment_metadata
from lcnas.data import load_cifar10
from lcnas.pretrained import pretrained_manifest
from lcnas.report import shipped_static

RESULTS = Path(__file__).resolve().parent / "results"
GOAL_ENGINE_OVER_OPENVINO = 1.0


def parse_config(text: str) -> tuple[int, int]:
    """``"64x2"`` → ``(64, 2)``: batch size and threads."""
    try:
        batch, threads = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"configuration {text!r} is not <batch>x<threads>, e.g. 1x1 or 64x2") from None
    if batch < 1 or threads < 1:
        raise argparse.ArgumentTypeError(f"configuration {text!r}: batch and threads must be >= 1")
    return batch, threads


def load_static(name: str) -> tuple[torch.nn.Module, str]:
    """The shipped static network ``name`` (its manifest entry), or the architecture with fresh
    weights when none is shipped (time does not depend on the weights); and which it was."""
    if name in pretrained_manifest():
        return lcnas.load_model(name).eval(), f"shipped {name} (lcnas/pretrained/manifest.json)"
    return lcnas.create_model(name, gating="none").eval(), "untrained (no shipped checkpoint)"


def summarize(times: dict[str, list[float]], batch: int) -> dict:
    """Per runtime: time statistics per call, images/s, and the median per-input ratio to lcnas."""
    engine = times["lcnas"]
    out = {}
    for runtime, ts in times.items():
        median = statistics.median(ts)
        out[runtime] = {"median_ms": median, "mean_ms": statistics.fmean(ts), "p95_ms": float(np.percentile(ts, 95)),
                        "images_per_s": 1000.0 * batch / median,
                        "ratio_to_lcnas": statistics.median(a / b for a, b in zip(ts, engine, strict=True))}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="folder holding cifar-10-batches-py (default: random images)")
    shipped = list(shipped_static())
    p.add_argument("--models", nargs="+", default=shipped,
                   help="static networks (default: every shipped static CIFAR-10 ResNet, " + " ".join(shipped) + ")")
    p.add_argument("--configs", nargs="+", type=parse_config, default=[(1, 1), (1, 2), (64, 2)],
                   help="<batch>x<threads> configurations (default 1x1 1x2 64x2)")
    p.add_argument("--images", type=int, default=500, help="inputs timed per configuration at batch 1 (default 500)")
    p.add_argument("--batches", type=int, default=40, help="inputs timed per configuration at larger batches (default 40)")
    p.add_argument("--block", type=int, default=10, help="inputs per block with more than 1 thread (default 10)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls per runner first (default 20)")
    p.add_argument("--runtimes", nargs="+", choices=RUNTIMES, help="default: every installed one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=RESULTS / "runtimes_cpu.json", help="result JSON (default benchmarks/results/runtimes_cpu.json)")
    args = p.parse_args(argv)
    if min(args.images, args.batches, args.block) < 1 or args.warmup < 0:
        p.error("--images, --batches and --block must be >= 1, --warmup >= 0")
    runtimes = args.runtimes or available_runtimes()
    missing = [r for r in runtimes if r not in available_runtimes()]
    if missing:
        p.error(f"runtimes not installed: {', '.join(missing)} (pip install -e '.[bench]')")
    if "lcnas" not in runtimes:
        runtimes = ["lcnas", *runtimes]

    networks = {name: load_static(name) for name in args.models}
    if args.data_root:
        images = load_cifar10(args.data_root, train=False, download=False).images.float().div_(255)
    else:
        images = torch.rand(10_000, 3, 32, 32, generator=torch.Generator().manual_seed(args.seed))
    rows = []
    for batch, threads in args.configs:
        use_threads(threads)
        count = args.images if batch == 1 else args.batches
        inputs = [images[(i * batch) % len(images):(i * batch) % len(images) + batch].contiguous() for i in range(count)]
        inputs = [x for x in inputs if len(x) == batch]
        for name, (model, source) in networks.items():
            runners = {r: make_runner(r, model, threads=threads, batch=batch) for r in runtimes}
            times = time_interleaved(runners, inputs, threads=threads, block=args.block, warmup=args.warmup, seed=args.seed)
            stats = summarize(times, batch)
            row = {"model": name, "weights": source, "batch": batch, "threads": threads, "inputs": len(inputs),
                   "timing": "interleaved per input" if threads == 1 else f"blocks of {args.block} inputs per runtime",
                   "runtimes": stats}
            if "openvino" in stats:
                row["engine_over_openvino"] = 1.0 / stats["openvino"]["ratio_to_lcnas"]
            rows.append(row)
            line = ", ".join(f"{r} {v['median_ms']:.3f} ms ({v['ratio_to_lcnas']:.2f})" for r, v in stats.items())
            print(f"{name} batch {batch}, {threads} thread(s): {line}", flush=True)

    goal_rows = [r for r in rows if r["batch"] == 1 and r["threads"] == 1 and "engine_over_openvino" in r]
    result = {
        "benchmark": "runtimes",
        "settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
                     "configs": [f"{b}x{t}" for b, t in args.configs], "runtimes": runtimes},
        "runtime_versions": runtime_versions(),
        "results": rows,
        "goal": {"engine_over_openvino_batch1_1thread": f"<= {GOAL_ENGINE_OVER_OPENVINO}",
                 "measured": {r["model"]: r["engine_over_openvino"] for r in goal_rows},
                 "met": bool(goal_rows) and all(r["engine_over_openvino"] <= GOAL_ENGINE_OVER_OPENVINO for r in goal_rows)},
        "environment": environment_metadata(),
    }
    write_json(args.out, result)
    print("engine / OpenVINO at batch 1, 1 thread: "
          + ", ".join(f"{m} {v:.3f}" for m, v in result["goal"]["measured"].items()) + f"; goal met: {result['goal']['met']}")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

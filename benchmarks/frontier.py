"""Dynamic against static: every shipped model's accuracy, FLOPs and measured batch-1 latency on each
runtime, the static front, cascades of static networks, and where each dynamic model stands.

- Accuracy and FLOPs on the whole CIFAR-10 test set (10,000 images): mean/p95 MFLOPs per image from
  the execution traces of gated models, the static count for static ones.
- Latency: ``--images`` test images at batch 1, every (model, runtime) pair timed on each image,
  interleaved image by image in one process (in a different order per image), medians over images.
  Static networks run on lcnas's engine, OpenVINO and ONNX Runtime (the ``bench`` extra; a runtime
  not installed is left out and named in the result) and, with ``--eager``, eager PyTorch; dynamic
  models run on lcnas's engine, the only one that skips. With more than one thread, runtimes with
  spinning thread pools disturb each other when interleaved per call, so each pair then runs
  blocks of ``--block`` images in turn.
- The static front: each static network at its fastest runtime; a dynamic model's margin is its
  accuracy minus the front interpolated linearly at its latency (negative: below the front).
- Cascades (early exit across networks): the faster network answers when its top softmax
  probability reaches a threshold, else the slower one decides; expected latency = fast + (fraction
  sent on) × slow, on their fastest runtimes. Every threshold of every pair of static networks;
  the result keeps the upper envelope.

Static networks of the front are the shipped ones plus ``--static`` checkpoints (e.g. distilled
controls); dynamic ones are the shipped LC-Nets plus ``--dynamic`` checkpoints.

    python benchmarks/frontier.py --data-root ../shared/data/cifar10 --threads 1
        → benchmarks/results/frontier_cpu_1t.json and .png
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from _common import use_threads, write_json

import numpy as np
import torch

import lcnas
from lcnas import environment_metadata
from lcnas.checkpoint import read_checkpoint
from lcnas.cost import describe, sample_mflops, static_mflops
from lcnas.data import load_cifar10
from lcnas.pretrained import pretrained_manifest
from lcnas.report import front_accuracy_at, static_front

from _runtimes import available_runtimes, make_runner, runtime_versions, time_interleaved

RESULTS = Path(__file__).resolve().parent / "results"


def _models(args: argparse.Namespace) -> list[dict]:
    """Every model measured: name, kind (static | dynamic), source, the command that made it."""
    rows = []
    for name, entry in pretrained_manifest().items():
        if args.models and name not in args.models:
            continue
        gating = entry.get("gating") or entry.get("config", {}).get("gating", "none")
        rows.append({"name": name, "kind": "static" if gating == "none" else "dynamic", "source": name,
                     "command": entry.get("command"), "family": _static_family(entry.get("config") or {}) if gating == "none" else "lcnet"})
    for kind, paths in (("static", args.static), ("dynamic", args.dynamic)):
        for path in paths or ():
            family = _static_family(read_checkpoint(path).get("config") or {}) if kind == "static" else "lcnet"
            rows.append({"name": Path(path).parent.name if Path(path).name in ("final.pt", "last.pt") else Path(path).stem,
                         "kind": kind, "source": path, "command": None, "family": family})
    return rows


def _static_family(config: dict) -> str:
    """``distilled`` for a static network trained with a teacher (its training config says so), else ``trained``."""
    loss = config.get("loss") or {}
    return "distilled" if config.get("teacher") and float(loss.get("distill") or 0) > 0 else "trained"


def _accuracy(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, batch: int) -> dict:
    """Top-1 accuracy, per-image confidence and correctness, and per-image MFLOPs over the test set."""
    gated = getattr(model, "gating", "none") != "none"
    arch = describe(model, tuple(images.shape[1:]))
    probs, mflops = [], []
    with torch.inference_mode():
        for i in range(0, len(images), batch):
            x = images[i:i + batch].float().div_(255)
            probs.append(model(x).softmax(1))
            if gated:
                mflops.append(sample_mflops(model, arch=arch))
    p = torch.cat(probs)
    correct = p.argmax(1) == labels
    per_image = torch.cat(mflops) if gated else torch.full((len(images),), static_mflops(model, tuple(images.shape[1:])))
    return {"accuracy": 100.0 * float(correct.float().mean()), "mflops_mean": float(per_image.mean()),
            "mflops_p95": float(per_image.quantile(0.95)), "confidence": p.max(1).values.numpy(),
            "correct": correct.numpy()}


def _cascades(static: list[dict], best_ms: dict[str, float], steps: int = 60) -> list[dict]:
    """Every threshold of every (faster, slower) pair of static networks; the envelope."""
    points = []
    for a in static:
        for b in static:
            if best_ms[a["name"]] >= best_ms[b["name"]]:
                continue
            conf, ca, cb = a["confidence"], a["correct"], b["correct"]
            for t in np.unique(np.quantile(conf, np.linspace(0, 1, steps + 1))):
                sent = conf < t
                acc = 100.0 * float(np.where(sent, cb, ca).mean())
                lat = best_ms[a["name"]] + float(sent.mean()) * best_ms[b["name"]]
                points.append({"fast": a["name"], "slow": b["name"], "threshold": float(t), "sent_on": float(sent.mean()),
                               "accuracy": acc, "latency_ms": lat})
    envelope = static_front([(p["latency_ms"], p["accuracy"]) for p in points])
    keep = set(envelope)
    return [p for p in points if (p["latency_ms"], p["accuracy"]) in keep]


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = result["models"]
    fig, (ax_lat, ax_fl) = plt.subplots(1, 2, figsize=(13, 5.2))
    markers = {"lcnas": "o", "openvino": "s", "onnxruntime": "^", "eager": "x"}
    for runtime in result["settings"]["runtimes"]:
        pts = sorted((r["latency_ms"][runtime]["median"], r["accuracy"]) for r in rows
                     if r["kind"] == "static" and runtime in r["latency_ms"])
        if pts:
            ax_lat.plot(*zip(*pts), marker=markers.get(runtime, "."), label=f"static on {runtime}")
    if result["cascades"]:
        pts = sorted((c["latency_ms"], c["accuracy"]) for c in result["cascades"])
        ax_lat.plot(*zip(*pts), ls="--", color="grey", label="cascade of static networks")
    for r in rows:
        if r["kind"] == "dynamic":
            ax_lat.scatter(r["latency_ms"]["lcnas"]["median"], r["accuracy"], marker="*", s=120, zorder=3)
            ax_lat.annotate(r["name"], (r["latency_ms"]["lcnas"]["median"], r["accuracy"]), fontsize=7,
                            xytext=(4, 2), textcoords="offset points")
    ax_lat.set_xlabel(f"measured batch-1 latency, median (ms, {result['settings']['threads']} thread(s))")
    ax_lat.set_ylabel("CIFAR-10 test accuracy (%)")
    ax_lat.set_title("accuracy vs measured latency")
    ax_lat.legend(fontsize=8)
    static = sorted((r["mflops_mean"], r["accuracy"]) for r in rows if r["kind"] == "static")
    if static:
        ax_fl.plot(*zip(*static), marker="o", label="static")
    for r in rows:
        if r["kind"] == "dynamic":
            ax_fl.scatter(r["mflops_mean"], r["accuracy"], marker="*", s=120, zorder=3)
            ax_fl.annotate(r["name"], (r["mflops_mean"], r["accuracy"]), fontsize=7, xytext=(4, 2), textcoords="offset points")
    ax_fl.set_xlabel("MFLOPs per image (mean)")
    ax_fl.set_ylabel("CIFAR-10 test accuracy (%)")
    ax_fl.set_title("accuracy vs FLOPs")
    ax_fl.legend(fontsize=8)
    for ax in (ax_lat, ax_fl):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-root", help="folder holding cifar-10-batches-py")
    p.add_argument("--threads", type=int, default=1, help="threads of every runtime (default 1)")
    p.add_argument("--images", type=int, default=300, help="test images timed at batch 1 (default 300)")
    p.add_argument("--eval-images", type=int, default=10000, help="test images for accuracy and FLOPs (default all 10,000)")
    p.add_argument("--block", type=int, default=10, help="images per block when threads > 1 (default 10)")
    p.add_argument("--warmup", type=int, default=20, help="untimed calls per pair first (default 20)")
    p.add_argument("--runtimes", nargs="+", default=None, help="runtimes for static networks (default: lcnas and every installed one)")
    p.add_argument("--eager", action="store_true", help="also time eager PyTorch on the static networks")
    p.add_argument("--models", nargs="+", help="only these shipped models (default: all in the manifest)")
    p.add_argument("--static", nargs="+", help="more static checkpoints for the front (e.g. distilled controls)")
    p.add_argument("--dynamic", nargs="+", help="more dynamic checkpoints to place against the front")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, help="result JSON (default benchmarks/results/frontier_cpu_<T>t.json; a PNG beside it)")
    args = p.parse_args(argv)
    if args.images < 1 or args.eval_images < 1 or args.block < 1 or args.threads < 1:
        p.error("--images, --eval-images, --block and --threads must be >= 1")
    threads = use_threads(args.threads)
    runtimes = args.runtimes or [r for r in available_runtimes() if r != "eager"]
    if args.eager and "eager" not in runtimes:
        runtimes.append("eager")
    missing = [r for r in runtimes if r not in available_runtimes()]
    if missing:
        p.error(f"runtimes not installed: {', '.join(missing)} (pip install -e '.[bench]')")
    out = args.out or RESULTS / f"frontier_cpu_{threads}t.json"

    test = load_cifar10(args.data_root, train=False, download=False)
    images, labels = test.images[:args.eval_images], test.labels[:args.eval_images]
    rows = _models(args)
    models = {}
    for row in rows:
        model = lcnas.load_model(row["source"])
        models[row["name"]] = model
        row.update(_accuracy(model, images, labels, batch=500))
        print(f"{row['name']}: {row['accuracy']:.2f} % at {row['mflops_mean']:.1f} MFLOPs", flush=True)

    runners = {}
    for row in rows:
        for runtime in (runtimes if row["kind"] == "static" else ["lcnas"]):
            runners[(row["name"], runtime)] = make_runner(runtime, models[row["name"]], threads=threads)
    xs = [test.images[i:i + 1].float().div_(255).contiguous() for i in range(min(args.images, len(test.images)))]
    times = time_interleaved(runners, xs, threads=threads, block=args.block, warmup=args.warmup, seed=args.seed)

    best_ms = {}
    for row in rows:
        row["latency_ms"] = {}
        for (name, runtime), ts in times.items():
            if name == row["name"]:
                row["latency_ms"][runtime] = {"median": statistics.median(ts), "mean": statistics.fmean(ts),
                                              "p95": float(np.percentile(ts, 95))}
        best = min(row["latency_ms"], key=lambda r: row["latency_ms"][r]["median"])
        row["fastest_runtime"], best_ms[row["name"]] = best, row["latency_ms"][best]["median"]
        engine = times[(row["name"], "lcnas")]
        row["ratio_to_lcnas"] = {r: statistics.median(a / b for a, b in zip(times[(row["name"], r)], engine))
                                 for r in row["latency_ms"]}

    static = [r for r in rows if r["kind"] == "static"]
    fronts = {fam: static_front([(best_ms[r["name"]], r["accuracy"]) for r in static if fam == "all" or r["family"] == fam])
              for fam in ("all", "trained", "distilled")}
    cascades = _cascades(static, best_ms)
    for row in rows:
        if row["kind"] != "dynamic":
            continue
        lat = row["latency_ms"]["lcnas"]["median"]
        row["margin_pt"] = {}
        for fam, front in fronts.items():
            at = front_accuracy_at(front, lat)
            row["margin_pt"][fam] = None if at is None else row["accuracy"] - at
        at = front_accuracy_at(static_front([(c["latency_ms"], c["accuracy"]) for c in cascades]), lat)
        row["margin_pt"]["cascade"] = None if at is None else row["accuracy"] - at

    for row in rows:
        row.pop("confidence", None)
        row.pop("correct", None)
    result = {
        "benchmark": "frontier",
        "settings": {**{k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "threads": threads,
                     "runtimes": runtimes},
        "runtime_versions": runtime_versions(),
        "models": rows,
        "static_front": {fam: [{"latency_ms": l, "accuracy": a} for l, a in f] for fam, f in fronts.items()},
        "cascades": cascades,
        "environment": environment_metadata(),
    }
    write_json(out, result)
    _plot(result, out.with_suffix(".png"))
    for row in rows:
        lat = ", ".join(f"{r} {v['median']:.3f}" for r, v in row["latency_ms"].items())
        margin = row.get("margin_pt", {}).get("all")
        extra = "" if row["kind"] == "static" else f"; vs static front: {'below its range' if margin is None else f'{margin:+.2f} pt'}"
        print(f"{row['name']:36s} {row['accuracy']:6.2f} %  {row['mflops_mean']:6.1f} MFLOPs  ms: {lat}{extra}")
    print(f"wrote {out} and {out.with_suffix('.png')}")
    return result


if __name__ == "__main__":
    main()

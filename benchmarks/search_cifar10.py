"""Search on the real CIFAR-10: the three backends, sampler quality, and latency- vs FLOPs-guided search.

    python benchmarks/search_cifar10.py backends --data-root ../shared/data/cifar10 --lut latency_models/cpu-amd-epyc-2t.json
    python benchmarks/search_cifar10.py samplers --data-root ../shared/data/cifar10
    python benchmarks/search_cifar10.py guidance --data-root ../shared/data/cifar10 --lut latency_models/cpu-amd-epyc-2t.json

Every trial fine-tunes LC-Net gates on the shipped ResNet-20 for a small proxy budget (--epochs,
--train-subset) and is scored on the 5k validation split. ``backends`` runs the same space through
Optuna, Ray Tune and NNI and records each Pareto front. ``samplers`` compares the multi-objective
TPE sampler with random sampling at equal trial count (several seeds; median hypervolume of the
accuracy-vs-MFLOPs front). ``guidance`` runs one search that minimises table-predicted latency and
one that minimises FLOPs (same seed and trials), then measures every trial's batch-1 latency on
validation images and compares the two fronts on *measured* latency. Take ``guidance`` on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from _common import kendall_tau, median, write_json

from lcnas import environment_metadata, load_model
from lcnas.latency import call_ms
from lcnas.search import make_settings, pareto_front, search

OUT = Path("benchmarks/results")


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """2-D hypervolume of (accuracy ↑, cost ↓) points against ``ref`` = (worst accuracy, worst cost)."""
    pts = sorted({(c, a) for a, c in points if a > ref[0] and c < ref[1]})  # by cost ascending
    hv, best_acc = 0.0, ref[0]
    for i, (c, a) in enumerate(pts):
        best_acc = max(best_acc, a)
        next_c = pts[i + 1][0] if i + 1 < len(pts) else ref[1]
        hv += (next_c - c) * (best_acc - ref[0])
    return hv


def _base(args) -> dict:
    return {"model": "resnet20", "epochs": args.epochs, "train_subset": args.train_subset, "data_root": args.data_root}


def _front_rows(results, metric: str) -> list[dict]:
    return [{"number": t.number, "accuracy": t.accuracy, metric: t.metric(metric), "params": t.to_dict()["params"]} for t in results.front]


def do_backends(args) -> None:
    path = OUT / "search_backends_cifar10.json"
    rows = json.loads(path.read_text())["backends"] if path.exists() else {}  # a rerun of one backend keeps the others
    for backend in args.backends.split(","):
        out = Path(args.runs) / f"backends_{backend}"
        if out.exists():
            raise SystemExit(f"{out} exists: remove it to rerun the {backend} search")
        settings = make_settings(args.space, out_dir=out, overrides=_base(args), lut=args.lut)
        options = {"seed": 0}
        if backend == "nni":
            options["port"] = args.port
        start = time.perf_counter()
        results = search(settings, backend=backend, n_trials=args.trials, progress=False, **options)
        rows[backend] = {"trials": len(results.trials), "complete": sum(t.state == "complete" for t in results.trials),
                         "failed": sum(t.state == "failed" for t in results.trials), "wall_time_s": time.perf_counter() - start,
                         "results": str(out / "results.json"), "cost_metric": settings.cost_metric,
                         "pareto_front": _front_rows(results, settings.cost_metric),
                         "command": (f"lcnas search --space {args.space} --backend {backend} --trials {args.trials} --lut {args.lut} "
                                     f"--seed 0 --set model=resnet20 --set epochs={args.epochs} --set train_subset={args.train_subset} "
                                     f"--data-root {args.data_root} --out {out}")}
        print(f"{backend}: {rows[backend]['complete']}/{rows[backend]['trials']} complete, front {len(results.front)}, "
              f"{rows[backend]['wall_time_s']:.0f} s", file=sys.stderr)
    write_json(path, {"benchmark": "search_backends", "space": args.space, "lut": args.lut,
                                                      "proxy": _base(args), "backends": rows, "environment": environment_metadata()})


def do_samplers(args) -> None:
    from lcnas import create_model
    from lcnas.cost import static_mflops

    ref = (10.0, 1.1 * static_mflops(create_model("resnet20"), (3, 32, 32)))  # chance accuracy, 110 % of static FLOPs
    runs = []
    for seed in range(args.seeds):
        for sampler in ("tpe", "random"):
            out = Path(args.runs) / f"sampler_{sampler}_{seed}"
            settings = make_settings(args.space, out_dir=out, overrides=_base(args), cost_metric="mflops_mean")
            results = search(settings, backend="optuna", n_trials=args.trials, progress=False, seed=seed, sampler=sampler)
            done = [t for t in results.trials if t.state == "complete"]
            hv = hypervolume([(t.accuracy, t.mflops_mean) for t in done], ref)
            runs.append({"sampler": sampler, "seed": seed, "complete": len(done), "hypervolume": hv, "results": str(out / "results.json")})
            print(f"{sampler} seed {seed}: hypervolume {hv:.1f} ({len(done)} trials)", file=sys.stderr)
    summary = {s: {"median_hypervolume": median([r["hypervolume"] for r in runs if r["sampler"] == s]),
                   "hypervolumes": [r["hypervolume"] for r in runs if r["sampler"] == s]} for s in ("tpe", "random")}
    summary["tpe_over_random_median_ratio"] = median([a["hypervolume"] / b["hypervolume"] for a, b in
                                                     zip([r for r in runs if r["sampler"] == "tpe"], [r for r in runs if r["sampler"] == "random"])
                                                     if b["hypervolume"] > 0])
    write_json(OUT / "search_samplers_cifar10.json", {"benchmark": "search_samplers", "space": args.space, "trials_per_run": args.trials,
                                                      "reference_point": {"accuracy": ref[0], "mflops_mean": ref[1]}, "proxy": _base(args),
                                                      "runs": runs, "summary": summary, "environment": environment_metadata()})


def do_guidance(args) -> None:
    from lcnas.data import load_splits

    searches = {}
    for label, cost in (("latency", "latency_ms_mean"), ("flops", "mflops_mean")):
        out = Path(args.runs) / f"guidance_{label}"
        settings = make_settings(args.space, out_dir=out, overrides=_base(args), lut=args.lut, cost_metric=cost)
        searches[label] = search(settings, backend="optuna", n_trials=args.trials, progress=False, seed=args.seed)
    splits = load_splits("cifar10", data_root=args.data_root, val_size=5000)
    images = splits.val.images[: args.images].float().div(255)
    torch.set_grad_enabled(False)
    # Every completed trial's model, timed at batch 1 on the same images, interleaved image by image
    # so that machine drift hits both searches alike.
    models = {(label, t.number): load_model(Path(t.run_dir) / "final.pt")
              for label, results in searches.items() for t in results.trials if t.state == "complete"}
    for m in models.values():
        for i in range(10):
            m(images[i : i + 1])
    times: dict[tuple[str, int], list[float]] = {k: [] for k in models}
    for i in range(images.shape[0]):
        x = images[i : i + 1]
        for key, m in models.items():
            times[key].append(call_ms(lambda: m(x)))
    measured: dict[str, dict[int, float]] = {label: {} for label in searches}
    for (label, number), ts in times.items():  # mean over images, the slowest 5 % (interruptions) dropped
        measured[label][number] = statistics.mean(sorted(ts)[: max(1, int(0.95 * len(ts)))])
    all_lat = [v for m in measured.values() for v in m.values()]
    ref = (10.0, 1.1 * max(all_lat))
    report = {}
    for label, results in searches.items():
        pts = [(t.accuracy, measured[label][t.number]) for t in results.trials if t.number in measured[label]]
        front_trials = pareto_front([t for t in results.trials if t.number in measured[label]], "mflops_mean" if label == "flops" else "latency_ms_mean")
        report[label] = {"hypervolume_measured_latency": hypervolume(pts, ref),
                         "trials": [{"number": t.number, "accuracy": t.accuracy, "mflops_mean": t.mflops_mean,
                                     "predicted_latency_ms_mean": t.latency_ms_mean, "measured_latency_ms_mean": measured[label].get(t.number)}
                                    for t in results.trials if t.state == "complete"],
                         "own_front": [t.number for t in front_trials]}
        print(f"{label}-guided: hypervolume on measured latency {report[label]['hypervolume_measured_latency']:.2f}", file=sys.stderr)
    # How well each guide orders the models by what they really cost here: only distinct models count
    # (trials with the same predicted cost are usually the same all-on network).
    rows = [t for t in report["latency"]["trials"] if t["measured_latency_ms_mean"] is not None]
    measured_ms = [t["measured_latency_ms_mean"] for t in rows]
    ranking = {"trials": len(rows),
               "kendall_tau_mflops_vs_measured": kendall_tau([t["mflops_mean"] for t in rows], measured_ms),
               "kendall_tau_predicted_vs_measured": kendall_tau([t["predicted_latency_ms_mean"] for t in rows], measured_ms),
               "predicted_over_measured_median": median([t["predicted_latency_ms_mean"] / t["measured_latency_ms_mean"] for t in rows])}
    print(f"rank agreement with measured latency: MFLOPs tau {ranking['kendall_tau_mflops_vs_measured']:.2f}, "
          f"table tau {ranking['kendall_tau_predicted_vs_measured']:.2f}", file=sys.stderr)
    write_json(OUT / "search_guidance_cifar10.json", {"benchmark": "search_guidance", "space": args.space, "lut": args.lut, "seed": args.seed,
                                                      "trials_per_search": args.trials, "latency_images": int(images.shape[0]),
                                                      "reference_point": {"accuracy": ref[0], "latency_ms": ref[1]}, "proxy": _base(args),
                                                      "searches": report, "ranking_on_latency_search_trials": ranking, "environment": environment_metadata()})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=("backends", "samplers", "guidance"))
    ap.add_argument("--data-root", default="../shared/data/cifar10")
    ap.add_argument("--lut", default="latency_models/cpu-amd-epyc-2t.json")
    ap.add_argument("--space", default="lcnet_cifar10")
    ap.add_argument("--trials", type=int, default=8)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--train-subset", type=int, default=5000)
    ap.add_argument("--backends", default="optuna,ray,nni")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", type=int, default=200, help="validation images timed at batch 1 (guidance)")
    ap.add_argument("--port", type=int, default=8080)
    ap.add_argument("--runs", default="runs/search_bench")
    args = ap.parse_args()
    {"backends": do_backends, "samplers": do_samplers, "guidance": do_guidance}[args.action](args)


if __name__ == "__main__":
    main()

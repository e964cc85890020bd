"""Hand-set LC-Nets on the real CIFAR-10: train them, then report them beside the static backbones.

    python benchmarks/lcnet_cifar10.py train  --data-root ../shared/data/cifar10 [--epochs 4] [--only lc_t45,...]
    python benchmarks/lcnet_cifar10.py report --data-root ../shared/data/cifar10 --lut LUT --out benchmarks/results/lcnet_cifar10_cpu.json

``train`` fine-tunes each setting below from the shipped static ResNet-32 (studies/lc_resnet32_cifar10.yaml
+ the setting's overrides), distilled from it; a finished run is skipped, an interrupted one resumed.
``report`` gives, per model: test accuracy, mean and p95 MFLOPs per sample, measured batch-1
latency on test images (median; models interleaved in rounds so machine drift hits all alike)
and, with --lut, the table's predicted latency. Take it on a quiet machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

from _common import median, write_json

from lcnas import create_model, environment_metadata, load_model
from lcnas.data import load_cifar10
from lcnas.latency import latency_ratio, round_ratios
from lcnas.report import interleaved_bs1_ms, static_engine
from lcnas.train import evaluate, load_train_config, train

STUDY = "studies/lc_resnet32_cifar10.yaml"
STATIC_COMMANDS = {"resnet20": "lcnas train -c studies/resnet20_cifar10.yaml --data-root ../shared/data/cifar10",
                   "resnet32": "lcnas train -c studies/resnet32_cifar10.yaml --data-root ../shared/data/cifar10 && "
                               "lcnas train -c studies/resnet32_cifar10_restart.yaml --data-root ../shared/data/cifar10"}
# name → overrides of the study: three compute-loss settings of LC gating, layer-only, channel-only
# (trained with --epochs, 5 for the shipped rows), and two longer-schedule settings aimed at the
# LC-Net issue's accuracy goals (their epochs are part of the setting).
_LAYER_LAT = ["gating=layer", "gate.hidden=0", "lr=0.01", "threads=1", "lut=latency_models/cpu-amd-epyc-2t.json",
              "loss.latency=4", "loss.latency_target=0.6", "loss.flops=0", "loss.rate_target=0.5"]
_LAYER20_KD = ["model=resnet20", "gating=layer", "gate.hidden=0", "teacher=lcnas/pretrained/resnet32_cifar10.pt",
               "loss.flops=4", "loss.distill=1"]
SETTINGS = {
    "lc32_t35": ["loss.flops_target=0.35", "loss.rate_target=0.5"],
    "lc32_t45": ["loss.flops_target=0.45", "loss.rate_target=0.6"],
    "lc32_t60": ["loss.flops_target=0.60", "loss.rate_target=0.75"],
    "layer32_t50": ["gating=layer", "loss.flops_target=0.50", "loss.rate_target=0.5"],
    "channel32_t60": ["gating=channel", "loss.flops_target=0.60", "loss.rate_target=0.6"],
    # Layer-only with linear gates (the cheapest at batch 1) against the device table's latency.
    "layer32_lat_long": [*_LAYER_LAT, "epochs=12"],
    "lc32_t30_long": ["epochs=12", "lr=0.01", "threads=1", "loss.flops=6", "loss.flops_target=0.30", "loss.rate_target=0.5"],
    # Continued fine-tuning (gates included) of the two 12-epoch runs for 12 more epochs: the
    # 12-epoch curves were still rising when the rate decayed. The LC run's target is raised so
    # it regains compute towards half of ResNet-32's FLOPs.
    "layer32_lat_xl": ["init_from=runs/layer32_lat_long/final.pt", *_LAYER_LAT, "epochs=12"],
    "lc32_t40_xl": ["init_from=runs/lc32_t30_long/final.pt", "epochs=12", "lr=0.01", "threads=1", "loss.flops=6",
                    "loss.flops_target=0.40", "loss.rate_target=0.5"],
    # ResNet-20 with linear layer gates, distilled from the shipped ResNet-32 (the shallower
    # network, the deeper teacher): aimed at "more accurate than static ResNet-20 at its latency".
    "layer20_kd32": [*_LAYER20_KD, "init_from=pretrained", "loss.flops_target=0.85", "loss.rate_target=0.85",
                     "epochs=20", "lr=0.02"],
    # ... continued with its gates at a lower FLOPs target (80 % of ResNet-20, under half of ResNet-32's).
    "layer20_kd32_t80": [*_LAYER20_KD, "init_from=runs/layer20_kd32/final.pt", "loss.flops_target=0.80",
                         "loss.rate_target=0.8", "epochs=25", "lr=0.01"],
    # Two continuations of layer20_kd32_t80 aimed at half of ResNet-32's FLOPs within 0.5 points:
    # a lower target (0.75), and the same target at a low rate without warm-up (more accuracy at
    # ~71 MFLOPs, the runtime knob to go under 68.9). 1 thread each, side by side.
    "layer20_kd32_t75": [*_LAYER20_KD, "init_from=runs/layer20_kd32_t80/final.pt", "loss.flops_target=0.75",
                         "loss.rate_target=0.75", "epochs=30", "lr=0.01", "threads=1"],
    "layer20_kd32_t80b": [*_LAYER20_KD, "init_from=runs/layer20_kd32_t80/final.pt", "loss.flops_target=0.80",
                          "loss.rate_target=0.8", "epochs=20", "lr=0.003", "warmup_epochs=0", "threads=1"],
    # The shipped t75 continued for 10 epochs at a low rate with another data-order seed: does
    # its one-image margin on the "2x fewer FLOPs than ResNet-32 within 0.5 points" goal hold?
    "layer20_kd32_t75c": [*_LAYER20_KD, "init_from=runs/layer20_kd32_t75/final.pt", "loss.flops_target=0.75",
                          "loss.rate_target=0.75", "epochs=10", "lr=0.002", "warmup_epochs=0", "seed=1", "threads=1"],
}


def command(name: str, epochs: int) -> str:
    sets = " ".join(f"--set {o}" for o in _overrides(name, epochs))
    return f"lcnas train -c {STUDY} {sets} --data-root ../shared/data/cifar10"


def _overrides(name: str, epochs: int) -> list[str]:
    """The study overrides of a setting; a setting that names its epochs keeps them."""
    own = SETTINGS[name]
    return [f"name={name}", *([] if any(o.startswith("epochs=") for o in own) else [f"epochs={epochs}"]), *own]


def do_train(args) -> None:
    for name in _selected(args):
        cfg = load_train_config(STUDY, [*_overrides(name, args.epochs), f"data_root={args.data_root}"])
        if (cfg.run_dir / "final.pt").exists():
            print(f"{name}: done already ({cfg.run_dir / 'final.pt'})", file=sys.stderr)
            continue
        print(f"{name}: {command(name, args.epochs)}", file=sys.stderr)
        final = train(cfg, resume=(cfg.run_dir / "last.pt").exists(), progress=False)
        print(f"{name}: test {final['test_accuracy']:.2f} %, {final.get('test_mflops_mean', 0):.1f} MFLOPs", file=sys.stderr)


def do_report(args) -> None:
    torch.set_grad_enabled(False)
    test = load_cifar10(args.data_root, train=False, download=False)
    table = None
    if args.lut:
        from lcnas.latency import LatencyTable

        table = LatencyTable.load(args.lut)
    models = {"resnet20 (static)": (create_model("resnet20", pretrained=True).eval(), None),
              "resnet32 (static)": (create_model("resnet32", pretrained=True).eval(), None)}
    for static, _ in models.values():
        static.execution = "mask"  # eager PyTorch, as these rows are labelled (lcnas's engine runs static models otherwise)
    kinds = {name: "static" for name in models}
    commands = {name: STATIC_COMMANDS[name.split()[0]] for name in models}
    sources, epochs = {}, {}
    for name in _selected(args):
        path = Path(args.runs) / name / "final.pt"
        if path.exists():
            models[name], sources[name], kinds[name] = (load_model(path), None), path, "hand-set"
            epochs[name] = _epochs(path)
            commands[name] = command(name, epochs[name])
    for spec in args.searched:  # runs written by `lcnas retrain`
        run = Path(spec)
        picked = json.loads((run / "picked.json").read_text())
        name = run.name
        models[name], sources[name], kinds[name] = (load_model(run / "final.pt"), None), run / "final.pt", "searched"
        epochs[name] = _epochs(run / "final.pt")
        commands[name] = f"{picked['search_command']} && {picked['command']}" if "search_command" in picked else picked.get("command", "")
    rows = {}
    for name, (model, _) in models.items():
        stats = evaluate(model, test, batch_size=500, latency_table=table if getattr(model, "gating", "none") != "none" else None)
        rows[name] = {"model": name, "test_accuracy": stats["accuracy"],
                      "mflops_mean": stats.get("mflops_mean", _static_mflops(model)),
                      "mflops_p95": stats.get("mflops_p95", _static_mflops(model)),
                      "predicted_latency_ms_mean": stats.get("latency_ms_mean"), "predicted_latency_ms_p95": stats.get("latency_ms_p95")}
        rows[name]["kind"] = kinds[name]
        if name in epochs:
            rows[name]["epochs"] = epochs[name]
        rows[name]["command"] = commands[name]
        if name in sources:
            rows[name]["checkpoint"] = str(sources[name])
        print(f"{name}: {rows[name]['test_accuracy']:.2f} %  {rows[name]['mflops_mean']:.1f} MFLOPs", file=sys.stderr)
    # The static networks also through lcnas's engine (BN folded, channels-last, no gates): the
    # fastest static execution here, so a dynamic model must beat that, not slow eager PyTorch.
    for name in ("resnet20", "resnet32"):
        models[f"{name} (static, lcnas engine)"] = static_engine(name)
        rows[f"{name} (static, lcnas engine)"] = {**rows[f"{name} (static)"], "model": f"{name} (static, lcnas engine)"}
    # Batch-1 latency: every model on the same images, interleaved in rounds (lcnas report's timer).
    timings = interleaved_bs1_ms(models, test.images[: args.images], rounds=args.rounds)
    for name, t in timings.items():
        rows[name]["bs1_latency_ms_median"] = median(t.ms)
        rows[name]["bs1_latency_ms_p95"] = statistics.quantiles(t.ms, n=20)[-1]
        rows[name]["bs1_latency_ms_per_round"] = t.round_medians_ms
        print(f"{name}: {rows[name]['bs1_latency_ms_median']:.3f} ms", file=sys.stderr)
    goals = _goals(rows)
    for k, v in goals.items():
        print(f"goal {k}: {v}", file=sys.stderr)
    write_json(args.out, {"benchmark": "lcnet_cifar10", "images_for_latency": min(args.images, int(test.images.shape[0])), "lut": args.lut,
                          "rows": list(rows.values()), "goals": goals, "reported_elsewhere": REPORTED, "environment": environment_metadata()})
    print(markdown(list(rows.values())))


# What other dynamic-ResNet papers report on CIFAR-10 (their backbones, their FLOPs counts; not rerun here).
REPORTED = [
    {"method": "BlockDrop (Wu et al., CVPR 2018)", "backbone": "ResNet-110", "test_accuracy": 93.6,
     "flops": "1.81e8 per image on average (16.9 of 54 blocks run)", "source": "github.com/Tushar-N/blockdrop README (released model)"},
    {"method": "SkipNet (Wang et al., ECCV 2018), HRL+SP, recurrent gates", "backbone": "ResNet-110 (93.60 % static in their Table 2)",
     "test_accuracy": None, "flops": "50 % less computation than ResNet-110 at about the same accuracy", "source": "SkipNet paper, Sec. 4.1 / Fig. 4"},
    {"method": "ConvNet-AIG (Veit & Belongie, ECCV 2018)", "backbone": "ResNet-110", "test_accuracy": None,
     "flops": "82 % of the layers run, more accurate than ResNet-110", "source": "ConvNet-AIG paper, CIFAR-10 results (as summarised)"},
]


def markdown(rows: list[dict]) -> str:
    """The results table (docs/results.md) from the measured rows."""
    lines = ["| model | kind | test acc. | MFLOPs mean / p95 | bs-1 latency, measured (median) | predicted (table) |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        pred = "—" if r.get("predicted_latency_ms_mean") is None else f"{r['predicted_latency_ms_mean']:.2f} ms"
        lines.append(f"| {r['model']} | {r['kind']} | {r['test_accuracy']:.2f} % | {r['mflops_mean']:.1f} / {r['mflops_p95']:.1f} | "
                     f"{r['bs1_latency_ms_median']:.2f} ms | {pred} |")
    return "\n".join(lines)


def _goals(rows: dict) -> dict:
    """The LC-Net issue's two goals, checked on the measured rows."""
    r32, r20 = rows["resnet32 (static)"], rows["resnet20 (static)"]
    r20_ms = min(rows["resnet20 (static)"]["bs1_latency_ms_median"], rows["resnet20 (static, lcnas engine)"]["bs1_latency_ms_median"])
    dyn = [r for r in rows.values() if r["kind"] != "static"]
    half = [r["model"] for r in dyn if r["mflops_mean"] <= r32["mflops_mean"] / 2 and r["test_accuracy"] >= r32["test_accuracy"] - 0.5]
    faster = [r["model"] for r in dyn if r["test_accuracy"] > r20["test_accuracy"] and r["bs1_latency_ms_median"] <= r20_ms]
    # The Retrain issue's claim: the searched models beat the hand-set settings on the accuracy-latency
    # front: every hand-set setting is dominated (at least as accurate and at least as fast) by some
    # searched model fine-tuned for the same number of epochs (a longer schedule is no fair win).
    # "At least as fast" is judged on the median over rounds of the per-round latency ratio (rounds
    # interleave all models, so a drifting host cancels out); the ratios' range is kept to show how
    # close a call is.
    front = {}
    for h in (r for r in dyn if r["kind"] == "hand-set"):
        peers = [s for s in dyn if s["kind"] == "searched" and s.get("epochs") == h.get("epochs")]
        if not peers:
            continue
        ratios = {}
        for s in peers:
            per_round = round_ratios(s["bs1_latency_ms_per_round"], h["bs1_latency_ms_per_round"])
            ratios[s["model"]] = {"median": latency_ratio(s["bs1_latency_ms_per_round"], h["bs1_latency_ms_per_round"]),
                                  "min": min(per_round), "max": max(per_round)}
        by = [s["model"] for s in peers if s["test_accuracy"] >= h["test_accuracy"] and ratios[s["model"]]["median"] <= 1.0]
        front[h["model"]] = {"dominated_by": by, "epochs": h.get("epochs"), "latency_ratio_vs_searched": ratios}
    return {"searched_dominates_hand_set": {"met": bool(front) and all(v["dominated_by"] for v in front.values()), "hand_set": front,
                                            "needs": "every hand-set setting dominated by a searched model of the same epochs"},
            "half_flops_of_resnet32_within_0.5pt": {"met": bool(half), "models": half,
                                                     "needs": f"<= {r32['mflops_mean'] / 2:.1f} MFLOPs at >= {r32['test_accuracy'] - 0.5:.2f} %"},
            "beats_resnet20_accuracy_at_its_latency": {"met": bool(faster), "models": faster,
                                                       "needs": f"> {r20['test_accuracy']:.2f} % at <= {r20_ms:.3f} ms (fastest static ResNet-20 execution)"}}


def _static_mflops(model) -> float:
    from lcnas.cost import static_mflops

    return static_mflops(model, (3, 32, 32))


def _epochs(path: Path) -> int:
    """Epochs of fine-tuning behind a checkpoint, those of a gated run it continued included."""
    from lcnas.checkpoint import read_checkpoint

    total, ckpt = 0, read_checkpoint(path)
    while True:  # walk back through the runs each one continued (one read per checkpoint)
        total += int(ckpt["config"]["epochs"])
        before = ckpt["config"].get("init_from")
        if not before or before == "pretrained" or not Path(before).exists():
            return total
        ckpt = read_checkpoint(before)
        if ckpt["model"].get("gating", "none") == "none":
            return total


def _selected(args) -> list[str]:
    names = [n for n in (args.only.split(",") if args.only else SETTINGS) if n]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting(s) {', '.join(unknown)}; choose from {', '.join(SETTINGS)}")
    return names


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=("train", "report"))
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--only", default="", help="comma-separated subset of: " + ", ".join(SETTINGS))
    ap.add_argument("--runs", default="runs")
    ap.add_argument("--lut", default=None)
    ap.add_argument("--images", type=int, default=500, help="test images timed at batch 1")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--out", default="benchmarks/results/lcnet_cifar10_cpu.json")
    ap.add_argument("--searched", action="append", default=[], metavar="RUN_DIR", help="a run of `lcnas retrain` to report beside (repeatable)")
    args = ap.parse_args()
    do_train(args) if args.action == "train" else do_report(args)


if __name__ == "__main__":
    main()

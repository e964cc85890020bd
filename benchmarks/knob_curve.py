"""The runtime compute knob of a trained LC-Net: accuracy, MFLOPs and latency vs gate threshold.

    python benchmarks/knob_curve.py CKPT --data-root ../shared/data/cifar10 --out benchmarks/results/knob_<name>.json

One trained model, no retraining: for each keep threshold (applied to layer and channel gates),
evaluates test accuracy and mean/p95 MFLOPs per sample from the hard-execution traces, and the
median batch-1 latency over real test images. Latency is timed with one copy of the model per
threshold, all copies interleaved image by image in rounds, so machine drift hits every threshold alike.
With ``--baseline resnet20`` the shipped static network through lcnas's engine is timed in the same
rounds, and each threshold gets its median per-round latency ratio to it (< 1: faster).
"""

from __future__ import annotations

import argparse
import copy
import statistics

import torch

from _common import median, use_threads, write_json

from lcnas import create_model, environment_metadata, load_model
from lcnas.data import load_cifar10
from lcnas.errors import LcnasError
from lcnas.latency import latency_ratio
from lcnas.report import interleaved_bs1_ms, static_engine
from lcnas.train import evaluate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--thresholds", default="0.2,0.3,0.4,0.5,0.6,0.7,0.8")
    ap.add_argument("--latency-images", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", default=None, help="a shipped static model (e.g. resnet20) timed in the same rounds")
    ap.add_argument("--threads", type=int, default=None, help="torch threads for the latency rounds (default: torch's)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    base = load_model(args.checkpoint)
    if getattr(base, "gating", "none") == "none":
        raise SystemExit(f"{args.checkpoint} is a static model: the knob needs a gated (layer/channel/lc) checkpoint")
    # The baseline first: an unknown name or a model without shipped weights fails before any evaluation.
    try:
        baseline_engine = static_engine(args.baseline) if args.baseline else None
    except LcnasError as e:
        raise SystemExit(f"--baseline {args.baseline}: {e}") from None
    test = load_cifar10(args.data_root, train=False, download=False)
    rows, copies = [], {}
    for threshold in (float(t) for t in args.thresholds.split(",")):
        model = copies[threshold] = copy.deepcopy(base)
        model.set_thresholds(layer=threshold, channel=threshold)
        stats = evaluate(model, test, batch_size=500)
        rows.append({"threshold": threshold, "test_accuracy": stats["accuracy"], "mflops_mean": stats["mflops_mean"],
                     "mflops_p95": stats["mflops_p95"], "block_rate": stats["block_rate"]})
        print(f"threshold {threshold:.2f}: acc {stats['accuracy']:.2f} %  {stats['mflops_mean']:.1f} MFLOPs (p95 {stats['mflops_p95']:.1f})")
    args.threads = use_threads(args.threads)  # after the evaluation, which runs on every core
    timed: dict = {t: (m, None) for t, m in copies.items()}
    baseline = None
    if baseline_engine is not None:
        baseline = {"model": f"{args.baseline} (static, lcnas engine)",
                    "test_accuracy": evaluate(create_model(args.baseline, pretrained=True), test, batch_size=500)["accuracy"]}
        timed[baseline["model"]] = baseline_engine
    times = interleaved_bs1_ms(timed, test.images[: args.latency_images], rounds=args.rounds)
    for row in rows:
        t = times[row["threshold"]]
        row["bs1_latency_ms_median"], row["bs1_latency_ms_p95"] = median(t.ms), statistics.quantiles(t.ms, n=20)[-1]
        row["bs1_latency_ms_per_round"] = t.round_medians_ms
        line = f"threshold {row['threshold']:.2f}: {row['bs1_latency_ms_median']:.3f} ms (median), {row['bs1_latency_ms_p95']:.3f} ms (p95)"
        if baseline:
            row["latency_ratio_vs_baseline"] = latency_ratio(t.round_medians_ms, times[baseline["model"]].round_medians_ms)
            line += f", ×{row['latency_ratio_vs_baseline']:.3f} of {baseline['model']}"
        print(line)
    if baseline:
        b = times[baseline["model"]]
        baseline.update(bs1_latency_ms_median=median(b.ms), bs1_latency_ms_per_round=b.round_medians_ms)
        baseline["thresholds_more_accurate_and_not_slower"] = [r["threshold"] for r in rows if r["test_accuracy"] > baseline["test_accuracy"]
                                                              and r["latency_ratio_vs_baseline"] <= 1.0]
    write_json(args.out, {"benchmark": "knob_curve", "checkpoint": args.checkpoint, "settings": vars(args), "rows": rows,
                          "baseline": baseline, "environment": environment_metadata()})


if __name__ == "__main__":
    main()

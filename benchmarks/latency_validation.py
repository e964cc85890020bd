"""Predicted vs measured end-to-end latency of dynamic executions (held out from the table).

    python benchmarks/latency_validation.py --lut latency_models/cpu-amd-epyc-2t.json --out benchmarks/results/latency_validation_cpu_2t.json

Draws --samples random forced decisions per model (block run probability and channel keep
probability themselves random per sample, so executions range from nearly empty to full),
measures each end to end at batch 1 (median of --repeats) and predicts it from the table through
the execution trace; at batch 64 does the same for --batches random batches. Optionally adds
trained LC-Net checkpoints on real CIFAR-10 test images (--checkpoints, --data-root). Reports the
fraction within ±10 % (goal ≥ 95 %) and the mean absolute percentage error, twice: the table as
shipped, and the table rescaled by a one-second probe of each static (all-on) network taken just
before (``speed_factor``: the machine's speed drifts by tens of percent between hours on a shared
host; the probe measures no dynamic execution).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from contextlib import nullcontext
from dataclasses import replace

import torch

from _common import median, write_json

from lcnas import create_model, environment_metadata, load_model
from lcnas.latency import LatencyTable, batch_latency_ms, measure_interleaved, random_decisions, random_plans, sample_latency_ms, speed_factor
from lcnas.models import ForcedDecisions, GateConfig


def summarize(pred: list[float], meas: list[float]) -> dict:
    errors = [p / m - 1 for p, m in zip(pred, meas)]
    return {"n": len(errors), "within_10pct": sum(abs(e) <= 0.1 for e in errors) / len(errors),
            "mape": statistics.fmean(abs(e) for e in errors), "median_error": median(errors),
            "goal_within_10pct": 0.95}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--lut", required=True)
    ap.add_argument("--models", default="resnet20,resnet32,resnet56")
    ap.add_argument("--samples", type=int, default=70, help="batch-1 executions per model")
    ap.add_argument("--batches", type=int, default=20, help="batch-64 executions per model")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--checkpoints", default="", help="comma-separated trained gated checkpoints")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the table's)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    table = LatencyTable.load(args.lut)
    torch.set_num_threads(args.threads or int(table.device["threads"]))
    gen = torch.Generator().manual_seed(123)  # decisions independent of anything the profiler saw
    rows, result = [], {}
    for name in args.models.split(","):
        model = create_model(name, gating="lc", gate_config=GateConfig(group_size=args.group_size)).eval()
        x1 = torch.rand(1, 3, 32, 32, generator=gen)
        forced = random_decisions(model, args.samples, gen)
        speed = speed_factor(model, table)
        # Half the executions also run the gates (decisions still forced), as a trained model does.
        plans = [replace(ForcedDecisions(block_run=forced.block_run[i : i + 1], channel_keep=tuple(k[i : i + 1] for k in forced.channel_keep)),
                         evaluate_gates=bool(i % 2)) for i in range(args.samples)]
        pred = []
        for f in plans:
            with model.forced(f):
                model(x1)
                pred.append(float(sample_latency_ms(model, table)[0]))
        meas, ref = timed_with_reference(model, table, len(plans), lambda i: model(x1), lambda i: model.forced(plans[i]), 1, gen, args.repeats)
        rows.extend({"model": name, "batch": 1, "predicted_ms": p, "predicted_probed_ms": p * speed, "predicted_reference_ms": p * ref,
                     "measured_ms": m, "blocks_run": int(f.block_run.sum()), "gates_evaluated": f.evaluate_gates} for p, m, f in zip(pred, meas, plans))
        result[f"{name}_bs1"] = summarize(pred, meas)
        result[f"{name}_bs1_probed"] = {**summarize([p * speed for p in pred], meas), "speed_factor": speed}
        result[f"{name}_bs1_reference"] = {**summarize([p * ref for p in pred], meas), "speed_factor": ref}
        if 64 in table.batches(name):
            speed64 = speed_factor(model, table, batch=64, executions=6, repeats=5)
            x64 = torch.rand(64, 3, 32, 32, generator=gen)
            plans64 = random_plans(model, args.batches, 64, gen)
            pred64 = []
            for f in plans64:
                with model.forced(f):
                    model(x64)
                    pred64.append(batch_latency_ms(model, table, batch=64))
            meas64, ref64 = timed_with_reference(model, table, len(plans64), lambda i: model(x64), lambda i: model.forced(plans64[i]), 64, gen,
                                                 max(3, args.repeats // 3), ref_n=6)
            rows.extend({"model": name, "batch": 64, "predicted_ms": p, "predicted_probed_ms": p * speed64, "predicted_reference_ms": p * ref64,
                         "measured_ms": m} for p, m in zip(pred64, meas64))
            result[f"{name}_bs64"] = summarize(pred64, meas64)
            result[f"{name}_bs64_probed"] = {**summarize([p * speed64 for p in pred64], meas64), "speed_factor": speed64}
            result[f"{name}_bs64_reference"] = {**summarize([p * ref64 for p in pred64], meas64), "speed_factor": ref64}
        print(name, {k: round(v, 3) if isinstance(v, float) else v for k, v in result[f"{name}_bs1"].items()}, file=sys.stderr)
    for ckpt in filter(None, args.checkpoints.split(",")):
        from lcnas.data import load_cifar10

        model = load_model(ckpt)
        images = load_cifar10(args.data_root, train=False, download=False).images[: args.samples].float().div(255)
        speed = speed_factor(model, table)
        pred = []
        for i in range(images.shape[0]):
            model(images[i : i + 1])
            pred.append(float(sample_latency_ms(model, table)[0]))
        meas, ref = timed_with_reference(model, table, images.shape[0], lambda i: model(images[i : i + 1]), lambda i: nullcontext(), 1, gen,
                                         args.repeats)
        result[f"{ckpt}_bs1"] = summarize(pred, meas)
        result[f"{ckpt}_bs1_probed"] = {**summarize([p * speed for p in pred], meas), "speed_factor": speed}
        result[f"{ckpt}_bs1_reference"] = {**summarize([p * ref for p in pred], meas), "speed_factor": ref}
        rows.extend({"model": ckpt, "batch": 1, "predicted_ms": p, "predicted_probed_ms": p * speed, "predicted_reference_ms": p * ref,
                     "measured_ms": m, "real_images": True} for p, m in zip(pred, meas))
        print(ckpt, {k: round(v, 3) if isinstance(v, float) else v for k, v in result[f"{ckpt}_bs1"].items()}, file=sys.stderr)
    bs1 = [r for r in rows if r["batch"] == 1]
    result["all_bs1"] = summarize([r["predicted_ms"] for r in bs1], [r["measured_ms"] for r in bs1])
    result["all_bs1_probed"] = summarize([r["predicted_probed_ms"] for r in bs1], [r["measured_ms"] for r in bs1])
    result["all_bs1_reference"] = summarize([r["predicted_reference_ms"] for r in bs1], [r["measured_ms"] for r in bs1])
    bs64 = [r for r in rows if r["batch"] == 64]
    if bs64:
        result["all_bs64"] = summarize([r["predicted_ms"] for r in bs64], [r["measured_ms"] for r in bs64])
        result["all_bs64_probed"] = summarize([r["predicted_probed_ms"] for r in bs64], [r["measured_ms"] for r in bs64])
        result["all_bs64_reference"] = summarize([r["predicted_reference_ms"] for r in bs64], [r["measured_ms"] for r in bs64])
    result["table_age_hours"] = _age_hours(table.device.get("date_utc"))
    for k in ("all_bs1", "all_bs1_probed", "all_bs1_reference", "all_bs64", "all_bs64_probed", "all_bs64_reference"):
        if k in result:
            print(f"{k}: {result[k]['within_10pct']:.1%} within ±10 %, MAPE {result[k]['mape']:.1%}", file=sys.stderr)
    write_json(args.out, {"benchmark": "latency_validation", "lut": args.lut, "settings": vars(args), "results": result,
                          "executions": rows, "environment": environment_metadata()})


def timed_with_reference(model, table, n: int, call, context, batch: int, gen: torch.Generator, repeats: int, ref_n: int = 12):
    """Measure ``n`` executions interleaved with ``ref_n`` reference executions (other random
    decisions of the same model) in the same rounds; return the ``n`` medians and the reference's
    measured ÷ predicted ratio: the machine's speed while these very executions ran."""
    x_ref = torch.rand(batch, 3, 32, 32, generator=gen)
    ref = random_plans(model, ref_n, batch, gen)
    ref_pred = []
    for f in ref:
        with model.forced(f):
            model(x_ref)
            ref_pred.append(float(sample_latency_ms(model, table)[0]) if batch == 1 else batch_latency_ms(model, table, batch=batch))
    timings = measure_interleaved(n + ref_n, lambda i: call(i) if i < n else model(x_ref),
                                  context=lambda i: context(i) if i < n else model.forced(ref[i - n]), repeats=repeats)
    speed = median([timings[n + j].latency_ms_median / ref_pred[j] for j in range(ref_n)])
    return [t.latency_ms_median for t in timings[:n]], speed


def _age_hours(date_utc: str | None) -> float | None:
    """Hours between the table's measurement and now: the drift the probe has to absorb."""
    if not date_utc:
        return None
    from datetime import datetime, timezone

    return (datetime.now(timezone.utc) - datetime.fromisoformat(date_utc)).total_seconds() / 3600


if __name__ == "__main__":
    main()

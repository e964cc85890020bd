"""What a batch-1 model call costs beyond the native engine's own call, and what that does to skip efficiency.

    python benchmarks/call_overhead.py --out benchmarks/results/call_overhead_cpu_1t.json

For ResNet-20/32/56 (1 thread, gates bypassed, the same forced decisions as skip_speed.py: every
block and channel on, 75 % of channel groups skipped, 75 % of blocks skipped; 16 samples'
decisions cycled), times per call:
  model   ``with model.forced(f): model(x)``, what skip_speed.py times
  engine  the packed network's native forward alone (``lcnas_net_forward`` through ctypes, its
          arguments built once), i.e. the same C++ work without the module call, the forcing,
          argument conversion, the output allocation and the trace
in rounds over the configurations, each taking both kinds in alternating chunks of 8 calls
and reports both efficiencies (speedup over the static run ÷ FLOPs reduction). A diagnostic for the
batch-1 goals: the gap between the two is per-call cost outside the engine's arithmetic.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from _common import use_threads, write_json

from skip_speed import decisions, row

from lcnas import create_model, environment_metadata
from lcnas.cost import sample_mflops, static_mflops
from lcnas.latency import call_ms
from lcnas.models import ForcedDecisions, GateConfig

LEVELS = {"static": (0.0, 0.0), "channel_75": (0.0, 0.75), "layer_75": (0.75, 0.0)}


def callers(model, x16: torch.Tensor, forced64: ForcedDecisions):
    """(model call, engine call) cycling over 16 samples' decisions, and the tensors they need alive."""
    singles = [row(forced64, i) for i in range(16)]
    model(x16[:1])
    net = model.engine.native_network(tuple(x16.shape[2:]))
    if net is None:
        raise SystemExit("the model is not eligible for the whole-network native engine (no compiler? LCNAS_NATIVE=0?)")
    arrays = [net.forced_arrays(f, 1) for f in singles]
    images = list(x16.split(1))  # made once: slicing is a torch op, not the model's work
    calls = [net.bound_one(x, a) for x, a in zip(images, arrays)]  # gates bypassed, as the forcings say
    state = {"model": 0, "engine": 0}  # one counter each: both cycle over the same 16 samples

    def model_call():
        i = state["model"] = (state["model"] + 1) % 16
        with model.forced(singles[i]):
            model(images[i])

    def engine_call():
        i = state["engine"] = (state["engine"] + 1) % 16
        if calls[i]() != 0:
            raise RuntimeError("native forward rejected its arguments")
    return model_call, engine_call, (singles, arrays, images, calls)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="resnet20,resnet32,resnet56")
    ap.add_argument("--calls", type=int, default=640, help="calls of each kind per configuration (a multiple of 32)")
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1, help="torch and native engine threads")
    ap.add_argument("--out", default="benchmarks/results/call_overhead_cpu_1t.json")
    args = ap.parse_args()
    torch.set_grad_enabled(False)
    args.threads = use_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    results = {}
    for name in args.models.split(","):
        torch.manual_seed(0)
        plain = create_model(name).eval()
        model = create_model(name, gating="lc", gate_config=GateConfig(group_size=args.group_size, init_logit=10.0)).eval()
        model.load_backbone(plain.state_dict())
        x16 = torch.rand(16, 3, 32, 32, generator=gen)
        full = static_mflops(model)
        timings, keep, mflops = {}, [], {}
        for label, (block_skip, channel_skip) in LEVELS.items():
            forced = decisions(model, 64, block_skip, channel_skip, 4, gen)
            with model.forced(forced):
                model(torch.rand(64, 3, 32, 32, generator=gen))
            mflops[label] = float(sample_mflops(model).mean())
            m, e, alive = callers(model, x16, forced)
            keep.append(alive)
            timings[label] = {"model": m, "engine": e}
        for fns in timings.values():  # warm-up: every sample's caches
            for fn in fns.values():
                for _ in range(32):
                    fn()
        times = {label: {kind: [] for kind in fns} for label, fns in timings.items()}
        # Rounds of (per configuration: model and engine in alternating chunks of 8 calls), so that
        # both kinds of call see the same cache state (alternating every call, the first call after
        # another configuration's pays for refilling the cache) and a slow spell hits both alike.
        chunk, rounds = 8, max(1, args.calls // 32)
        for _ in range(rounds):
            for label, fns in timings.items():
                for _ in range(4):
                    for kind, fn in fns.items():
                        for _ in range(chunk):
                            times[label][kind].append(call_ms(fn) / 1e3)
        med = {label: {kind: statistics.median(t) * 1e6 for kind, t in kinds.items()} for label, kinds in times.items()}
        out = {"static_mflops": full, "latency_us": med, "levels": {}}
        for label in LEVELS:
            if label == "static":
                continue
            reduction = full / mflops[label]
            out["levels"][label] = {
                "flops_reduction": reduction,
                **{f"{kind}_efficiency": med["static"][kind] / med[label][kind] / reduction for kind in ("model", "engine")},
                "model_minus_engine_us": med[label]["model"] - med[label]["engine"],
            }
        out["static_model_minus_engine_us"] = med["static"]["model"] - med["static"]["engine"]
        results[name] = out
        for label, v in out["levels"].items():
            print(f"{name} {label}: FLOPs ÷{v['flops_reduction']:.2f}  efficiency model {v['model_efficiency']:.2f}, "
                  f"engine {v['engine_efficiency']:.2f}  (model − engine: {v['model_minus_engine_us']:.0f} µs; "
                  f"static {out['static_model_minus_engine_us']:.0f} µs)")
    write_json(args.out, {"benchmark": "call_overhead", "settings": vars(args), "results": results,
                          "environment": environment_metadata()})
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

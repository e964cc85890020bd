"""Proxy fidelity: does the search's proxy rank trials the way retraining them does?

Runs ``lcnas search`` (Optuna, SQLite; the proxy exactly as a user gets it), then retrains every
finished trial as ``lcnas retrain`` would (whole training split, backbone trained too, ``--epochs``)
and reports the Kendall tau between each trial's proxy score and its retrained score, on the
validation split (the test accuracy of each retrain is recorded too, never used for ranking).

The score is validation accuracy (``kendall_tau_proxy_vs_retrained``); the cost metric's tau is
reported beside it. Both stages resume: the search continues its study, each retrain its last.pt,
and finished retrains are read back, so a stopped run picks up where it was.

    python benchmarks/proxy_fidelity.py --data-root ../shared/data/cifar10 --trials 8 --epochs 3
        → benchmarks/results/proxy_fidelity_cifar10.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from _common import kendall_tau, write_json  # also puts the repository on sys.path

from lcnas import environment_metadata
from lcnas.search import load_results, retrain_config
from lcnas.train import train

RESULTS = Path(__file__).resolve().parent / "results"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data-root", help="folder holding cifar-10-batches-py")
    p.add_argument("--space", default="lcnet_cifar10", help="search space (default lcnet_cifar10: from the static backbone, as make run SPACE=lcnet_cifar10)")
    p.add_argument("--lut", default="cpu-amd-epyc-1t.json", help="latency table (default: the shipped AMD EPYC 1-thread one)")
    p.add_argument("--trials", type=int, default=8, help="proxy trials (default 8)")
    p.add_argument("--epochs", type=int, default=3, help="retrain epochs per trial (default 3, as make run)")
    p.add_argument("--retrain-subset", type=int, help="retrain on this many training images (default: the whole split)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="base setting for every proxy trial")
    p.add_argument("--work", type=Path, default=Path("runs/proxy_fidelity"), help="search and retrain folder (default runs/proxy_fidelity)")
    p.add_argument("--out", type=Path, default=RESULTS / "proxy_fidelity_cifar10.json")
    args = p.parse_args(argv)
    if args.trials < 2 or args.epochs < 1:
        p.error("--trials must be >= 2 and --epochs >= 1")
    search_dir = args.work / "search"
    cmd = [sys.executable, "-m", "lcnas", "search", "--space", args.space, "--trials", str(args.trials), "--lut", args.lut,
           "--seed", str(args.seed), "--out", str(search_dir), "--format", "json", "--no-progress"]
    cmd += [x for kv in args.set for x in ("--set", kv)]
    if args.data_root:
        cmd += ["--data-root", args.data_root]
    print("search:", " ".join(cmd[2:]), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    results = load_results(search_dir)
    trials = [t for t in results.trials if t.state == "complete" and t.accuracy is not None]
    metric = results.settings.cost_metric
    rows = []
    for t in trials:
        name = f"retrain-{t.number}"
        cfg = retrain_config(results, t, name=name, overrides={"epochs": args.epochs, "out_dir": str(args.work),
                                                                        "train_subset": args.retrain_subset})
        metrics_file = cfg.run_dir / "metrics.json"
        done = json.loads(metrics_file.read_text()).get("final") if metrics_file.exists() else None
        if done is None:
            print(f"retrain trial {t.number} ({args.epochs} epochs)", flush=True)
            done = train(cfg, resume=(cfg.run_dir / "last.pt").exists(), progress=False)
        rows.append({"number": t.number, "params": t.to_dict()["params"], "proxy_val_accuracy": t.accuracy,
                     f"proxy_{metric}": t.metric(metric), "proxy_mflops_mean": t.mflops_mean,
                     "retrained_val_accuracy": done.get("val_accuracy"), "retrained_test_accuracy": done.get("test_accuracy"),
                     "retrained_val_mflops_mean": done.get("val_mflops_mean"),
                     "retrained_val_latency_ms_mean": done.get("val_latency_ms_mean")})
    if len(rows) < 2:
        raise SystemExit(f"only {len(rows)} trials finished: nothing to rank")
    tau = kendall_tau([r["proxy_val_accuracy"] for r in rows], [r["retrained_val_accuracy"] for r in rows])
    tau_cost = kendall_tau([r["proxy_mflops_mean"] for r in rows], [r["retrained_val_mflops_mean"] for r in rows])
    result = {"benchmark": "proxy_fidelity", "settings": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
              "search_command": " ".join(["lcnas"] + cmd[3:]), "trials": rows, "n_trials": len(rows),
              "kendall_tau_proxy_vs_retrained": tau, "kendall_tau_mflops_proxy_vs_retrained": tau_cost,
              "goal": {"kendall_tau_proxy_vs_retrained": ">= 0.6"}, "environment": environment_metadata()}
    write_json(args.out, result)
    for r in rows:
        print(f"trial {r['number']:3d}: proxy {r['proxy_val_accuracy']:6.2f} %  retrained {r['retrained_val_accuracy']:6.2f} % "
              f"(test {r['retrained_test_accuracy']:.2f} %)  {r['retrained_val_mflops_mean']:.1f} MFLOPs")
    print(f"Kendall tau (val accuracy, proxy vs retrained) over {len(rows)} trials: {tau:.3f}; MFLOPs: {tau_cost:.3f}")
    print(f"wrote {args.out}")
    return result


if __name__ == "__main__":
    main()

"""`make run` as a result: its wall time and where the model it retrains stands against the static front.

    python benchmarks/make_run.py --out benchmarks/results/make_run_cpu.json

Runs the README's main command (`make run`, a fresh RUN_NAME, the Makefile's defaults unless
--make-args says otherwise) in this checkout with its `.venv` already installed, times it end to
end (search, retrain, report), and collects from the run's own files: the search's trials, the
picked trial, the retrained model's test accuracy and FLOPs, and the report's standing against the
static CIFAR-10 ResNets timed on lcnas's engine in the same process (``report.json``'s
``static_front``). Goal (issue "dynamic beats static", item 6): at most 15 minutes on 2 CPU cores,
and the retrained model dominated by no static network.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from lcnas import environment_metadata  # noqa: E402

GOAL_WALL_TIME_S = 15 * 60


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--run-name", default=f"make-run-bench-{time.strftime('%Y%m%d-%H%M%S')}", help="RUN_NAME given to make")
    ap.add_argument("--make-args", default="", help="more make variables, e.g. 'TRIALS=12 EPOCHS=5'")
    ap.add_argument("--out", default="benchmarks/results/make_run_cpu.json")
    args = ap.parse_args()

    command = ["make", "run", f"RUN_NAME={args.run_name}", *shlex.split(args.make_args)]
    log = ROOT / "runs" / f"{args.run_name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    print(f"running {' '.join(command)} (log: {log})", flush=True)
    start = time.perf_counter()
    with log.open("w") as fh:
        rc = subprocess.run(command, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    wall_s = time.perf_counter() - start
    if rc != 0:
        raise SystemExit(f"make run failed (exit {rc}); see {log}")

    search = json.loads((ROOT / "runs" / args.run_name / "search" / "results.json").read_text())
    retrain_dir = ROOT / "runs" / f"{args.run_name}-retrain"
    metrics = json.loads((retrain_dir / "metrics.json").read_text())
    report = json.loads((retrain_dir / "report" / "report.json").read_text())
    picked = json.loads((retrain_dir / "picked.json").read_text())
    front = report["static_front"]
    final = metrics["final"]
    result = {
        "benchmark": "make_run",
        "command": " ".join(command),
        "wall_time_s": wall_s,
        "search": {"space": search.get("settings", {}).get("space", {}).get("name"), "lut": search.get("settings", {}).get("lut"),
                   "trials": [{k: t.get(k) for k in ("number", "accuracy", "mflops_mean", "latency_ms_mean")}
                              for t in search.get("trials", [])]},
        "picked_trial": picked.get("trial", {}).get("number", picked.get("number")),
        "retrained": {"epochs": final.get("epochs"), "train_time_s": final.get("train_time_s"),
                      "test_accuracy": final["test_accuracy"], "test_mflops_mean": final["test_mflops_mean"],
                      "init_from": metrics["config"].get("init_from"), "teacher": metrics["config"].get("teacher")},
        "static_front": front,
        "static_models": [{k: m[k] for k in ("model", "test_accuracy", "mflops_mean", "bs1_latency_ms_median")} for m in report["models"]],
        "goal_wall_time_s_max": GOAL_WALL_TIME_S,
        "goal_met": wall_s <= GOAL_WALL_TIME_S and front is not None and not front["dominated_by"],
        "environment": environment_metadata(),
    }
    write_json(args.out, result)
    print(f"make run: {wall_s / 60:.1f} min; {front['sentence'] if front else 'no static front in the report'}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

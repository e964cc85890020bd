"""Fault injection: kill -9 the search driver (and a worker or a trial) at random moments, resume as
the docs say, and count what was lost, duplicated, left running or run beyond ``--trials``.

Backends: Optuna on SQLite, Optuna on PostgreSQL with two workers (a server of our own on
127.0.0.1), Ray Tune on a two-node local cluster (127.0.0.1, usage statistics off) and NNI. Trials
are tiny (synthetic data, one epoch on 128 images): the whole suite takes minutes.

    python benchmarks/faults.py                      # K=10 kills per backend, all four backends
    python benchmarks/faults.py --kills 3 --backends optuna-sqlite,nni --out /tmp/faults.json

Per backend, each round starts the driver(s) with the documented command (the same command again;
Ray with ``--resume``), waits a random 1-8 s, kills -9 (the driver, or one worker then the other,
or a trial process and later the driver), until K kills landed; a last run finishes the search. Then
it checks: results.json, trials.csv and pareto.json parse and agree; exactly ``--trials`` trials,
unique numbers and parameter sets, none running; for Optuna the study itself too.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import yaml  # noqa: E402

from _common import write_json  # noqa: E402

from lcnas import environment_metadata  # noqa: E402

BACKENDS = ("optuna-sqlite", "optuna-postgres", "ray", "nni")
SPACE = {
    "name": "faults",
    "description": "two gate parameters and two loss weights (fault-injection runs)",
    "params": {
        "gating": {"type": "categorical", "choices": ["layer", "lc"]},
        "gate.hidden": {"type": "categorical", "choices": [0, 16]},
        "loss.flops": {"type": "float", "low": 0.5, "high": 4.0, "log": True},
        "loss.flops_target": {"type": "float", "low": 0.3, "high": 0.9},
    },
}
BASE = {"dataset": "synthetic", "val_size": 64, "train_subset": 128, "epochs": 1, "batch_size": 64, "eval_batch_size": 64,
        "amp": "none", "teacher": "null", "threads": 1}
# Ray 2.60 turns token authentication on for a machine once a token exists (~/.ray/auth_token, made by any
# local ray.init): head, worker and driver must then all use it.
ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "PYTHONUNBUFFERED": "1"}


def lcnas_cmd(space: Path, out: Path, trials: int, *extra: str) -> list[str]:
    sets = [a for k, v in BASE.items() for a in ("--set", f"{k}={v}")]
    return [sys.executable, "-m", "lcnas", "search", "--space", str(space), "--out", str(out), "--trials", str(trials),
            "--seed", "0", "--no-progress", "--format", "json", *sets, *extra]


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    f = open(log, "ab")
    return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=ENV, cwd=ROOT, start_new_session=True)


def kill9(proc: subprocess.Popen) -> bool:
    """kill -9 the process (its own session: the driver, not the engines' servers); True if it still ran."""
    if proc.poll() is not None:
        return False
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return True


def pids_matching(marker: str, under: str) -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmd and under in cmd:
            found.append(int(proc.name))
    return found


def ray_trial_pids() -> list[int]:
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if cmd.startswith("ray::_trainable") or cmd.startswith("ray::ImplicitFunc"):
            found.append(int(proc.name))
    return found


# --- backends: one round = start, wait a random moment, kill ------------------------------------------


class Backend:
    name = ""

    def __init__(self, work: Path, trials: int, rng: random.Random):
        self.work, self.trials, self.rng = work, trials, rng
        self.out = work / "search"
        self.space = work / "space.yaml"
        self.space.write_text(yaml.safe_dump(SPACE, sort_keys=False))
        self.log = work / "log.txt"
        self.kills = {"driver": 0, "worker": 0, "trial": 0}
        self.runs = 0

    def setup(self) -> None: ...

    def teardown(self) -> None: ...

    def command(self) -> list[str]:
        return lcnas_cmd(self.space, self.out, self.trials)

    def round(self) -> bool:
        """One kill round; False when the search finished before the kill."""
        return self.kill_round((1.0, 8.0))

    def kill_round(self, wait_s: tuple[float, float], trial_pids=None) -> bool:
        """Start the search, wait a random time in ``wait_s``, sometimes (``trial_pids`` given) kill
        one of its trial processes first, then kill -9 the driver; False when it finished before."""
        self.runs += 1
        proc = start(self.command(), self.log)
        time.sleep(self.rng.uniform(*wait_s))
        if trial_pids is not None and self.rng.random() < 0.4 and proc.poll() is None:  # a trial dies; the driver goes on
            victims = trial_pids()
            if victims:
                os.kill(self.rng.choice(victims), signal.SIGKILL)
                self.kills["trial"] += 1
                time.sleep(self.rng.uniform(1.0, 4.0))
        if kill9(proc):
            self.kills["driver"] += 1
            return True
        return False

    def finish(self) -> int:
        self.runs += 1
        proc = start(self.command(), self.log)
        return proc.wait(timeout=900)

    def extra_checks(self) -> dict[str, int]:
        return {}


class OptunaSqlite(Backend):
    name = "optuna-sqlite"

    def url(self) -> str:
        return f"sqlite:///{self.out / 'study.db'}"

    def extra_checks(self) -> dict[str, int]:
        return optuna_checks(self.url(), self.trials)


class OptunaPostgres(Backend):
    name = "optuna-postgres"

    def setup(self) -> None:
        self.pg = PostgresServer(self.work / "pg")
        self.db_url = self.pg.start()

    def teardown(self) -> None:
        self.pg.stop()

    def command(self, worker: int = 0) -> list[str]:
        out = self.out if worker == 0 else self.work / f"search_worker{worker}"
        return lcnas_cmd(self.space, out, self.trials, "--storage", self.db_url, "--study-name", "faults")

    def round(self) -> bool:
        self.runs += 1
        procs = [start(self.command(i), self.log) for i in (0, 1)]
        self.rng.shuffle(procs)
        landed = False
        for proc in procs:  # one worker at a random moment, then the other
            time.sleep(self.rng.uniform(1.0, 6.0))
            if kill9(proc):
                self.kills["worker"] += 1  # each worker is a driver of its own on the shared study
                landed = True
        return landed

    def finish(self) -> int:
        self.runs += 1
        procs = [start(self.command(i), self.log) for i in (0, 1)]
        codes = [p.wait(timeout=900) for p in procs]
        # the results of the shared study, as the last worker to finish wrote them
        return max(codes)

    def extra_checks(self) -> dict[str, int]:
        return optuna_checks(self.db_url, self.trials, name="faults")


class RayCluster(Backend):
    name = "ray"

    def setup(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        ray = str(Path(sys.executable).parent / "ray")
        common = ["--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--disable-usage-stats"]
        subprocess.run([ray, "start", "--head", "--port", str(self.port), "--include-dashboard", "false", *common],
                       check=True, capture_output=True, env=ENV)
        subprocess.run([ray, "start", "--address", self.address, *common], check=True, capture_output=True, env=ENV)

    def teardown(self) -> None:
        # Only this cluster's processes (they name its GCS address), not other Ray instances here.
        victims = set(pids_matching(f":{self.port} ", "gcs")) | set(pids_matching(f"gcs_server_port={self.port} ", ""))
        for pid in victims - {os.getpid()}:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        current = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"  # as `ray stop` does
        if current.exists() and current.read_text().strip().endswith(f":{self.port}"):
            current.unlink()

    def command(self) -> list[str]:
        resume = ["--resume"] if (self.out / "ray").exists() else []
        return lcnas_cmd(self.space, self.out, self.trials, "--backend", "ray", "--ray-address", self.address,
                         "--concurrency", "2", *resume)

    def round(self) -> bool:
        """One kill round: sometimes a trial's Ray worker first, then the driver."""
        return self.kill_round((3.0, 12.0), ray_trial_pids)


class Nni(Backend):
    name = "nni"

    def setup(self) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]

    def command(self) -> list[str]:
        return lcnas_cmd(self.space, self.out, self.trials, "--backend", "nni", "--port", str(self.port))

    def round(self) -> bool:
        """One kill round: sometimes an NNI trial process first, then the driver."""
        return self.kill_round((4.0, 14.0), lambda: pids_matching("lcnas.search._nni_trial", str(self.out)))

    def teardown(self) -> None:
        from lcnas.search import stop_leftovers

        stop_leftovers(self.out)


class PostgresServer:
    """A throwaway PostgreSQL server on a free 127.0.0.1 port (as the tests start one)."""

    def __init__(self, root: Path):
        self.root = Path(tempfile.mkdtemp(prefix="lcnas-faults-pg-"))
        self.data = self.root / "data"

    def _bin(self, name: str) -> str:  # self unused: also called as PostgresServer._bin(None, name)
        found = shutil.which(name)
        if found:
            return found
        for d in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
            if (d / name).exists():
                return str(d / name)
        raise SystemExit(f"PostgreSQL's {name} not found: install postgresql, or leave optuna-postgres out of --backends")

    def start(self) -> str:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            self.as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.root, "postgres")
            os.chmod(self.root, 0o700)
        subprocess.run([*self.as_user, self._bin("initdb"), "-D", str(self.data), "-A", "trust", "-U", "lcnas"], check=True,
                       capture_output=True)
        subprocess.run([*self.as_user, self._bin("pg_ctl"), "-D", str(self.data), "-o",
                        f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1", "-l", str(self.root / "log"), "-w", "start"],
                       check=True, capture_output=True)
        return f"postgresql://lcnas@127.0.0.1:{port}/postgres"  # the README's form

    def stop(self) -> None:
        subprocess.run([*self.as_user, self._bin("pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)


# --- checks ------------------------------------------------------------------------------------------


def optuna_checks(url: str, trials: int, name: str = "lcnas") -> dict[str, int]:
    import optuna

    from lcnas.search import storage_url

    study = optuna.load_study(study_name=name, storage=storage_url(url))
    all_trials = study.get_trials(deepcopy=False)
    counted = [t for t in all_trials if t.state.name in ("COMPLETE", "PRUNED", "FAIL")
               and not (t.user_attrs.get("lcnas_interrupted") or t.user_attrs.get("lcnas_surplus"))]
    interrupted = [t for t in all_trials if t.user_attrs.get("lcnas_interrupted")]
    retried = {t.user_attrs.get("lcnas_retry_of") for t in all_trials if t.user_attrs.get("lcnas_retry_of") is not None}
    return {"study_trials_counted": len(counted),
            "study_left_running_or_waiting": sum(t.state.name in ("RUNNING", "WAITING") for t in all_trials),
            "study_interrupted_trials": len(interrupted),
            "study_interrupted_not_run_again": sum(t.number not in retried for t in interrupted),
            "study_failed_on_their_own": sum(t.state.name == "FAIL" for t in counted)}


def result_checks(out: Path, trials: int) -> dict[str, Any]:
    """What the search folder says: counts of lost, duplicated, running, surplus, corrupt files."""
    corrupt, missing = 0, 0
    data: dict[str, Any] = {}
    for name in ("results.json", "pareto.json"):
        path = out / name
        if not path.exists():
            missing += 1
            continue
        try:
            data[name] = json.loads(path.read_text())
        except ValueError:
            corrupt += 1
    rows: list[dict[str, str]] = []
    if not (out / "trials.csv").exists():
        missing += 1
    else:
        try:
            rows = list(csv.DictReader((out / "trials.csv").open()))
        except csv.Error:
            corrupt += 1
    for path in list(out.glob("trials/*/result.json")) + list(out.glob("nni_results/*.json")):
        try:
            json.loads(path.read_text())
        except ValueError:
            corrupt += 1
    listed = data.get("results.json", {}).get("trials", [])
    if listed and len(rows) != len(listed):
        corrupt += 1  # trials.csv and results.json disagree
    numbers = [t["number"] for t in listed]
    params = [json.dumps(t.get("params"), sort_keys=True) for t in listed]
    finished = [t for t in listed if t.get("state") in ("complete", "pruned", "failed")]
    return {"trials_in_results": len(listed),
            "lost": max(0, trials - len(finished)),
            "duplicated": (len(numbers) - len(set(numbers))) + (len(params) - len(set(params))),
            "left_running": len(listed) - len(finished),
            "beyond_trials": max(0, len(listed) - trials),
            "failed": sum(t.get("state") == "failed" for t in listed),
            "corrupt_result_files": corrupt,
            "missing_result_files": missing,
            "stray_temp_files": len(list(out.rglob(".*.tmp")))}


def run_backend(cls, k: int, trials: int, seed: int, keep: bool) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"lcnas-faults-{cls.name}-"))
    backend = cls(work, trials, random.Random(seed))
    t0 = time.time()
    backend.setup()
    try:
        rounds = early = 0
        while sum(backend.kills.values()) < k and rounds < 4 * k:
            rounds += 1
            if not backend.round():
                early += 1  # the search finished before the kill: start it over in a fresh folder is not needed
                if (backend.out / "results.json").exists():
                    break
        code = backend.finish()
        row = {"backend": cls.name, "kills": dict(backend.kills), "kills_total": sum(backend.kills.values()),
               "runs": backend.runs, "rounds_finished_before_kill": early, "final_exit_code": code, "trials_asked": trials,
               **result_checks(backend.out, trials), **backend.extra_checks(), "wall_s": round(time.time() - t0, 1)}
        if code != 0:
            row["log_tail"] = backend.log.read_text(errors="replace")[-2000:]
        return row
    finally:
        backend.teardown()
        if not keep:
            shutil.rmtree(work, ignore_errors=True)


DEFINITIONS = {
    "kills": "kill -9 landed while the process ran: driver (the lcnas search process), worker (one of two lcnas search "
             "processes sharing a PostgreSQL study), trial (a Ray trial worker or an NNI trial process, the driver running on)",
    "lost": "--trials minus the finished trials (complete, pruned or failed on their own) in results.json",
    "duplicated": "repeated trial numbers plus repeated parameter sets in results.json",
    "left_running": "trials in results.json neither complete, pruned nor failed",
    "beyond_trials": "trials in results.json beyond --trials",
    "corrupt_result_files": "results.json, pareto.json, trials.csv, per-trial result files that do not parse, or disagree",
    "missing_result_files": "results.json, pareto.json or trials.csv absent after the final run",
    "study_*": "Optuna only: the study itself (interrupted trials are FAIL with lcnas_interrupted, queued again, not counted)",
}


def library_versions() -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in ("optuna", "sqlalchemy", "psycopg2-binary", "ray", "nni", "torch"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    try:
        out["postgresql"] = subprocess.run([PostgresServer._bin(None, "pg_ctl"), "--version"], capture_output=True,
                                           text=True).stdout.strip()
    except (SystemExit, OSError):
        out["postgresql"] = None
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=10, help="kills per backend (K)")
    p.add_argument("--trials", type=int, default=12, help="--trials of each search")
    p.add_argument("--backends", default=",".join(BACKENDS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "faults.json")
    p.add_argument("--keep", action="store_true", help="keep the work folders (in the temp folder)")
    args = p.parse_args()
    classes = {c.name: c for c in (OptunaSqlite, OptunaPostgres, RayCluster, Nni)}
    rows = []
    for i, name in enumerate(args.backends.split(",")):
        if name not in classes:
            raise SystemExit(f"--backends: {name!r} is not one of {', '.join(BACKENDS)}")
        row = run_backend(classes[name], args.kills, args.trials, args.seed + i, args.keep)
        print(json.dumps(row), file=sys.stderr)
        rows.append(row)
    keys = ("lost", "duplicated", "left_running", "beyond_trials", "corrupt_result_files", "missing_result_files")
    ok = all(all(r[key] == 0 for key in keys) and r["trials_in_results"] == args.trials and r["final_exit_code"] == 0 for r in rows)
    write_json(args.out, {"benchmark": "faults", "command": "python " + " ".join([os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
                          "kills_per_backend": args.kills, "trials": args.trials, "seed": args.seed,
                          "all_zero_with_exact_count": ok, "definitions": DEFINITIONS, "backends": rows,
                          "libraries": library_versions(), "environment": environment_metadata()})
    print(json.dumps({"all_zero_with_exact_count": ok, "out": str(args.out)}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

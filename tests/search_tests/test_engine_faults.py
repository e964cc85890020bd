"""Faults and bad input on the Ray Tune and NNI backends: interrupts, missing clusters, busy ports, clean stdout."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import TINY_BASE


def _cli_sets() -> list[str]:
    return [a for k, v in TINY_BASE.items() for a in ("--set", f"{k}={'null' if v is None else v}")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _lcnas(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    return subprocess.run([sys.executable, "-m", "lcnas", *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_ray_address_where_nothing_listens_fails_fast(tiny_space_file, tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "s"
    try:
        r = _lcnas("search", "--backend", "ray", "--ray-address", f"127.0.0.1:{_free_port()}", "--space", str(tiny_space_file),
                   "--out", str(out), "--trials", "1", "--no-progress", *_cli_sets(), timeout=90)
    except subprocess.TimeoutExpired:
        pytest.fail("lcnas search kept retrying an address where nothing listens")
    assert r.returncode == 2
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "--ray-address" in lines[0] and "ray start --head" in lines[0], r.stderr
    assert not (out / "results.json").exists()


def test_a_local_ray_instance_binds_loopback_without_usage_stats(monkeypatch):
    pytest.importorskip("ray")
    from lcnas.search._ray import local_init_options

    monkeypatch.delenv("RAY_USAGE_STATS_ENABLED", raising=False)
    with pytest.warns(UserWarning, match="all network interfaces"):  # what Ray cannot confine, the start-up says
        opts = local_init_options(None)
    assert opts["_node_ip_address"] == "127.0.0.1" and opts["include_dashboard"] is False
    assert opts["address"] == "local"  # never a cluster `ray start` left on this machine
    assert os.environ["RAY_USAGE_STATS_ENABLED"] == "0"
    assert local_init_options("127.0.0.1:6379") == {"address": "127.0.0.1:6379"}


def test_ray_interrupted_writes_no_results_and_resume_finishes_the_exact_count(tiny_space_file, tmp_path):
    """Ctrl-C ends Tune's fit() quietly; that is not a finished search. --resume then finishes it,
    and --format json keeps stdout pure JSON (Tune's tables go to stderr)."""
    pytest.importorskip("ray")
    out = tmp_path / "s"
    args = ["search", "--backend", "ray", "--space", str(tiny_space_file), "--out", str(out), "--trials", "3",
            "--concurrency", "1", "--seed", "0", "--no-progress", *_cli_sets()]
    proc = subprocess.Popen([sys.executable, "-m", "lcnas", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "RAY_USAGE_STATS_ENABLED": "0"})
    deadline = time.time() + 180
    while time.time() < deadline and not list((out / "trials").glob("*/metrics.json")) and proc.poll() is None:
        time.sleep(0.5)
    assert proc.poll() is None, "the search ended before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err.strip().splitlines()[-1]
    assert not (out / "results.json").exists()
    r = _lcnas(*args, "--resume", "--format", "json")
    assert r.returncode == 0, r.stderr[-2000:]
    summary = json.loads(r.stdout)
    assert summary["trials"] == 3
    trials = json.loads((out / "results.json").read_text())["trials"]
    assert sorted(t["number"] for t in trials) == [0, 1, 2]


def test_nni_on_a_busy_port_leaves_nothing_behind(tiny_space_file, tmp_path):
    pytest.importorskip("nni")
    out = tmp_path / "s"
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        r = _lcnas("search", "--backend", "nni", "--port", str(port), "--space", str(tiny_space_file), "--out", str(out),
                   "--trials", "1", "--no-progress", "--format", "json", *_cli_sets(), timeout=120)
    assert r.returncode == 2
    assert r.stdout == ""
    errors = [line for line in r.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and f"port {port}" in errors[0] and "--port" in errors[0], r.stderr
    assert not (out / "nni").exists() and not (out / "nni_settings.json").exists()


def test_nni_kill_9_then_rerun_finishes_the_exact_count(tiny_space_file, tmp_path):
    pytest.importorskip("nni")
    out = tmp_path / "s"
    args = ["search", "--backend", "nni", "--port", str(_free_port()), "--space", str(tiny_space_file), "--out", str(out),
            "--trials", "2", "--seed", "0", "--no-progress", *_cli_sets()]
    proc = subprocess.Popen([sys.executable, "-m", "lcnas", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not list((out / "nni_pids").glob("*")) and proc.poll() is None:
        time.sleep(0.2)  # kill -9 the driver while a trial runs
    assert proc.poll() is None, "the search ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    r = _lcnas(*args, "--format", "json")
    assert r.returncode == 0, r.stderr[-3000:]
    assert json.loads(r.stdout)["trials"] == 2
    trials = json.loads((out / "results.json").read_text())["trials"]
    numbers = [t["number"] for t in trials]
    assert len(numbers) == 2 and len(set(numbers)) == 2
    manager = json.loads((out / "nni_run.json").read_text()).get("manager_pid")
    assert manager is None or not Path(f"/proc/{manager}").exists() or "main.js" not in Path(f"/proc/{manager}/cmdline").read_text()

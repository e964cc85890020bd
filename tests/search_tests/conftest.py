"""Search fixtures: a tiny space and proxy settings on synthetic data (trials take a few seconds)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

TINY_SPACE = {
    "name": "tiny",
    "description": "two gate parameters and two loss weights, for tests",
    "params": {
        "gating": {"type": "categorical", "choices": ["layer", "lc"]},
        "gate.hidden": {"type": "categorical", "choices": [0, 16]},
        "loss.flops": {"type": "float", "low": 0.5, "high": 4.0, "log": True},
        "loss.flops_target": {"type": "float", "low": 0.3, "high": 0.9},
        "gate.group_size": {"type": "categorical", "choices": [4, 8], "when": {"gating": ["lc"]}},
    },
}

# Proxy training on 128 synthetic images, validated on 64: seconds per trial on 2 CPU cores.
TINY_BASE = {"dataset": "synthetic", "val_size": 64, "train_subset": 128, "epochs": 1, "batch_size": 64,
             "eval_batch_size": 64, "amp": "none", "teacher": None, "threads": 1}


@pytest.fixture
def tiny_space_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_SPACE, sort_keys=False))
    return path


@pytest.fixture
def tiny_settings(tiny_space_file: Path, tmp_path: Path):
    from lcnas.search import make_settings

    return make_settings(str(tiny_space_file), out_dir=tmp_path / "search", overrides=dict(TINY_BASE))


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for root in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (root / name).exists():
            return str(root / name)
    return None


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server of our own on a free loopback port (or $LCNAS_TEST_POSTGRES_URL)."""
    if os.environ.get("LCNAS_TEST_POSTGRES_URL"):
        yield os.environ["LCNAS_TEST_POSTGRES_URL"]
        return
    pytest.importorskip("psycopg2", reason="PostgreSQL tests need psycopg2 (pip install psycopg2-binary)")
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) not found; install postgresql or set LCNAS_TEST_POSTGRES_URL")
    # Not under pytest's tmp folder: its parents are private to this user, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="lcnas-pg-"))
    data = root / "data"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        os.chmod(root, 0o700)
    subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", "lcnas"], check=True, capture_output=True)
    opts = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    subprocess.run([*as_user, pg_ctl, "-D", str(data), "-o", opts, "-l", str(root / "log"), "-w", "start"], check=True, capture_output=True)
    try:
        url = f"postgresql+psycopg2://lcnas@127.0.0.1:{port}/postgres"
        deadline = time.time() + 30
        import sqlalchemy

        while True:
            try:
                sqlalchemy.create_engine(url).connect().close()
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        yield url
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)

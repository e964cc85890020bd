"""Machine and library metadata recorded with every benchmark result and latency table."""

from __future__ import annotations

import datetime as _dt
import os
import platform
import subprocess
import sys
from typing import Any

import torch

from ._version import __version__

__all__ = ["environment_metadata", "cpu_model", "cpuinfo_field", "user_cache_root"]


def cpuinfo_field(*names: str) -> str | None:
    """The first ``/proc/cpuinfo`` line starting with one of ``names``, its value; None if absent."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(names):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_model() -> str:
    """This machine's CPU model name (``/proc/cpuinfo``, else :func:`platform.processor`, else ``"unknown"``)."""
    return cpuinfo_field("model name") or platform.processor() or "unknown"


def user_cache_root() -> str:
    """``$XDG_CACHE_HOME``, else ``~/.cache``: where lcnas's per-user cache folders live."""
    return os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")


def environment_metadata(argv: list[str] | None = None) -> dict[str, Any]:
    """Who measured what, where: CPU/GPU, threads, library versions, date, command, git commit."""
    meta: dict[str, Any] = {
        "date_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(argv if argv is not None else sys.argv),
        "lcnas_version": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": _git_commit(),
    }
    try:
        import torchvision

        meta["torchvision"] = torchvision.__version__
    except ImportError:
        pass
    return meta


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=os.path.dirname(os.path.abspath(__file__)))
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None

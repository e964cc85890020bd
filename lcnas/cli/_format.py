"""``--format json|table`` output shared by every CLI verb that reports numbers."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

__all__ = ["add_format_argument", "check_set", "emit", "stdout_to_stderr"]


def add_format_argument(parser) -> None:
    """Add ``--format table|json`` (default ``table``) to ``parser``; :func:`emit` prints in that format."""
    parser.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")


def emit(obj: Any, fmt: str) -> None:
    """Print ``obj`` (a dict, or a list of dicts) as JSON or an aligned table on stdout."""
    if fmt == "json":
        print(json.dumps(obj, indent=2))
        return
    rows = obj if isinstance(obj, list) else [obj]
    if not rows:
        return
    if isinstance(obj, dict):
        width = max(len(str(k)) for k in obj)
        for k, v in obj.items():
            print(f"{str(k).ljust(width)}  {_fmt(v)}")
        return
    keys = list(rows[0])
    cells = [[_fmt(r.get(k)) for k in keys] for r in rows]
    widths = [max(len(k), *(len(c[i]) for c in cells)) for i, k in enumerate(keys)]
    print("  ".join(k.ljust(w) for k, w in zip(keys, widths, strict=True)))
    for c in cells:
        print("  ".join(v.ljust(w) for v, w in zip(c, widths, strict=True)))
    sys.stdout.flush()


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything printed meanwhile to stderr, also by child processes and libraries that hold
    the original stream (Ray Tune's tables, NNI's log lines), so stdout carries only the result."""
    sys.stdout.flush()
    try:
        fd = sys.__stdout__.fileno() if sys.__stdout__ else 1
        saved = os.dup(fd)
    except (OSError, ValueError):  # no real stdout (embedded): redirect Python's stream only
        fd = saved = None
    if saved is not None:
        sys.stderr.flush()
        os.dup2(sys.__stderr__.fileno() if sys.__stderr__ else 2, fd)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stderr.flush()
        if saved is not None:
            with contextlib.suppress(OSError, ValueError):
                if sys.__stdout__:
                    sys.__stdout__.flush()
            os.dup2(saved, fd)
            os.close(saved)


def check_set(items: list[str] | None) -> None:
    """Name the ``--set`` flag (not the YAML file it would be merged into) for an unknown setting."""
    from ..train import apply_overrides, parse_overrides

    for item in items or []:
        apply_overrides({}, parse_overrides([item]), source=f"--set {item}")

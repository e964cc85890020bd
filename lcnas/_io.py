"""Atomic file writes: a crash mid-write never leaves a half-written checkpoint or result."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_write", "check_writable", "read_json", "write_bytes", "write_json"]


def atomic_write(path: str | os.PathLike[str], writer: Callable[[IO[bytes]], object]) -> Path:
    """Call ``writer`` on a temp file beside ``path``, fsync it, then rename it over ``path``.

    The rename is atomic on POSIX, so readers see either the old file or the new one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def check_writable(path: str | os.PathLike[str], *, what: str, folder: bool = False) -> None:
    """Raise :class:`~lcnas.errors.ConfigError` unless ``path`` (a file, or with ``folder`` a
    folder) can be written: checked before long work, so a run never fails at its end for want of
    a place to put what it made. Nothing is left behind (a probe folder is made and removed).

    ``what`` names the path in the message, e.g. ``"--out"``."""
    from .errors import ConfigError

    p = Path(path)
    if p.exists() and p.is_dir() != folder:
        kind = "a folder" if p.is_dir() else "a file"
        raise ConfigError(f"{what} {str(p)!r} is {kind}, where lcnas writes {'a folder' if folder else 'a file'}; pick another path")
    parent = (p if folder else p.parent).resolve()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{what} {str(p)!r} cannot be created: {str(parent)!r} is a file, not a folder; pick another path")
    probe = parent / f".lcnas-write-test-{os.getpid()}"
    try:
        probe.mkdir()
        probe.rmdir()
    except OSError as e:
        raise ConfigError(f"{what} {str(p)!r} cannot be created: lcnas cannot write in {str(parent)!r} ({e.strerror}); "
                          "pick another path") from None


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path``, atomically."""
    return atomic_write(path, lambda f: f.write(data))


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically."""
    return write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode())


def read_json(path: str | os.PathLike[str], *, what: str, missing_hint: str, error: type[Exception]) -> Any:
    """Parse a JSON file; ``error`` naming ``what`` and the path when it is missing or malformed."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise error(f"{what} {str(path)!r} not found{missing_hint}") from None
    except json.JSONDecodeError as e:
        raise error(f"{what} {str(path)!r} is not valid JSON ({e})") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask

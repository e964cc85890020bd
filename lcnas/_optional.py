"""Lazy imports of optional dependencies that fail with the extra to install."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["import_optional"]


def import_optional(module: str, *, extra: str) -> ModuleType:
    """Import ``module`` or raise ImportError telling which lcnas extra provides it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"{module!r} is required for this feature but is not installed: "
            f"pip install 'lcnas[{extra}]'"
        ) from e

"""Checking a mapping against a dataclass's fields (configs that cross file boundaries)."""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["checked_fields"]


def checked_fields(cls: type, data: dict[str, Any] | None) -> dict[str, Any]:
    """A copy of ``data`` (never mutated); ValueError naming any key that is not a field of ``cls``."""
    data = dict(data or {})
    unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {', '.join(sorted(unknown))}")
    return data

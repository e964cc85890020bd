"""Declared value limits of config fields: one statement per field, read by the dataclass's own
validation and by anything that checks values before a config exists (the search space).

A field declares its limit with :func:`limited`; :func:`check_limits` validates an instance
against every declared limit; :func:`limit_of` hands the limit to other readers.
"""

from __future__ import annotations

import dataclasses
import numbers
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["Limit", "limited", "limit_of", "check_limits"]


@dataclass(frozen=True)
class Limit:
    """The allowed values of one field: a numeric range (each end open or closed) or a set of choices.

    For a tuple-valued field the range applies to each element; ``None`` always passes (whether a
    field may be ``None`` is its type's business).

    Args:
        low: lowest value, or ``None`` for no lower end.
        low_inclusive: whether ``low`` itself is allowed.
        high: highest value, or ``None`` for no upper end.
        high_inclusive: whether ``high`` itself is allowed.
        choices: the allowed values of a text field (``None``: any).
    """

    low: float | None = None
    low_inclusive: bool = True
    high: float | None = None
    high_inclusive: bool = True
    choices: tuple[Any, ...] | None = None

    def contains(self, value: Any) -> bool:
        """Whether ``value`` (or each element of a tuple/list value) is allowed."""
        if value is None:
            return True
        if isinstance(value, (tuple, list)):
            return all(self.contains(v) for v in value)
        if self.choices is not None:
            return value in self.choices
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return True  # a type error, reported by whoever checks types
        value = float(value)
        above = self.low is None or (value >= self.low if self.low_inclusive else value > self.low)
        below = self.high is None or (value <= self.high if self.high_inclusive else value < self.high)
        return above and below

    def describe(self) -> str:
        """The limit in words: ``>= 0``, ``> 0 and < 1``, ``one of avg, max``."""
        if self.choices is not None:
            return "one of " + ", ".join(str(c) for c in self.choices)
        parts = []
        if self.low is not None:
            parts.append(f"{'>=' if self.low_inclusive else '>'} {self.low:g}")
        if self.high is not None:
            parts.append(f"{'<=' if self.high_inclusive else '<'} {self.high:g}")
        return " and ".join(parts) or "any value"


def limited(default: Any, *, ge: float | None = None, gt: float | None = None, le: float | None = None,
            lt: float | None = None, choices: tuple[Any, ...] | None = None) -> Any:
    """A dataclass field with ``default`` and a declared :class:`Limit` (``ge``/``gt`` the lower end,
    ``le``/``lt`` the upper end, or ``choices``)."""
    limit = Limit(low=gt if gt is not None else ge, low_inclusive=gt is None,
                  high=lt if lt is not None else le, high_inclusive=lt is None, choices=choices)
    return dataclasses.field(default=default, metadata={"limit": limit})


def limit_of(field: dataclasses.Field) -> Limit | None:
    """The :class:`Limit` a field declared with :func:`limited`, or ``None``."""
    return field.metadata.get("limit")


def check_limits(obj: Any, *, prefix: str = "") -> None:
    """:class:`~lcnas.errors.ConfigError` (a ValueError) naming the first field of dataclass instance ``obj`` outside its declared limit,
    e.g. ``GateConfig: hidden must be >= 0, got -1`` (``prefix`` starts the message)."""
    for f in dataclasses.fields(obj):
        limit = limit_of(f)
        value = getattr(obj, f.name)
        if limit is not None and not limit.contains(value):
            if limit.choices is not None:
                raise ConfigError(f"{prefix}{f.name}={value!r} is not {limit.describe()}")
            raise ConfigError(f"{prefix}{f.name} must be {limit.describe()}, got {value!r}")

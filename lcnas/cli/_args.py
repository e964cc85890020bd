"""Argument types for the CLI's numeric and list options: a bad value is argparse's one-line
error naming the option (exit status 2), never a traceback from deep inside a run."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

__all__ = ["SEED_MAX", "int_list", "integer", "name_list", "nonempty"]

SEED_MAX = 2**32 - 1  # numpy's and Optuna's samplers take seeds in [0, 2**32)


def _int(text: str, what: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None


def integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer >= ``minimum`` (and <= ``maximum`` when given)."""
    span = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum}"

    def parse(text: str) -> int:
        value = _int(text, f"an integer {span}")
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be an integer {span}, got {value}")
        return value

    parse.__name__ = f"integer {span}"  # argparse names the type in its own messages
    return parse


def int_list(minimum: int, example: str) -> Callable[[str], tuple[int, ...]]:
    """An argparse ``type``: comma-separated integers, each >= ``minimum`` (``example`` shows one)."""

    def parse(text: str) -> tuple[int, ...]:
        what = f"comma-separated integers >= {minimum}, e.g. {example}"
        items = [s.strip() for s in text.split(",")]
        if not all(items):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        values = tuple(_int(s, what) for s in items)
        low = [v for v in values if v < minimum]
        if low:
            raise argparse.ArgumentTypeError(f"each value must be >= {minimum}, got {low[0]}")
        return values

    parse.__name__ = "integer list"
    return parse


def name_list(choices: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    """An argparse ``type``: comma-separated names, each one of ``choices`` (e.g. ``avg,max``)."""

    def parse(text: str) -> tuple[str, ...]:
        names = tuple(s.strip() for s in text.split(","))
        unknown = [n for n in names if n not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown[0]!r}; choose from {', '.join(choices)} (comma-separated)")
        return names

    parse.__name__ = "name list"
    return parse


def nonempty(text: str) -> str:
    """An argparse ``type``: a name with at least one non-blank character."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text

"""Exceptions lcnas raises for bad input: one clear message naming the thing and the fix."""

from __future__ import annotations

__all__ = ["LcnasError", "ConfigError", "DataError", "CheckpointError", "InputError", "UnknownModelError"]


class LcnasError(Exception):
    """Base class: every user-facing error lcnas raises on purpose."""


class ConfigError(LcnasError, ValueError):
    """A YAML/JSON config or a ``--set`` override is malformed or has a bad field."""


class DataError(LcnasError, RuntimeError):
    """A dataset is missing, incomplete or corrupt."""


class CheckpointError(LcnasError, RuntimeError):
    """A checkpoint file is missing, truncated, corrupt or not an lcnas checkpoint."""


class InputError(LcnasError, ValueError):
    """A model was called on something other than a batch of float images of its channel count."""


class UnknownModelError(LcnasError, KeyError):
    """A model name is not in the registry."""

    def __str__(self) -> str:  # KeyError would print the repr with quotes
        return str(self.args[0]) if self.args else ""

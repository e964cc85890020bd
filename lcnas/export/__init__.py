"""Export of dynamic models with their real control flow (TorchScript)."""

from __future__ import annotations

from ._script import ScriptedLCNet, export_torchscript

__all__ = ["ScriptedLCNet", "export_torchscript"]

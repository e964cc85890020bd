"""Weights shipped with lcnas: ``<model>_<dataset>.pt`` files listed in ``manifest.json``.

Each manifest entry records the file's sha256, the exact command that trained it, epochs, wall
time and test accuracy. Files are verified against the manifest before they are loaded.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .._checkpoint_file import read_checkpoint
from ..errors import CheckpointError

__all__ = ["PRETRAINED_DIR", "PretrainedInfo", "list_pretrained", "pretrained_manifest", "pretrained_path", "load_pretrained_state"]

PRETRAINED_DIR = Path(__file__).resolve().parent


def pretrained_manifest() -> dict[str, Any]:
    """The shipped ``manifest.json``: model name → entry (file, sha256, command, accuracy, ...); empty if absent."""
    path = PRETRAINED_DIR / "manifest.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


@dataclass(frozen=True)
class PretrainedInfo:
    """One shipped weight file: load it with ``lcnas.load_model(name)``.

    ``model`` is the registered backbone, ``gating`` ``"none"`` for a static network or the LC-Net
    gating; ``test_accuracy`` is in percent on the dataset's test set; ``command`` made the file.
    """

    name: str
    model: str
    gating: str
    dataset: str
    test_accuracy: float | None
    command: str | None


def list_pretrained(pattern: str = "*") -> list[PretrainedInfo]:
    """The shipped weights whose name matches a shell-style ``pattern``, static and gated, sorted by name."""
    import fnmatch

    rows = []
    for name, entry in pretrained_manifest().items():
        if not fnmatch.fnmatchcase(name, pattern):
            continue
        config = entry.get("config") or {}
        rows.append(PretrainedInfo(name=name, model=entry.get("model") or config.get("model") or name,
                                   gating=entry.get("gating") or config.get("gating") or "none",
                                   dataset=entry.get("dataset", "?"), test_accuracy=entry.get("test_accuracy"),
                                   command=entry.get("command")))
    return sorted(rows, key=lambda r: r.name)


def pretrained_path(name: str) -> Path:
    """The verified weight file for model ``name``; a clear error when none is shipped."""
    manifest = pretrained_manifest()
    entry = manifest.get(name)
    if entry is None:
        available = ", ".join(sorted(manifest)) or "none yet"
        raise CheckpointError(f"no pretrained weights shipped for {name!r} (available: {available}); train them with `lcnas train`")
    path = PRETRAINED_DIR / entry["file"]
    digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    if digest != entry["sha256"]:
        raise CheckpointError(f"pretrained file {str(path)!r} is missing or does not match its manifest sha256; reinstall lcnas")
    return path


def load_pretrained_state(name: str, *, num_classes: int) -> dict[str, torch.Tensor]:
    """The verified shipped ``state_dict`` for model ``name``.

    Raises:
        CheckpointError: no weights are shipped for ``name``, the file fails its sha256 check, or
            it was trained for a number of classes other than ``num_classes``.
    """
    ckpt = read_checkpoint(pretrained_path(name))
    if ckpt["model"].get("num_classes") != num_classes:
        raise CheckpointError(f"pretrained {name!r} has {ckpt['model'].get('num_classes')} classes, not {num_classes}")
    return ckpt["state_dict"]

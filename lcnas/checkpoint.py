"""Checkpoints: one format for training state and shipped weights, loaded without running pickle code.

A checkpoint is a plain dict of tensors, numbers and strings (``torch.load(weights_only=True)``
reads it): the model spec to rebuild it, its ``state_dict``, the config and metrics of the run,
the lcnas version, and for resumable checkpoints the optimizer/scheduler state.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ._checkpoint_file import FORMAT, FORMAT_VERSION, read_checkpoint
from ._io import atomic_write
from ._version import __version__
from .errors import CheckpointError

__all__ = ["save_checkpoint", "read_checkpoint", "load_model", "model_from_checkpoint", "FORMAT"]


def save_checkpoint(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    train_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` (and optionally the state to resume training) atomically to ``path``."""
    from .models import model_spec

    spec = model_spec(model)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lcnas_version": __version__,
        "model": dict(spec),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": dict(config or {}),
        "metrics": dict(metrics or {}),
    }
    if train_state is not None:
        payload["train_state"] = train_state
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))


def model_from_checkpoint(ckpt: dict[str, Any], *, source: str = "checkpoint") -> nn.Module:
    """Rebuild the model a checkpoint describes and load its weights (strictly)."""
    from .models import create_model

    spec = ckpt["model"]
    gate_config = spec.get("gate_config")
    if isinstance(gate_config, dict) and "norm" not in gate_config:
        gate_config = {**gate_config, "norm": False}  # written before gates normalised their input
    try:
        model = create_model(spec["name"], gating=spec.get("gating", "none"), num_classes=spec.get("num_classes"),
                             gate_config=gate_config)
        model.load_state_dict(ckpt["state_dict"])
    except (KeyError, RuntimeError, TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: weights do not fit model {spec.get('name')!r} ({str(e).splitlines()[0]})") from None
    return model


def load_model(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> nn.Module:
    """Load an lcnas checkpoint (a path, or the name of a shipped model in
    ``lcnas/pretrained/manifest.json``, verified by sha256) and return its model in eval mode, ready
    for (hard) inference.

    Example:
        >>> model = lcnas.load_model("lcnas/pretrained/resnet20_cifar10.pt")  # doctest: +SKIP
        >>> model(torch.rand(1, 3, 32, 32)).argmax(1)  # doctest: +SKIP
    """
    if not os.path.exists(path):
        from .pretrained import pretrained_manifest, pretrained_path

        if str(path) in pretrained_manifest():
            path = pretrained_path(str(path))
    ckpt = read_checkpoint(path, map_location=map_location)
    return model_from_checkpoint(ckpt, source=str(path)).to(map_location).eval()

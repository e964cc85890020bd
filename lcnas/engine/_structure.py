"""What the engine reads of a model: attributes, never types, so the engine sits below ``lcnas.models``.

A model is a ResNet-shaped module (:class:`ModelLike`): a stem (``normalize``, ``conv1``, ``bn1``,
``maxpool``), blocks in execution order (``blocks()``), and a head (``fc``, ``forward_head``). A
block (:class:`BlockLike`) says what it is in ``kind`` ("basic": two 3×3 convs, "bottleneck":
1×1, 3×3, 1×1) and carries its convs, BatchNorms, stride, shortcut module and gates. A shortcut
module with ``kind == "pad"`` is the parameter-free "option A" shortcut (``stride``, ``pad``);
any other is a 1×1 conv + BatchNorm pair (``downsample[0]``, ``downsample[1]``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

__all__ = ["BlockLike", "GateSettings", "ModelLike", "NO_GATES", "gate_settings", "shortcut_kind"]


class GateSettings(Protocol):
    """The gate configuration fields the engine reads (``lcnas.models.GateConfig`` has them)."""

    @property
    def layer_threshold(self) -> float:
        """Keep threshold on the layer gate's probability."""

    @property
    def channel_threshold(self) -> float:
        """Keep threshold on the channel gate's per-group probabilities."""

    @property
    def group_size(self) -> int:
        """Channels per channel-gate decision."""

    @property
    def pooling(self) -> str:
        """The gates' input pooling: avg, max or avgmax."""

    @property
    def scaling(self) -> bool:
        """Whether the gates output scales."""


@dataclass(frozen=True)
class _NoGates:
    """What the engine reads of a model without gates: every block runs, nothing pools or scales."""

    layer_threshold: float = 0.5
    channel_threshold: float = 0.5
    group_size: int = 4
    pooling: str = "avg"
    scaling: bool = True


NO_GATES: GateSettings = _NoGates()


class BlockLike(Protocol):
    """A residual block as the engine reads it."""

    kind: str  # "basic" or "bottleneck"
    conv1: nn.Conv2d
    bn1: nn.BatchNorm2d
    conv2: nn.Conv2d
    bn2: nn.BatchNorm2d
    stride: int
    downsample: nn.Module | None
    layer_gate: Any  # a gate (``outputs``, ``mlp``, ``folded_linears()``) or None
    channel_gate: Any

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The block's shortcut path."""


class ModelLike(Protocol):
    """A ResNet as the engine reads it. ``_forced`` holds the decisions imposed on the current
    forward pass (``block_run``, ``channel_keep``, ``evaluate_gates``) or None."""

    normalize: nn.Module
    conv1: nn.Conv2d
    bn1: nn.BatchNorm2d
    maxpool: nn.Module
    fc: nn.Linear
    _forced: Any

    def blocks(self) -> list[Any]:
        """The residual blocks in execution order."""

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pooling and the classifier."""


def gate_settings(model: Any) -> GateSettings:
    """The model's gate configuration; :data:`NO_GATES` for a model without one."""
    return getattr(model, "gate_config", None) or NO_GATES


def shortcut_kind(block: Any) -> str:
    """"identity", "pad" (option A: subsample and zero-pad channels) or "conv" (1×1 conv + BN)."""
    if block.downsample is None:
        return "identity"
    return "pad" if getattr(block.downsample, "kind", None) == "pad" else "conv"

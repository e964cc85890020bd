"""The architecture enumeration shared by FLOPs and latency: one description, one walk.

:func:`describe` reads a model once into an :class:`ArchSpec` (stem, every block with its shapes
and gates, head). :func:`walk` goes over that spec with an execution trace and a cost model and
returns the per-sample cost. FLOPs (:mod:`lcnas.cost`) and predicted latency (lookup tables) are
two cost models over this one walk, so they cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

from ..errors import UnknownModelError

__all__ = ["ArchSpec", "BlockSpec", "CostModel", "GateSpec", "describe", "walk"]


@dataclass(frozen=True)
class GateSpec:
    """Shape of one gate network: a pooled input vector through an MLP to its output heads."""

    features: int  # pooled input vector length
    hidden: int  # 0: single linear layer
    heads: int  # logits (+ scales)


@dataclass(frozen=True)
class BlockSpec:
    """One residual block as the cost walk sees it: shapes, stride, shortcut kind and its gates.

    ``in_hw`` and ``out_hw`` are (height, width) of the block's input and output feature maps;
    ``layer_gate`` / ``channel_gate`` are ``None`` where the block has no such gate.
    """

    index: int
    stage: int  # 1-based
    kind: str  # basic | bottleneck
    in_channels: int
    width: int  # inner channels the channel gate chooses from
    out_channels: int
    stride: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    shortcut: str  # identity | pad | conv
    group_size: int
    layer_gate: GateSpec | None
    channel_gate: GateSpec | None


@dataclass(frozen=True)
class ArchSpec:
    """A whole network for one input size (C, H, W): stem, every block in order, and the head.

    Built by :func:`describe`; :func:`walk` turns it plus an execution trace into per-sample cost.
    """

    model: str
    gating: str
    input_size: tuple[int, int, int]
    stem_kind: str  # cifar | imagenet
    stem_channels: int
    stem_out_hw: tuple[int, int]  # after the stem conv (before any max-pool)
    blocks: tuple[BlockSpec, ...]
    head_features: int
    num_classes: int


class CostModel(Protocol):
    """Per-unit costs; FLOPs and latency tables implement it. ``kept`` may be fractional (expected)."""

    def stem(self, arch: ArchSpec) -> float:
        """Cost of the stem (first convolution, and max-pool for ImageNet stems); always paid."""

    def gate(self, block: BlockSpec, gate: GateSpec) -> float:
        """Cost of evaluating one gate network ``gate`` of ``block``."""

    def residual(self, block: BlockSpec, kept: torch.Tensor) -> torch.Tensor:
        """Per-sample cost of ``block``'s residual branch at ``kept`` inner channels (shape N, may be fractional)."""

    def shortcut(self, block: BlockSpec) -> float:
        """Cost of ``block``'s shortcut (identity, zero-padding or 1×1 convolution); always paid."""

    def head(self, arch: ArchSpec) -> float:
        """Cost of the head (global pooling and the classifier); always paid."""


def describe(model: nn.Module, input_size: tuple[int, int, int] | None = None) -> ArchSpec:
    """Read a (gated or static) lcnas ResNet into an :class:`ArchSpec` for ``input_size`` (C, H, W).

    The model is read by its structure (``conv1``, ``blocks()``, ``fc``, gates), never its type, so
    the cost package sits below :mod:`lcnas.models` and the engine can use it. Without
    ``input_size``, the size the model was registered for (``model.input_size``).

    Raises:
        UnknownModelError: no ``input_size`` given and the model was not built by
            :func:`lcnas.create_model`.
    """
    net: Any = model  # read by attribute (see above)
    spec = getattr(net, "lcnas_spec", {})
    name = spec.get("name", type(net).__name__)
    if input_size is None:
        input_size = getattr(net, "input_size", None)
        if input_size is None:
            raise UnknownModelError(f"model {name!r} was not built by lcnas.create_model, so it has no registered input "
                                    "size: pass describe(model, input_size=(C, H, W))")
    c, h, w = input_size
    size = (c, h, w)
    imagenet_stem = net.conv1.kernel_size[0] == 7
    h, w = _conv_hw(h, w, net.conv1)
    stem_hw = (h, w)
    if imagenet_stem:
        h, w = (h + 1) // 2, (w + 1) // 2  # 3×3/2 max-pool, padding 1
    gate_config = getattr(net, "gate_config", None)
    blocks = []
    for i, block in enumerate(net.blocks()):
        bottleneck = hasattr(block, "conv3")  # 1×1, 3×3, 1×1; a basic block has two 3×3 convs
        stride = block.stride
        in_hw = (h, w)
        h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
        shortcut = _shortcut_kind(block.downsample)
        out_channels = (block.conv3 if bottleneck else block.conv2).out_channels
        blocks.append(BlockSpec(
            index=i, stage=_stage_of(net, block), kind="bottleneck" if bottleneck else "basic",
            in_channels=block.conv1.in_channels, width=block.conv1.out_channels, out_channels=out_channels,
            stride=stride, in_hw=in_hw, out_hw=(h, w), shortcut=shortcut,
            group_size=gate_config.group_size if gate_config else 1,
            layer_gate=_gate_spec(getattr(block, "layer_gate", None)),
            channel_gate=_gate_spec(getattr(block, "channel_gate", None)),
        ))
    return ArchSpec(model=name, gating=getattr(net, "gating", "none"), input_size=size,
                    stem_kind="imagenet" if imagenet_stem else "cifar", stem_channels=net.conv1.out_channels,
                    stem_out_hw=stem_hw, blocks=tuple(blocks), head_features=net.fc.in_features,
                    num_classes=net.fc.out_features)


def walk(
    arch: ArchSpec, cost: CostModel, block_run: torch.Tensor, kept: torch.Tensor, *, gates_evaluated: bool = True
) -> torch.Tensor:
    """Per-sample cost ``N`` of executing ``arch`` with ``block_run`` (N×B, 0/1 or probabilities)
    and ``kept`` inner channels (N×B, counts or expectations).

    What runs is decided here, once: the stem and head always; a block's layer gate always; its
    channel gate only when the block runs (with a layer gate) or always (channel-only gating);
    its residual branch when it runs, at ``kept`` channels; a conv shortcut always.
    """
    run = block_run.to(torch.float32)
    total = torch.full((run.shape[0],), cost.stem(arch) + cost.head(arch), dtype=torch.float32, device=run.device)
    for b in arch.blocks:
        r = run[:, b.index]
        if gates_evaluated and b.layer_gate is not None:
            total = total + cost.gate(b, b.layer_gate)
        if gates_evaluated and b.channel_gate is not None:
            total = total + cost.gate(b, b.channel_gate) * (r if b.layer_gate is not None else 1.0)
        total = total + r * cost.residual(b, kept[:, b.index].to(torch.float32))
        total = total + cost.shortcut(b)
    return total


def _shortcut_kind(downsample: nn.Module | None) -> str:
    """Read from the module's structure, not its type: a 1×1 conv shortcut holds a convolution;
    the zero-padding ("option A") shortcut has no parameters."""
    if downsample is None:
        return "identity"
    return "conv" if any(isinstance(m, nn.Conv2d) for m in downsample.modules()) else "pad"


def _gate_spec(gate: Any) -> GateSpec | None:
    if gate is None:
        return None
    linears = [m for m in gate.mlp if isinstance(m, nn.Linear)]
    return GateSpec(features=linears[0].in_features, hidden=linears[0].out_features if len(linears) > 1 else 0,
                    heads=linears[-1].out_features)


def _conv_hw(h: int, w: int, conv: Any) -> tuple[int, int]:
    k, s, p = conv.kernel_size[0], conv.stride[0], conv.padding[0]
    return (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1


def _stage_of(model: Any, block: nn.Module) -> int:
    for i, name in enumerate(model.stages, 1):
        if any(b is block for b in getattr(model, name)):
            return i
    raise ValueError("block not found in model stages")

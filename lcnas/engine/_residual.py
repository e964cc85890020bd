"""A block's residual branch and shortcut on PyTorch's convolutions, from folded weights."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ._packs import BlockPack

__all__ = ["gather", "residual", "shortcut", "skipped"]

_CL = torch.channels_last


def residual(bottleneck: bool, stride: int, x: torch.Tensor, weights: tuple, scale: torch.Tensor | None) -> torch.Tensor:
    """The residual branch on folded ``weights`` (one kept set), inner channels times ``scale`` (N×kept) when given."""
    s = None if scale is None else scale[:, :, None, None]
    if bottleneck:
        w1, b1, w2, b2, w3, b3 = weights
        h = F.conv2d(x, w1, b1).relu_()
        if s is not None:
            h.mul_(s)
        h = F.conv2d(h, w2, b2, stride, 1).relu_()
        if s is not None:
            h.mul_(s)
        return F.conv2d(h, w3, b3)
    w1, b1, w2, b2 = weights
    h = F.conv2d(x, w1, b1, stride, 1).relu_()
    if s is not None:
        h.mul_(s)
    return F.conv2d(h, w2, b2, 1, 1)


def shortcut(pack: BlockPack, block: Any, x: torch.Tensor) -> torch.Tensor:
    """The block's shortcut of ``x``: the folded 1×1 conv (runs for every sample: the block changes
    shape), else the block's own (identity or option A)."""
    sc = pack.shortcut
    if sc is not None:
        return F.conv2d(x, sc.weight, sc.bias, sc.stride)
    return block.shortcut(x)


def skipped(pack: BlockPack, block: Any, x: torch.Tensor) -> torch.Tensor:
    """A skipped block's output, ``relu(shortcut)``; identity/pad shortcuts of a post-ReLU input are >= 0."""
    out = shortcut(pack, block, x)
    return out.relu_() if pack.shortcut is not None else out


def gather(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``x[idx]`` along the batch, channels-last kept. For a channels-last ``x`` it is a row gather of
    the NHWC view, contiguous rows, where advanced indexing walks the NCHW strides."""
    if x.dim() == 4 and x.is_contiguous(memory_format=_CL):
        return x.permute(0, 2, 3, 1).index_select(0, idx).permute(0, 3, 1, 2)
    return x[idx]

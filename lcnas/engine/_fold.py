"""Fold eval-mode BatchNorm into the preceding conv: one conv with bias instead of conv + BN."""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

__all__ = ["fold_conv_bn"]


@torch.no_grad()
def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> tuple[torch.Tensor, torch.Tensor]:
    """(weight, bias) of a conv equal to ``bn(conv(x))`` with ``bn`` in eval mode."""
    var, mean = cast(torch.Tensor, bn.running_var), cast(torch.Tensor, bn.running_mean)  # eval statistics
    scale = bn.weight / torch.sqrt(var + bn.eps)
    weight = conv.weight * scale.view(-1, 1, 1, 1)
    bias = bn.bias - mean * scale
    if conv.bias is not None:
        bias = bias + conv.bias * scale
    return weight.contiguous(), bias.contiguous()

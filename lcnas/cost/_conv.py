"""The one FLOP formula: 2 × multiply-accumulates of a convolution (a linear layer is a 1×1
convolution on one pixel). The cost walk, the engine's grouping rule and the native kernels'
counts all compute through it."""

from __future__ import annotations

from typing import overload

import torch

__all__ = ["SET_CACHE_MIB", "conv_flops", "conv_mflops", "kept_width", "residual_mflops_per_channel"]


@overload
def conv_flops(in_channels: float, out_channels: float, kernel_size: int, out_hw: int, groups: int = 1) -> float: ...
@overload
def conv_flops(in_channels: torch.Tensor, out_channels: float | torch.Tensor, kernel_size: int, out_hw: int,
               groups: int = 1) -> torch.Tensor: ...
@overload
def conv_flops(in_channels: float, out_channels: torch.Tensor, kernel_size: int, out_hw: int,
               groups: int = 1) -> torch.Tensor: ...
def conv_flops(in_channels: float | torch.Tensor, out_channels: float | torch.Tensor, kernel_size: int, out_hw: int,
               groups: int = 1) -> float | torch.Tensor:
    """FLOPs (2 per multiply-add, bias and padding taps excluded) of a ``kernel_size``² convolution
    with ``out_hw`` output pixels.

    Either channel count may be a tensor of per-sample (possibly fractional, expected) counts;
    the factors are multiplied in argument order, so a caller controls the float rounding.
    """
    per_group_in = in_channels if groups == 1 else in_channels / groups
    return 2.0 * kernel_size * kernel_size * per_group_in * out_channels * out_hw


def conv_mflops(in_channels: int, out_channels: int, kernel_size: int, out_hw: int, groups: int = 1) -> float:
    """MFLOPs of a ``kernel_size``² convolution with ``out_hw`` output pixels: :func:`conv_flops` / 1e6.

    Example:
        >>> conv_mflops(16, 16, 3, 32 * 32)  # a CIFAR ResNet's first-stage 3×3 conv
        4.718592
    """
    return conv_flops(in_channels, out_channels, kernel_size, out_hw, groups) / 1e6


def residual_mflops_per_channel(in_channels: int, out_channels: int, hw_out: int) -> float:
    """Residual MFLOPs per kept inner channel (exact for basic blocks; linearised for bottlenecks).

    A basic block's two 3×3 convs (``in_channels`` → 1 and 1 → ``out_channels`` at the output
    size) add up to one 3×3 conv from 1 to ``in_channels + out_channels`` channels.
    """
    return conv_mflops(1, in_channels + out_channels, 3, hw_out)


# The native engine's cache of weights gathered for kept channel sets (kCacheFloats in
# _native_net.cpp): past it, least recently used sets are gathered again.
SET_CACHE_MIB = 64.0


def kept_width(channels: int) -> int:
    """The width the native engine runs a block's conv1 at for ``channels`` kept channels (the
    extra ones zero): the next multiple of 4, and past 12 the next multiple of 8, where a 4-wide
    tail beside 8-wide vectors is slower than 4 more channels. The engine's C side has the same
    rule (``kept_width`` in ``_native_net.cpp``); the latency predictor sizes gathered weights with it."""
    width = -(-channels // 4) * 4
    return width + 4 if width > 12 and width % 8 else width

"""FLOPs as :class:`torch.utils.flop_counter.FlopCounterMode` counts them: 2 × multiply-accumulates
of convolutions and linear layers (bias, BatchNorm, ReLU, pooling and additions are not counted),
each from :func:`~lcnas.cost.conv_flops`.
Papers that quote "FLOPs" for ResNets usually mean multiply-accumulates: divide by 2 to compare."""

from __future__ import annotations

import torch
from torch import nn

from ._arch import ArchSpec, BlockSpec, GateSpec, describe, walk
from ._conv import conv_flops

__all__ = ["FlopsModel", "expected_mflops", "sample_mflops", "static_mflops"]


class FlopsModel:
    """The analytic FLOPs cost model for :func:`lcnas.cost.walk`."""

    def stem(self, arch: ArchSpec) -> float:
        """FLOPs of the stem convolution (3×3 CIFAR stem or 7×7 ImageNet stem)."""
        k = 7 if arch.stem_kind == "imagenet" else 3
        h, w = arch.stem_out_hw
        return conv_flops(arch.input_size[0], arch.stem_channels, k, h * w)

    def gate(self, block: BlockSpec, gate: GateSpec) -> float:
        """FLOPs of the gate's linear layers (pooling is not counted)."""
        if gate.hidden:
            return _linear_flops(gate.features, gate.hidden) + _linear_flops(gate.hidden, gate.heads)
        return _linear_flops(gate.features, gate.heads)

    def residual(self, block: BlockSpec, kept: torch.Tensor) -> torch.Tensor:
        """Per-sample FLOPs of the residual branch's convolutions with ``kept`` inner channels."""
        hw_in = block.in_hw[0] * block.in_hw[1]
        hw_out = block.out_hw[0] * block.out_hw[1]
        if block.kind == "basic":
            # 3×3 in → k with the stride plus 3×3 k → out: MACs are linear in each channel
            # count, so the pair is one conv k → in + out (and a float32 product fewer)
            return conv_flops(kept, block.in_channels + block.out_channels, 3, hw_out)
        # bottleneck: 1×1 in → k at input size, 3×3 k → k with the stride, 1×1 k → out
        return (conv_flops(block.in_channels, kept, 1, hw_in) + conv_flops(kept, kept, 3, hw_out)
                + conv_flops(kept, block.out_channels, 1, hw_out))

    def shortcut(self, block: BlockSpec) -> float:
        """FLOPs of a 1×1 convolution shortcut; 0 for identity and zero-padding shortcuts."""
        if block.shortcut != "conv":
            return 0.0
        return conv_flops(block.in_channels, block.out_channels, 1, block.out_hw[0] * block.out_hw[1])

    def head(self, arch: ArchSpec) -> float:
        """FLOPs of the final linear classifier."""
        return _linear_flops(arch.head_features, arch.num_classes)


def _linear_flops(in_features: int, out_features: int) -> float:
    """A linear layer is a 1×1 convolution on one pixel."""
    return conv_flops(in_features, out_features, 1, 1)


_FLOPS = FlopsModel()


def sample_mflops(model: nn.Module, trace=None, *, arch: ArchSpec | None = None) -> torch.Tensor:
    """Per-sample MFLOPs of the model's last forward pass (or of ``trace``)."""
    trace = trace if trace is not None else model.last_trace
    if trace is None:
        raise ValueError("the model has no execution trace yet: run a forward pass first")
    arch = arch or describe(model, trace.input_size)
    return walk(arch, _FLOPS, trace.block_run, trace.channels_kept, gates_evaluated=trace.gates_evaluated) / 1e6


def expected_mflops(model: nn.Module, trace=None, *, arch: ArchSpec | None = None) -> torch.Tensor:
    """Differentiable per-sample expected MFLOPs from gate probabilities (training traces)."""
    trace = trace if trace is not None else model.last_trace
    if trace is None or trace.run_prob is None:
        raise ValueError("expected FLOPs need a training-mode trace (gate probabilities)")
    arch = arch or describe(model, trace.input_size)
    return walk(arch, _FLOPS, trace.run_prob, trace.kept_expected, gates_evaluated=True) / 1e6


def static_mflops(model: nn.Module, input_size: tuple[int, int, int] | None = None) -> float:
    """MFLOPs of the backbone with every block and channel on and no gates."""
    arch = describe(model, input_size)
    ones = torch.ones(1, len(arch.blocks))
    widths = torch.tensor([[float(b.width) for b in arch.blocks]])
    return float(walk(arch, _FLOPS, ones, widths, gates_evaluated=False)[0]) / 1e6

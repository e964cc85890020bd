"""The one FLOP formula agrees with PyTorch's FLOP counter, and the cost models compute through it."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

import lcnas
from lcnas.cost import (
    FlopsModel,
    conv_flops,
    conv_mflops,
    describe,
    residual_mflops_per_channel,
)


@pytest.mark.parametrize("cin,cout,k,size,stride,pad,groups", [
    (3, 16, 3, 32, 1, 1, 1), (16, 32, 3, 32, 2, 1, 1), (64, 256, 1, 14, 1, 0, 1), (3, 64, 7, 224, 2, 3, 1),
    (32, 32, 3, 16, 1, 1, 32), (32, 64, 3, 8, 1, 1, 4),
])
def test_conv_mflops_equals_the_flop_counter(cin, cout, k, size, stride, pad, groups):
    x = torch.rand(1, cin, size, size)
    w = torch.rand(cout, cin // groups, k, k)
    with FlopCounterMode(display=False) as counter:
        y = F.conv2d(x, w, None, stride, pad, groups=groups)
    out_hw = y.shape[2] * y.shape[3]
    assert conv_mflops(cin, cout, k, out_hw, groups) == pytest.approx(counter.get_total_flops() / 1e6, rel=1e-12)
    assert conv_flops(cin, cout, k, out_hw, groups) == counter.get_total_flops()


def test_tensor_channel_counts_give_per_sample_flops():
    kept = torch.tensor([0.0, 4.0, 6.5])
    assert torch.equal(conv_flops(16, kept, 3, 64), torch.stack([torch.tensor(conv_flops(16, float(k), 3, 64)) for k in kept]))


@pytest.mark.parametrize("name", ["resnet20", "resnet18"])
def test_basic_residual_is_per_channel_cost_times_kept(name):
    arch = describe(lcnas.create_model(name, gating="channel"))
    flops = FlopsModel()
    for b in arch.blocks:
        kept = torch.tensor([float(b.width), 4.0])
        per_channel = residual_mflops_per_channel(b.in_channels, b.out_channels, b.out_hw[0] * b.out_hw[1])
        assert torch.allclose(flops.residual(b, kept) / 1e6, kept * per_channel, rtol=1e-6)


def test_bottleneck_residual_is_its_three_convs():
    arch = describe(lcnas.create_model("resnet50", gating="channel"))
    b = arch.blocks[3]  # a stride-2 bottleneck
    assert b.kind == "bottleneck" and b.stride == 2
    k = 32
    hw_in, hw_out = b.in_hw[0] * b.in_hw[1], b.out_hw[0] * b.out_hw[1]
    expected = conv_mflops(b.in_channels, k, 1, hw_in) + conv_mflops(k, k, 3, hw_out) + conv_mflops(k, b.out_channels, 1, hw_out)
    assert float(FlopsModel().residual(b, torch.tensor([float(k)]))[0]) / 1e6 == pytest.approx(expected, rel=1e-6)

"""Registered backbones: CIFAR ResNet-8/14/20/32/44/56/110 (depth 6n+2) and ImageNet ResNet-18/34/50."""

from __future__ import annotations

from ._dynamic import DynamicResNet
from ._gates import GateConfig
from ._normalize import CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD
from ._registry import ModelInfo, register_model
from ._resnet import BasicBlock, Bottleneck, ResNet

__all__: list[str] = []


def _build(gating: str, gate_config: GateConfig | None, **kw) -> ResNet:
    if gating == "none":
        return ResNet(**kw)
    return DynamicResNet(gating=gating, gate_config=gate_config or GateConfig(), **kw)


def _cifar_resnet(depth: int) -> None:
    n = (depth - 2) // 6
    info = ModelInfo(f"resnet{depth}", "cifar10", (3, 32, 32), 10, CIFAR10_MEAN, CIFAR10_STD)

    @register_model(info)
    def build(*, num_classes: int, gating: str = "none", gate_config: GateConfig | None = None) -> ResNet:
        return _build(gating, gate_config, block=BasicBlock, blocks_per_stage=(n, n, n), widths=(16, 32, 64),
                      num_classes=num_classes, stem="cifar", shortcut="pad", mean=CIFAR10_MEAN, std=CIFAR10_STD)


def _imagenet_resnet(depth: int, block: type[BasicBlock] | type[Bottleneck], layers: tuple[int, ...]) -> None:
    info = ModelInfo(f"resnet{depth}", "imagenet", (3, 224, 224), 1000, IMAGENET_MEAN, IMAGENET_STD)

    @register_model(info)
    def build(*, num_classes: int, gating: str = "none", gate_config: GateConfig | None = None) -> ResNet:
        return _build(gating, gate_config, block=block, blocks_per_stage=layers, widths=(64, 128, 256, 512),
                      num_classes=num_classes, stem="imagenet", shortcut="conv", mean=IMAGENET_MEAN, std=IMAGENET_STD)


for _depth in (8, 14, 20, 32, 44, 56, 110):
    _cifar_resnet(_depth)
_imagenet_resnet(18, BasicBlock, (2, 2, 2, 2))
_imagenet_resnet(34, BasicBlock, (3, 4, 6, 3))
_imagenet_resnet(50, Bottleneck, (3, 4, 6, 3))

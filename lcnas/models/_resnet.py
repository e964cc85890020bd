"""ResNets with torchvision's module names (``conv1``, ``layerN.M.conv1``, ``downsample``, ``fc``).

One implementation serves the CIFAR ResNets of He et al. (2016), with the 3×3 stem, 16-32-64
widths and parameter-free "option A" shortcuts, and the ImageNet ResNet-18/34/50, whose
``state_dict`` is key-for-key torchvision's.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._normalize import Normalize

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "PadShortcut"]


class PadShortcut(nn.Module):
    """He et al.'s CIFAR "option A" shortcut: stride-2 subsample, then zero-pad the new channels.

    Parameter-free, so every block (downsampling ones included) keeps an identity-like path and
    its residual branch can be skipped by a layer gate.
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.residual(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)  # stride on the 3×3, as torchvision
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet over ``blocks_per_stage`` blocks of ``block`` at ``widths``.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        blocks_per_stage: e.g. ``(3, 3, 3)`` for ResNet-20, ``(2, 2, 2, 2)`` for ResNet-18.
        widths: inner width of each stage.
        num_classes: classifier outputs.
        stem: ``"cifar"`` (3×3 conv, no pooling) or ``"imagenet"`` (7×7/2 conv + 3×3/2 max-pool).
        shortcut: ``"pad"`` (option A, parameter-free) or ``"conv"`` (1×1 conv + BN, option B).
        mean, std: input normalisation applied inside the model.
    """

    def __init__(
        self,
        *,
        block: type[BasicBlock] | type[Bottleneck],
        blocks_per_stage: Sequence[int],
        widths: Sequence[int],
        num_classes: int,
        stem: str,
        shortcut: str,
        mean: Sequence[float],
        std: Sequence[float],
    ) -> None:
        super().__init__()
        if stem not in ("cifar", "imagenet") or shortcut not in ("pad", "conv"):
            raise ValueError(f"stem must be 'cifar'|'imagenet' and shortcut 'pad'|'conv', got {stem!r}, {shortcut!r}")
        self.normalize = Normalize(mean, std)
        stem_width = widths[0] if stem == "cifar" else 64
        if stem == "cifar":
            self.conv1 = nn.Conv2d(3, stem_width, 3, 1, 1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, stem_width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        in_channels = stem_width
        self.stages: list[str] = []
        for i, (n, width) in enumerate(zip(blocks_per_stage, widths)):
            layers = []
            for j in range(n):
                stride = 2 if (j == 0 and i > 0) else 1
                out_channels = width * block.expansion
                downsample = None
                if stride != 1 or in_channels != out_channels:
                    if shortcut == "pad":
                        downsample = PadShortcut(in_channels, out_channels, stride)
                    else:
                        downsample = nn.Sequential(
                            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels)
                        )
                layers.append(block(in_channels, width, stride, downsample))
                in_channels = out_channels
            name = f"layer{i + 1}"
            setattr(self, name, nn.Sequential(*layers))
            self.stages.append(name)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(in_channels, num_classes)
        self.num_classes = num_classes
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def blocks(self) -> list[nn.Module]:
        """All residual blocks in execution order."""
        return [b for name in self.stages for b in getattr(self, name)]

    def forward_stem(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.forward_stem(x)
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.forward_head(x)

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

from ..engine import Engine
from ..errors import InputError
from ._normalize import Normalize

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "PadShortcut", "check_images"]


class PadShortcut(nn.Module):
    """He et al.'s CIFAR "option A" shortcut: stride-2 subsample, then zero-pad the new channels.

    Parameter-free, so every block (downsampling ones included) keeps an identity-like path and
    its residual branch can be skipped by a layer gate.
    """

    kind = "pad"  # what the engine reads: a subsample-and-pad shortcut

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad = out_channels - in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` subsampled by ``stride`` and zero-padded to the block's output channels."""
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2))


class BasicBlock(nn.Module):
    """Two 3×3 convolutions with BatchNorm (stride on the first) plus a shortcut: the CIFAR ResNet
    and ResNet-18/34 block. Output channels are ``width`` (``expansion`` 1).

    Args:
        in_channels: input channels.
        width: channels of both convolutions.
        stride: stride of the first convolution (2 where a stage downsamples).
        downsample: the shortcut module when the shape changes (:class:`PadShortcut` or a 1×1
            conv + BN); ``None`` for the identity.
    """

    expansion = 1
    kind = "basic"  # what the engine and the cost walk read: two 3×3 convs

    def __init__(self, in_channels: int, width: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.stride = stride
        self.layer_gate = self.channel_gate = None  # a DynamicResNet sets them on its gated blocks

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch (what a layer gate skips), before the addition and final ReLU."""
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The shortcut path: ``x`` itself, or ``downsample(x)`` when the block changes shape."""
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(residual(x) + shortcut(x))``: the static block (gated models do not call it)."""
        return self.relu(self.residual(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (with the stride, as torchvision), 1×1 expand to ``4 × width`` channels,
    each with BatchNorm, plus a shortcut: the ResNet-50 block.

    Args:
        in_channels: input channels.
        width: inner channels (of the 3×3 convolution); the output has ``width * expansion``.
        stride: stride of the 3×3 convolution.
        downsample: the shortcut module when the shape changes; ``None`` for the identity.
    """

    expansion = 4
    kind = "bottleneck"  # 1×1, 3×3, 1×1

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
        self.layer_gate = self.channel_gate = None  # a DynamicResNet sets them on its gated blocks

    def residual(self, x: torch.Tensor) -> torch.Tensor:
        """The residual branch (what a layer gate skips), before the addition and final ReLU."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        """The shortcut path: ``x`` itself, or ``downsample(x)`` when the block changes shape."""
        return x if self.downsample is None else self.downsample(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(residual(x) + shortcut(x))``: the static block (gated models do not call it)."""
        return self.relu(self.residual(x) + self.shortcut(x))


class ResNet(nn.Module):
    """A ResNet over ``blocks_per_stage`` blocks of ``block`` at ``widths``.

    In ``eval()`` a model the native engine can run (the CIFAR ResNets on a float32 CPU input,
    no autograd) runs on it: BatchNorm folded once, the whole pass in one native call, the same
    engine that runs the gated :class:`~lcnas.models.DynamicResNet`. ``model.execution = "mask"``
    runs plain PyTorch instead (the reference); training always runs plain PyTorch. The folded
    weights are refreshed by ``train()``/``eval()``, ``load_state_dict`` and ``.to()``: after
    editing weights in place in eval mode, call ``eval()`` again.

    Args:
        block: :class:`BasicBlock` or :class:`Bottleneck`.
        blocks_per_stage: e.g. ``(3, 3, 3)`` for ResNet-20, ``(2, 2, 2, 2)`` for ResNet-18.
        widths: inner width of each stage.
        num_classes: classifier outputs.
        stem: ``"cifar"`` (3×3 conv, no pooling) or ``"imagenet"`` (7×7/2 conv + 3×3/2 max-pool).
        shortcut: ``"pad"`` (option A, parameter-free) or ``"conv"`` (1×1 conv + BN, option B).
        mean: per-channel input mean, subtracted inside the model.
        std: per-channel input standard deviation, divided out inside the model.
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
        for i, (n, width) in enumerate(zip(blocks_per_stage, widths, strict=False)):
            layers = []
            for j in range(n):
                stride = 2 if (j == 0 and i > 0) else 1
                out_channels = width * block.expansion
                downsample: nn.Module | None = None
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
        self.input_channels = 3  # what the stem and the normalisation take (a plain attribute: read on every call)
        self._init_weights()
        self.execution = "hard"
        self._forced = None  # decisions imposed on a gated model; a static one has none
        self._engine = Engine(self)
        self.register_load_state_dict_post_hook(lambda module, keys: module._engine.clear())

    @property
    def engine(self) -> Engine:
        """The model's inference engine (:class:`lcnas.engine.Engine`): its options
        (``model.engine.options``), native FLOP count and per-block entry points."""
        return self._engine

    def train(self, mode: bool = True) -> ResNet:
        """Set training mode; the engine's folded weights are rebuilt on the next eval forward."""
        self._engine.clear()  # weights may change while training
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):  # .to(), .cuda(), .half(): folded weights are stale
        self._engine.clear()
        return super()._apply(fn, recurse)

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
        """Normalisation, stem convolution, BN, ReLU (and max-pool for the ImageNet stem)."""
        return self.maxpool(self.relu(self.bn1(self.conv1(self.normalize(x)))))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Global average pooling and the classifier: logits (N×classes)."""
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N×classes) of images ``x`` (N×3×H×W, float in [0, 1]; normalised inside).

        In eval mode with ``execution == "hard"`` the native engine runs the pass where it can.

        Raises:
            InputError: ``x`` is not a 4-d floating-point batch with the model's input channels.
        """
        check_images(self, x)
        if not self.training and self.execution == "hard":
            native = self._engine.forward_native(x)
            if native is not None:  # the whole pass in one native call
                return native[0]
        x = self.forward_stem(x)
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.forward_head(x)


def check_images(model: ResNet, x: torch.Tensor) -> None:
    """Raise :class:`~lcnas.errors.InputError` unless ``x`` is a batch of float images with the
    model's input channels: a wrong channel count would otherwise broadcast through the
    normalisation (eager) or be read past its end (the native engine)."""
    shape = x.shape
    if len(shape) != 4 or shape[1] != model.input_channels or not x.is_floating_point():
        c = model.input_channels
        hint = " (uint8 images: pass x.float() / 255)" if x.dtype == torch.uint8 else \
            " (one image: pass x.unsqueeze(0))" if len(shape) == 3 and shape[0] == c else ""
        raise InputError(f"the model takes a batch of float images N×{c}×H×W in [0, 1], got a {str(x.dtype).removeprefix('torch.')} "
                         f"tensor of shape {tuple(shape)}{hint}")

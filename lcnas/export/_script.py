"""TorchScript export of a gated CIFAR ResNet that keeps real control flow.

The exported module makes the same decisions as eager hard execution at batch 1: per block, the
layer gate's logit against its threshold decides whether the residual branch runs at all (a
TorchScript ``if``), and the channel gate's logits pick the kept groups, whose filters are gathered
(``index_select``) before the two convolutions, so skipped channels cost nothing. A batch is run
sample by sample. BatchNorm is folded into the convolutions, as in eager hard execution. The
decisions follow ``lcnas.engine._decision``, the rule every execution path shares; the module's
``forward_traced`` method also takes forced decisions and returns what each block executed.

Supported: basic-block models (the CIFAR ResNets) with any gating; bottleneck (ImageNet) models are
refused with a clear error.
"""

# No ``from __future__ import annotations``: TorchScript reads the buffers' class-level annotations
# as objects and cannot resolve them as strings.

import warnings
from collections.abc import Sequence
from os import PathLike
from typing import cast

import torch
import torch.nn.functional as F
from torch import nn

from ..engine._decision import gate_scale, gate_scales, keep_groups, run_block_one, threshold_logit
from ..errors import ConfigError
from ..models._gates import Gate, GateConfig
from ..models._resnet import BasicBlock, Bottleneck, PadShortcut, ResNet

__all__ = ["export_torchscript", "ScriptedLCNet"]


class _Gate(nn.Module):
    """An MLP over the pooled block input (weights as Linear layers: scriptable)."""

    def __init__(self, gate: Gate | None) -> None:
        super().__init__()
        pairs = [] if gate is None else gate.folded_linears()  # input BatchNorm folded in
        self.present = gate is not None
        self.layers = nn.ModuleList([_linear(w, b) for w, b in pairs])

    def forward(self, v: torch.Tensor) -> torch.Tensor:
        """Gate outputs (logits, then scales when the gate scales) of pooled vectors ``v`` (N×features)."""
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            v = layer(v)
            if i < n - 1:
                v = v.relu()
        return v


class _Block(nn.Module):
    w1: torch.Tensor
    b1: torch.Tensor
    w2: torch.Tensor
    b2: torch.Tensor
    wd: torch.Tensor
    bd: torch.Tensor

    def __init__(self, block: BasicBlock, cfg: GateConfig | None, folded: Sequence[tuple[torch.Tensor, torch.Tensor]],
                 conv_shortcut: tuple[torch.Tensor, torch.Tensor, int] | None) -> None:
        super().__init__()
        (w1, b1), (w2, b2) = folded
        self.register_buffer("w1", w1.clone())
        self.register_buffer("b1", b1.clone())
        self.register_buffer("w2", w2.clone())
        self.register_buffer("b2", b2.clone())
        self.stride = int(block.stride)
        self.has_conv_shortcut = conv_shortcut is not None
        wd, bd, sd = conv_shortcut if conv_shortcut is not None else (torch.zeros(1), torch.zeros(1), 1)
        self.register_buffer("wd", wd.clone())
        self.register_buffer("bd", bd.clone())
        self.sd = int(sd)
        ds = block.downsample
        self.pad_stride = int(getattr(ds, "stride", 1)) if ds is not None and conv_shortcut is None else 1
        self.pad = int(getattr(ds, "pad", 0)) if ds is not None and conv_shortcut is None else 0
        self.layer_gate = _Gate(getattr(block, "layer_gate", None))
        self.channel_gate = _Gate(getattr(block, "channel_gate", None))
        channel_gate = getattr(block, "channel_gate", None)
        self.groups = int(channel_gate.outputs) if channel_gate is not None else 0
        self.group_size = int(cfg.group_size) if cfg is not None else 1
        self.scaling = bool(cfg.scaling) if cfg is not None else False
        self.pooling = cfg.pooling if cfg is not None else "avg"
        self.run_logit = threshold_logit(cfg.layer_threshold) if cfg is not None else 0.0
        self.keep_logit = threshold_logit(cfg.channel_threshold) if cfg is not None else 0.0

    def _pool(self, x: torch.Tensor) -> torch.Tensor:
        if self.pooling == "avg":
            return x.mean((2, 3))
        if self.pooling == "max":
            return x.amax((2, 3))
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)

    def _shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.has_conv_shortcut:
            return F.conv2d(x, self.wd, self.bd, self.sd)
        if self.pad_stride > 1 or self.pad > 0:
            x = x[:, :, :: self.pad_stride, :: self.pad_stride]
            return F.pad(x, [0, 0, 0, 0, self.pad // 2, self.pad - self.pad // 2])
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The block on one sample (N = 1), its gates deciding: see :meth:`run`."""
        return self.run(x, None, None, True)[0]

    def run(self, x: torch.Tensor, forced_run: bool | None, forced_keep: torch.Tensor | None,
            evaluate_gates: bool) -> tuple[torch.Tensor, bool, int]:
        """(output, ran, inner channels computed) of the block on one sample (N = 1): skipped, or run on
        its kept channel groups only, by the decision rule of ``lcnas.engine._decision`` (forced
        decisions override the gates; gates not evaluated mean scale 1)."""
        v = torch.zeros(0)
        pooled = False
        layer_out = torch.zeros(0)
        logit: float | None = None
        if evaluate_gates and self.layer_gate.present:
            v = self._pool(x)
            pooled = True
            layer_out = self.layer_gate(v)[0]
            logit = float(layer_out[0])
        if not run_block_one(logit, self.run_logit, forced_run):
            sc = self._shortcut(x)
            return (sc.relu() if self.has_conv_shortcut else sc), False, 0
        run_scale = 1.0
        use_run_scale = False
        if logit is not None and self.scaling:
            run_scale = gate_scale(float(layer_out[1]))
            use_run_scale = True
        w1, b1, w2 = self.w1, self.b1, self.w2
        kept = int(w1.shape[0])
        scale = torch.zeros(0)
        has_scale = False
        if self.channel_gate.present:
            out = torch.zeros(0)
            logits: torch.Tensor | None = None
            if evaluate_gates:
                if not pooled:
                    v = self._pool(x)
                out = self.channel_gate(v)[0]
                logits = out[: self.groups].unsqueeze(0)
            keep = keep_groups(logits, self.keep_logit, None if forced_keep is None else forced_keep.unsqueeze(0))
            if keep is not None:  # None: gates bypassed and nothing forced, every group runs
                groups = keep[0].nonzero().flatten()
                idx = (groups.unsqueeze(1) * self.group_size + torch.arange(self.group_size)).flatten()
                w1 = w1.index_select(0, idx)
                b1 = b1.index_select(0, idx)
                w2 = w2.index_select(1, idx)
                kept = int(idx.shape[0])
                if logits is not None and self.scaling:
                    scale = gate_scales(out[self.groups:][groups]).repeat_interleave(self.group_size)
                    has_scale = True
        h = F.conv2d(x, w1, b1, self.stride, 1).relu()
        if has_scale:
            h = h * scale.view(1, -1, 1, 1)
        res = F.conv2d(h, w2, self.b2, 1, 1)
        sc = self._shortcut(x)
        if use_run_scale:
            return (sc + run_scale * res).relu(), True, kept
        return (res + sc).relu(), True, kept


class ScriptedLCNet(nn.Module):
    """Stem → gated blocks (real ``if``s) → head, sample by sample."""

    mean: torch.Tensor
    inv_std: torch.Tensor
    w0: torch.Tensor
    b0: torch.Tensor

    def __init__(self, model: ResNet) -> None:
        super().__init__()
        from ..engine._fold import fold_conv_bn

        blocks = model.blocks()
        if any(isinstance(b, Bottleneck) for b in blocks):
            raise ConfigError("TorchScript export supports basic-block (CIFAR) ResNets; bottleneck models run eager hard execution")
        cfg = getattr(model, "gate_config", None)
        self.register_buffer("mean", model.normalize.mean.clone())
        self.register_buffer("inv_std", model.normalize.inv_std.clone())
        w, b = fold_conv_bn(model.conv1, model.bn1)
        self.register_buffer("w0", w.clone())
        self.register_buffer("b0", b.clone())
        self.stem_stride = int(model.conv1.stride[0])
        self.stem_padding = int(model.conv1.padding[0])
        scripted = []
        for module in blocks:
            block = cast(BasicBlock, module)  # bottleneck blocks refused above
            folded = [fold_conv_bn(block.conv1, block.bn1), fold_conv_bn(block.conv2, block.bn2)]
            conv_sc = None
            if block.downsample is not None and not isinstance(block.downsample, PadShortcut):
                ds = cast(nn.Sequential, block.downsample)  # the 1×1 conv + BN shortcut
                ds_conv, ds_bn = cast(nn.Conv2d, ds[0]), cast(nn.BatchNorm2d, ds[1])
                wd, bd = fold_conv_bn(ds_conv, ds_bn)
                conv_sc = (wd, bd, ds_conv.stride[0])
            scripted.append(_Block(block, cfg, folded, conv_sc))
        self.blocks = nn.ModuleList(scripted)
        self.fc = _copy_linear(model.fc)

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) * self.inv_std
        x = F.conv2d(x, self.w0, self.b0, self.stem_stride, self.stem_padding).relu()
        for block in self.blocks:
            x = block(x)
        return self.fc(x.mean((2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N×classes) of images ``x`` (N×3×H×W, float in [0, 1]), each sample run on its own path."""
        outs: list[torch.Tensor] = []
        for n in range(x.shape[0]):
            outs.append(self._one(x[n : n + 1]))
        return torch.cat(outs, 0)

    @torch.jit.export
    def forward_traced(self, x: torch.Tensor, block_run: torch.Tensor | None = None,
                       channel_keep: list[torch.Tensor | None] | None = None,
                       evaluate_gates: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(logits ``N×classes``, block ran ``N×B`` bool, inner channels computed ``N×B`` int64) of
        images ``x``, under decisions forced as :class:`~lcnas.models.ForcedDecisions` forces them:
        ``block_run`` ``B`` or ``N×B``, ``channel_keep`` per block ``G`` or ``N×G`` or None, and
        ``evaluate_gates`` False to bypass the gates (scale 1; unforced blocks and groups all run)."""
        n_blocks = len(self.blocks)
        ran = torch.zeros(x.shape[0], n_blocks, dtype=torch.bool)
        kept = torch.zeros(x.shape[0], n_blocks, dtype=torch.int64)
        outs: list[torch.Tensor] = []
        for n in range(x.shape[0]):
            h = (x[n : n + 1] - self.mean) * self.inv_std
            h = F.conv2d(h, self.w0, self.b0, self.stem_stride, self.stem_padding).relu()
            for i, block in enumerate(self.blocks):
                forced_run: bool | None = None
                if block_run is not None:
                    forced_run = bool((block_run[i] if block_run.dim() == 1 else block_run[n, i]) != 0)
                forced_keep: torch.Tensor | None = None
                if channel_keep is not None:
                    k = channel_keep[i]
                    if k is not None:
                        forced_keep = (k if k.dim() == 1 else k[n]).to(torch.bool)
                # A ModuleList yields nn.Modules and TorchScript compiles no typing.cast: each is a _Block.
                h, r, c = block.run(h, forced_run, forced_keep, evaluate_gates)  # type: ignore[operator]
                ran[n, i] = r
                kept[n, i] = c
            outs.append(self.fc(h.mean((2, 3))))
        return torch.cat(outs, 0), ran, kept


def export_torchscript(model: nn.Module, path: str | PathLike[str] | None = None) -> torch.jit.ScriptModule:
    """Script ``model`` (eval, hard decisions) and optionally save it to ``path``."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch 2.14 marks TorchScript deprecated; it still runs
            scripted = torch.jit.script(ScriptedLCNet(cast(ResNet, model)).eval())  # ScriptedLCNet reads a ResNet's modules
    finally:
        model.train(was_training)
    if path is not None:
        from .._io import atomic_write

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the same deprecation notice on save
            atomic_write(path, lambda f: torch.jit.save(scripted, f))
    return scripted


def _copy_linear(m: nn.Linear) -> nn.Linear:
    return _linear(m.weight, m.bias)


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    lin = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        lin.weight.copy_(weight)
        lin.bias.copy_(bias)
    return lin

"""Layer-Net and Channel-Net gates: compact networks on a block's pooled input.

A gate sees the block input pooled to a vector and predicts, per sample, keep logits and scales:
the Layer-Net one logit (run the residual branch?) and one scale (how much of it to add); the
Channel-Net one logit and one scale per group of ``group_size`` inner channels. Training uses
straight-through Gumbel-sigmoid: the forward pass takes the hard 0/1 decision, the backward pass
the gradient of the relaxed sigmoid.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from .._fields import checked_fields
from .._limits import check_limits, limited
from ..engine._decision import gate_scales

__all__ = ["GATINGS", "GATED", "POOLINGS", "GateConfig", "Gate", "straight_through_gate"]

# The gating names, once: registry, training config, search space and CLI read these.
GATINGS = ("none", "layer", "channel", "lc")  # "none": the static network
GATED = GATINGS[1:]  # the LC-Net gatings: Layer-Net, Channel-Net, both
POOLINGS = ("avg", "max", "avgmax")


@dataclass(frozen=True)
class GateConfig:
    """Shape of the L-Net/C-Net gates: what a search tunes.

    Args:
        hidden: hidden width of each gate MLP; 0 makes it a single linear layer.
        pooling: how the block input becomes the gate's input vector: avg, max or avgmax (both, concatenated).
        group_size: channels per Channel-Net decision (the block's width must be a multiple).
        stages: 1-based stages whose blocks are gated; ``None`` gates every stage.
        scaling: learn per-sample scales for kept blocks and channels (else scale 1).
        temperature: Gumbel-sigmoid temperature during training.
        init_logit: initial keep logit: large means "start with everything on" (the static network).
        norm: standardise the pooled input (BatchNorm, folded away at inference). Without it the
            gates' input varies little between images next to its mean, the bias dominates, and
            training settles on the same decisions for every image (a static network).
        layer_threshold: inference keep threshold on the layer gate's probability: the runtime
            compute knob (higher skips more), changeable without retraining.
        channel_threshold: the same for the channel gate's per-group probabilities.
    """

    hidden: int = limited(16, ge=0)
    pooling: str = limited("avg", choices=POOLINGS)
    group_size: int = limited(4, ge=1)
    stages: tuple[int, ...] | None = limited(None, ge=1)  # each stage number
    scaling: bool = True
    temperature: float = limited(1.0, gt=0.0)
    init_logit: float = 3.0
    norm: bool = True
    layer_threshold: float = limited(0.5, gt=0.0, lt=1.0)
    channel_threshold: float = limited(0.5, gt=0.0, lt=1.0)

    def __post_init__(self) -> None:
        if self.stages is not None:
            object.__setattr__(self, "stages", tuple(int(s) for s in self.stages))
        check_limits(self, prefix="GateConfig: ")

    def to_dict(self) -> dict[str, Any]:
        """The config as a JSON/YAML-ready dict (``stages`` as a list or ``None``)."""
        d = dataclasses.asdict(self)
        d["stages"] = None if self.stages is None else list(self.stages)
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> GateConfig:
        """Build a config from a dict such as :meth:`to_dict` returns; missing fields take their defaults.

        Raises:
            ValueError: ``data`` has a field :class:`GateConfig` does not know, or a value is out of range.
        """
        data = checked_fields(cls, data)
        if data.get("stages") is not None:
            data["stages"] = tuple(data["stages"])
        return cls(**data)


class Gate(nn.Module):
    """pooled input → MLP → ``outputs`` keep logits (+ ``outputs`` scales when scaling)."""

    def __init__(self, in_channels: int, outputs: int, cfg: GateConfig) -> None:
        super().__init__()
        self.pooling = cfg.pooling
        self.outputs = outputs
        self.scaling = cfg.scaling
        features = in_channels * (2 if cfg.pooling == "avgmax" else 1)
        self.norm = nn.BatchNorm1d(features) if cfg.norm else None
        heads = outputs * (2 if cfg.scaling else 1)
        if cfg.hidden:
            self.mlp = nn.Sequential(nn.Linear(features, cfg.hidden), nn.ReLU(inplace=True), nn.Linear(cfg.hidden, heads))
        else:
            self.mlp = nn.Sequential(nn.Linear(features, heads))
        last = cast(nn.Linear, self.mlp[-1])
        nn.init.normal_(last.weight, std=0.01)
        with torch.no_grad():
            last.bias.zero_()
            last.bias[:outputs].fill_(cfg.init_logit)

    def pool(self, x: torch.Tensor) -> torch.Tensor:
        """The gate's input vector (N×features) from a block input ``x`` (N×C×H×W)."""
        if self.pooling == "avg":
            return x.mean((2, 3))
        if self.pooling == "max":
            return x.amax((2, 3))
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(keep logits ``N×outputs``, scales ``N×outputs`` in (0, 2) or ``None``)."""
        v = self.pool(x)
        out = self.mlp(v if self.norm is None else self.norm(v))
        if not self.scaling:
            return out, None
        # 2·sigmoid starts at 1 (raw 0) and stays positive, so relu(s·h) = s·relu(h).
        return out[:, : self.outputs], gate_scales(out[:, self.outputs :])

    @torch.no_grad()
    def folded_linears(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The MLP's (weight ``out×in``, bias) pairs with the input BatchNorm (eval statistics) folded
        into the first: what inference runs."""
        pairs = [(m.weight.detach().clone(), m.bias.detach().clone()) for m in self.mlp if isinstance(m, nn.Linear)]
        if self.norm is not None:
            bn = self.norm
            var, mean = cast(torch.Tensor, bn.running_var), cast(torch.Tensor, bn.running_mean)  # eval statistics, always tracked
            scale = (bn.weight if bn.affine else torch.ones_like(var)) / torch.sqrt(var + bn.eps)
            shift = (bn.bias if bn.affine else torch.zeros_like(mean)) - mean * scale
            w, b = pairs[0]
            pairs[0] = (w * scale[None, :], b + w @ shift)
        return pairs


def straight_through_gate(logits: torch.Tensor, temperature: float, *, noise: bool = True) -> torch.Tensor:
    """Hard 0/1 decisions in the forward pass with the relaxed sigmoid's gradient (Gumbel-sigmoid ST)."""
    if noise:
        u = torch.rand_like(logits).clamp_(1e-6, 1 - 1e-6)
        logits = logits + torch.log(u) - torch.log1p(-u)
    soft = torch.sigmoid(logits / temperature)
    hard = (soft > 0.5).to(soft.dtype)
    return hard + soft - soft.detach()

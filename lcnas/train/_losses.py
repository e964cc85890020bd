"""LC-Net training loss: cross-entropy + weighted compute terms + optional distillation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from .._fields import checked_fields
from .._limits import check_limits, limited
from ..cost import ArchSpec, FlopsModel, walk

__all__ = ["LossWeights", "distillation_loss", "lcnet_loss"]


@dataclass(frozen=True)
class LossWeights:
    """Weights of the compute terms (search parameters).

    Args:
        layer: × mean probability that a gated block runs.
        channel: × mean expected fraction of inner channels kept (channel-gated blocks).
        flops: × (expected FLOPs / static FLOPs − ``flops_target``)², the FLOPs-target term.
        flops_target: target fraction of the static network's FLOPs.
        rate: × mean over every gate output of (fraction of the batch it keeps − ``rate_target``)²,
            on the straight-through decisions (ConvNet-AIG's target-rate loss). A gate can only
            keep some images and not others by looking at them, so this term makes decisions
            depend on the image; the FLOPs/latency terms alone are met as well by fixed decisions.
        rate_target: the fraction of images each gate output should keep.
        latency: × (expected latency / static latency − ``latency_target``)², the latency-target
            term; expected batch-1 latency comes from a device table (``TrainConfig.lut``).
        latency_target: target fraction of the static network's predicted latency.
        distill: weight of the KL term to the static teacher (0 = no teacher).
        distill_temperature: softmax temperature of the distillation term.
        label_smoothing: of the cross-entropy term.
    """

    layer: float = limited(0.0, ge=0.0)
    channel: float = limited(0.0, ge=0.0)
    flops: float = limited(0.0, ge=0.0)
    flops_target: float = limited(0.5, gt=0.0, le=1.0)
    rate: float = limited(0.0, ge=0.0)
    rate_target: float = limited(0.5, gt=0.0, le=1.0)
    latency: float = limited(0.0, ge=0.0)
    latency_target: float = limited(0.5, gt=0.0, le=1.0)
    distill: float = limited(0.0, ge=0.0)
    distill_temperature: float = limited(4.0, ge=0.0)
    label_smoothing: float = limited(0.0, ge=0.0, lt=1.0)

    def __post_init__(self) -> None:
        check_limits(self, prefix="LossWeights.")

    def to_dict(self) -> dict[str, float]:
        """The weights as a JSON/YAML-ready dict (:meth:`from_dict` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> LossWeights:
        """Weights from a dict (values converted to float; missing ones take their defaults).

        Raises:
            ValueError: an unknown field, or a value out of range.
        """
        data = checked_fields(cls, data)
        return cls(**{k: float(v) for k, v in data.items()})


def lcnet_loss(
    logits: torch.Tensor,
    target: torch.Tensor,
    *,
    trace,
    arch: ArchSpec,
    static_mflops: float,
    weights: LossWeights,
    teacher_logits: torch.Tensor | None = None,
    latency_cost=None,
    static_latency_ms: float | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts (floats, for logging) from a training-mode forward pass.

    The latency term needs ``latency_cost`` (a :class:`~lcnas.latency.LatencyModel`) and the
    static network's predicted latency ``static_latency_ms``.
    """
    ce = F.cross_entropy(logits.float(), target, label_smoothing=weights.label_smoothing)
    total = ce
    parts = {"ce": float(ce.detach())}
    layer_blocks = [b.index for b in arch.blocks if b.layer_gate is not None]
    chan_blocks = [b.index for b in arch.blocks if b.channel_gate is not None]
    if weights.layer and layer_blocks:
        usage = trace.run_prob[:, layer_blocks].mean()
        total = total + weights.layer * usage
        parts["layer_usage"] = float(usage.detach())
    if weights.channel and chan_blocks:
        widths = torch.tensor([float(arch.blocks[i].width) for i in chan_blocks], device=logits.device)
        usage = (trace.kept_expected[:, chan_blocks] / widths).mean()
        total = total + weights.channel * usage
        parts["channel_usage"] = float(usage.detach())
    if weights.flops:
        expected = walk(arch, FlopsModel(), trace.run_prob, trace.kept_expected).to(logits.device) / 1e6
        ratio = expected.mean() / static_mflops
        total = total + weights.flops * (ratio - weights.flops_target) ** 2
        parts["flops_ratio"] = float(ratio.detach())
    if weights.rate and trace.gate_decisions:
        rates = torch.cat([g.float().mean(0) for g in trace.gate_decisions])
        term = ((rates - weights.rate_target) ** 2).mean()
        total = total + weights.rate * term
        parts["rate"] = float(term.detach())
    if weights.latency:
        if latency_cost is None or not static_latency_ms:
            raise ValueError("loss.latency > 0 needs a latency table: set lut to a table made by `lcnas profile`")
        expected = latency_cost.latency_ms(arch, trace.run_prob, trace.kept_expected).to(logits.device)
        ratio = expected.mean() / static_latency_ms
        total = total + weights.latency * (ratio - weights.latency_target) ** 2
        parts["latency_ratio"] = float(ratio.detach())
    if weights.distill and teacher_logits is not None:
        kd = distillation_loss(logits, teacher_logits, weights.distill_temperature)
        total = total + weights.distill * kd
        parts["distill"] = float(kd.detach())
    return total, parts


def distillation_loss(logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(teacher ‖ student) of the temperature-softened distributions, × T² (Hinton et al. 2015), batch mean."""
    t = temperature
    return F.kl_div(F.log_softmax(logits.float() / t, 1), F.softmax(teacher_logits.float() / t, 1), reduction="batchmean") * t * t

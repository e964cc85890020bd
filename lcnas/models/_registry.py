"""The one model registry: ``@register_model`` builders, ``create_model``, ``list_models``."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from torch import nn

from ..errors import ConfigError, UnknownModelError
from ._gates import GATINGS

__all__ = ["ModelInfo", "register_model", "create_model", "list_models", "model_info", "model_spec", "GATINGS"]


@dataclass(frozen=True)
class ModelInfo:
    """What a registered backbone expects: input size, normalisation and default classes."""

    name: str
    dataset: str
    input_size: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


_BUILDERS: dict[str, Callable[..., nn.Module]] = {}
_INFO: dict[str, ModelInfo] = {}


def register_model(info: ModelInfo) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Register ``fn(num_classes=..., **kw) -> nn.Module`` under ``info.name``."""

    def deco(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if info.name in _BUILDERS:
            raise ValueError(f"model {info.name!r} is already registered")
        _BUILDERS[info.name] = fn
        _INFO[info.name] = info
        return fn

    return deco


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Model names matching a shell-style ``pattern``, sorted.

    Args:
        pattern: e.g. ``"resnet*"`` or ``"lcnet-*"``.
        pretrained: ``False``: the registered backbones, each built by :func:`create_model`.
            ``True``: the weights shipped with lcnas, static backbones and trained LC-Nets alike,
            each loaded by ``lcnas.load_model(name)`` (details: ``lcnas.list_pretrained()``).

    Example:
        >>> import lcnas
        >>> lcnas.list_models("resnet2*")
        ['resnet20']
        >>> "lcnet-resnet32-searched" in lcnas.list_models("lcnet-*", pretrained=True)
        True
    """
    if pretrained:
        from ..pretrained import pretrained_manifest

        names: Iterable[str] = pretrained_manifest()
    else:
        names = _BUILDERS
    return sorted(n for n in names if fnmatch.fnmatchcase(n, pattern))


def model_info(name: str) -> ModelInfo:
    """The :class:`ModelInfo` a backbone was registered with.

    Raises:
        UnknownModelError: ``name`` is not registered (the message suggests close names).
    """
    _check_name(name)
    return _INFO[name]


def create_model(
    name: str,
    *,
    gating: str = "none",
    num_classes: int | None = None,
    pretrained: bool = False,
    gate_config: Any = None,
    **kwargs: Any,
) -> nn.Module:
    """Build a registered backbone, static or gated.

    Args:
        name: a name from :func:`list_models`, e.g. ``"resnet20"`` (shipped LC-Nets, listed by
            ``list_models(pretrained=True)``, load with ``lcnas.load_model(name)``).
        gating: ``"none"`` (static), ``"layer"`` (L-Net), ``"channel"`` (C-Net) or ``"lc"`` (both).
        num_classes: classifier outputs; the model's default when ``None``.
        pretrained: load the static backbone weights shipped with lcnas (gates keep their
            all-on initialisation); see ``lcnas/pretrained/manifest.json``.
        gate_config: a :class:`lcnas.models.GateConfig` (or its dict) for gated models.
        **kwargs: passed to the builder; ``None`` values are dropped.

    Raises:
        UnknownModelError: ``name`` is not registered.
        ConfigError: an unknown ``gating``, a ``gate_config`` for a static model, or ``num_classes`` < 1.

    Example:
        >>> import lcnas, torch
        >>> model = lcnas.create_model("resnet20", gating="lc").eval()
        >>> model(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 10])
        >>> model.last_trace.block_run.shape
        torch.Size([1, 9])
    """
    from ._gates import GateConfig

    _check_name(name)
    if gating not in GATINGS:
        raise ConfigError(f"unknown gating {gating!r}: choose one of {', '.join(GATINGS)}")
    if gating == "none" and gate_config is not None:
        raise ConfigError("gate_config is only meaningful with gating='layer', 'channel' or 'lc'")
    if num_classes is not None and num_classes < 1:
        raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
    if isinstance(gate_config, dict):
        gate_config = GateConfig.from_dict(gate_config)
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    if gating != "none":
        kwargs.update(gating=gating, gate_config=gate_config or GateConfig())
    # Any: the builders' ResNets carry attributes nn.Module does not declare (num_classes, load_backbone).
    model: Any = _BUILDERS[name](num_classes=num_classes or _INFO[name].num_classes, **kwargs)
    model.lcnas_spec = {"name": name, "gating": gating, "num_classes": model.num_classes}
    model.input_size = _INFO[name].input_size  # (C, H, W) it was registered for: the cost walk's default
    if pretrained:
        from ..pretrained import load_pretrained_state

        state = load_pretrained_state(name, num_classes=model.num_classes)
        if gating == "none":
            model.load_state_dict(state)
        else:
            model.load_backbone(state)
    return model


def model_spec(model: nn.Module) -> dict[str, Any]:
    """What :func:`create_model` needs to rebuild ``model`` (stored in checkpoints)."""
    spec = getattr(model, "lcnas_spec", None)
    if spec is None:
        raise ValueError("model was not built by lcnas.create_model (it has no lcnas_spec)")
    spec = dict(spec)
    gate_config = getattr(model, "gate_config", None)
    if gate_config is not None:
        spec["gate_config"] = gate_config.to_dict()
    return spec


def _check_name(name: str) -> None:
    if name not in _BUILDERS:
        import difflib

        close = difflib.get_close_matches(name, list(_BUILDERS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}.{hint} Available: {', '.join(list_models())} (lcnas.list_models()).")

"""The one model registry: ``@register_model`` builders, ``create_model``, ``list_models``."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import UnknownModelError

__all__ = ["ModelInfo", "register_model", "create_model", "list_models", "model_info", "GATINGS"]

GATINGS = ("none", "layer", "channel", "lc")


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


def list_models(pattern: str = "*") -> list[str]:
    """Registered model names matching a shell-style ``pattern``, sorted."""
    return sorted(n for n in _BUILDERS if fnmatch.fnmatchcase(n, pattern))


def model_info(name: str) -> ModelInfo:
    _check_name(name)
    return _INFO[name]


def create_model(name: str, *, gating: str = "none", num_classes: int | None = None, pretrained: bool = False, **kwargs) -> nn.Module:
    """Build a registered backbone.

    Args:
        name: a name from :func:`list_models`, e.g. ``"resnet20"``.
        gating: ``"none"`` for the static network.
        num_classes: classifier outputs; the model's default when ``None``.
        pretrained: load the weights shipped with lcnas (see ``lcnas/pretrained/manifest.json``).
        **kwargs: passed to the builder; ``None`` values are dropped.

    Example:
        >>> import lcnas, torch
        >>> model = lcnas.create_model("resnet20").eval()
        >>> model(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """
    _check_name(name)
    if gating not in GATINGS:
        raise ValueError(f"unknown gating {gating!r}: choose one of {', '.join(GATINGS)}")
    if gating != "none":
        raise NotImplementedError(f"gating {gating!r} is not implemented yet; use gating='none'")
    kwargs = {k: v for k, v in kwargs.items() if v is not None}
    model = _BUILDERS[name](num_classes=num_classes or _INFO[name].num_classes, **kwargs)
    model.lcnas_spec = {"name": name, "gating": gating, "num_classes": model.num_classes, "kwargs": kwargs}
    if pretrained:
        from ..pretrained import load_pretrained_state

        model.load_state_dict(load_pretrained_state(name, num_classes=model.num_classes))
    return model


def _check_name(name: str) -> None:
    if name not in _BUILDERS:
        import difflib

        close = difflib.get_close_matches(name, list(_BUILDERS), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise UnknownModelError(f"unknown model {name!r}.{hint} Available: {', '.join(list_models())} (lcnas.list_models()).")

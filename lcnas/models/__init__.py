"""Backbones (one registry), their gates and dynamic execution."""

from __future__ import annotations

from ..engine import native_status
from . import _zoo  # noqa: F401  (registers the backbones)
from ._dynamic import DynamicResNet, ForcedDecisions
from ._gates import GateConfig
from ._normalize import Normalize
from ._registry import GATINGS, ModelInfo, create_model, list_models, model_info, model_spec, register_model
from ._resnet import BasicBlock, Bottleneck, PadShortcut, ResNet
from ._trace import ExecutionTrace

__all__ = [
    "BasicBlock",
    "Bottleneck",
    "DynamicResNet",
    "ExecutionTrace",
    "ForcedDecisions",
    "GateConfig",
    "GATINGS",
    "ModelInfo",
    "Normalize",
    "PadShortcut",
    "ResNet",
    "create_model",
    "list_models",
    "model_info",
    "model_spec",
    "native_status",
    "register_model",
]

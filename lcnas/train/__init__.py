"""Training and evaluation of lcnas models."""

from __future__ import annotations

from ._config import TrainConfig, apply_overrides, load_train_config, parse_overrides, setting_fields
from ._evaluate import evaluate
from ._loop import resolve_device, train
from ._losses import LossWeights, lcnet_loss

__all__ = ["LossWeights", "TrainConfig", "apply_overrides", "evaluate", "lcnet_loss", "load_train_config", "parse_overrides",
           "resolve_device", "setting_fields", "train"]

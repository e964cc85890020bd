"""Training and evaluation of lcnas models."""

from __future__ import annotations

from ._config import TrainConfig, load_train_config, parse_overrides
from ._evaluate import evaluate
from ._losses import LossWeights, lcnet_loss
from ._loop import resolve_device, train

__all__ = ["LossWeights", "TrainConfig", "evaluate", "lcnet_loss", "load_train_config", "parse_overrides", "resolve_device", "train"]

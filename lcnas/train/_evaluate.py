"""Accuracy and loss of a model over an in-memory image set."""

from __future__ import annotations

import time
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..data import BatchLoader, ImageTensors

__all__ = ["evaluate"]


@torch.inference_mode()
def evaluate(
    model: nn.Module, data: ImageTensors, *, batch_size: int = 500, device: torch.device | str = "cpu", channels_last: bool = False
) -> dict[str, Any]:
    """Top-1 accuracy (%), mean cross-entropy and images/s, in fp32 and eval mode."""
    was_training = model.training
    model.eval()
    loader = BatchLoader(data, batch_size=batch_size, device=device, channels_last=channels_last)
    correct, loss_sum, start = 0, 0.0, time.perf_counter()
    for x, y in loader:
        logits = model(x)
        loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    elapsed = time.perf_counter() - start
    model.train(was_training)
    n = len(data)
    return {"accuracy": 100.0 * correct / n, "loss": loss_sum / n, "images": n, "images_per_s": n / elapsed}

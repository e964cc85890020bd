"""Accuracy and loss of a model over an in-memory image set."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from ..data import BatchLoader, ImageTensors

__all__ = ["evaluate"]


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    data: ImageTensors | Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    channels_last: bool = False,
    latency_table=None,
) -> dict[str, Any]:
    """Top-1 accuracy (%), mean cross-entropy and images/s, in fp32 and eval mode; for gated models
    also mean and p95 MFLOPs per sample and the fraction of blocks run (hard execution traces), and
    with a :class:`~lcnas.latency.LatencyTable` the mean and p95 predicted batch-1 latency (ms).

    ``data`` is an in-memory image set or any iterable of ``(images, labels)`` batches.
    """
    was_training = model.training
    model.eval()
    loader = BatchLoader(data, batch_size=batch_size, device=device, channels_last=channels_last) if isinstance(data, ImageTensors) else data
    gated = getattr(model, "gating", "none") != "none"
    arch = None
    mflops: list[torch.Tensor] = []
    runs: list[torch.Tensor] = []
    latency_ms: list[torch.Tensor] = []
    correct, loss_sum, n, start = 0, 0.0, 0, time.perf_counter()
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        n += y.numel()
        if gated:
            from ..cost import describe, sample_mflops

            arch = arch or describe(model, cast("tuple[int, int, int]", tuple(x.shape[1:])))
            mflops.append(sample_mflops(model, arch=arch))
            runs.append(cast(Any, model).last_trace.block_run)
            if latency_table is not None:
                from ..latency import sample_latency_ms

                latency_ms.append(sample_latency_ms(model, latency_table, arch=arch))
        loss_sum += float(F.cross_entropy(logits.float(), y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
    elapsed = time.perf_counter() - start
    model.train(was_training)
    result = {"accuracy": 100.0 * correct / n, "loss": loss_sum / n, "images": n, "images_per_s": n / elapsed}
    if gated:
        per_sample = torch.cat(mflops)
        result.update(mflops_mean=float(per_sample.mean()), mflops_p95=float(per_sample.quantile(0.95)),
                      block_rate=float(torch.cat(runs).float().mean()))
        if latency_ms:
            per_sample = torch.cat(latency_ms)
            result.update(latency_ms_mean=float(per_sample.mean()), latency_ms_p95=float(per_sample.quantile(0.95)))
    return result

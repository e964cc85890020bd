"""Which paths the engine may take, per model: a frozen options object instead of global switches."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

__all__ = ["EngineOptions", "options"]


@dataclass(frozen=True)
class EngineOptions:
    """Paths the engine may take for one model (``model.engine.options``).

    Args:
        whole_network: batch 1 runs the whole network in one native call where the model is
            eligible (CIFAR ResNets on a float32 CPU input); False drives it block by block from
            Python (benchmarks compare the two).
        batch_native: batches run on the native kernel too, one image per thread, each taking its
            own path; False groups samples by path on PyTorch's (oneDNN) convolutions, which
            records each block's group masks in the trace.
    """

    whole_network: bool = True
    batch_native: bool = True


@contextmanager
def options(model: Any, **changes: bool) -> Iterator[EngineOptions]:
    """Run ``model`` with some engine options changed inside the ``with`` block, then restore them.

    Example::

        with lcnas.engine.options(model, whole_network=False, batch_native=False):
            model(x)  # blocks driven from Python, batches grouped on oneDNN
    """
    engine = model.engine
    previous = engine.options
    engine.options = replace(previous, **changes)
    try:
        yield engine.options
    finally:
        engine.options = previous

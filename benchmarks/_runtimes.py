"""Batch-1 runners of one static network on the runtimes a user would pick: lcnas's engine, OpenVINO,
ONNX Runtime and eager PyTorch. OpenVINO and ONNX Runtime come from the optional ``bench`` extra
(``pip install -e '.[bench]'``); a runtime that is not installed is reported, not required.

Every runner is a callable taking one ``1×3×H×W`` float32 image in [0, 1] and returning logits as a
numpy array, so a benchmark can interleave them image by image.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import random
import tempfile
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

__all__ = ["RUNTIMES", "available_runtimes", "make_runner", "runtime_versions", "time_interleaved"]

RUNTIMES = ("lcnas", "openvino", "onnxruntime", "eager")
_MODULES = {"openvino": "openvino", "onnxruntime": "onnxruntime"}

Runner = Callable[[torch.Tensor], np.ndarray]


def available_runtimes() -> list[str]:
    """The runtimes importable here (lcnas and eager PyTorch always are)."""
    return [r for r in RUNTIMES if r not in _MODULES or importlib.util.find_spec(_MODULES[r]) is not None]


def runtime_versions() -> dict[str, str]:
    """Versions of the installed runtimes, for a result file's metadata."""
    versions = {"torch": torch.__version__}
    for name, module in _MODULES.items():
        if importlib.util.find_spec(module) is not None:
            versions[name] = getattr(importlib.import_module(module), "__version__", "?")
    return versions


def _reference(model: nn.Module) -> nn.Module:
    """A copy of a static model that runs plain PyTorch (what exporters trace and eager times)."""
    ref = copy.deepcopy(model).eval()
    ref.execution = "mask"
    return ref


def _onnx(model: nn.Module, input_size: tuple[int, int, int], folder: Path, batch: int = 1) -> Path:
    path = folder / f"model_b{batch}.onnx"
    x = torch.rand(batch, *input_size)
    with torch.no_grad():
        torch.onnx.export(_reference(model), (x,), str(path), input_names=["images"], output_names=["logits"],
                          opset_version=17, dynamo=False)
    return path


def make_runner(runtime: str, model: nn.Module, *, threads: int, input_size: tuple[int, int, int] = (3, 32, 32),
                workdir: Path | None = None, batch: int = 1) -> Runner:
    """A runner of ``model`` on ``runtime`` with ``threads`` threads, for batches of ``batch`` images.

    Args:
        runtime: one of :data:`RUNTIMES`. ``lcnas`` runs the model as it is in eval mode (the native
            engine for the CIFAR ResNets, static or gated); the others take a static model only.
        model: an lcnas model (static for the exported runtimes).
        threads: intra-op threads of the runtime (torch's thread count is the caller's to set).
        input_size: ``(C, H, W)`` of one image.
        workdir: where exported ONNX files go (a temporary folder by default).
        batch: images per call (the exported runtimes get a graph of this fixed batch size).

    Returns:
        A callable ``runner(x) -> logits`` for one ``batch×C×H×W`` float32 batch.

    Raises:
        ValueError: an unknown runtime, or a gated model on a runtime that cannot skip.
        ImportError: the runtime's package is not installed (``pip install -e '.[bench]'``).
    """
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}: choose from {', '.join(RUNTIMES)}")
    if runtime != "lcnas" and getattr(model, "gating", "none") != "none":
        raise ValueError(f"{runtime} runs static networks only; a gated model runs on lcnas's engine")
    if runtime == "lcnas":
        engine = model.eval()

        def run_lcnas(x: torch.Tensor) -> np.ndarray:
            with torch.inference_mode():
                return engine(x).numpy()
        return run_lcnas
    if runtime == "eager":
        ref = _reference(model)

        def run_eager(x: torch.Tensor) -> np.ndarray:
            with torch.inference_mode():
                return ref(x).numpy()
        return run_eager
    if runtime in _MODULES and importlib.util.find_spec(_MODULES[runtime]) is None:
        raise ImportError(f"{runtime} is not installed: pip install -e '.[bench]'")
    folder = Path(workdir) if workdir is not None else Path(tempfile.mkdtemp(prefix="lcnas-rt-"))
    folder.mkdir(parents=True, exist_ok=True)
    onnx_path = _onnx(model, input_size, folder, batch)
    if runtime == "onnxruntime":
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

        def run_ort(x: torch.Tensor) -> np.ndarray:
            return session.run(None, {"images": x.numpy()})[0]
        return run_ort
    import openvino as ov

    core = ov.Core()
    # LATENCY hint, one stream, and f32 as lcnas's engine computes (OpenVINO would pick bf16 on
    # CPUs with AVX512-BF16, which changes accuracy as well as speed).
    compiled = core.compile_model(core.read_model(str(onnx_path)), "CPU", {
        "PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
        "INFERENCE_PRECISION_HINT": "f32"})
    request = compiled.create_infer_request()

    def run_openvino(x: torch.Tensor) -> np.ndarray:
        return request.infer({0: x.numpy()})[0]
    return run_openvino


def time_interleaved(runners: dict[Hashable, Runner], inputs: Sequence[torch.Tensor], *, threads: int, block: int = 10,
                     warmup: int = 20, seed: int = 0) -> dict[Hashable, list[float]]:
    """Per runner, the wall time (ms) of each input, every runner on every input.

    With 1 thread the runners are interleaved input by input, in a new random order per input, so
    a slow spell of the host hits all alike. With more threads, runtimes with spinning thread pools
    disturb each other when interleaved call by call, so each runner takes blocks of ``block``
    inputs in turn (again in a random order per block). ``warmup`` untimed calls per runner first.
    """
    from lcnas.latency import call_ms

    keys = list(runners)
    times: dict[Hashable, list[float]] = {k: [] for k in keys}
    for k in keys:
        for _ in range(warmup):
            runners[k](inputs[0])
    rng = random.Random(seed)
    step = 1 if threads == 1 else block
    for start in range(0, len(inputs), step):
        order = keys[:]
        rng.shuffle(order)
        chunk = inputs[start:start + step]
        for k in order:
            run = runners[k]
            for x in chunk:
                times[k].append(call_ms(lambda run=run, x=x: run(x)))
    return times

"""Static models run on the same native engine as gated ones in eval(), and equal plain PyTorch."""

from __future__ import annotations

import pytest
import torch

import lcnas
from lcnas.checkpoint import save_checkpoint
from lcnas.engine import compiler_available, native, native_status


@pytest.fixture()
def engine():
    if not compiler_available():
        pytest.skip("no C++ compiler: static models run plain PyTorch (tested on that path)")
    assert native() is not None, native_status()


def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BatchNorm statistics, so that folding them into the convs is exercised."""
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen) * 0.1)


@pytest.mark.parametrize("name", ["resnet8", "resnet20"])
@pytest.mark.parametrize("batch", [1, 3])
def test_static_eval_runs_engine_and_equals_pytorch(engine, name, batch):
    model = lcnas.create_model(name, num_classes=10)
    _randomise_bn(model)
    model.eval()
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
    with torch.no_grad():
        out = model(x)
        assert model.engine.native_mflops is not None, "the static model did not run on the native engine"
        model.execution = "mask"  # plain PyTorch: the reference
        ref = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert out.shape == (batch, 10)


def test_engine_refolds_after_training_step(engine):
    """Weights that change in training are refolded on the next eval pass (no stale engine copy)."""
    model = lcnas.create_model("resnet8", num_classes=10).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        before = model(x)
    model.train()
    with torch.no_grad():
        model.fc.bias.add_(1.0)
    model.eval()
    with torch.no_grad():
        after = model(x)
        model.execution = "mask"
        ref = model(x)
    torch.testing.assert_close(after, ref, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(after, before + 1.0, rtol=1e-4, atol=1e-4)


def test_loaded_static_checkpoint_runs_engine(engine, tmp_path):
    model = lcnas.create_model("resnet8", num_classes=10)
    _randomise_bn(model, seed=1)
    path = tmp_path / "static.pt"
    save_checkpoint(path, model)
    loaded = lcnas.load_model(path)
    assert not loaded.training
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        out = loaded(x)
        assert loaded.engine.native_mflops is not None
        model.eval().execution = "mask"
        ref = model(x)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_autograd_input_runs_pytorch():
    """An input that needs gradients (attacks, saliency) takes plain PyTorch, which autograd can see."""
    model = lcnas.create_model("resnet8", num_classes=10).eval()
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    model(x).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0

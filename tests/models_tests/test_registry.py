from __future__ import annotations

import pytest
import torch

import lcnas
from lcnas.errors import UnknownModelError
from lcnas.models import model_info

ALL_MODELS = lcnas.list_models()


def _input(name: str, n: int = 2) -> torch.Tensor:
    # ImageNet backbones are checked at 64×64: same code path, a fraction of the CPU time.
    size = 32 if model_info(name).dataset == "cifar10" else 64
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0))


def test_registry_lists_the_standard_resnets():
    assert ALL_MODELS == sorted(["resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110", "resnet18", "resnet34", "resnet50"])
    assert lcnas.list_models("resnet1*") == ["resnet110", "resnet14", "resnet18"]


@pytest.mark.parametrize("name", ALL_MODELS)
def test_forward_backward_every_parameter_gets_a_gradient(name):
    torch.manual_seed(0)
    model = lcnas.create_model(name, num_classes=7)
    out = model(_input(name))
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"parameters without gradient: {missing[:5]}"


@pytest.mark.parametrize("name,blocks", [("resnet8", 3), ("resnet14", 6), ("resnet20", 9), ("resnet32", 15), ("resnet56", 27), ("resnet110", 54)])
def test_cifar_resnet_depth_and_size(name, blocks):
    model = lcnas.create_model(name)
    assert len(model.blocks()) == blocks
    # He et al. 2016, Table 6: 0.27M / 0.46M / 0.85M / 1.7M parameters; ResNet-8/14 (n = 1, 2)
    # by the same layout: 3×3 stem, 2n convs per stage, 16-32-64 widths, option-A shortcuts.
    expected = {"resnet8": 0.075e6, "resnet14": 0.17e6, "resnet20": 0.27e6, "resnet32": 0.46e6, "resnet56": 0.85e6, "resnet110": 1.7e6}[name]
    assert abs(sum(p.numel() for p in model.parameters()) - expected) / expected < 0.03


@pytest.mark.parametrize("name", ["resnet18", "resnet50"])
def test_torchvision_state_dict_loads_and_gives_same_logits(name):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    # random BN statistics so the comparison exercises them
    for m in reference.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    model = lcnas.create_model(name).eval()
    model.load_state_dict(reference.state_dict(), strict=True)
    x = _input(name)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(model(x), reference((x - mean) / std), atol=1e-4)


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(UnknownModelError, match=r"unknown model 'resnet2'.*Did you mean.*resnet20"):
        lcnas.create_model("resnet2")


def test_bad_gating_is_rejected():
    with pytest.raises(lcnas.errors.ConfigError, match="unknown gating 'skip'"):
        lcnas.create_model("resnet20", gating="skip")


def test_a_class_count_below_one_is_refused_not_replaced_by_the_default():
    with pytest.raises(lcnas.errors.ConfigError, match="num_classes must be >= 1, got 0"):
        lcnas.create_model("resnet20", num_classes=0)
    assert lcnas.create_model("resnet20", num_classes=100).fc.out_features == 100


def test_normalisation_is_inside_the_model():
    model = lcnas.create_model("resnet20").eval()
    x = torch.rand(1, 3, 32, 32)
    stem_in = model.normalize(x)
    assert torch.allclose(stem_in.mean(), ((x - torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)) / torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)).mean())
    assert not any("normalize" in k for k in model.state_dict())


def test_shipped_lcnets_are_listed_with_pretrained_and_load_by_name():
    shipped = lcnas.list_models(pretrained=True)
    assert shipped == sorted(p.name for p in lcnas.list_pretrained())
    assert {"resnet20", "resnet32"} <= set(shipped)  # static backbones with shipped weights
    lcnets = lcnas.list_models("lcnet-*", pretrained=True)
    assert lcnets and all(name.startswith("lcnet-") for name in lcnets)
    assert not set(lcnets) & set(ALL_MODELS)  # LC-Nets load by name; they are not builders
    model = lcnas.load_model(lcnets[0])
    assert model.gating != "none"

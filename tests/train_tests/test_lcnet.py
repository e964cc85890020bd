from __future__ import annotations

import json

import pytest
import torch

import lcnas
from lcnas.cost import describe, static_mflops
from lcnas.errors import ConfigError, LcnasError
from lcnas.models import GateConfig
from lcnas.train import LossWeights, TrainConfig, lcnet_loss, load_train_config, train


def _cfg(tmp_path, **kw) -> TrainConfig:
    base = dict(name="t", model="resnet20", dataset="synthetic", val_size=100, train_subset=256, epochs=1, batch_size=64,
                eval_batch_size=250, lr=0.05, amp="none", channels_last=False, device="cpu", threads=1, out_dir=str(tmp_path))
    base.update(kw)
    return TrainConfig(**base)


def _term_alone(weights: LossWeights, *, init_logit: float, n: int):
    """A training forward of a random-input ResNet-20 LC-Net; backpropagates the loss minus its
    CE-only value (so only the compute term's gradient) and returns (model, loss parts)."""
    torch.manual_seed(0)
    model = lcnas.create_model("resnet20", gating="lc", gate_config=GateConfig(init_logit=init_logit)).train()
    logits = model(torch.rand(n, 3, 32, 32))
    kw = dict(trace=model.last_trace, arch=describe(model, (3, 32, 32)), static_mflops=static_mflops(model))
    y = torch.zeros(n, dtype=torch.long)
    with_term, parts = lcnet_loss(logits, y, weights=weights, **kw)
    without, _ = lcnet_loss(logits, y, weights=LossWeights(), **kw)
    (with_term - without).backward()
    return model, parts


def test_flops_term_pushes_gates_toward_less_compute():
    model, parts = _term_alone(LossWeights(flops=1.0, flops_target=0.3), init_logit=2.0, n=8)
    assert parts["flops_ratio"] > 0.3
    # d loss / d keep-logit bias > 0: gradient descent lowers the keep logits, i.e. skips more
    layer_bias = model.blocks()[4].layer_gate.mlp[-1].bias.grad[0]
    chan_bias = model.blocks()[4].channel_gate.mlp[-1].bias.grad[:4]
    assert layer_bias > 0 and (chan_bias > 0).all()


def test_rate_term_pulls_every_gate_toward_its_target_rate():
    model, parts = _term_alone(LossWeights(rate=1.0, rate_target=0.25), init_logit=4.0, n=16)  # init: all keep
    assert parts["rate"] == pytest.approx(0.75 ** 2, abs=0.05)  # nearly every gate keeps the whole batch
    # every gate keeps too much: descent lowers its keep logits
    assert model.blocks()[4].layer_gate.mlp[-1].bias.grad[0] > 0
    assert (model.blocks()[4].channel_gate.mlp[-1].bias.grad[:4] > 0).all()
    with pytest.raises(ValueError, match="rate_target"):
        LossWeights(rate=1.0, rate_target=0.0)


def test_usage_terms_are_reported_and_weighted():
    torch.manual_seed(0)
    model = lcnas.create_model("resnet20", gating="lc").train()
    arch = describe(model, (3, 32, 32))
    logits = model(torch.rand(4, 3, 32, 32))
    y = torch.zeros(4, dtype=torch.long)
    kw = dict(trace=model.last_trace, arch=arch, static_mflops=static_mflops(model))
    base, _ = lcnet_loss(logits, y, weights=LossWeights(), **kw)
    more, parts = lcnet_loss(logits, y, weights=LossWeights(layer=1.0, channel=2.0), **kw)
    assert 0.9 < parts["layer_usage"] <= 1 and 0.9 < parts["channel_usage"] <= 1
    assert more.item() == pytest.approx(base.item() + parts["layer_usage"] + 2 * parts["channel_usage"], rel=1e-5)


def test_loss_weights_validation():
    with pytest.raises(ValueError, match="must be >= 0"):
        LossWeights(layer=-1)
    with pytest.raises(ValueError, match="unknown field"):
        LossWeights.from_dict({"flop": 1})


def test_lcnet_training_from_a_static_checkpoint(tmp_path):
    train(_cfg(tmp_path, name="static"), progress=False)
    cfg = _cfg(tmp_path, name="lc", gating="lc", init_from=str(tmp_path / "static" / "final.pt"), teacher=str(tmp_path / "static" / "final.pt"),
               gate={"hidden": 0, "group_size": 4}, loss={"flops": 2.0, "flops_target": 0.5, "distill": 0.5}, gate_lr=0.1)
    final = train(cfg, progress=False)
    assert 0 < final["test_mflops_mean"] <= final["test_mflops_p95"] * (1 + 1e-5)
    assert 0 < final["test_block_rate"] <= 1
    model = lcnas.load_model(tmp_path / "lc" / "final.pt")
    assert model.gating == "lc" and model.gate_config.hidden == 0
    with torch.no_grad():
        model(torch.rand(1, 3, 32, 32))
    assert model.last_trace.block_run.shape == (1, 9)
    epochs = json.loads((tmp_path / "lc" / "metrics.json").read_text())["epochs"]
    assert "val_mflops_mean" in epochs[0]


def test_init_from_another_model_is_refused(tmp_path):
    train(_cfg(tmp_path, name="static"), progress=False)
    with pytest.raises(ConfigError, match="holds a 'resnet20'.*trains 'resnet32'"):
        train(_cfg(tmp_path, name="lc", model="resnet32", gating="lc", init_from=str(tmp_path / "static" / "final.pt")), progress=False)


def test_distillation_needs_a_teacher(tmp_path):
    with pytest.raises(ConfigError, match="needs a teacher"):
        train(_cfg(tmp_path, gating="lc", loss={"distill": 1.0}), progress=False)


def test_gate_settings_are_validated_and_nested_overrides_work(tmp_path):
    with pytest.raises(ConfigError, match="gate settings need gating"):
        TrainConfig(gate={"hidden": 4})
    with pytest.raises(ConfigError, match=r"loss\.flops, loss\.rate need gating.*takes only loss\.distill"):
        TrainConfig(loss={"flops": 1.0, "rate": 1.0, "distill": 1.0})
    with pytest.raises(ConfigError, match="gate: GateConfig: pooling"):
        TrainConfig(gating="lc", gate={"pooling": "median"})
    cfg = load_train_config(None, ["gating=lc", "gate.hidden=8", "gate.group_size=2", "loss.flops=1.5"])
    assert cfg.gate == GateConfig(hidden=8, group_size=2) and cfg.loss == LossWeights(flops=1.5)


def test_init_from_a_gated_checkpoint_continues_with_its_gates(tmp_path):
    from lcnas.train._loop import _build_model

    gate = {"hidden": 0, "group_size": 4}
    train(_cfg(tmp_path, name="first", gating="lc", gate=gate, loss={"flops": 2.0, "flops_target": 0.5}), progress=False)
    state = torch.load(tmp_path / "first" / "final.pt", weights_only=False)["state_dict"]
    gate_keys = [k for k in state if "_gate." in k]
    assert gate_keys

    same = _build_model(_cfg(tmp_path, name="again", gating="lc", gate=gate, init_from=str(tmp_path / "first" / "final.pt")), 10)
    assert all(torch.equal(same.state_dict()[k], state[k]) for k in gate_keys)  # gates carried over

    # Gates of another shape (hidden 8): only the backbone carries over; the gates start all-on.
    other = _build_model(_cfg(tmp_path, name="other", gating="lc", gate={"hidden": 8, "group_size": 4},
                              init_from=str(tmp_path / "first" / "final.pt")), 10)
    conv = "layer1.0.conv1.weight"
    assert torch.equal(other.state_dict()[conv], state[conv])
    assert not any(k in state and other.state_dict()[k].shape == state[k].shape and torch.equal(other.state_dict()[k], state[k])
                   for k in other.state_dict() if "_gate.mlp" in k)


def test_static_distillation_adds_the_weighted_kl_term(tmp_path):
    """A static run takes loss.distill and a teacher (the control for distilled LC-Nets): its
    objective is cross-entropy + distill × the same KL term the LC-Net loss uses."""
    import torch.nn.functional as F

    from lcnas.train._loop import _Objective, _load_teacher
    from lcnas.train._losses import distillation_loss

    train(_cfg(tmp_path, name="teacher"), progress=False)
    cfg = _cfg(tmp_path, name="kd", teacher=str(tmp_path / "teacher" / "final.pt"), loss={"distill": 2.0, "distill_temperature": 3.0})
    teacher = _load_teacher(cfg, torch.device("cpu"))
    assert teacher is not None and not any(p.requires_grad for p in teacher.parameters())
    torch.manual_seed(0)
    student = lcnas.create_model("resnet20").train()
    x, y = torch.rand(8, 3, 32, 32), torch.randint(0, 10, (8,))
    loss, logits = _Objective(cfg, student, None, teacher)(student, x, y)
    with torch.no_grad():
        kd = distillation_loss(logits, teacher(x), 3.0)
    assert kd > 0
    assert loss.item() == pytest.approx(F.cross_entropy(logits, y).item() + 2.0 * kd.item(), rel=1e-5)
    # Without a teacher a static run with loss.distill is refused, as a gated one is.
    with pytest.raises(ConfigError, match="needs a teacher"):
        train(_cfg(tmp_path, name="kd2", loss={"distill": 1.0}), progress=False)
    final = train(cfg, progress=False)  # and it trains end to end
    assert 0 <= final["test_accuracy"] <= 100


def test_init_from_and_teacher_take_shipped_model_names_from_any_directory(tmp_path, monkeypatch):
    from lcnas.pretrained import pretrained_path
    from lcnas.train._loop import _build_model, _load_teacher

    monkeypatch.chdir(tmp_path)  # no lcnas/pretrained/ below the working directory
    name = "lcnet-resnet20-layer-kd32-t75"
    shipped = torch.load(pretrained_path(name), weights_only=False)["state_dict"]
    cfg = _cfg(tmp_path, name="warm", gating="layer", gate={"hidden": 0, "pooling": "avg"}, init_from=name,
               teacher="resnet32", loss={"distill": 1.0})
    model = _build_model(cfg, 10)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in shipped.items())  # gates and backbone
    teacher = _load_teacher(cfg, torch.device("cpu"))
    assert sum(type(m).__name__ == "BasicBlock" for m in teacher.modules()) == 15  # the shipped ResNet-32
    with pytest.raises(LcnasError, match="no-such-model"):
        _build_model(_cfg(tmp_path, name="bad", gating="layer", init_from="no-such-model"), 10)

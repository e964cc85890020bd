from __future__ import annotations

import pytest

from lcnas.errors import ConfigError
from lcnas.train import TrainConfig, load_train_config


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: resnet32\nepochs: 4\nlr: 0.05\n")
    cfg = load_train_config(path, ["epochs=7", "amp=bf16", "train_subset=100"])
    assert (cfg.model, cfg.epochs, cfg.lr, cfg.amp, cfg.train_subset) == ("resnet32", 7, 0.05, "bf16", 100)


def test_round_trip_through_dict_does_not_mutate_input():
    data = {"model": "resnet56", "epochs": 3, "weight_decay": 1e-4}
    cfg = TrainConfig.from_dict(dict(data))
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert data == {"model": "resnet56", "epochs": 3, "weight_decay": 1e-4}


@pytest.mark.parametrize(
    "text,match",
    [
        ("epocs: 3\n", r"unknown setting 'epocs' \(did you mean 'epochs'\?\)"),
        ("epochs: three\n", "epochs must be int"),
        ("schedule: step\n", "schedule='step' is not one of cosine, onecycle"),
        ("epochs: [1\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
        ("lr: -1\n", "lr must be > 0"),
    ],
)
def test_bad_config_files_name_the_file_and_field(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match) as err:
        load_train_config(path)
    assert "bad.yaml" in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_train_config(tmp_path / "nope.yaml")


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected key=value"):
        load_train_config(None, ["epochs"])


def test_groups_are_typed_dataclasses_read_from_every_stored_form():
    from lcnas.models import GateConfig
    from lcnas.train import LossWeights

    assert TrainConfig().gate == GateConfig() and TrainConfig().loss == LossWeights()
    # The forms stored by checkpoints and shipped configs: null groups, partial mappings, int weights.
    static = TrainConfig.from_dict({"gating": "none", "gate": None, "loss": None})
    assert static.gate == GateConfig() and static.loss == LossWeights()
    gated = TrainConfig.from_dict({"gating": "layer", "gate": {"hidden": 0, "stages": [2, 3]}, "loss": {"flops": 4}})
    assert gated.gate == GateConfig(hidden=0, stages=(2, 3)) and gated.loss.flops == 4.0
    # The same settings as dotted keys, and the typed form written back, give the same config.
    assert TrainConfig.from_dict({"gating": "layer", "gate.hidden": 0, "gate.stages": [2, 3], "loss.flops": 4.0}) == gated
    assert TrainConfig.from_dict(gated.to_dict()) == gated
    assert gated.flat()["gate.stages"] == [2, 3] and gated.flat()["loss.flops"] == 4.0


def test_one_override_function_for_files_set_and_copies(tmp_path):
    from lcnas.train import apply_overrides

    data = {"gating": "lc", "gate": {"hidden": 8}}
    merged = apply_overrides(data, {"gate.layer_threshold": 0.6, "loss.flops": 2.0, "gate": {"pooling": "max"}, "lr": 0.2})
    assert merged == {"gating": "lc", "gate": {"hidden": 8, "layer_threshold": 0.6, "pooling": "max"}, "loss": {"flops": 2.0}, "lr": 0.2}
    assert data == {"gating": "lc", "gate": {"hidden": 8}}  # never mutated
    path = tmp_path / "c.yaml"
    path.write_text("gating: lc\ngate:\n  hidden: 8\nloss.flops: 1.0\n")
    cfg = load_train_config(path, ["gate.layer_threshold=0.6"])
    assert (cfg.gate.hidden, cfg.gate.layer_threshold, cfg.loss.flops) == (8, 0.6, 1.0)
    assert cfg.with_overrides({"loss.flops": 3.0}).loss.flops == 3.0 and cfg.loss.flops == 1.0


@pytest.mark.parametrize("key,valid", [("gate.hiden", "gate.hidden, gate.pooling"), ("loss.flop", "loss.layer, loss.channel"),
                                       ("epochz", "name, model, gating")])
def test_an_unknown_key_is_named_with_the_valid_ones(key, valid):
    from lcnas.train import apply_overrides

    with pytest.raises(ConfigError, match=rf"--set: unknown setting '{key}' .*; valid: {valid}"):
        apply_overrides({}, {key: 1})
    with pytest.raises(ConfigError, match=rf"unknown setting '{key}'"):
        load_train_config(None, [f"{key}=1"])


@pytest.mark.parametrize("settings,match", [
    ({"gate_lr": 0}, "gate_lr must be > 0"),
    ({"warmup_epochs": -1}, "warmup_epochs must be >= 0"),
    ({"gating": "lc", "gate": {"layer_threshold": 1.0}}, "gate: GateConfig: layer_threshold must be > 0 and < 1"),
    ({"gating": "lc", "loss": {"flops_target": 0}}, r"loss: LossWeights.flops_target must be > 0 and <= 1"),
    ({"gating": "lc", "gate": {"stages": [0, 1]}}, "stages must be >= 1"),
    ({"gating": "max"}, "gating='max' is not one of none, layer, channel, lc"),
])
def test_limits_are_declared_once_on_the_dataclasses(settings, match):
    with pytest.raises(ConfigError, match=match):
        TrainConfig.from_dict(settings)

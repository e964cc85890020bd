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

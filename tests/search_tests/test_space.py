"""Search-space type and YAML parser: the shipped space, conditionals, check(), malformed files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from lcnas.errors import ConfigError
from lcnas.search._space import Param, SearchSpace, load_space, parse_space, shipped_spaces

# Nested conditionals, child written before its parent, tuple-valued parent, null choice.
NESTED = {
    "name": "nested",
    "description": "three levels of conditions",
    "fixed": {"gate.init_logit": 2.0, "epochs": 3},
    "params": {
        "gate.temperature": {"type": "float", "low": 0.5, "high": 2.0, "when": {"gate.pooling": ["max"]}},
        "gating": {"type": "categorical", "choices": ["layer", "channel", "lc"]},
        "gate.pooling": {"type": "categorical", "choices": ["avg", "max"], "when": {"gating": ["channel", "lc"]}},
        "gate.stages": {"type": "categorical", "choices": [None, [2, 3]]},
        "loss.distill": {"type": "float", "low": 0.0, "high": 2.0, "when": {"gate.stages": [[2, 3]]}},
        "gate.hidden": {"type": "int", "low": 0, "high": 32, "step": 8},
        "loss.flops_target": {"type": "float", "low": 0.3, "high": 0.8, "step": 0.1},
    },
}


def _write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_shipped_space_parses_with_parents_first():
    space = load_space("lcnet_cifar10")
    assert "lcnet_cifar10" in shipped_spaces()
    assert space.name == "lcnet_cifar10" and space.description
    # the proxy trains gates on a frozen backbone, so the backbone's rate is fixed, not searched
    assert space.fixed_dict() == {"gate.layer_threshold": 0.5, "lr": 0.01}
    names = space.names
    assert {"gating", "gate.hidden", "gate.stages", "loss.flops", "gate_lr"} <= set(names) and "lr" not in names
    for p in space.params:
        if p.condition is not None:
            assert names.index(p.condition[0]) < names.index(p.name)
    assert space.param("gate.stages").choices == ((1, 2, 3), (2, 3))
    assert space.param("gate.hidden") == Param("gate.hidden", "int", 0, 32, step=8)
    assert space.param("gate.group_size").condition == ("gating", ("channel", "lc"))


def test_load_by_name_and_by_path_agree():
    by_name = load_space("lcnet_cifar10")
    path = Path(__file__).resolve().parents[2] / "search_spaces" / "lcnet_cifar10.yaml"
    assert load_space(path) == by_name
    assert load_space(str(path)) == by_name


def test_round_trip_through_json():
    for space in (load_space("lcnet_cifar10"), parse_space(NESTED)):
        again = SearchSpace.from_dict(json.loads(json.dumps(space.to_dict())))
        assert again == space
        assert hash(again) == hash(space)  # frozen all the way down


def test_parse_space_normalizes_and_orders():
    space = parse_space(NESTED)
    names = space.names
    assert names.index("gating") < names.index("gate.pooling") < names.index("gate.temperature")
    assert space.param("gate.stages").choices == (None, (2, 3))
    assert space.param("loss.distill").condition == ("gate.stages", ((2, 3),))
    assert isinstance(space.param("loss.distill").low, float)
    assert space.children("gating") == (space.param("gate.pooling"),)


def test_shipped_conditionals_follow_gating():
    space = load_space("lcnet_cifar10")
    layer = {p.name for p in space.active({"gating": "layer"})}
    channel = {p.name for p in space.active({"gating": "channel"})}
    lc = {p.name for p in space.active({"gating": "lc"})}
    assert "loss.layer" in layer and not {"loss.channel", "gate.group_size"} & layer
    assert {"loss.channel", "gate.group_size"} <= channel and "loss.layer" not in channel
    assert {"loss.layer", "loss.channel", "gate.group_size"} <= lc
    assert not {"loss.layer", "loss.channel", "gate.group_size"} & {p.name for p in space.active({})}


def test_nested_conditionals():
    space = parse_space(NESTED)

    def active(**values):
        return {p.name for p in space.active({k.replace("_", "."): v for k, v in values.items()})}

    assert "gate.temperature" not in active(gating="layer", gate_pooling="max")  # parent inactive
    assert "gate.temperature" in active(gating="lc", gate_pooling="max")
    assert "gate.temperature" not in active(gating="lc", gate_pooling="avg")
    assert "loss.distill" in active(gating="layer", gate_stages=(2, 3))
    assert "loss.distill" in {p.name for p in space.active({"gate.stages": [2, 3]})}  # JSON lists match tuples
    assert "loss.distill" not in active(gating="layer", gate_stages=None)


def _full(**extra):
    values = {"gating": "lc", "gate.pooling": "max", "gate.temperature": 1.0, "gate.stages": [2, 3],
              "loss.distill": 0.5, "gate.hidden": 16, "loss.flops_target": 0.5}
    values.update(extra)
    return {k: v for k, v in values.items() if v is not ...}


def test_check_accepts_and_canonicalizes():
    space = parse_space(NESTED)
    out = space.check(_full(**{"gate.hidden": 16.0, "loss.flops_target": 0.30000000000000004}))
    assert out["gate.stages"] == (2, 3)
    assert out["gate.hidden"] == 16 and isinstance(out["gate.hidden"], int)
    assert out["loss.flops_target"] == 0.3
    assert out["gate.init_logit"] == 2.0 and out["epochs"] == 3  # fixed merged in
    assert "epochs" not in space.check(_full(), merge_fixed=False)
    layer = {"gating": "layer", "gate.stages": None, "gate.hidden": 0, "loss.flops_target": 0.8}
    assert space.check(layer, merge_fixed=False) == layer


@pytest.mark.parametrize("values, words", [
    (_full(**{"gate.hidden": ...}), ["gate.hidden", "no value"]),
    (_full(gating="layer"), ["gate.pooling", "inactive", "gating=layer"]),
    (_full(**{"gate.pooling": "avg"}), ["gate.temperature", "inactive when gate.pooling=avg"]),
    (_full(gating="layer", **{"gate.pooling": ...}), ["gate.temperature", "parent 'gate.pooling' is"]),
    (_full(**{"gate.hiden": 8}), ["gate.hiden", "did you mean 'gate.hidden'"]),
    (_full(**{"gate.hidden": 40}), ["gate.hidden", "outside [0, 32]"]),
    (_full(**{"gate.hidden": 12}), ["gate.hidden", "grid"]),
    (_full(**{"gate.hidden": 8.5}), ["gate.hidden", "not an integer"]),
    (_full(**{"loss.flops_target": 0.35}), ["loss.flops_target", "grid"]),
    (_full(**{"loss.distill": 2.5}), ["loss.distill", "outside"]),
    (_full(**{"loss.distill": "1"}), ["loss.distill", "not a finite number"]),
    (_full(gating="none"), ["gating", "not one of"]),
    (_full(**{"gate.stages": [1, 2]}), ["gate.stages", "not one of"]),
    (_full(epochs=5), ["epochs", "fixed"]),
])
def test_check_rejects(values, words):
    with pytest.raises(ConfigError) as e:
        parse_space(NESTED).check(values)
    assert all(w in str(e.value) for w in words), str(e.value)


def test_contains():
    space = parse_space(NESTED)
    hidden, stages, target = (space.param(n) for n in ("gate.hidden", "gate.stages", "loss.flops_target"))
    assert hidden.contains(24) and not hidden.contains(20) and not hidden.contains(True) and not hidden.contains(-8)
    assert stages.contains((2, 3)) and stages.contains([2, 3]) and stages.contains(None) and not stages.contains((3, 2))
    assert target.contains(0.7) and not target.contains(0.75) and not target.contains(float("nan"))
    scaling = Param("gate.scaling", "categorical", choices=(True, False))
    assert scaling.contains(True) and not scaling.contains(1)  # bools are not numbers here


# ---------------------------------------------------------------- malformed files

BAD = {
    "unknown name": ("params:\n  gate.hiden: {type: int, low: 0, high: 8}\n",
                     ["gate.hiden", "did you mean 'gate.hidden'"]),
    "low >= high": ("params:\n  lr: {type: float, low: 0.1, high: 0.1}\n", ["'lr'", "low (0.1) must be < high"]),
    "log, low <= 0": ("params:\n  loss.flops: {type: float, low: 0.0, high: 1.0, log: true}\n", ["loss.flops", "low > 0"]),
    "empty choices": ("params:\n  gate.pooling: {type: categorical, choices: []}\n", ["gate.pooling", "non-empty"]),
    "unknown parent": ("params:\n  gating: {type: categorical, choices: [layer, lc]}\n"
                       "  loss.layer: {type: float, low: 0.1, high: 1, when: {gatin: [lc]}}\n",
                       ["loss.layer", "'gatin'", "did you mean 'gating'"]),
    "numeric parent": ("params:\n  gate.hidden: {type: int, low: 0, high: 8}\n"
                       "  loss.layer: {type: float, low: 0.1, high: 1, when: {gate.hidden: [0]}}\n",
                       ["loss.layer", "gate.hidden", "only categorical"]),
    "value not a choice": ("params:\n  gating: {type: categorical, choices: [layer, lc]}\n"
                           "  loss.channel: {type: float, low: 0.1, high: 1, when: {gating: [channel]}}\n",
                           ["loss.channel", "channel", "not a choice of 'gating'"]),
    "fixed parent": ("fixed: {gating: lc}\nparams:\n  loss.layer: {type: float, low: 0.1, high: 1, when: {gating: [lc]}}\n",
                     ["loss.layer", "fixed"]),
    "two parents": ("params:\n  gating: {type: categorical, choices: [layer, lc]}\n"
                    "  gate.pooling: {type: categorical, choices: [avg, max]}\n"
                    "  loss.layer: {type: float, low: 0.1, high: 1, when: {gating: [lc], gate.pooling: [avg]}}\n",
                    ["loss.layer", "exactly one parent"]),
    "cycle": ("params:\n  gating: {type: categorical, choices: [layer, lc], when: {gate.pooling: [avg]}}\n"
              "  gate.pooling: {type: categorical, choices: [avg, max], when: {gating: [lc]}}\n", ["cycle"]),
    "fixed and param": ("fixed: {lr: 0.1}\nparams:\n  lr: {type: float, low: 0.01, high: 0.1}\n",
                        ["'lr'", "both fixed and searched"]),
    "unknown spec key": ("params:\n  lr: {type: float, lower: 0.01, high: 0.1}\n", ["'lr'", "unknown key 'lower'", "did you mean 'low'"]),
    "bad type": ("params:\n  lr: {type: floats, low: 0.01, high: 0.1}\n", ["'lr'", "type must be one of"]),
    "missing params": ("name: x\n", ["no parameters", "params"]),
    "top-level list": ("- lr\n", ["mapping"]),
    "unknown top key": ("name: x\nparam: {}\n", ["'param'", "did you mean 'params'"]),
    "step off high": ("params:\n  gate.hidden: {type: int, low: 0, high: 30, step: 8}\n", ["gate.hidden", "use high: 24"]),
    "log and step": ("params:\n  lr: {type: float, low: 0.01, high: 0.1, log: true, step: 0.01}\n", ["'lr'", "log and step"]),
    "float for an int": ("params:\n  gate.hidden: {type: float, low: 0, high: 8}\n", ["gate.hidden", "type: int"]),
    "bad pooling": ("params:\n  gate.pooling: {type: categorical, choices: [avg, mean]}\n", ["gate.pooling", "mean", "avgmax"]),
    "negative weight": ("params:\n  loss.flops: {type: float, low: -1, high: 1}\n", ["loss.flops", ">= 0"]),
    "target above 1": ("params:\n  loss.flops_target: {type: float, low: 0.5, high: 1.5}\n", ["loss.flops_target", "<= 1"]),
    "duplicate choice": ("params:\n  gate.group_size: {type: categorical, choices: [4, 4.0]}\n", ["gate.group_size", "twice"]),
    "bad fixed value": ("fixed: {gate.pooling: mean}\nparams:\n  lr: {type: float, low: 0.01, high: 0.1}\n", ["gate.pooling", "mean"]),
    "not searchable": ("params:\n  out_dir: {type: categorical, choices: [a, b]}\n", ["out_dir", "cannot be searched"]),
    "string bound": ("params:\n  lr: {type: float, low: small, high: 0.1}\n", ["'lr'", "low must be a finite number"]),
    # Limits come from the config dataclasses' declarations (lcnas._limits), not from copies.
    "gate_lr at 0": ("params:\n  gate_lr: {type: float, low: 0.0, high: 1.0}\n", ["gate_lr", "must be > 0"]),
    "negative warmup": ("fixed: {warmup_epochs: -1}\nparams:\n  lr: {type: float, low: 0.01, high: 0.1}\n",
                        ["warmup_epochs", "must be >= 0"]),
    "stage 0": ("params:\n  gate.stages: {type: categorical, choices: [[0, 1], [2, 3]]}\n", ["gate.stages", "0", ">= 1"]),
    "threshold 1": ("fixed: {gate.layer_threshold: 1.0}\nparams:\n  lr: {type: float, low: 0.01, high: 0.1}\n",
                    ["gate.layer_threshold", "> 0 and < 1"]),
    "static gating": ("params:\n  gating: {type: categorical, choices: [none, lc]}\n", ["gating", "none", "layer, channel, lc"]),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_file_names_file_and_parameter(case, tmp_path):
    text, words = BAD[case]
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as e:
        load_space(path)
    msg = str(e.value)
    assert str(path) in msg and all(w in msg for w in words), msg


def test_bad_yaml_syntax(tmp_path):
    path = _write(tmp_path, "params:\n  lr: {type: float, low: 0.1\n")
    with pytest.raises(ConfigError, match="not valid YAML") as e:
        load_space(path)
    assert str(path) in str(e.value)


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ConfigError, match="does not exist") as e:
        load_space(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(e.value)
    with pytest.raises(ConfigError, match="unknown search space 'lcnet_cifar11'.*lcnet_cifar10"):
        load_space("lcnet_cifar11")
    with pytest.raises(ConfigError, match="empty"):
        load_space(_write(tmp_path, ""))


def test_yaml_quirks_are_accepted(tmp_path):
    # YAML 1.1 reads 1e-3 as text; int bounds written as 8.0 are whole numbers; name defaults to the stem.
    text = "params:\n  lr: {type: float, low: 1e-3, high: 1e-1, log: true}\n  gate.hidden: {type: int, low: 0, high: 8.0}\n"
    space = load_space(_write(tmp_path, text, "my_space.yml"))
    assert space.name == "my_space"
    assert space.param("lr").low == 0.001 and space.param("gate.hidden").high == 8


def test_new_config_fields_are_picked_up():
    # Names come from the dataclasses, so LossWeights.latency is searchable without touching the parser.
    space = parse_space({"params": {"loss.latency": {"type": "float", "low": 0.0, "high": 1.0}}})
    assert space.names == ("loss.latency",)


def test_yaml_file_of_the_nested_space(tmp_path):
    path = _write(tmp_path, yaml.safe_dump(NESTED, sort_keys=False))
    assert load_space(path) == parse_space(NESTED)


def test_every_shipped_space_parses_and_translates_to_each_engine():
    from lcnas.search._translate import to_nni

    assert {"lcnet_cifar10", "lcnet_cifar10_latency"} <= set(shipped_spaces())
    for name in shipped_spaces():
        space = load_space(name)
        assert space.name == name and space.description
        assert SearchSpace.from_dict(json.loads(json.dumps(space.to_dict()))) == space
        assert to_nni(space)  # conditions become nested choices; nothing lossy refused
    lean = load_space("lcnet_cifar10_latency")
    assert lean.param("gating").choices == ("layer", "lc") and "loss.flops" not in lean.names
    assert lean.param("gate.group_size").condition == ("gating", ("lc",))
    assert {p.name for p in lean.active({"gating": "layer"})} >= {"loss.latency", "loss.latency_target"}

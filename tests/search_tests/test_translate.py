"""Translators: one SearchSpace sampled through Optuna, Ray Tune and NNI, and decoded back."""

from __future__ import annotations

import json
import math
import random

import pytest

from lcnas.errors import ConfigError
from lcnas.models import GateConfig
from lcnas.search._space import load_space, parse_space
from lcnas.search._translate import (
    LossyTranslationError,
    decode_optuna,
    from_nni,
    from_ray,
    suggest_optuna,
    to_nni,
    to_ray,
)
from lcnas.train import LossWeights

from .test_space import NESTED

# Every numeric flavour, no conditions (what a Ray param_space can hold).
FLAT = {
    "name": "flat",
    "params": {
        "gating": {"type": "categorical", "choices": ["layer", "lc"]},
        "gate.stages": {"type": "categorical", "choices": [[1, 2, 3], [2, 3], None]},
        "gate.scaling": {"type": "categorical", "choices": [True, False]},
        "gate.hidden": {"type": "int", "low": 0, "high": 32, "step": 8},
        "gate.group_size": {"type": "int", "low": 1, "high": 3},
        "epochs": {"type": "int", "low": 1, "high": 64, "log": True},
        "lr": {"type": "float", "low": 0.005, "high": 0.05, "log": True},
        "loss.distill": {"type": "float", "low": 0.0, "high": 2.0},
        "loss.flops_target": {"type": "float", "low": 0.3, "high": 0.8, "step": 0.1},
    },
}


# One level of conditions (NNI's tuners cannot go deeper), on a tuple/null-valued parent too.
NESTED1 = {**NESTED, "params": {k: v for k, v in NESTED["params"].items() if k != "gate.temperature"}}


@pytest.fixture(scope="module")
def shipped():
    return load_space("lcnet_cifar10")


def _assert_in_domain(space, values):
    """Every value exactly in its declared domain (not only accepted by check's tolerance)."""
    assert space.check(values, merge_fixed=False) == values
    for name, v in values.items():
        p = space.param(name)
        if p.kind == "categorical":
            assert any(v == c and type(v) is type(c) for c in p.choices), (name, v)
        elif p.kind == "int":
            assert type(v) is int and p.low <= v <= p.high and (not p.step or (v - p.low) % p.step == 0), (name, v)
        else:
            assert isinstance(v, float) and p.low <= v <= p.high, (name, v)


# ---------------------------------------------------------------- Optuna

def _study_values(space, n=30, seed=0):
    optuna = pytest.importorskip("optuna")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    seen = []

    def objective(trial):
        seen.append(suggest_optuna(trial, space))
        return 0.0

    study.optimize(objective, n_trials=n)
    return study, seen


def test_optuna_samples_the_shipped_space(shipped):
    _, seen = _study_values(shipped)
    for values in seen:
        _assert_in_domain(shipped, values)
        assert ("loss.channel" in values) == (values["gating"] in ("channel", "lc"))
        assert ("gate.group_size" in values) == (values["gating"] in ("channel", "lc"))
        assert ("loss.layer" in values) == (values["gating"] in ("layer", "lc"))
        assert values["gate.hidden"] % 8 == 0
        # Every sample is a config training accepts (GateConfig/LossWeights validate in __post_init__).
        full = shipped.check(values)
        GateConfig(**{k[5:]: v for k, v in full.items() if k.startswith("gate.")})
        LossWeights(**{k[5:]: v for k, v in full.items() if k.startswith("loss.")})
    assert {v["gating"] for v in seen} == {"layer", "channel", "lc"}
    assert {v["gate.stages"] for v in seen} == {(1, 2, 3), (2, 3)}  # decoded tuples, both drawn


def test_optuna_nested_and_flat_spaces():
    for data in (NESTED, FLAT):
        space = parse_space(data)
        study, seen = _study_values(space, n=40, seed=1)
        for values, trial in zip(seen, study.trials):
            _assert_in_domain(space, values)
            assert decode_optuna(trial.params, space) == values
    nested = parse_space(NESTED)
    _, seen = _study_values(nested, n=40, seed=1)
    assert any("gate.temperature" in v for v in seen)  # the third level is reached
    assert all(("gate.temperature" in v) == (v["gating"] != "layer" and v.get("gate.pooling") == "max") for v in seen)
    assert all(("loss.distill" in v) == (v["gate.stages"] == (2, 3)) for v in seen)


def test_an_enqueued_trial_in_the_suggest_encoding_comes_back_decoded(shipped):
    optuna = pytest.importorskip("optuna")
    wanted = {"gating": "layer", "gate.hidden": 16, "gate.pooling": "avgmax", "gate.stages": (2, 3), "gate.scaling": False,
              "gate.temperature": 1.0, "gate.init_logit": 2.0, "loss.layer": 0.1, "loss.flops": 2.0, "loss.flops_target": 0.5,
              "loss.rate": 2.0, "loss.rate_target": 0.6,
              "loss.distill": 1.0, "gate_lr": 0.5}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.enqueue_trial({**wanted, "gate.stages": "[2, 3]"})
    got = []
    study.optimize(lambda t: got.append(suggest_optuna(t, shipped)) or 0.0, n_trials=1)
    assert got == [wanted]


def test_decode_optuna_is_lenient(shipped):
    assert decode_optuna({"gate.stages": "[2, 3]", "other": [1]}, shipped) == {"gate.stages": (2, 3), "other": [1]}
    assert decode_optuna({}, shipped) == {}


# ---------------------------------------------------------------- Ray Tune

def test_to_ray_domains_and_bounds():
    pytest.importorskip("ray.tune")
    from ray.tune.search import sample

    space = parse_space(FLAT)
    domains = to_ray(space)
    assert set(domains) == set(space.names)
    assert isinstance(domains["gating"], sample.Categorical) and domains["gate.stages"].categories == ["[1, 2, 3]", "[2, 3]", "null"]
    assert isinstance(domains["gate.group_size"], sample.Integer)
    assert (domains["gate.group_size"].lower, domains["gate.group_size"].upper) == (1, 4)  # Ray's upper is exclusive
    assert isinstance(domains["lr"], sample.Float) and isinstance(domains["lr"].get_sampler(), sample.LogUniform)
    assert isinstance(domains["loss.flops_target"].get_sampler(), sample.Quantized)
    assert isinstance(domains["gate.hidden"].get_sampler(), sample.Quantized)
    samples = [{k: d.sample() for k, d in domains.items()} for _ in range(200)]
    decoded = [from_ray(s, space) for s in samples]
    for values in decoded:
        _assert_in_domain(space, values)
    assert {v["gate.group_size"] for v in decoded} == {1, 2, 3}  # both ends reachable, no 4
    assert {v["gate.hidden"] for v in decoded} <= {0, 8, 16, 24, 32}
    assert {v["gate.stages"] for v in decoded} == {(1, 2, 3), (2, 3), None}
    assert {v["loss.flops_target"] for v in decoded} <= {0.3, 0.4, 0.5, 0.6, 0.7, 0.8}
    assert 1 <= min(v["epochs"] for v in decoded) and max(v["epochs"] for v in decoded) <= 64


def test_from_ray_decodes_and_validates():
    space = parse_space(FLAT)
    config = {"gating": "lc", "gate.stages": "null", "gate.scaling": True, "gate.hidden": 8, "gate.group_size": 2,
              "epochs": 3, "lr": 0.01, "loss.distill": 0.0, "loss.flops_target": 0.30000000000000004, "extra": 1}
    out = from_ray(config, space)
    assert out["gate.stages"] is None and out["loss.flops_target"] == 0.3 and "extra" not in out
    with pytest.raises(ConfigError, match="gate.group_size"):
        from_ray({**config, "gate.group_size": 4}, space)


def test_to_ray_samples_conditionals_only_when_active(shipped):
    pytest.importorskip("ray.tune")
    import pickle

    from ray.tune.search.variant_generator import generate_variants

    domains = pickle.loads(pickle.dumps(to_ray(shipped)))  # Tune stores its param_space
    seen = set()
    for _ in range(60):
        for _, spec in generate_variants({"config": domains}):
            values = from_ray(spec["config"], shipped)  # validated: every active parameter, no inactive one
            seen.add((values["gating"], values.get("gate.group_size")))
    assert seen == {("layer", None), ("channel", 4), ("channel", 8), ("lc", 4), ("lc", 8)}


def test_to_ray_refuses_off_grid_steps():
    pytest.importorskip("ray.tune")
    off = parse_space({"name": "off", "params": {"loss.distill": {"type": "float", "low": 0.25, "high": 1.25, "step": 0.5}}})
    with pytest.raises(LossyTranslationError, match="'loss.distill'.*multiple of step"):
        to_ray(off)


# ---------------------------------------------------------------- NNI

def _sample_nni(spec: dict, rng: random.Random) -> dict:
    """What an NNI tuner hands a trial, drawn by hand: nested choices as {"_name": ..., children}."""
    out = {}
    for name, s in spec.items():
        kind, v = s["_type"], s["_value"]
        if kind == "choice":
            option = rng.choice(v)
            if isinstance(option, dict):
                option = {"_name": option["_name"], **_sample_nni({k: x for k, x in option.items() if k != "_name"}, rng)}
            out[name] = option
        elif kind == "randint":
            out[name] = rng.randrange(v[0], v[1])
        elif kind == "uniform":
            out[name] = rng.uniform(v[0], v[1])
        elif kind == "loguniform":
            out[name] = math.exp(rng.uniform(math.log(v[0]), math.log(v[1])))
        elif kind in ("quniform", "qloguniform"):
            x = rng.uniform(v[0], v[1]) if kind == "quniform" else math.exp(rng.uniform(math.log(v[0]), math.log(v[1])))
            out[name] = min(max(round(x / v[2]) * v[2], v[0]), v[1])
        else:
            raise AssertionError(f"unexpected NNI type {kind}")
    return out


def test_to_nni_types_and_nesting(shipped):
    spec = to_nni(shipped)
    assert json.loads(json.dumps(spec)) == spec
    assert spec["gate.hidden"] == {"_type": "choice", "_value": [0, 8, 16, 24, 32]}
    assert spec["gate.stages"] == {"_type": "choice", "_value": ["[1, 2, 3]", "[2, 3]"]}
    assert spec["gate_lr"] == {"_type": "loguniform", "_value": [0.05, 2.0]}
    assert spec["loss.flops_target"] == {"_type": "uniform", "_value": [0.3, 0.8]}
    options = {o["_name"]: set(o) - {"_name"} for o in spec["gating"]["_value"]}
    assert options == {"layer": {"loss.layer"}, "channel": {"gate.group_size", "loss.channel"},
                       "lc": {"gate.group_size", "loss.layer", "loss.channel"}}
    assert not {"gate.group_size", "loss.layer", "loss.channel"} & set(spec)  # only inside their parent's options
    flat = to_nni(parse_space(FLAT))
    assert flat["gate.group_size"] == {"_type": "randint", "_value": [1, 4]}  # NNI's upper is exclusive
    assert flat["epochs"] == {"_type": "qloguniform", "_value": [1, 64, 1]}
    assert flat["loss.flops_target"] == {"_type": "quniform", "_value": [0.3, 0.8, 0.1]}
    nested = to_nni(parse_space(NESTED1))
    assert {o["_name"]: set(o) - {"_name"} for o in nested["gating"]["_value"]} == {
        "layer": set(), "channel": {"gate.pooling"}, "lc": {"gate.pooling"}}
    assert {o["_name"]: set(o) - {"_name"} for o in nested["gate.stages"]["_value"]} == {"null": set(), "[2, 3]": {"loss.distill"}}


def test_from_nni_hand_built(shipped):
    params = {"gating": {"_name": "lc", "gate.group_size": 8, "loss.layer": 0.1, "loss.channel": 0.2},
              "gate.hidden": 16, "gate.pooling": "avg", "gate.stages": "[2, 3]", "gate.scaling": True,
              "gate.temperature": 1.5, "gate.init_logit": 2.0, "loss.flops": 2.0, "loss.flops_target": 0.5,
              "loss.rate": 2.0, "loss.rate_target": 0.6, "loss.distill": 0.0,
              "gate_lr": 0.5}
    out = from_nni(params, shipped)
    assert out == {"gating": "lc", "gate.group_size": 8, "loss.layer": 0.1, "loss.channel": 0.2, "gate.hidden": 16,
                   "gate.pooling": "avg", "gate.stages": (2, 3), "gate.scaling": True, "gate.temperature": 1.5,
                   "gate.init_logit": 2.0, "loss.flops": 2.0, "loss.flops_target": 0.5,
                   "loss.rate": 2.0, "loss.rate_target": 0.6, "loss.distill": 0.0,
                   "gate_lr": 0.5}
    flat = parse_space(FLAT)
    got = from_nni({"gating": "lc", "gate.stages": "null", "gate.scaling": False, "gate.hidden": 24, "gate.group_size": 3,
                    "epochs": 7.0, "lr": 0.02, "loss.distill": 1.0, "loss.flops_target": 0.7000000000000001}, flat)
    assert got["epochs"] == 7 and type(got["epochs"]) is int and got["loss.flops_target"] == 0.7 and got["gate.stages"] is None


@pytest.mark.parametrize("change, words", [
    ({"gating": {"_name": "layer", "loss.layer": 0.1, "loss.channel": 0.2}}, ["loss.channel", "inactive"]),
    ({"gating": "lc"}, ["active parameter", "no value"]),
    ({"gating": {"loss.layer": 0.1}}, ["'gating'", "_name"]),
    ({"gate.hidden": 12}, ["gate.hidden", "grid"]),
    ({"gate.stages": "[1, 2]"}, ["gate.stages", "not one of"]),
])
def test_from_nni_rejects(shipped, change, words):
    params = {"gating": {"_name": "layer", "loss.layer": 0.1}, "gate.hidden": 16, "gate.pooling": "avg",
              "gate.stages": "[2, 3]", "gate.scaling": True, "gate.temperature": 1.5, "gate.init_logit": 2.0, "loss.flops": 2.0,
              "loss.flops_target": 0.5, "loss.rate": 2.0, "loss.rate_target": 0.6, "loss.distill": 0.0, "gate_lr": 0.5}
    with pytest.raises(ConfigError) as e:
        from_nni({**params, **change}, shipped)
    assert all(w in str(e.value) for w in words), str(e.value)


@pytest.mark.parametrize("data", [NESTED1, FLAT, "lcnet_cifar10"], ids=["nested", "flat", "shipped"])
def test_nni_samples_decode_into_the_space(data):
    space = load_space(data) if isinstance(data, str) else parse_space(data)
    spec = to_nni(space)
    rng = random.Random(0)
    seen = set()
    for _ in range(50):
        values = from_nni(_sample_nni(spec, rng), space)
        _assert_in_domain(space, values)
        seen |= set(values)
    assert seen == set(space.names)  # every parameter, conditional ones included, is reached


def test_nni_own_random_tuner_agrees():
    pytest.importorskip("nni")
    from nni.algorithms.hpo.random_tuner import RandomTuner
    from nni.common.hpo_utils import validate_search_space

    for space in (parse_space(NESTED1), parse_space(FLAT), load_space("lcnet_cifar10")):
        spec = to_nni(space)
        assert validate_search_space(spec, raise_exception=True)
        tuner = RandomTuner(seed=0)
        tuner.update_search_space(spec)
        for i in range(30):
            _assert_in_domain(space, from_nni(tuner.generate_parameters(i), space))


def test_to_nni_refuses_two_level_nesting():
    # NNI 3.0's TPE/Random tuners raise KeyError on it, so it must fail here, before an experiment starts.
    with pytest.raises(LossyTranslationError, match="'gate.temperature' depends on 'gate.pooling'.*two levels"):
        to_nni(parse_space(NESTED))


def test_to_nni_refuses_off_grid_float_steps():
    off = parse_space({"name": "off", "params": {"loss.distill": {"type": "float", "low": 0.25, "high": 1.25, "step": 0.5}}})
    with pytest.raises(LossyTranslationError, match="'loss.distill'.*multiple of step"):
        to_nni(off)
    huge = parse_space({"name": "huge", "params": {"batch_size": {"type": "int", "low": 1, "high": 100001, "step": 2}}})
    with pytest.raises(LossyTranslationError, match="'batch_size'.*grid values"):
        to_nni(huge)

"""One :class:`~lcnas.search.SearchSpace`, three backends: Optuna (define-by-run, conditionals
included), Ray Tune (``param_space`` domains) and NNI (search-space JSON with nested choices),
and the way back from each backend's values to a flat ``{name: value}`` dict in lcnas terms.

Categorical choices that are not plain scalars (lists such as ``gate.stages: [2, 3]``, and
``null``) travel through every backend as JSON text (``"[2, 3]"``, ``"null"``): Optuna only
stores None/bool/int/float/str choices and NNI's validator only numbers or strings. The
decoders map them back to tuples/None. Anything a backend cannot express exactly raises
:class:`LossyTranslationError` naming the parameter instead of silently searching another space.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._optional import import_optional
from ..errors import ConfigError
from ._space import Param, SearchSpace, _encoded_key, _in, _multiple_of, encode_choice

__all__ = ["LossyTranslationError", "suggest_optuna", "decode_optuna", "to_ray", "from_ray",
           "to_nni", "from_nni", "decode_choice", "encode_choice"]

_NNI_MAX_CHOICES = 1000  # an int grid becomes an NNI choice list; beyond this it is unreasonable


class LossyTranslationError(ConfigError):
    """A backend cannot represent part of a search space exactly."""


def decode_choice(param: Param, value: Any) -> Any:
    """The choice of categorical ``param`` that ``value`` stands for: its encoded form
    (:func:`encode_choice`) or the value itself (lists match tuples); ConfigError otherwise."""
    if isinstance(value, (str, int, float)):
        for c in param.choices or ():
            if _encoded_key(encode_choice(c)) == _encoded_key(value):
                return c
    try:
        return param.coerce(value)
    except ValueError as e:
        raise ConfigError(f"parameter {param.name!r}: {e}") from None


def _decode(param: Param, value: Any) -> Any:
    """Choices decoded; numbers made canonical (ints, grid-snapped floats) when they fit, else
    left as they are for ``space.check`` to report."""
    if param.kind == "categorical":
        return decode_choice(param, value)
    try:
        return param.coerce(value)
    except ValueError:
        return value


# --------------------------------------------------------------------------- Optuna

def suggest_optuna(trial, space: SearchSpace) -> dict[str, Any]:
    """Suggest one assignment on an Optuna ``trial`` (define-by-run): only active parameters,
    parents before children. Returns the decoded ``{name: value}`` (tuples, not JSON text),
    without the space's fixed values."""
    values: dict[str, Any] = {}
    for p in space.params:
        if space.is_active(p.name, values):
            values[p.name] = _decode(p, _suggest(trial, p))  # 0.6, not Optuna's 0.6000000000000001
    return values


def _suggest(trial, p: Param) -> Any:
    if p.kind == "float":
        return trial.suggest_float(p.name, p.low, p.high, log=p.log, step=p.step)
    if p.kind == "int":
        return trial.suggest_int(p.name, p.low, p.high, step=p.step or 1, log=p.log)
    return trial.suggest_categorical(p.name, [encode_choice(c) for c in p.choices or ()])


def decode_optuna(values: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
    """Optuna-side values (e.g. ``trial.params`` or a Ray config from OptunaSearch) → lcnas
    values: categorical encodings decoded, numbers made canonical. Keys that are not parameters pass through unchanged;
    nothing is validated (partial or failed trials decode too: use ``space.check`` for that)."""
    names = set(space.names)
    return {k: _decode(space.param(k), v) if k in names else v for k, v in values.items()}


# --------------------------------------------------------------------------- Ray Tune

def to_ray(space: SearchSpace) -> dict[str, Any]:
    """Ray Tune ``param_space`` domains, one per parameter (categoricals encoded: decode trial
    configs with :func:`from_ray`).

    A conditional parameter becomes a domain that samples its own range only when its parent's
    sampled value is one it depends on, and is ``None`` otherwise (:func:`from_ray` drops it):
    exact under Tune's default search (``BasicVariantGenerator``, with its ``random_state``).
    Searchers that convert a ``param_space`` themselves (``OptunaSearch``, ``HyperOptSearch``)
    refuse that domain with an error; search conditional spaces with those through a
    define-by-run function (:func:`suggest_optuna`), as ``lcnas search --backend ray`` does.

    Args:
        space: the search space.

    Returns:
        ``{parameter name: Ray Tune domain}``.

    Raises:
        LossyTranslationError: a stepped parameter whose ``low`` is off the multiples of its step
            (Ray would sample another grid).
    """
    tune = import_optional("ray.tune", extra="ray")
    out = {}
    for p in space.params:
        domain = _ray_domain(tune, p, space)
        if p.condition is not None:
            parent, allowed = p.condition
            from ._ray_domain import RayConditional

            domain = RayConditional(domain, parent=space.param(parent), allowed=allowed)
        out[p.name] = domain
    return out


def _ray_domain(tune, p: Param, space: SearchSpace):
    if p.kind == "categorical":
        return tune.choice([encode_choice(c) for c in p.choices or ()])
    low, high = p.bounds
    if p.step is not None:
        # Ray quantizes to multiples of q (not low + k*q): exact only when low sits on that grid.
        _require_aligned(p, space, "Ray Tune")
        return tune.qrandint(low, high, p.step) if p.kind == "int" else tune.quniform(low, high, p.step)
    if p.kind == "int":  # Ray's randint/lograndint exclude the upper bound; lcnas bounds are inclusive
        return tune.lograndint(low, high + 1) if p.log else tune.randint(low, high + 1)
    return tune.loguniform(low, high) if p.log else tune.uniform(low, high)


def from_ray(config: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
    """A Ray trial ``config`` → validated lcnas values (decoded choices, ints, grid-snapped
    floats), without fixed values. Keys that are not parameters of the space are ignored (a
    ``param_space`` often carries other constants), and so are ``None`` values of conditional
    parameters (inactive under :func:`to_ray`); ConfigError if the values do not fit."""
    values = {p.name: _decode(p, config[p.name]) for p in space.params
              if p.name in config and not (config[p.name] is None and p.condition is not None)}
    return space.check(values, merge_fixed=False)


def _require_aligned(p: Param, space: SearchSpace, backend: str) -> None:
    if p.step is not None and not _multiple_of(p.bounds[0], p.step):
        raise LossyTranslationError(
            f"search space {space.name!r}: parameter {p.name!r} has low {p.low} off the multiples of its step {p.step}; "
            f"{backend} only samples multiples of the step, so its grid would differ: make low a multiple of step "
            "(or search it with Optuna)")


# --------------------------------------------------------------------------- NNI

def to_nni(space: SearchSpace) -> dict[str, Any]:
    """NNI search-space JSON. A parent of conditional parameters becomes a nested choice
    ``{"_type": "choice", "_value": [{"_name": value, <its active children>}, ...]}``.

    Semantics used (NNI 3.0): ``randint`` [low, high) (so high + 1), ``quniform`` [low, high, q]
    = clip(round(x / q) * q, low, high) (exact only when low is a multiple of q), ``qloguniform``
    [low, high, 1] for log-scale ints (integral floats, decoded to int by :func:`from_nni`).
    Int grids with a step become a ``choice`` of the grid values (NNI treats randint as
    categorical anyway). One level of conditions only: NNI 3.0's tuners crash on deeper nesting,
    so a conditional parameter with conditional children raises LossyTranslationError."""
    return _nni_level(space, [p for p in space.params if p.condition is None])


def _nni_level(space: SearchSpace, params: list[Param]) -> dict[str, Any]:
    return {p.name: _nni_param(space, p) for p in params}


def _nni_param(space: SearchSpace, p: Param) -> dict[str, Any]:
    children = space.children(p.name)
    if not children:
        return _nni_leaf(space, p)
    if p.condition is not None:
        # NNI 3.0's TPE, Random and GridSearch tuners raise KeyError (ParameterSpec.is_activated_in)
        # on a choice nested inside a choice nested inside a choice, once an outer branch is not taken.
        raise LossyTranslationError(
            f"search space {space.name!r}: parameter {children[0].name!r} depends on {p.name!r}, which itself depends on "
            f"{p.condition[0]!r}: NNI 3.0's tuners (TPE, Random, GridSearch) fail on choices nested two levels deep; "
            f"search this space with Optuna or Ray Tune, or make {p.name!r} unconditional")
    options = []
    for c in p.choices or ():  # every option is a dict: NNI treats a choice as nested only if all are
        active = [k for k in children if k.condition is not None and _in(k.condition[1], c)]
        options.append({"_name": encode_choice(c), **_nni_level(space, active)})
    return {"_type": "choice", "_value": options}


def _nni_leaf(space: SearchSpace, p: Param) -> dict[str, Any]:
    if p.kind == "categorical":
        return {"_type": "choice", "_value": [encode_choice(c) for c in p.choices or ()]}
    low, high = p.bounds
    if p.kind == "int":
        if p.step is not None:
            n = (high - low) // p.step + 1
            if n > _NNI_MAX_CHOICES:
                raise LossyTranslationError(
                    f"search space {space.name!r}: parameter {p.name!r} has {n} grid values, too many for an NNI choice "
                    f"(at most {_NNI_MAX_CHOICES}): use a larger step or a narrower range")
            return {"_type": "choice", "_value": list(range(int(low), int(high) + 1, int(p.step)))}
        if p.log:
            return {"_type": "qloguniform", "_value": [p.low, p.high, 1]}
        return {"_type": "randint", "_value": [p.low, high + 1]}
    if p.step is not None:
        _require_aligned(p, space, "NNI")
        return {"_type": "quniform", "_value": [p.low, p.high, p.step]}
    return {"_type": "loguniform" if p.log else "uniform", "_value": [p.low, p.high]}


def from_nni(params: Mapping[str, Any], space: SearchSpace) -> dict[str, Any]:
    """What NNI hands a trial (``nni.get_next_parameter()``: nested choices as dicts with
    ``_name``) → validated flat lcnas values (decoded choices, ints, grid-snapped floats),
    without fixed values; ConfigError naming the parameter if they do not fit the space."""
    if not isinstance(params, Mapping):
        raise ConfigError(f"NNI parameters must be a mapping, got {type(params).__name__}: is the trial started by NNI?")
    flat: dict[str, Any] = {}
    _flatten_nni(params, flat, space)
    names = set(space.names)
    return space.check({k: _decode(space.param(k), v) if k in names else v for k, v in flat.items()}, merge_fixed=False)


def _flatten_nni(level: Mapping[str, Any], flat: dict[str, Any], space: SearchSpace) -> None:
    for key, value in level.items():
        if key == "_name":
            continue
        if key in flat:
            raise ConfigError(f"NNI parameters for search space {space.name!r} give {key!r} twice: "
                              "was the experiment started with this space's to_nni()?")
        if isinstance(value, Mapping):
            if "_name" not in value:
                raise ConfigError(f"NNI parameters for search space {space.name!r}: {key!r} is a mapping without '_name' "
                                  "(expected a nested choice): was the experiment started with this space's to_nni()?")
            flat[key] = value["_name"]
            _flatten_nni(value, flat, space)
        else:
            flat[key] = value

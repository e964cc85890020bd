"""Search spaces: one backend-neutral type parsed from YAML (``search_spaces/*.yaml``).

A space is a set of parameters named after training-config targets (``lr``, ``gate.hidden``,
``loss.flops``), each a float or int range or a categorical choice, optionally conditional on
one categorical parent (``when: {gating: [channel, lc]}``), plus ``fixed`` constants every trial
gets. :mod:`lcnas.search._translate` turns it into Optuna, Ray Tune and NNI spaces.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib.resources
import json
import math
import numbers
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import yaml

from .._limits import Limit, limit_of
from ..errors import ConfigError

__all__ = ["Param", "SearchSpace", "parse_space", "load_space", "shipped_spaces", "encode_choice", "KINDS"]

KINDS = ("float", "int", "categorical")
_SPEC_KEYS = {
    "float": ("type", "low", "high", "log", "step", "when"),
    "int": ("type", "low", "high", "log", "step", "when"),
    "categorical": ("type", "choices", "when"),
}
_TOP_KEYS = ("name", "description", "fixed", "params")
# Training-config fields a space may not set, and why.
_NOT_TARGETS = {
    "gate": "set gate fields one by one as gate.<field> (e.g. gate.hidden)",
    "loss": "set loss weights one by one as loss.<field> (e.g. loss.flops)",
    "name": "each trial gets its own run name",
    "out_dir": "trials always run inside the search folder",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")  # the space name becomes a folder name
_REL_TOL = 1e-9  # relative slack for floats that went through a backend's arithmetic


# --------------------------------------------------------------------------- value helpers

def _is_bool(v: Any) -> bool:
    return isinstance(v, bool) or type(v).__name__ == "bool_"  # numpy bools are not bool


def _is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not _is_bool(v)


def _freeze(v: Any) -> Any:
    """Lists (from YAML/JSON) become tuples, recursively, so values are hashable and comparable."""
    return tuple(_freeze(x) for x in v) if isinstance(v, (list, tuple)) else v


def _thaw(v: Any) -> Any:
    """Tuples become lists, recursively: the JSON/YAML form."""
    return [_thaw(x) for x in v] if isinstance(v, (list, tuple)) else v


def _same(a: Any, b: Any) -> bool:
    """Value equality that keeps bools apart from numbers (True == 1 in Python)."""
    if _is_bool(a) or _is_bool(b):
        return _is_bool(a) and _is_bool(b) and bool(a) == bool(b)
    if a is None or b is None:
        return a is None and b is None
    if _is_number(a) or _is_number(b):
        return _is_number(a) and _is_number(b) and a == b
    if isinstance(a, (list, tuple)) or isinstance(b, (list, tuple)):
        return (isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)) and len(a) == len(b)
                and all(_same(x, y) for x, y in zip(a, b, strict=True)))
    return isinstance(a, str) == isinstance(b, str) and a == b


def _in(options: tuple[Any, ...], value: Any) -> bool:
    return any(_same(o, value) for o in options)


def encode_choice(value: Any) -> bool | int | float | str:
    """A choice as a plain scalar every backend accepts: tuples and None become JSON text.

    Optuna's categorical choices must be None/bool/int/float/str and NNI's validator takes
    numbers or strings only, so one encoding serves Optuna, Ray Tune and NNI alike."""
    if _is_bool(value):
        return bool(value)
    if isinstance(value, (str, numbers.Real)):
        return cast("int | float | str", value)  # numpy numbers too: every backend takes them
    return json.dumps(_thaw(value))


def _encoded_key(enc: Any) -> tuple[str, Any]:
    # Tagged so that True, 1 and "1" stay distinct while 1 and 1.0 collide (same number).
    if _is_bool(enc):
        return ("bool", bool(enc))
    if _is_number(enc):
        return ("num", enc)
    return ("str", enc)


def _fmt(v: Any) -> str:
    return json.dumps(_thaw(v)) if not isinstance(v, str) else v


def _grid_value(low: float, step: float, k: int) -> float:
    # Decimal keeps grid points clean (0.3, not 0.30000000000000004).
    return float(Decimal(repr(low)) + k * Decimal(repr(step)))


def _multiple_of(value: float, step: float) -> bool:
    """Exactly (in decimal, as written in the file): 0.3 is a multiple of 0.1."""
    return Decimal(repr(value)) % Decimal(repr(step)) == 0


def _grid_steps(low: float, high: float, step: float) -> Decimal:
    """(high - low) / step in exact decimal arithmetic: whole when high lies on the grid."""
    return (Decimal(repr(high)) - Decimal(repr(low))) / Decimal(repr(step))


# --------------------------------------------------------------------------- types

@dataclass(frozen=True)
class Param:
    """One search parameter.

    Args:
        name: its training-config target (``lr``, ``gate.hidden``, ``loss.flops``).
        kind: float | int | categorical.
        low: inclusive lower bound (float and int).
        high: inclusive upper bound (float and int).
        log: sample on a log scale (float and int; not with a step).
        step: grid spacing from ``low`` (float and int); ``None`` = continuous / every integer.
        choices: the values of a categorical (tuples for list values).
        condition: ``(parent, allowed values)``: active only while the categorical ``parent`` is
            active and takes one of those values; ``None`` = always active.
    """

    name: str
    kind: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] | None = None
    condition: tuple[str, tuple[Any, ...]] | None = None

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is one of this parameter's values (lists match tuple choices)."""
        try:
            self.coerce(value)
        except ValueError:
            return False
        return True

    def coerce(self, value: Any) -> Any:
        """``value`` in canonical form: the choice itself, an ``int``, or a float snapped onto its
        range/grid (a backend's arithmetic may be off by an ulp); ValueError saying why not."""
        if self.kind == "categorical":
            for c in self.choices or ():
                if _same(c, value):
                    return c
            raise ValueError(f"{_fmt(value)} is not {self.describe()}")
        if not _is_number(value) or not math.isfinite(value):
            raise ValueError(f"{value!r} is not a finite number")
        return self._coerce_int(value) if self.kind == "int" else self._coerce_float(float(value))

    @property
    def bounds(self) -> tuple[float, float]:
        """``(low, high)`` of a float or int parameter (TypeError for a categorical)."""
        if self.low is None or self.high is None:
            raise TypeError(f"parameter {self.name!r} is {self.kind}: it has no bounds")
        return self.low, self.high

    def _coerce_int(self, value: float) -> int:
        if value != int(value):
            raise ValueError(f"{value!r} is not an integer")
        v = int(value)
        low, high = self.bounds
        if not low <= v <= high:
            raise ValueError(f"{v} is outside {self.describe()}")
        if self.step and (v - low) % self.step:
            raise ValueError(f"{v} is not on the grid {self.describe()}")
        return v

    def _coerce_float(self, v: float) -> float:
        low, high = self.bounds
        tol = _REL_TOL * (high - low)
        if not low - tol <= v <= high + tol:
            raise ValueError(f"{v!r} is outside {self.describe()}")
        v = min(max(v, low), high)
        if self.step:
            k = round((v - low) / self.step)
            snapped = _grid_value(low, self.step, k)
            if abs(snapped - v) > tol:
                raise ValueError(f"{v!r} is not on the grid {self.describe()}")
            v = snapped
        return v

    def describe(self) -> str:
        """The domain in words, for messages: ``[0, 32] step 8``, ``one of [avg, max]``."""
        if self.kind == "categorical":
            return "one of [" + ", ".join(_fmt(c) for c in self.choices or ()) + "]"
        text = f"[{self.low}, {self.high}]"
        return text + (f" step {self.step}" if self.step else "") + (" (log)" if self.log else "")

    def to_spec(self) -> dict[str, Any]:
        """The YAML/JSON spec of this parameter (defaults left out)."""
        spec: dict[str, Any] = {"type": self.kind}
        if self.kind == "categorical":
            spec["choices"] = _thaw(self.choices)
        else:
            spec.update(low=self.low, high=self.high)
            if self.log:
                spec["log"] = True
            if self.step is not None:
                spec["step"] = self.step
        if self.condition is not None:
            spec["when"] = {self.condition[0]: _thaw(self.condition[1])}
        return spec


@dataclass(frozen=True)
class SearchSpace:
    """A backend-neutral search space: parameters (parents before their children) + constants."""

    name: str
    description: str
    params: tuple[Param, ...]
    fixed: tuple[tuple[str, Any], ...] = ()

    @property
    def names(self) -> tuple[str, ...]:
        """The parameter names, parents before their children."""
        return tuple(p.name for p in self.params)

    def param(self, name: str) -> Param:
        """The parameter called ``name``.

        Raises:
            ConfigError: the space has no such parameter (the message suggests close names).
        """
        for p in self.params:
            if p.name == name:
                return p
        raise ConfigError(f"search space {self.name!r} has no parameter {name!r}{_did_you_mean(name, self.names)}")

    def fixed_dict(self) -> dict[str, Any]:
        """The space's constants (the ``fixed`` section) as a new dict."""
        return dict(self.fixed)

    def children(self, name: str) -> tuple[Param, ...]:
        """The parameters conditional on ``name`` directly."""
        return tuple(p for p in self.params if p.condition is not None and p.condition[0] == name)

    def is_active(self, name: str, values: Mapping[str, Any]) -> bool:
        """Whether parameter ``name`` is active given (parent) ``values``."""
        p = self.param(name)
        if p.condition is None:
            return True
        parent, allowed = p.condition
        return parent in values and self.is_active(parent, values) and _in(allowed, values[parent])

    def active(self, values: Mapping[str, Any]) -> tuple[Param, ...]:
        """The parameters active given ``values`` (only the parents' values matter)."""
        return tuple(p for p in self.params if self.is_active(p.name, values))

    def check(self, values: Mapping[str, Any], *, merge_fixed: bool = True) -> dict[str, Any]:
        """Validate one full assignment: every active parameter present and in its domain, no
        inactive, fixed or unknown ones. Returns canonical values (tuples, ints, snapped floats),
        with the fixed values merged in unless ``merge_fixed=False``; ConfigError otherwise."""
        where = f"search space {self.name!r}"
        if not isinstance(values, Mapping):
            raise ConfigError(f"{where}: parameters must be a mapping of name to value, got {type(values).__name__}")
        fixed = self.fixed_dict()
        for key in values:
            if key in fixed:
                raise ConfigError(f"{where}: {key!r} is fixed in the space ({_fmt(fixed[key])}), not a parameter: leave it out")
            if key not in self.names:
                raise ConfigError(f"{where}: unknown parameter {key!r}{_did_you_mean(str(key), self.names)}")
        out: dict[str, Any] = {}
        for p in self.params:  # parents first, so out holds the canonical parent values
            if not self.is_active(p.name, out):
                if p.name in values:
                    raise ConfigError(f"{where}: parameter {p.name!r} {self._why_inactive(p, out)}: leave it out")
                continue
            if p.name not in values:
                raise ConfigError(f"{where}: active parameter {p.name!r} has no value: give one in {p.describe()}")
            try:
                out[p.name] = p.coerce(values[p.name])
            except ValueError as e:
                raise ConfigError(f"{where}: parameter {p.name!r}: {e}") from None
        return {**fixed, **out} if merge_fixed else out

    def _why_inactive(self, p: Param, values: Mapping[str, Any]) -> str:
        parent, allowed = p.condition or ("", ())
        if parent not in values:
            return f"is inactive because its parent {parent!r} is"
        return (f"is inactive when {parent}={_fmt(values[parent])} "
                f"(it needs {parent} in [{', '.join(_fmt(a) for a in allowed)}])")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form, the same layout as the YAML file (so :meth:`from_dict` re-validates)."""
        return {"name": self.name, "description": self.description,
                "fixed": {k: _thaw(v) for k, v in self.fixed},
                "params": {p.name: p.to_spec() for p in self.params}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "<dict>") -> SearchSpace:
        """Parse and validate a space in the file layout (as :func:`parse_space`); ``source`` names it in errors."""
        return parse_space(data, source=source)


# --------------------------------------------------------------------------- loading

def shipped_spaces() -> list[str]:
    """Names of the spaces shipped in ``search_spaces/`` (``load_space(name)`` reads them)."""
    folder = _shipped_dir()
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _shipped_dir():
    try:
        return importlib.resources.files("lcnas.search_spaces")
    except ModuleNotFoundError:  # running from a checkout that is not installed
        return Path(__file__).resolve().parents[2] / "search_spaces"


def load_space(path_or_name: str | os.PathLike[str]) -> SearchSpace:
    """A space from a ``.yaml``/``.yml`` file, or a shipped one by bare name (``lcnet_cifar10``)."""
    text = str(path_or_name)
    path = Path(text)
    if isinstance(path_or_name, os.PathLike) or path.suffix in (".yaml", ".yml") or len(path.parts) > 1 or path.is_file():
        if not path.is_file():
            what = "is a folder, not a file" if path.is_dir() else "does not exist"
            raise ConfigError(f"search space file {text!r} {what}: pass a .yaml file or a shipped space name "
                              f"({', '.join(shipped_spaces()) or 'none shipped'})")
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"search space file {text!r} cannot be read ({e}): check the path and its permissions") from None
        return _parse_text(content, source=text)
    resource = _shipped_dir() / f"{text}.yaml"
    if not resource.is_file():
        raise ConfigError(f"unknown search space {text!r}: no such file and not a shipped space "
                          f"(shipped: {', '.join(shipped_spaces()) or 'none'}); pass a path to a .yaml file")
    return _parse_text(resource.read_text(encoding="utf-8"), source=str(resource))


def _parse_text(text: str, *, source: str) -> SearchSpace:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{source}: not valid YAML ({' '.join(str(e).split())}): fix the syntax") from None
    if data is None:
        raise ConfigError(f"{source}: the file is empty: write a mapping with name, description, fixed and params")
    return parse_space(data, source=source)


def parse_space(data: Mapping[str, Any], *, source: str = "<dict>") -> SearchSpace:
    """Validate a space's mapping (the YAML layout) and build it; ConfigError naming ``source``,
    the parameter and the fix for anything malformed."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: a search space is a mapping with name, description, fixed and params, "
                          f"got a {type(data).__name__}")
    for key in data:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{source}: unknown top-level key {key!r}{_did_you_mean(str(key), _TOP_KEYS)}; "
                              f"allowed: {', '.join(_TOP_KEYS)}")
    name = _parse_name(data.get("name"), source)
    description = data.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(f"{source}: description must be text, got {description!r}")
    fixed = _parse_fixed(data.get("fixed"), source)
    raw = data.get("params")
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{source}: no parameters: add a 'params' mapping, e.g. "
                          "params: {lr: {type: float, low: 0.01, high: 0.1, log: true}}")
    params, whens = {}, {}
    for pname, spec in raw.items():
        _check_target(pname, source)
        if pname in fixed:
            raise ConfigError(f"{source}: parameter {pname!r} is both fixed and searched: remove it from fixed or from params")
        params[pname], whens[pname] = _parse_param(pname, spec, source)
    conditioned = {n: _parse_when(n, w, params, fixed, source) for n, w in whens.items() if w is not None}
    params = {n: dataclasses.replace(p, condition=conditioned.get(n)) for n, p in params.items()}
    return SearchSpace(name=name, description=description, params=_parents_first(params, source),
                       fixed=tuple(fixed.items()))


def _parse_name(name: Any, source: str) -> str:
    if name is None:
        stem = Path(source).stem if source and not source.startswith("<") else ""
        name = stem or "space"
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ConfigError(f"{source}: name must be letters, digits, '_', '-' or '.' (it names the search folder), got {name!r}")
    return name


def _parse_fixed(fixed: Any, source: str) -> dict[str, Any]:
    if fixed is None:
        return {}
    if not isinstance(fixed, Mapping):
        raise ConfigError(f"{source}: fixed must be a mapping of name to value, e.g. fixed: {{gate.init_logit: 3.0}}")
    out = {}
    for name, value in fixed.items():
        _check_target(name, source)
        value = _freeze(value)
        _check_value(name, value, source, what="fixed value")
        out[name] = value
    return out


def _parse_param(name: str, spec: Any, source: str) -> tuple[Param, Any]:
    """The parameter (without its condition) and its raw ``when``."""
    at = f"{source}: parameter {name!r}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{at}: expected a mapping like {{type: float, low: 0.1, high: 1.0}} "
                          f"or {{type: categorical, choices: [a, b]}}, got {spec!r}")
    kind = spec.get("type")
    if kind not in KINDS:
        raise ConfigError(f"{at}: type must be one of {', '.join(KINDS)}, got {kind!r}{_did_you_mean(str(kind), KINDS)}")
    for key in spec:
        if key not in _SPEC_KEYS[kind]:
            raise ConfigError(f"{at}: unknown key {key!r} for a {kind} parameter{_did_you_mean(str(key), _SPEC_KEYS[kind])}; "
                              f"allowed: {', '.join(_SPEC_KEYS[kind])}")
    param = _parse_choices(name, spec, at) if kind == "categorical" else _parse_range(name, kind, spec, at)
    _check_kind(param, at)
    if param.kind == "categorical":
        for c in param.choices or ():
            _check_value(name, c, source, what="choice")
    else:
        for bound in (param.low, param.high):
            _check_value(name, bound, source, what="bound")
    return param, spec.get("when")


def _parse_range(name: str, kind: str, spec: Mapping[str, Any], at: str) -> Param:
    for key in ("low", "high"):
        if key not in spec:
            raise ConfigError(f"{at}: a {kind} parameter needs low and high (both inclusive); {key} is missing")
    low, high = (_number(spec[k], k, kind, at) for k in ("low", "high"))
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise ConfigError(f"{at}: log must be true or false, got {log!r}")
    step = spec.get("step")
    if step is not None:
        step = _number(step, "step", kind, at)
        if step <= 0:
            raise ConfigError(f"{at}: step must be > 0, got {step}")
        if kind == "int" and step == 1:
            step = None  # every integer: the default, one canonical form
    if not low < high:
        raise ConfigError(f"{at}: low ({low}) must be < high ({high}): swap them, or move a single value to the fixed section")
    if log and low <= 0:
        raise ConfigError(f"{at}: log: true needs low > 0 (got {low}): raise low or drop log")
    if log and step is not None:
        raise ConfigError(f"{at}: log and step cannot be combined (Optuna samples on a log scale or on a grid, "
                          "not both): drop one of them")
    if step is not None and _grid_steps(low, high, step) % 1 != 0:
        last = _grid_value(low, step, int(_grid_steps(low, high, step)))
        raise ConfigError(f"{at}: high - low is not a multiple of step {step}: the grid starts at low, so use high: "
                          f"{int(last) if kind == 'int' else last}")
    return Param(name=name, kind=kind, low=low, high=high, log=log, step=step)


def _number(value: Any, key: str, kind: str, at: str) -> float | int:
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if not _is_number(value) or not math.isfinite(value):
        raise ConfigError(f"{at}: {key} must be a finite number, got {value!r}")
    if kind == "float":
        return float(value)
    if value != int(value):
        raise ConfigError(f"{at}: {key} of an int parameter must be a whole number, got {value!r}: use type: float for fractions")
    return int(value)


def _parse_choices(name: str, spec: Mapping[str, Any], at: str) -> Param:
    raw = spec.get("choices")
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"{at}: choices must be a non-empty list, e.g. choices: [avg, max], got {raw!r}")
    seen: dict[tuple[str, Any], Any] = {}
    for c in raw:
        if not _is_choice(c):
            raise ConfigError(f"{at}: choice {c!r} is not a scalar or a list of scalars: choices are text, numbers, "
                              "true/false, null or lists")
        key = _encoded_key(encode_choice(_freeze(c)))
        if key in seen:
            raise ConfigError(f"{at}: choice {_fmt(c)} is listed twice (or encodes like {_fmt(seen[key])}): remove one")
        seen[key] = c
    return Param(name=name, kind="categorical", choices=tuple(_freeze(c) for c in raw))


def _is_choice(c: Any) -> bool:
    if isinstance(c, (list, tuple)):
        return all(_is_choice(x) for x in c)
    if _is_number(c):
        return math.isfinite(c)
    return c is None or isinstance(c, str) or _is_bool(c)


def _parse_when(name: str, when: Any, params: dict[str, Param], fixed: dict[str, Any], source: str) -> tuple[str, tuple]:
    at = f"{source}: parameter {name!r}"
    if not isinstance(when, Mapping) or len(when) != 1:
        raise ConfigError(f"{at}: when must name exactly one parent and its values, e.g. when: {{gating: [channel, lc]}}, got {when!r}")
    (parent, values), = when.items()
    if parent == name:
        raise ConfigError(f"{at}: when refers to the parameter itself: name another categorical parameter")
    if parent in fixed:
        raise ConfigError(f"{at}: when refers to {parent!r}, which is fixed, not searched: drop the when "
                          "(or make the parent a categorical parameter)")
    if parent not in params:
        raise ConfigError(f"{at}: when refers to unknown parameter {parent!r}{_did_you_mean(str(parent), list(params))}: "
                          "the parent must be a categorical parameter of this file")
    if params[parent].kind != "categorical":
        raise ConfigError(f"{at}: when refers to {parent!r}, a numeric ({params[parent].kind}) parameter: "
                          "only categorical parameters can be parents; make it categorical")
    values = values if isinstance(values, list) else [values]  # a scalar is shorthand for one value
    if not values:
        raise ConfigError(f"{at}: when {{{parent}: []}} lists no values: name at least one of {params[parent].describe()}")
    allowed = []
    for v in values:
        try:
            allowed.append(params[parent].coerce(_freeze(v)))
        except ValueError:
            raise ConfigError(f"{at}: when value {_fmt(v)} is not a choice of {parent!r} "
                              f"({params[parent].describe()}): use one of those") from None
    return parent, tuple(allowed)


def _parents_first(params: dict[str, Param], source: str) -> tuple[Param, ...]:
    """File order, except that a parent moves before its first child; ConfigError on a cycle."""
    ordered: dict[str, Param] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in ordered:
            return
        if name in chain:
            cycle = " -> ".join((*chain[chain.index(name):], name))
            raise ConfigError(f"{source}: parameter {name!r}: conditions form a cycle ({cycle}): break it by removing one when")
        p = params[name]
        if p.condition is not None:
            visit(p.condition[0], (*chain, name))
        ordered[name] = p

    for name in params:
        visit(name, ())
    return tuple(ordered.values())


# --------------------------------------------------------------------------- target names

def _targets() -> dict[str, str]:
    """Every settable name -> its field annotation (text), from the config dataclasses themselves."""
    from ..train import setting_fields

    return {name: _annotation(f) for name, f in setting_fields().items() if name not in _NOT_TARGETS}


def _limit(name: str) -> Limit | None:
    from ..train import setting_fields

    return limit_of(setting_fields()[name])


def _annotation(field: dataclasses.Field) -> str:
    return field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))


def _check_target(name: Any, source: str) -> None:
    if not isinstance(name, str):
        raise ConfigError(f"{source}: parameter names are text like gate.hidden, got {name!r}")
    if name in _NOT_TARGETS:
        raise ConfigError(f"{source}: parameter {name!r} cannot be searched or fixed: {_NOT_TARGETS[name]}")
    targets = _targets()
    if name not in targets:
        raise ConfigError(f"{source}: unknown parameter {name!r}{_did_you_mean(name, list(targets))}: names are training "
                          "settings (lr, gating, ...), gate.<GateConfig field> or loss.<LossWeights field>")


def _base_type(name: str) -> tuple[str, bool]:
    """(int | float | str | bool | tuple | other, whether None is allowed) of a target."""
    parts = [p.strip() for p in _targets()[name].split("|")]
    optional = "None" in parts
    base = next((p for p in parts if p != "None"), "")
    return ("tuple" if base.startswith("tuple") else base), optional


def _check_kind(param: Param, at: str) -> None:
    base, _ = _base_type(param.name)
    if param.kind == "float" and base == "int":
        raise ConfigError(f"{at}: {param.name} is a whole-number setting: use type: int")
    if param.kind != "categorical" and base in ("str", "bool", "tuple"):
        raise ConfigError(f"{at}: {param.name} takes {base} values, not a numeric range: use type: categorical with choices")


def _check_value(name: str, value: Any, source: str, *, what: str) -> None:
    """Type and range checks of one choice, bound or fixed value of target ``name``, against the
    limits its config dataclass declares: a bad space fails when it is loaded, not in trial 37."""
    at = f"{source}: parameter {name!r}"
    base, optional = _base_type(name)
    is_int = lambda v: _is_number(v) and v == int(v)  # noqa: E731
    ints_only = "int" in _targets()[name]  # tuple[int, ...]
    ok = {"int": is_int, "float": _is_number, "str": lambda v: isinstance(v, str), "bool": _is_bool,
          "tuple": lambda v: isinstance(v, tuple) and (not ints_only or all(is_int(x) for x in v))}.get(base, lambda v: True)
    if not (value is None and optional) and not ok(value):
        wanted = {"int": "a whole number", "float": "a number", "str": "text", "bool": "true or false",
                  "tuple": "a list of whole numbers" if ints_only else "a list"}[base]
        raise ConfigError(f"{at}: {what} {_fmt(value)} is not {wanted}{' or null' if optional else ''}: {name} needs {wanted}")
    from ..models._gates import GATED

    if name == "gating" and value not in GATED:  # a search trains LC-Nets: never "none"
        raise ConfigError(f"{at}: {what} {_fmt(value)} is not one of {', '.join(GATED)}: use one of those")
    limit = _limit(name)
    if limit is None or value is None or limit.contains(value):
        return
    if limit.choices is not None:
        raise ConfigError(f"{at}: {what} {_fmt(value)} is not {limit.describe()}: use one of those")
    bad = next(v for v in (value if isinstance(value, tuple) else (value,)) if not limit.contains(v))
    raise ConfigError(f"{at}: {what} {_fmt(bad)} is out of range: {name} must be {limit.describe()}")


def _did_you_mean(name: str, options) -> str:
    close = difflib.get_close_matches(name, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""

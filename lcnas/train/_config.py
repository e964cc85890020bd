"""TrainConfig: a frozen dataclass with typed ``gate`` and ``loss`` groups, loaded from YAML, with
dotted ``--set key=value`` overrides applied by one function, :func:`apply_overrides`.

Settings have one address each: a top-level name (``lr``) or ``<group>.<field>``
(``gate.layer_threshold``, ``loss.flops``). Files may write a group as a mapping (``gate: {hidden: 8}``,
the form every stored config and checkpoint holds, where ``gate: null`` means the defaults) or as
dotted keys (``gate.hidden: 8``); both are read through :func:`apply_overrides`.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from .._limits import check_limits, limited
from ..errors import ConfigError
from ..models._gates import GATINGS, GateConfig
from ._losses import LossWeights

__all__ = ["TrainConfig", "apply_overrides", "load_train_config", "parse_overrides", "setting_fields", "GROUPS"]

# The loss settings a static (gating: none) run takes: distillation from a teacher.
_STATIC_LOSS = frozenset({"distill", "distill_temperature", "label_smoothing"})


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on; stored in every checkpoint it writes.

    ``lr`` is the peak rate reached after ``warmup_epochs`` (cosine) or at 30 % of the run
    (one-cycle). ``amp="auto"`` trains in bf16 autocast where the hardware runs it natively
    (AVX512-BF16/AMX CPUs, bf16 GPUs; 2× faster for ResNet-20 on this project's CPU), else fp32.
    ``image_size`` and ``workers`` apply to ImageNet folders only; ``val_size`` and
    ``train_subset`` to the in-memory datasets.

    Gated (LC-Net) training: ``gating`` layer | channel | lc, ``gate`` a
    :class:`~lcnas.models.GateConfig`, ``loss`` a :class:`~lcnas.train.LossWeights` (a mapping of
    their fields, or ``None`` for the defaults, is converted), ``init_from`` "pretrained" (the
    shipped static backbone), a checkpoint path or a shipped model's name (``lcnas.list_pretrained()``,
    e.g. ``lcnet-resnet20-layer-kd32-t75``) (a gated checkpoint whose gates have this run's
    shapes continues with its gates too), ``teacher`` the same for distillation, ``gate_lr`` the
    gates' peak rate (default ``lr``), ``backbone_lr`` the backbone's (default ``lr``; ``0``
    freezes it, BatchNorm statistics included, so only the gates learn: the search's proxy, which
    cannot damage the backbone), ``lut`` a latency table (path or shipped device name) for the
    ``loss.latency`` term. A static run (``gating: none``) takes ``loss.distill`` (with
    ``distill_temperature`` and ``label_smoothing``) and a ``teacher``: cross-entropy +
    distill·KL, the control that tells what a distilled LC-Net owes to its gates and what to the
    teacher.

    Value limits are declared on the fields (:func:`lcnas._limits.limited`) and checked here and by
    the search space alike.
    """

    name: str = "run"
    model: str = "resnet20"
    gating: str = limited("none", choices=GATINGS)
    gate: GateConfig = dataclasses.field(default_factory=GateConfig)
    loss: LossWeights = dataclasses.field(default_factory=LossWeights)
    init_from: str | None = None
    teacher: str | None = None
    gate_lr: float | None = limited(None, gt=0.0)
    backbone_lr: float | None = limited(None, ge=0.0)
    lut: str | None = None
    dataset: str = limited("cifar10", choices=("cifar10", "imagenet", "synthetic"))
    data_root: str | None = None
    val_size: int = 5000
    split_seed: int = 0
    train_subset: int | None = None
    epochs: int = limited(30, ge=1)
    batch_size: int = limited(128, ge=1)
    eval_batch_size: int = limited(500, ge=1)
    lr: float = limited(0.1, gt=0.0)
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = limited(5e-4, ge=0.0)
    label_smoothing: float = limited(0.0, ge=0.0, lt=1.0)
    schedule: str = limited("cosine", choices=("cosine", "onecycle"))
    warmup_epochs: float = limited(1.0, ge=0.0)
    seed: int = 0
    image_size: int = 224
    workers: int = 4
    channels_last: bool = True
    amp: str = limited("auto", choices=("auto", "none", "bf16", "fp16"))
    device: str = limited("auto", choices=("auto", "cpu", "cuda"))
    threads: int | None = None
    out_dir: str = "runs"

    def __post_init__(self) -> None:
        for key, cls in GROUPS.items():  # a mapping (or None: the defaults) becomes the group's dataclass
            value = getattr(self, key)
            if not isinstance(value, cls):
                try:
                    object.__setattr__(self, key, cls.from_dict(value))
                except (TypeError, ValueError) as e:
                    raise ConfigError(f"{key}: {e}") from None
        try:
            check_limits(self)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        if self.backbone_lr is not None and self.gating == "none":
            raise ConfigError(f"backbone_lr={self.backbone_lr} needs gating: layer, channel or lc and a value >= 0 "
                              "(0 freezes the backbone and trains the gates only)")
        if self.gating == "none":
            gated_only = sorted(k for k, v in _changed(self.loss).items() if k not in _STATIC_LOSS)
            if _changed(self.gate) or gated_only:
                what = "gate settings" if _changed(self.gate) else ", ".join(f"loss.{k}" for k in gated_only)
                raise ConfigError(f"{what} need gating: layer, channel or lc (a static model takes only "
                                  f"{', '.join(f'loss.{k}' for k in sorted(_STATIC_LOSS))})")

    @property
    def run_dir(self) -> Path:
        """The run's folder: ``<out_dir>/<name>``."""
        return Path(self.out_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        """Every setting as a plain dict, groups as full mappings (what checkpoints store;
        :meth:`from_dict` reads it back)."""
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**d, **{key: getattr(self, key).to_dict() for key in GROUPS}}

    def flat(self) -> dict[str, Any]:
        """Every setting under its dotted address (``gate.hidden``, ``loss.flops``, ``lr``)."""
        out = {k: v for k, v in self.to_dict().items() if k not in GROUPS}
        for key in GROUPS:
            out.update({f"{key}.{k}": v for k, v in getattr(self, key).to_dict().items()})
        return out

    def with_overrides(self, overrides: Mapping[str, Any], *, source: str = "--set") -> TrainConfig:
        """A copy with ``overrides`` (dotted or top-level names) applied by :func:`apply_overrides`."""
        return TrainConfig.from_dict(apply_overrides(self.to_dict(), overrides, source=source), source=source)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "config") -> TrainConfig:
        """Build a validated config from a mapping of settings (missing ones take their defaults).

        Groups may be mappings (``gate: {hidden: 8}``; ``None`` = defaults) or dotted keys
        (``gate.hidden: 8``). Values are coerced to the fields' types (e.g. ``"5"`` or ``5.0`` for
        an int field).

        Args:
            data: setting name → value.
            source: what ``data`` came from (a file name), prefixed to error messages.

        Raises:
            ConfigError: ``data`` is not a mapping, names an unknown setting (with a suggestion),
                or has a value of the wrong type or out of range.
        """
        if not isinstance(data, Mapping):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        nested = apply_overrides({}, data, source=source)
        known = {f.name: f for f in fields(cls)}
        values = {k: v if k in GROUPS else _coerce(k, v, known[k].type, source) for k, v in nested.items()}
        try:
            return cls(**values)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None


GROUPS: dict[str, type[GateConfig] | type[LossWeights]] = {"gate": GateConfig, "loss": LossWeights}  # dotted-key prefix → group dataclass


@functools.lru_cache(maxsize=1)
def setting_fields() -> dict[str, dataclasses.Field]:
    """Every settable address → its dataclass field: top-level names (``lr``), then
    ``gate.<GateConfig field>`` and ``loss.<LossWeights field>``. The search space reads the
    targets, their types and their limits from here."""
    out: dict[str, dataclasses.Field] = {f.name: f for f in fields(TrainConfig) if f.name not in GROUPS}
    for key, cls in GROUPS.items():
        out.update({f"{key}.{f.name}": f for f in fields(cls)})
    return out


def apply_overrides(data: Mapping[str, Any] | None, overrides: Mapping[str, Any], *, source: str = "--set") -> dict[str, Any]:
    """The one place settings are merged: a copy of ``data`` with ``overrides`` applied (neither is mutated).

    Keys are addresses: a top-level name (``lr``), a dotted group field (``gate.layer_threshold``)
    or a whole group (``gate``) whose mapping merges field by field (``None`` resets it to the
    defaults). The result holds groups as mappings, ready for :meth:`TrainConfig.from_dict`.

    Raises:
        ConfigError: a key that is no setting, named with a suggestion and the valid keys; a
            group given something other than a mapping.
    """
    out: dict[str, Any] = {}
    for key, value in (data or {}).items():
        out[key] = dict(value) if key in GROUPS and isinstance(value, Mapping) else value
    for key, value in overrides.items():
        key = str(key)
        head, dot, rest = key.partition(".")
        if head in GROUPS and not dot:
            if value is None:
                out[head] = None
                continue
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: {head} must be a mapping of {GROUPS[head].__name__} fields "
                                  f"(or set them one by one as {head}.<field>), got {value!r}")
            merged = dict(out.get(head) or {})
            for field, v in value.items():
                _check_key(f"{head}.{field}", source)
                merged[str(field)] = v
            out[head] = merged
            continue
        _check_key(key, source)
        if dot:
            current = out.get(head)
            out[head] = {**(current if isinstance(current, Mapping) else {}), rest: value}
        else:
            out[key] = value
    return out


def _check_key(key: str, source: str) -> None:
    known = setting_fields()
    if key in known:
        return
    head, dot, _ = key.partition(".")
    if dot and head in GROUPS:
        valid = [k for k in known if k.startswith(head + ".")]
    else:
        valid = [k for k in known if "." not in k] + [f"{g}.<field>" for g in GROUPS]
    close = difflib.get_close_matches(key, list(known), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(f"{source}: unknown setting {key!r}{hint}; valid: {', '.join(valid)}")


def _changed(group: Any) -> dict[str, Any]:
    """The fields of a group dataclass that differ from its defaults."""
    default = type(group)()
    return {f.name: getattr(group, f.name) for f in fields(group) if getattr(group, f.name) != getattr(default, f.name)}


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["epochs=5", "gate.hidden=8"]`` → ``{"epochs": 5, "gate.hidden": 8}`` (values parsed as YAML;
    apply them with :func:`apply_overrides`)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set epochs=5")
        try:
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({e})") from None
    return out


def load_train_config(path: str | os.PathLike[str] | None, overrides: list[str] | None = None) -> TrainConfig:
    """Read a training YAML (or the defaults when ``path`` is None) and apply ``--set`` overrides."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            text = Path(path).read_text()
        except FileNotFoundError:
            raise ConfigError(f"config file {source!r} not found (ready configs are in studies/)") from None
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError(f"config file {source!r} is not valid YAML: {e}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config file {source!r}: expected a mapping of settings at the top level")
        data = apply_overrides({}, loaded or {}, source=source)
    data = apply_overrides(data, parse_overrides(overrides), source="--set")
    return TrainConfig.from_dict(data, source=source)


def _coerce(key: str, value: Any, annotation: Any, source: str) -> Any:
    ann = str(annotation)
    if value is None:
        if "None" in ann:
            return None
        raise ConfigError(f"{source}: {key} must not be empty")
    if ann.startswith("bool"):
        if isinstance(value, bool):
            return value
    elif ann.startswith("int"):
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif ann.startswith("float"):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif ann.startswith("str"):
        if isinstance(value, str):
            return value
    raise ConfigError(f"{source}: {key} must be {ann.replace(' | None', '')}, got {value!r}")

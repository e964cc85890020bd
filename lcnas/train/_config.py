"""TrainConfig: a frozen dataclass loaded from YAML with ``--set key=value`` overrides."""

from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError

__all__ = ["TrainConfig", "load_train_config", "parse_overrides"]

_CHOICES = {
    "schedule": ("cosine", "onecycle"),
    "amp": ("auto", "none", "bf16", "fp16"),
    "device": ("auto", "cpu", "cuda"),
    "dataset": ("cifar10", "imagenet", "synthetic"),
}
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

    Gated (LC-Net) training: ``gating`` layer | channel | lc, ``gate`` the
    :class:`~lcnas.models.GateConfig` fields, ``loss`` the :class:`~lcnas.train.LossWeights`
    fields, ``init_from`` "pretrained" (the shipped static backbone) or a checkpoint path (a
    gated checkpoint whose gates have this run's shapes continues with its gates too),
    ``teacher`` the same for distillation, ``gate_lr`` the gates' peak rate (default ``lr``),
    ``backbone_lr`` the backbone's (default ``lr``; ``0`` freezes it, BatchNorm statistics
    included, so only the gates learn: the search's proxy, which cannot damage the backbone),
    ``lut`` a latency table (path or shipped device name) for the ``loss.latency`` term.
    A static run (``gating: none``) takes ``loss.distill`` (with ``distill_temperature`` and
    ``label_smoothing``) and a ``teacher``: cross-entropy + distill·KL, the control that tells
    what a distilled LC-Net owes to its gates and what to the teacher.
    """

    name: str = "run"
    model: str = "resnet20"
    gating: str = "none"
    gate: dict[str, Any] | None = None
    loss: dict[str, Any] | None = None
    init_from: str | None = None
    teacher: str | None = None
    gate_lr: float | None = None
    backbone_lr: float | None = None
    lut: str | None = None
    dataset: str = "cifar10"
    data_root: str | None = None
    val_size: int = 5000
    split_seed: int = 0
    train_subset: int | None = None
    epochs: int = 30
    batch_size: int = 128
    eval_batch_size: int = 500
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = True
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0
    schedule: str = "cosine"
    warmup_epochs: float = 1.0
    seed: int = 0
    image_size: int = 224
    workers: int = 4
    channels_last: bool = True
    amp: str = "auto"
    device: str = "auto"
    threads: int | None = None
    out_dir: str = "runs"

    def __post_init__(self) -> None:
        for name, choices in _CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(f"{name}={getattr(self, name)!r} is not one of {', '.join(choices)}")
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.backbone_lr is not None and (self.backbone_lr < 0 or self.gating == "none"):
            raise ConfigError(f"backbone_lr={self.backbone_lr} needs gating: layer, channel or lc and a value >= 0 "
                              "(0 freezes the backbone and trains the gates only)")
        if self.lr <= 0 or self.weight_decay < 0 or not 0 <= self.label_smoothing < 1:
            raise ConfigError("lr must be > 0, weight_decay >= 0 and label_smoothing in [0, 1)")
        if self.gating not in ("none", "layer", "channel", "lc"):
            raise ConfigError(f"gating={self.gating!r} is not one of none, layer, channel, lc")
        if self.gating == "none":
            gated_only = sorted(set(self.loss or ()) - _STATIC_LOSS)
            if self.gate or gated_only:
                what = "gate settings" if self.gate else ", ".join(f"loss.{k}" for k in gated_only)
                raise ConfigError(f"{what} need gating: layer, channel or lc (a static model takes only "
                                  f"{', '.join(f'loss.{k}' for k in sorted(_STATIC_LOSS))})")
        from ..models import GateConfig
        from ._losses import LossWeights

        for key, cls in (("gate", GateConfig), ("loss", LossWeights)):
            try:
                cls.from_dict(getattr(self, key))
            except (TypeError, ValueError) as e:
                raise ConfigError(f"{key}: {e}") from None

    @property
    def run_dir(self) -> Path:
        """The run's folder: ``<out_dir>/<name>``."""
        return Path(self.out_dir) / self.name

    def to_dict(self) -> dict[str, Any]:
        """Every setting as a plain dict (what checkpoints store; :meth:`from_dict` reads it back)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> TrainConfig:
        """Build a validated config from a mapping of settings (missing ones take their defaults).

        Values are coerced to the fields' types (e.g. ``"5"`` or ``5.0`` for an int field).

        Args:
            data: setting name → value.
            source: what ``data`` came from (a file name), prefixed to error messages.

        Raises:
            ConfigError: ``data`` is not a mapping, names an unknown setting (with a suggestion),
                or has a value of the wrong type or out of range.
        """
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping of settings, got {type(data).__name__}")
        known = {f.name: f for f in fields(cls)}
        for key in data:
            if key not in known:
                close = difflib.get_close_matches(str(key), list(known), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise ConfigError(f"{source}: unknown setting {key!r}{hint}")
        values = {k: _coerce(k, v, known[k].type, source) for k, v in data.items()}
        try:
            return cls(**values)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None


def parse_overrides(items: list[str] | None) -> dict[str, Any]:
    """``["epochs=5", "lr=0.05"]`` → ``{"epochs": 5, "lr": 0.05}`` (values parsed as YAML)."""
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
    """Read a training YAML (or the defaults when ``path`` is None) and apply overrides."""
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
        data.update(loaded or {})
    for key, value in parse_overrides(overrides).items():
        head, dot, rest = key.partition(".")
        if dot:  # gate.hidden=8 → gate: {hidden: 8}
            nested = data.get(head)
            if nested is not None and not isinstance(nested, dict):
                raise ConfigError(f"--set {key}: {head!r} is not a mapping")
            data[head] = {**(nested or {}), rest: value}
        else:
            data[key] = value
    return TrainConfig.from_dict(data, source=source)


def _coerce(key: str, value: Any, annotation: Any, source: str) -> Any:
    ann = str(annotation)
    if ann.startswith("dict"):
        if value is None or isinstance(value, dict):
            return None if value is None else dict(value)
        raise ConfigError(f"{source}: {key} must be a mapping, got {value!r}")
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

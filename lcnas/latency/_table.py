"""Latency lookup tables: a schema-versioned JSON file per device, validated on load.

A table holds device metadata (kind, CPU model or GPU name, threads, torch version, dtype, batch
sizes, warm-up and repeat counts, date, lcnas version, the command that made it) and entries, each
under readable keys (model, unit, block shape, kept channels, batch size) with the median, p95 and
standard deviation in milliseconds and the number of timed runs.

Units: ``frame`` (fixed per-forward cost: the block loop and the trace), ``stem``, ``head``,
``block_run`` (a block's residual branch at ``kept_channels`` + shortcut + add/ReLU),
``block_skip`` (a skipped block: its shortcut), ``layer_gate`` / ``channel_gate`` (pooling + MLP +
decision), ``block_scatter`` (gathering the running samples of a batch and scattering them back).

``calibration`` (optional): per model and batch size, ``scale`` (compute entries), ``gate_scale``
(gate entries), ``offset_ms`` and the weight spill (``spill_ms_per_mib`` beyond ``spill_free_mib``):
a least-relative-error fit from the table's sums to measured end-to-end latency, made by the
generator on its own random executions. A block's entry is its cost with its weights in cache (the
generator runs it alone); in a whole forward pass the weights of every block that runs pass through
the core's L2, and once an execution reads more weight bytes than stay cached, each further MiB
comes from the next cache level: the spill term, linear in the execution's weight bytes past a
threshold. The gates, a few small calls each, run faster inside a pass than alone: their own scale.
On an engine that runs each image of a batch on its own path (the native engine's batches), each
distinct channel set the batch's images keep is gathered into compact weights once and cached:
``set_ms`` per distinct set, and where the sets together outgrow the engine's cache
(:data:`lcnas.cost.SET_CACHE_MIB`) every call gathers them again: ``regather_ms_per_mib`` per MiB
of their gathered weights.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import read_json, write_json
from ..errors import LcnasError

__all__ = ["AUTO", "Calibration", "LatencyEntry", "LatencyTable", "LatencyTableError", "SCHEMA", "SCHEMA_VERSION", "UNITS",
           "resolve_table", "shipped_tables"]

AUTO = "auto"  # the table name that means "the shipped table measured on this machine's CPU"

SCHEMA = "lcnas-latency-table"
SCHEMA_VERSION = 1
UNITS = ("frame", "stem", "head", "block_run", "block_skip", "layer_gate", "channel_gate", "block_scatter")
_STATS = ("latency_ms_median", "latency_ms_p95", "latency_ms_std", "count")


class LatencyTableError(LcnasError, ValueError):
    """A latency table is malformed, for another model/batch, or lacks an entry."""


@dataclass(frozen=True)
class LatencyEntry:
    """One measured unit: the timing statistics (milliseconds) of ``unit`` of ``model`` at one
    block or gate ``shape``, ``kept_channels`` and ``batch``, over ``count`` timed runs."""

    model: str
    unit: str
    shape: str  # readable signature of the block or gate ("" for frame/stem/head)
    kept_channels: int
    batch: int
    latency_ms_median: float
    latency_ms_p95: float
    latency_ms_std: float
    count: int

    @property
    def key(self) -> tuple[str, str, str, int, int]:
        """The lookup key: (model, unit, shape, kept_channels, batch)."""
        return (self.model, self.unit, self.shape, self.kept_channels, self.batch)

    def to_dict(self) -> dict[str, Any]:
        """The entry as it is stored in the table's JSON ``entries`` list."""
        return {"model": self.model, "unit": self.unit, "shape": self.shape, "kept_channels": self.kept_channels,
                "batch": self.batch, "latency_ms_median": self.latency_ms_median, "latency_ms_p95": self.latency_ms_p95,
                "latency_ms_std": self.latency_ms_std, "count": self.count}


@dataclass(frozen=True)
class Calibration:
    """measured end-to-end latency ≈ ``scale`` × (sum of compute entries) + ``gate_scale`` ×
    (sum of gate entries) + ``offset_ms`` + ``spill_ms_per_mib`` × max(0, weight MiB read −
    ``spill_free_mib``) + ``set_ms`` × (distinct channel sets gathered) + ``regather_ms_per_mib``
    × (their MiB where they outgrow the engine's cache), the last two on an engine that runs each
    image of a batch on its own path; without ``gate_scale`` the gates take ``scale``."""

    model: str
    batch: int
    scale: float
    offset_ms: float
    executions: int
    fit_mape: float  # mean absolute percentage error of the fit on its own executions
    gate_scale: float | None = None
    spill_ms_per_mib: float = 0.0
    spill_free_mib: float = 0.0
    set_ms: float = 0.0
    regather_ms_per_mib: float = 0.0
    # Fitted on per-image batch-1 sums (a batch on the per-image engine); calibrations without it
    # were fitted on the batch's own entries, and their batches are predicted that way.
    per_image_sums: bool = False

    @property
    def gates(self) -> float:
        """The gate entries' scale (``scale`` where the fit gave the gates none of their own)."""
        return self.scale if self.gate_scale is None else self.gate_scale

    def to_dict(self) -> dict[str, Any]:
        """The calibration as stored in the table's JSON ``calibration`` list (``gate_scale`` and
        the spill only when set)."""
        out = {"model": self.model, "batch": self.batch, "scale": self.scale, "offset_ms": self.offset_ms,
               "executions": self.executions, "fit_mape": self.fit_mape}
        if self.gate_scale is not None:
            out["gate_scale"] = self.gate_scale
        if self.spill_ms_per_mib:
            out["spill_ms_per_mib"], out["spill_free_mib"] = self.spill_ms_per_mib, self.spill_free_mib
        if self.set_ms:
            out["set_ms"] = self.set_ms
        if self.regather_ms_per_mib:
            out["regather_ms_per_mib"] = self.regather_ms_per_mib
        if self.per_image_sums:
            out["per_image_sums"] = True
        return out


@dataclass(frozen=True)
class LatencyTable:
    """A per-device latency lookup table: device and measurement metadata, entries, calibration.

    Read one with :meth:`load` (a path or the name of a shipped table), which validates it;
    :meth:`latency_ms` looks up the median of one entry. ``source`` names the file in error messages.
    """

    device: dict[str, Any]
    measurement: dict[str, Any]
    entries: tuple[LatencyEntry, ...]
    source: str = "<memory>"
    calibration: tuple[Calibration, ...] = ()
    _index: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._index.update({e.key: e for e in self.entries})

    def calibration_for(self, model: str, batch: int) -> Calibration:
        """The calibration of ``model`` at ``batch``; the identity (scale 1, no offset, no spill)
        when the table has none."""
        for c in self.calibration:
            if c.model == model and c.batch == batch:
                return c
        return Calibration(model=model, batch=batch, scale=1.0, offset_ms=0.0, executions=0, fit_mape=0.0)

    @property
    def models(self) -> list[str]:
        """The model names the table has entries for, sorted."""
        return sorted({e.model for e in self.entries})

    def batches(self, model: str) -> list[int]:
        """The batch sizes measured for ``model``, sorted (empty if the model is absent)."""
        return sorted({e.batch for e in self.entries if e.model == model})

    def kept_options(self, model: str, shape: str, batch: int) -> list[int]:
        """The kept-channel counts with a ``block_run`` entry for block ``shape`` of ``model`` at ``batch``, sorted."""
        return sorted(e.kept_channels for e in self.entries if e.model == model and e.unit == "block_run"
                      and e.shape == shape and e.batch == batch)

    def latency_ms(self, model: str, unit: str, shape: str = "", kept_channels: int = 0, batch: int = 1) -> float:
        """Median latency (ms) of one entry, uncalibrated.

        Args:
            model: Registry name of the model.
            unit: One of :data:`UNITS`.
            shape: The block or gate key (empty for ``frame``, ``stem`` and ``head``).
            kept_channels: Inner channels kept (``block_run`` entries; 0 otherwise).
            batch: Batch size.

        Raises:
            LatencyTableError: the table has no such entry.
        """
        entry = self._index.get((model, unit, shape, kept_channels, batch))
        if entry is None:
            raise LatencyTableError(
                f"latency table {self.source!r} has no entry for model={model!r} unit={unit!r} shape={shape!r} "
                f"kept_channels={kept_channels} batch={batch}; profile it: lcnas profile --model {model} --batch {batch} --out ...")
        return entry.latency_ms_median

    def check_for(self, model: str, batch: int) -> None:
        """Error if the table lacks ``model`` or ``batch``; warning if measured on another machine."""
        if model not in self.models:
            raise LatencyTableError(f"latency table {self.source!r} covers {', '.join(self.models) or 'no models'}, not {model!r}; "
                                    f"profile it: lcnas profile --model {model} --out ...")
        if batch not in self.batches(model):
            raise LatencyTableError(f"latency table {self.source!r} has batch sizes {self.batches(model)} for {model!r}, not {batch}")
        import torch

        from .._env import cpu_model

        here = torch.cuda.get_device_name(0) if self.device.get("kind") == "cuda" and torch.cuda.is_available() else cpu_model()
        if self.device.get("name") != here:
            warnings.warn(f"latency table {self.source!r} was measured on {self.device.get('name')!r}, this machine is {here!r}: "
                          "predictions describe that device, not this one", stacklevel=2)

    # ------------------------------------------------------------------ file format
    def to_dict(self) -> dict[str, Any]:
        """The table in its JSON file format (schema, device, measurement, entries, calibration)."""
        out = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "device": self.device,
               "measurement": self.measurement, "entries": [e.to_dict() for e in self.entries]}
        if self.calibration:
            out["calibration"] = [c.to_dict() for c in self.calibration]
        return out

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the table as JSON to ``path`` (atomically) and return the path written."""
        return write_json(path, self.to_dict())

    def merged(self, other: LatencyTable) -> LatencyTable:
        """This table plus ``other``'s entries (``other`` wins on equal keys); devices must match.

        The measurement metadata is merged too: a re-profile of batch 1 keeps what the table says
        of its other batches (their engine decides how the predictor sums them)."""
        if other.device.get("name") != self.device.get("name") or other.device.get("threads") != self.device.get("threads"):
            raise LatencyTableError(f"cannot merge tables of different devices: {self.device.get('name')}/{self.device.get('threads')} "
                                    f"vs {other.device.get('name')}/{other.device.get('threads')}")
        index = {e.key: e for e in self.entries}
        index.update({e.key: e for e in other.entries})
        cal = {(c.model, c.batch): c for c in self.calibration}
        cal.update({(c.model, c.batch): c for c in other.calibration})
        measurement = _merged_measurement(self.measurement, other.measurement)
        stamps = measurement.get("recalibrated_utc")
        if isinstance(stamps, dict):  # a model calibrated afresh by ``other``'s profile was not recalibrated since
            fresh = {c.model for c in other.calibration} - set(other.measurement.get("recalibrated_utc") or {})
            measurement["recalibrated_utc"] = {m: t for m, t in stamps.items() if m not in fresh}
        return LatencyTable(device=other.device, measurement=measurement, entries=tuple(index.values()), source=self.source,
                            calibration=tuple(cal.values()))

    @classmethod
    def from_dict(cls, data: Any, *, source: str = "<memory>") -> LatencyTable:
        """Validate parsed JSON ``data`` and build a table from it.

        Args:
            data: The parsed table file.
            source: Where ``data`` came from, for error messages.

        Raises:
            LatencyTableError: wrong schema or version, a missing or mistyped field, a unit that is
                not one of :data:`UNITS`, latencies not in milliseconds, or a bad calibration.
        """
        def bad(msg: str) -> LatencyTableError:
            return LatencyTableError(f"latency table {source!r}: {msg}")

        if not isinstance(data, dict):
            raise bad("expected a JSON object at the top level")
        if data.get("schema") != SCHEMA:
            raise bad(f"not an lcnas latency table (schema={data.get('schema')!r}, expected {SCHEMA!r})")
        if data.get("schema_version") != SCHEMA_VERSION:
            raise bad(f"schema_version {data.get('schema_version')!r} is not supported (this lcnas reads {SCHEMA_VERSION})")
        for key in ("device", "measurement", "entries"):
            if key not in data:
                raise bad(f"missing field {key!r}")
        for key, kind in (("device", dict), ("measurement", dict), ("entries", list), ("calibration", list)):
            if not isinstance(data.get(key, []), kind):
                raise bad(f"'{key}' must be a JSON {'object' if kind is dict else 'list'}, got {type(data[key]).__name__}")
        for key in ("kind", "name", "threads", "torch", "dtype"):
            if key not in data["device"]:
                raise bad(f"missing field 'device.{key}'")
        entries = []
        for i, raw in enumerate(data["entries"]):
            if not isinstance(raw, dict):
                raise bad(f"entries[{i}] is not an object")
            wrong_units = [k for k in raw if k.startswith("latency_") and k not in _STATS]
            if wrong_units:
                raise bad(f"entries[{i}] has {wrong_units[0]!r}: latencies must be in milliseconds "
                          "(latency_ms_median, latency_ms_p95, latency_ms_std)")
            missing = [k for k in ("model", "unit", "shape", "kept_channels", "batch", *_STATS) if k not in raw]
            if missing:
                raise bad(f"entries[{i}] is missing field {missing[0]!r}")
            if raw["unit"] not in UNITS:
                raise bad(f"entries[{i}].unit {raw['unit']!r} is not one of {', '.join(UNITS)}")
            try:
                entry = LatencyEntry(model=str(raw["model"]), unit=raw["unit"], shape=str(raw["shape"]),
                                     kept_channels=int(raw["kept_channels"]), batch=int(raw["batch"]),
                                     latency_ms_median=float(raw["latency_ms_median"]), latency_ms_p95=float(raw["latency_ms_p95"]),
                                     latency_ms_std=float(raw["latency_ms_std"]), count=int(raw["count"]))
            except (TypeError, ValueError) as e:
                raise bad(f"entries[{i}] has a field of the wrong type ({e})") from None
            if entry.latency_ms_median < 0 or entry.count < 1:
                raise bad(f"entries[{i}] has a negative latency or a count below 1")
            entries.append(entry)
        calibration = []
        for i, raw in enumerate(data.get("calibration", [])):
            if not isinstance(raw, dict):
                raise bad(f"calibration[{i}] is not an object")
            try:
                c = Calibration(model=str(raw["model"]), batch=int(raw["batch"]), scale=float(raw["scale"]),
                                offset_ms=float(raw["offset_ms"]), executions=int(raw["executions"]), fit_mape=float(raw["fit_mape"]),
                                gate_scale=None if raw.get("gate_scale") is None else float(raw["gate_scale"]),
                                spill_ms_per_mib=float(raw.get("spill_ms_per_mib", 0.0)), spill_free_mib=float(raw.get("spill_free_mib", 0.0)),
                                set_ms=float(raw.get("set_ms", 0.0)), regather_ms_per_mib=float(raw.get("regather_ms_per_mib", 0.0)),
                                per_image_sums=bool(raw.get("per_image_sums", False)))
            except (KeyError, TypeError, ValueError) as e:
                raise bad(f"calibration[{i}] is malformed ({type(e).__name__}: {e}); "
                          "fields: model, batch, scale, offset_ms, executions, fit_mape") from None
            if not c.scale > 0 or (c.gate_scale is not None and not c.gate_scale > 0):
                raise bad(f"calibration[{i}]: scale and gate_scale must be > 0, got {c.scale} and {c.gate_scale}")
            if c.set_ms < 0 or c.regather_ms_per_mib < 0:
                raise bad(f"calibration[{i}]: set_ms and regather_ms_per_mib must be >= 0, got {c.set_ms} and {c.regather_ms_per_mib}")
            if c.spill_ms_per_mib < 0 or c.spill_free_mib < 0:
                raise bad(f"calibration[{i}]: spill_ms_per_mib and spill_free_mib must be >= 0, got {c.spill_ms_per_mib} and {c.spill_free_mib}")
            calibration.append(c)
        return cls(device=dict(data["device"]), measurement=dict(data["measurement"]), entries=tuple(entries), source=source,
                   calibration=tuple(calibration))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LatencyTable:
        """Read and validate a table: a file path, or a name shipped in ``latency_models/``."""
        path = _resolve(path)
        data = read_json(path, what="latency table", missing_hint=f" (shipped tables: {', '.join(shipped_tables()) or 'none'})",
                         error=LatencyTableError)
        return cls.from_dict(data, source=str(path))


def shipped_tables() -> list[str]:
    """File names of the latency tables shipped with lcnas (loadable by name with :meth:`LatencyTable.load`)."""
    from importlib import resources

    try:
        folder = resources.files("lcnas.latency_models")
    except ModuleNotFoundError:
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))


def resolve_table(name: str | os.PathLike[str], *, threads: int = 1) -> str | os.PathLike[str]:
    """``name`` itself, or for ``"auto"`` the shipped CPU table measured on this machine's CPU model
    with ``threads`` threads (its file name).

    Raises:
        LatencyTableError: ``"auto"`` and no shipped table was measured on this CPU (the error names
            the CPU, the shipped tables and the ``lcnas profile`` command that makes one).
    """
    if str(name) != AUTO:
        return name
    from .._env import cpu_model

    here = cpu_model()
    for table_name in shipped_tables():
        table = LatencyTable.load(table_name)
        if table.device.get("kind") == "cpu" and table.device.get("name") == here and table.device.get("threads") == threads:
            return table_name
    raise LatencyTableError(
        f"--lut auto: no shipped latency table was measured on this CPU ({here!r}, {threads} thread(s)); shipped: "
        f"{', '.join(shipped_tables()) or 'none'}. Profile one (minutes): "
        f"lcnas profile --model resnet20 --threads {threads} --batch 1 --out latency_models/my-cpu-{threads}t.json, "
        f"then pass --lut latency_models/my-cpu-{threads}t.json")


def _resolve(path: str | os.PathLike[str]) -> Path:
    p = Path(resolve_table(path))
    if p.exists() or p.parent != Path("."):
        return p
    from importlib import resources

    try:
        shipped = Path(str(resources.files("lcnas.latency_models") / p.name))
    except ModuleNotFoundError:
        return p
    return shipped if shipped.exists() else p


def _merged_measurement(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new``'s measurement metadata over ``old``'s, the per-batch and per-model fields merged key
    by key and the batch sizes united."""
    out = {**old, **new}
    for key in ("engine", "recalibrated_utc"):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out[key] = {**a, **b}
    a, b = old.get("batch_sizes"), new.get("batch_sizes")
    if isinstance(a, list) and isinstance(b, list):
        out["batch_sizes"] = sorted({int(x) for x in a + b if isinstance(x, int)})
    return out

"""lcnas's inference engine: hard execution of static and gated ResNets in ``eval()``, where skipped
blocks and channels are not computed at all (the native whole-network kernel, the per-block path and
grouped batches).

The engine sits below ``lcnas.models``: it reads a model's structure by attribute (``_structure``)
and imports nothing from the model layer. A model's engine is ``model.engine`` (an :class:`Engine`);
which paths it may take is ``model.engine.options`` (an :class:`EngineOptions`), or for a ``with``
block :func:`options`. The gate decision rule every path follows is one specification
(:func:`run_block`, :func:`keep_groups`, ...).
"""

from ._decision import at_least_one, gate_scale, gate_scales, keep_groups, keep_groups_one, run_block, run_block_one, threshold_logit
from ._executor import Engine
from ._native import NativeConv, PackedConv, compiler_available, kept_width, native, native_status
from ._native_net import NativeNet
from ._options import EngineOptions, options
from ._pooling import pool

__all__ = ["Engine", "EngineOptions", "NativeConv", "NativeNet", "PackedConv", "at_least_one", "compiler_available",
           "gate_scale", "gate_scales", "keep_groups", "keep_groups_one", "kept_width", "native", "native_status", "options",
           "pool", "run_block", "run_block_one", "threshold_logit"]

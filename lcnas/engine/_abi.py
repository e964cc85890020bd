"""The native network's C ABI, described once: each struct of ``_native_net.cpp``'s ``extern "C"``
block as a field table (C names and C types, in order), from which the ctypes classes are made.

``tests/models_tests/test_native_abi.py`` parses the C++ definitions and checks them against these
tables, so a field added, removed, renamed, retyped or moved on one side only fails the tests.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

__all__ = ["CStruct", "GATE_HEAD", "BLOCK", "NET", "STRUCTS", "ctypes_struct"]


@dataclass(frozen=True)
class CStruct:
    """A C struct: its name and (field name, C type) pairs in declaration order."""

    name: str
    fields: tuple[tuple[str, str], ...]


GATE_HEAD = CStruct("LcGateHead", (
    ("lo", "int"), ("hi", "int"), ("w2", "const float*"), ("b2", "const float*"), ("out", "int"),
))

BLOCK = CStruct("LcBlock", (
    ("cin", "int"), ("cmid", "int"), ("cout", "int"), ("h", "int"), ("w", "int"), ("stride", "int"),
    ("w1", "const float*"), ("b1", "const float*"), ("w2", "const float*"), ("b2", "const float*"),
    ("pad_stride", "int"), ("pad_lo", "int"),
    ("pool", "int"),
    ("feat", "int"), ("rows", "int"),
    ("gw", "const float*"), ("gb", "const float*"),
    ("layer", "LcGateHead"), ("channel", "LcGateHead"),
    ("groups", "int"), ("gsize", "int"), ("scaling", "int"),
    ("run_logit", "double"), ("keep_logit", "double"),
))

NET = CStruct("LcNet", (
    ("stem_w", "const float*"), ("stem_b", "const float*"), ("stem_padv", "const float*"),
    ("cin", "int"), ("h", "int"), ("w", "int"), ("stem_cout", "int"), ("stem_stride", "int"), ("stem_pad", "int"),
    ("nblocks", "int"),
    ("blocks", "const LcBlock*"),
    ("fc_w", "const float*"), ("fc_b", "const float*"),
    ("classes", "int"), ("feat", "int"),
    ("id", "unsigned long long"),
))

STRUCTS = (GATE_HEAD, BLOCK, NET)

_SCALARS = {"int": ctypes.c_int, "double": ctypes.c_double, "unsigned long long": ctypes.c_ulonglong}
_made: dict[str, type[ctypes.Structure]] = {}


def _ctype(c_type: str) -> type:
    if c_type.endswith("*"):
        return ctypes.c_void_p  # pointers are passed as addresses
    if c_type in _SCALARS:
        return _SCALARS[c_type]
    return ctypes_struct(next(s for s in STRUCTS if s.name == c_type))


def ctypes_struct(spec: CStruct) -> type[ctypes.Structure]:
    """The ctypes class of ``spec`` (made once per struct)."""
    cls = _made.get(spec.name)
    if cls is None:
        cls = _made[spec.name] = type(spec.name, (ctypes.Structure,), {"_fields_": [(n, _ctype(t)) for n, t in spec.fields]})
    return cls

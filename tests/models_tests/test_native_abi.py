"""The native network's C structs and their ctypes mirror agree: ``lcnas/engine/_abi.py`` describes
each struct once, and this test parses the C++ definitions in ``_native_net.cpp`` and checks every
field's name, type and position against that description (and the ctypes classes made from it)."""

from __future__ import annotations

import ctypes
import re
from pathlib import Path

import pytest

import lcnas.engine
from lcnas.engine._abi import STRUCTS, ctypes_struct

SOURCE = Path(lcnas.engine.__file__).with_name("_native_net.cpp")
_BASE = re.compile(r"^((?:const\s+)?(?:unsigned\s+long\s+long|[A-Za-z_]\w*))\s*(.*)$", re.S)


def c_structs(source: str) -> dict[str, list[tuple[str, str]]]:
    """Every ``struct Name { ... };`` in ``source``'s ``extern "C"`` blocks: its (field, C type)
    pairs in order, pointers written ``T*`` and several declarators per line split."""
    structs: dict[str, list[tuple[str, str]]] = {}
    for block in re.findall(r'extern "C" \{(.*?)\n\}(?!;)', source, re.S):
        block = re.sub(r"//[^\n]*", "", block)
        for name, body in re.findall(r"struct\s+(\w+)\s*\{(.*?)\};", block, re.S):
            fields = []
            for decl in filter(None, (d.strip() for d in body.split(";"))):
                base, rest = _BASE.match(" ".join(decl.split())).groups()
                for declarator in rest.split(","):
                    declarator = declarator.strip()
                    stars = len(declarator) - len(declarator.lstrip("*"))
                    fields.append((declarator.lstrip("* "), base + "*" * stars))
            structs[name] = fields
    return structs


def test_the_parser_reads_declarator_lists_pointers_and_comments():
    src = 'extern "C" {\nstruct S {  // x\n    int a, b;  // two\n    const float *p, *q;\n    const T* r;\n' \
          '    unsigned long long id;\n    Other o, o2;\n};\n}\n'
    assert c_structs(src) == {"S": [("a", "int"), ("b", "int"), ("p", "const float*"), ("q", "const float*"),
                                    ("r", "const T*"), ("id", "unsigned long long"), ("o", "Other"), ("o2", "Other")]}


def test_every_c_struct_is_described_once():
    assert sorted(c_structs(SOURCE.read_text())) == sorted(s.name for s in STRUCTS)


@pytest.mark.parametrize("spec", STRUCTS, ids=lambda s: s.name)
def test_c_struct_matches_its_description(spec):
    assert c_structs(SOURCE.read_text())[spec.name] == list(spec.fields)


@pytest.mark.parametrize("spec", STRUCTS, ids=lambda s: s.name)
def test_ctypes_class_follows_the_description(spec):
    cls = ctypes_struct(spec)
    assert [name for name, _ in cls._fields_] == [name for name, _ in spec.fields]
    for (_, c_type), (_, ct) in zip(spec.fields, cls._fields_, strict=True):
        if c_type.endswith("*"):
            assert ct is ctypes.c_void_p
        elif c_type in ("int", "double", "unsigned long long"):
            assert ctypes.sizeof(ct) == {"int": 4, "double": 8, "unsigned long long": 8}[c_type]
        else:
            assert ct is ctypes_struct(next(s for s in STRUCTS if s.name == c_type))

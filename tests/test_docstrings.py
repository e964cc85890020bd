"""Every public object of the ``lcnas`` API has a docstring (the API reference is generated from them).

Public means reachable without a leading underscore: the names in each public module's ``__all__``
(or, for a module without ``__all__``, the functions and classes it defines), and for each such
class its own public methods, class/static methods and properties, including those inherited from
lcnas base classes.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import pkgutil
from types import ModuleType
from typing import Any

import lcnas


def _public_modules() -> list[ModuleType]:
    modules = [lcnas]
    for info in pkgutil.walk_packages(lcnas.__path__, prefix="lcnas."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def _public_names(module: ModuleType) -> list[str]:
    if hasattr(module, "__all__"):
        return list(module.__all__)
    return [name for name, obj in vars(module).items()
            if not name.startswith("_") and getattr(obj, "__module__", None) == module.__name__]


def _own_class_doc(cls: type) -> str | None:
    doc = cls.__dict__.get("__doc__")
    if not doc:
        return None
    # dataclasses and namedtuples invent a docstring from the signature when the class has none
    if dataclasses.is_dataclass(cls) and doc == cls.__name__ + str(inspect.signature(cls)).replace(" -> None", ""):
        return None
    fields = getattr(cls, "_fields", None)
    if isinstance(fields, tuple) and doc == cls.__name__ + "(" + repr(fields).replace("'", "")[1:-1] + ")":
        return None
    return doc


def _is_lcnas(obj: Any) -> bool:
    return (getattr(obj, "__module__", None) or "").split(".")[0] == "lcnas"


def _class_members(cls: type) -> list[tuple[str, Any]]:
    """Public methods and properties defined by ``cls`` or its lcnas base classes."""
    members: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if not _is_lcnas(klass):
            continue
        for name, attr in vars(klass).items():
            if name.startswith("_"):
                continue
            if isinstance(attr, (staticmethod, classmethod)):
                attr = attr.__func__
            if isinstance(attr, property):
                attr = attr.fget
            if isinstance(attr, functools.cached_property):
                attr = attr.func
            if inspect.isfunction(attr):
                members[name] = attr
    return sorted(members.items())


def undocumented() -> list[str]:
    """Qualified names of every public lcnas object without a docstring."""
    missing: set[str] = set()
    seen: set[int] = set()
    for module in _public_modules():
        if not (module.__doc__ or "").strip():
            missing.add(f"{module.__name__} (module)")
        for name in _public_names(module):
            obj = getattr(module, name)
            if id(obj) in seen or not _is_lcnas(obj):
                continue
            seen.add(id(obj))
            qual = f"{obj.__module__}.{getattr(obj, '__qualname__', name)}"
            if inspect.isclass(obj):
                if not (_own_class_doc(obj) or "").strip():
                    missing.add(qual)
                for member_name, member in _class_members(obj):
                    if not (member.__doc__ or "").strip():
                        missing.add(f"{member.__module__}.{member.__qualname__}")
            elif callable(obj) and not (getattr(obj, "__doc__", None) or "").strip():
                missing.add(qual)
    return sorted(missing)


def test_public_api_is_walked() -> None:
    names = {name for module in _public_modules() for name in _public_names(module)}
    assert {"create_model", "load_model", "LatencyTable", "SearchSpace", "train"} <= names


def test_every_public_object_has_a_docstring() -> None:
    missing = undocumented()
    assert not missing, f"{len(missing)} public objects have no docstring:\n  " + "\n  ".join(missing)

"""Benchmarks are written against lcnas's public API: no private module (``lcnas._env``,
``lcnas.engine._native``) and no private name (``from lcnas.engine import _executor``)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
SCRIPTS = sorted(BENCH.glob("*.py"))


def private_lcnas_imports(source: str) -> list[str]:
    """Every ``lcnas`` import in ``source`` that names a private module or a private name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            modules = [(alias.name, None) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [(node.module, alias.name) for alias in node.names]
        else:
            continue
        for module, name in modules:
            parts = module.split(".")
            if parts[0] != "lcnas":
                continue
            if any(p.startswith("_") for p in parts[1:]) or (name is not None and name.startswith("_") and name != "__version__"):
                found.append(f"line {node.lineno}: {module}" + (f" import {name}" if name else ""))
    return found


def test_the_check_sees_private_modules_and_names():
    src = "import lcnas._env\nfrom lcnas.engine._native import native\nfrom lcnas.engine import _executor as h\n" \
          "from lcnas import create_model, __version__\nfrom lcnas.latency import call_ms\nfrom _common import median\n"
    assert private_lcnas_imports(src) == ["line 1: lcnas._env", "line 2: lcnas.engine._native import native",
                                          "line 3: lcnas.engine import _executor"]


def test_benchmarks_exist():
    assert len(SCRIPTS) > 10


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_benchmark_imports_public_lcnas_only(script: Path):
    bad = private_lcnas_imports(script.read_text())
    assert not bad, f"benchmarks/{script.name} imports private lcnas code ({'; '.join(bad)}): use the public API"

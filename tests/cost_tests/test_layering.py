"""The cost package sits below the models and the engine (both use its FLOP formula and grouping
rule), and the latency predictor reaches the engine's rules only through it."""

from __future__ import annotations

import ast
from pathlib import Path

import lcnas

ROOT = Path(lcnas.__file__).resolve().parent


def _imports(path: Path) -> set[str]:
    """Absolute names of the lcnas modules ``path`` imports, function-level imports included."""
    package = ".".join(path.relative_to(ROOT.parent).with_suffix("").parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
            names.add(".".join(base + ([node.module] if node.module else [])))
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(n.name for n in node.names)
    return {n for n in names if n.startswith("lcnas")}


def test_cost_imports_nothing_above_it():
    for path in sorted((ROOT / "cost").glob("*.py")):
        outside = {n for n in _imports(path) if not n.startswith("lcnas.cost")}
        assert outside <= {"lcnas.errors"}, f"{path.name} imports {sorted(outside)}"


def test_latency_prediction_uses_no_private_engine_module():
    imported = _imports(ROOT / "latency" / "_predict.py")
    assert not {n for n in imported if n.startswith("lcnas.engine")}, sorted(imported)

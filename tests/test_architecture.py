"""Layering: no import circle between lcnas's packages and top-level modules (function-level imports
count too: a circle there still means two parts that cannot change apart)."""

from __future__ import annotations

import ast
from pathlib import Path

import lcnas

ROOT = Path(lcnas.__file__).resolve().parent


def _unit(module: str) -> str:
    """``lcnas.engine._executor`` → ``lcnas.engine``: the package or top-level module a module belongs to."""
    return ".".join(module.split(".")[:2])


def import_graph() -> dict[str, set[str]]:
    """Edges between lcnas's units from every ``import``/``from ... import`` anywhere in a module."""
    edges: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(path.read_text())):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    targets.append(".".join(base + ([node.module] if node.module else [])))
                elif node.module:
                    targets.append(node.module)
            elif isinstance(node, ast.Import):
                targets += [n.name for n in node.names]
            for target in targets:
                if target.startswith("lcnas") and _unit(target) != _unit(module):
                    edges.setdefault(_unit(module), set()).add(_unit(target))
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One import circle as a path of units, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_find_cycle_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None


def test_no_import_circle_between_lcnas_packages():
    edges = import_graph()
    assert "lcnas.models" in edges.get("lcnas.checkpoint", set())  # the walk sees function-level imports
    cycle = find_cycle(edges)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_engine_sits_below_the_model_layer():
    # The engine reads models by attribute (lcnas/engine/_structure.py): it imports nothing from the
    # packages built on it, so models -> engine is the only direction.
    above = {"lcnas.models", "lcnas.train", "lcnas.search", "lcnas.report", "lcnas.cli"}
    assert "lcnas.engine" in import_graph().get("lcnas.models", set())  # the walk sees the edge models -> engine
    assert not import_graph().get("lcnas.engine", set()) & above


def test_the_architecture_page_maps_every_module_and_names_none_that_is_gone():
    import re

    page = (ROOT.parent / "docs" / "architecture.md").read_text()
    modules = [p for p in ROOT.rglob("*") if p.suffix in (".py", ".cpp") and p.name not in ("__init__.py", "__main__.py")]
    unmapped = [str(p.relative_to(ROOT.parent)) for p in modules
                if f"`{p.name}`" not in page and str(p.relative_to(ROOT.parent)) not in page]
    assert not unmapped, f"docs/architecture.md does not map: {unmapped}"
    gone = set(re.findall(r"`(_[a-z_]+\.(?:py|cpp))`", page)) - {p.name for p in ROOT.rglob("*")}
    assert not gone, f"docs/architecture.md names modules that do not exist: {sorted(gone)}"

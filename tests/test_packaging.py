from __future__ import annotations

import sys
from pathlib import Path

import pytest

from lcnas._optional import import_optional

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is 3.11+")
def test_every_package_folder_is_in_the_wheel():
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "lcnas").rglob("__init__.py")}
    assert found <= listed, f"packages missing from pyproject.toml: {sorted(found - listed)}"
    assert {"lcnas.search_spaces", "lcnas.latency_models"} <= listed


def test_optional_import_names_the_extra():
    with pytest.raises(ImportError, match=r"pip install 'lcnas\[optuna\]'"):
        import_optional("surely_not_installed_module_xyz", extra="optuna")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="tomllib is 3.11+")
def test_non_python_sources_travel_in_the_wheel():
    # the native kernel is compiled from its .cpp at first use on the user's machine
    import tomllib

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert "py.typed" in data.get("lcnas", []) and (ROOT / "lcnas" / "py.typed").is_file()  # PEP 561: typed package
    for path in (ROOT / "lcnas").rglob("*.cpp"):
        package = ".".join(path.parent.relative_to(ROOT).parts)
        assert any(path.match(pattern) for pattern in data.get(package, [])), f"{path.name} is not in {package}'s package-data"

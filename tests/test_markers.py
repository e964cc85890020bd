"""The slow/backends marking rules of tests/conftest.py: they name tests that exist and mark what they say."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import _SLOW_MODULES, _SLOW_TESTS, markers_for

TESTS = Path(__file__).resolve().parent


def _test_functions(module: str) -> set[str]:
    tree = ast.parse((TESTS / module).read_text())
    return {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}


def test_every_named_slow_test_exists():
    """A renamed test would silently fall back into the fast core: the rules must name real tests."""
    for module in _SLOW_MODULES:
        assert (TESTS / module).is_file(), module
    for module, names in _SLOW_TESTS.items():
        missing = set(names) - _test_functions(module)
        assert not missing, f"tests/conftest.py marks tests that {module} does not define: {sorted(missing)}"


def test_rules_mark_backends_large_backbones_and_named_tests():
    assert markers_for("search_tests/test_backends.py", "test_ray_two_node_cluster_runs_trials_on_both_nodes_and_restores") == {"backends"}
    assert markers_for("search_tests/test_plugin.py", "test_nni_docs_trial_runs_standalone") == {"backends"}
    assert markers_for("search_tests/test_search.py", "test_pareto_front_of_a_known_set") == set()
    assert markers_for("search_tests/test_faults.py", "test_x", ("postgres_url",)) == {"backends"}
    assert markers_for("models_tests/test_dynamic.py", "test_hard[1-native-resnet50-64-lc]") == {"slow"}
    assert markers_for("models_tests/test_dynamic.py", "test_hard[1-native-resnet20-32-lc]") == set()
    assert markers_for("train_tests/test_loop.py", "test_training_learns_and_writes_checkpoints_and_metrics") == {"slow"}
    assert markers_for("train_tests/test_proxy.py", "test_anything") == {"slow"}

from __future__ import annotations

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch

SHARED_CIFAR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "cifar10"
TESTS = Path(__file__).resolve().parent

# Markers (registered in pyproject.toml) that leave the fast core, `pytest -m "not slow and not backends"`,
# under a minute on two cores. Measured with `pytest --durations=0`; a test module of one area may set
# `pytestmark` itself, these rules mark the others by module and test name.
#
# backends: runs or imports Ray or NNI, or starts a PostgreSQL server (named so, or using the postgres_url fixture).
_BACKEND_MODULES = ("search_tests/test_backends.py", "search_tests/test_engine_faults.py", "search_tests/test_faults.py",
                    "search_tests/test_plugin.py", "search_tests/test_search.py", "search_tests/test_translate.py")
_BACKEND_NAME = re.compile(r"(^|_)(ray|nni|postgresql)(_|$)")
# slow: a parametrized case on a large backbone (the ResNet-20 cases of the same test stay in the core) ...
_LARGE_BACKBONE = re.compile(r"\bresnet(18|34|50|56|110)\b")
# ... whole modules, and single tests of a second or more (training loops, studies, subprocess CLIs).
_SLOW_MODULES = ("train_tests/test_proxy.py",)
_SLOW_TESTS = {
    "cli_tests/test_cli.py": ("test_profile_writes_a_table_and_never_silently_overwrites", "test_train_then_evaluate_json",
                              "test_latency_predicts_and_measures_a_gated_checkpoint_at_the_tables_threads",
                              "test_a_training_split_smaller_than_one_batch_is_a_clear_error"),
    "data_tests/test_cifar.py": ("test_real_cifar10_matches_published_reference",),
    "data_tests/test_imagenet.py": ("test_train_resnet18_on_an_image_folder",),
    "latency_tests/test_table.py": ("test_generator_covers_every_unit", "test_profile_calibrate_only_refits_the_calibration_and_keeps_the_entries"),
    "models_tests/test_native.py": ("test_built_once_into_the_cache",),
    "search_tests/test_faults.py": ("test_kill_9_then_immediate_rerun_finishes_the_exact_count_with_nothing_left_running",
                                    "test_a_slot_held_by_a_live_worker_is_not_run_twice", "test_changed_sampler_on_an_existing_study_is_refused",
                                    "test_study_names_its_objectives_for_the_dashboard"),
    "search_tests/test_pick.py": ("test_cli_retrain_trains_the_pick_and_records_it",),
    "search_tests/test_plugin.py": ("test_optuna_docs_example_runs_a_two_objective_study", "test_optuna_objective_single_objective_prunes_through_the_study_pruner",
                                    "test_optuna_objective_budgets_are_constraints_and_results_convert"),
    "search_tests/test_search.py": ("test_sigkill_mid_study_then_resume_keeps_completed_trials", "test_optuna_study_runs_writes_results_and_refuses_other_settings",
                                    "test_malformed_space_fails_before_anything_starts", "test_budgets_are_constraints",
                                    "test_resumed_seeded_study_does_not_replay_its_first_trials", "test_failing_and_nan_trials_are_marked_failed_and_the_study_goes_on",
                                    "test_stratified_start_up_tries_every_categorical_choice", "test_optuna_dashboard_opens_the_study",
                                    "test_trial_with_the_shipped_latency_table_reports_predicted_latency",
                                    "test_run_trial_reports_each_epoch_and_writes_its_result"),
    "train_tests/test_lcnet.py": ("test_lcnet_training_from_a_static_checkpoint", "test_static_distillation_adds_the_weighted_kl_term",
                                  "test_init_from_a_gated_checkpoint_continues_with_its_gates", "test_init_from_another_model_is_refused"),
    "train_tests/test_loop.py": ("test_training_learns_and_writes_checkpoints_and_metrics", "test_resumed_run_continues_exactly_where_it_stopped",
                                 "test_resume_with_changed_config_is_refused", "test_existing_run_is_never_overwritten",
                                 "test_resume_accepts_a_checkpoint_whose_config_has_null_groups_and_lacks_newer_settings"),
}


def markers_for(module: str, name: str, fixtures: tuple[str, ...] = ()) -> set[str]:
    """The markers the rules above give test ``name`` (with its parametrize id) of ``module``
    (a path relative to ``tests/``) that uses ``fixtures``."""
    function = name.split("[", 1)[0]
    marks = set()
    if (module in _BACKEND_MODULES and _BACKEND_NAME.search(function.removeprefix("test_"))) or "postgres_url" in fixtures:
        marks.add("backends")
    if module in _SLOW_MODULES or function in _SLOW_TESTS.get(module, ()) or ("[" in name and _LARGE_BACKBONE.search(name)):
        marks.add("slow")
    return marks


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark slow and backend tests by the rules above (``pytest -m "not slow and not backends"``: the fast core)."""
    for item in items:
        try:
            module = Path(str(item.path)).resolve().relative_to(TESTS).as_posix()
        except ValueError:
            continue
        for mark in sorted(markers_for(module, item.name, tuple(getattr(item, "fixturenames", ())))):
            item.add_marker(getattr(pytest.mark, mark))


@pytest.fixture(autouse=True)
def _few_threads():
    # Tests share 2 cores with whatever else runs; 1 thread also makes CPU kernels deterministic.
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(prev)


def write_cifar_tree(root: Path, *, per_class: int = 2, seed: int = 0) -> Path:
    """A tiny balanced cifar-10-batches-py tree: 5 train batches and a test batch."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in names:
        labels = np.repeat(np.arange(10), per_class)
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels.tolist(),
            b"data": rng.integers(0, 256, (labels.size, 3072), dtype=np.uint8),
            b"filenames": [f"{i}.png".encode() for i in range(labels.size)],
        }
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": [b"x"] * 10}))
    return folder


@pytest.fixture
def cifar_tree(tmp_path: Path) -> Path:
    write_cifar_tree(tmp_path)
    return tmp_path

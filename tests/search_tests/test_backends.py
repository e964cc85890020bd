"""Ray Tune (on a two-node local cluster) and NNI backends, end to end on synthetic data."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from lcnas.search import load_results, search


def test_ray_two_node_cluster_runs_trials_on_both_nodes_and_restores(tiny_settings):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        ray.init(address=cluster.address)
        results = search(tiny_settings, backend="ray", n_trials=4, seed=0, cpus_per_trial=1, concurrency=2, progress=False)
        done = [t for t in results.trials if t.state in ("complete", "pruned")]
        assert len(results.trials) == 4 and len(done) == 4, [t.error for t in results.trials]
        nodes = {t.worker.split("@")[-1] for t in done}
        assert len(nodes) == 2, f"trials ran on {nodes}, expected both nodes"
        assert all(0 <= t.accuracy <= 100 and t.mflops_mean > 0 for t in done)
        assert load_results(tiny_settings.out_dir).backend == "ray"
        # an interrupted (here: finished) run is restored, not rerun: same trials come back
        again = search(tiny_settings, backend="ray", n_trials=4, resume=True, progress=False, write=False)
        assert sorted(t.number for t in again.trials) == sorted(t.number for t in results.trials)
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_ray_refuses_to_overwrite_a_previous_run(tiny_settings):
    from lcnas.errors import ConfigError

    pytest.importorskip("ray")
    path = Path(tiny_settings.out_dir) / "ray" / "lcnas"
    path.mkdir(parents=True)
    (path / "something").write_text("x")
    with pytest.raises(ConfigError, match="--resume"):
        search(tiny_settings, backend="ray", n_trials=1, progress=False)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_nni_experiment_runs_the_same_objective(tiny_settings):
    pytest.importorskip("nni")
    with pytest.warns(UserWarning, match="all network interfaces"):
        results = search(tiny_settings, backend="nni", n_trials=2, port=_free_port(), seed=0, progress=False, poll_s=1.0)
    assert len(results.trials) == 2, "NNI should have run two trials"
    assert all(t.state == "complete" for t in results.trials), [t.error for t in results.trials]
    assert {t.number for t in results.trials} == {0, 1}
    assert all(tiny_settings.space.check(t.params) for t in results.trials)
    assert (Path(tiny_settings.out_dir) / "pareto.json").exists()

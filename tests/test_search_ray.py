"""The Ray backend on a real local Ray cluster: same answer as the local process pool at the same
worker count, and no evaluation lost when a worker process is killed mid-run."""
from __future__ import annotations

import functools
import sys

import pytest

from test_search import killing_scorer, rows, slot_archs
from vkdnw_fast.search import Job, PoolBackend, RayBackend, SearchConfig, run_search

ray = pytest.importorskip("ray", reason="the ray backend needs the 'ray' package (pip install ray)")

NB201 = {"name": "nb201", "dataset": "cifar10", "subset": "all"}
PROXIES = ("flops", "params", "jacov")
CONFIG = SearchConfig(space=NB201, proxies=PROXIES, iterations=8, population=4, seed=2, workers=2)


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    # Ray's workers cannot import this test directory: ship the test scorers by value.
    ray.cloudpickle.register_pickle_by_value(sys.modules["test_search"])
    yield
    ray.cloudpickle.unregister_pickle_by_value(sys.modules["test_search"])
    ray.shutdown()


@pytest.fixture(scope="module")
def ray_run(cluster, tmp_path_factory):
    out = tmp_path_factory.mktemp("ray")
    backend = RayBackend(Job(CONFIG.space, CONFIG.proxies, (CONFIG.preset,), CONFIG.seed))
    try:
        assert backend.workers == backend.slots == 2  # one per CPU slot of the cluster
        result = run_search(CONFIG, out, backend=backend, progress=False)
    finally:
        backend.close()
    return out, result


def test_ray_and_local_pool_find_the_same(ray_run, tmp_path):
    ray_out, ray_result = ray_run
    backend = PoolBackend(Job(CONFIG.space, CONFIG.proxies, (CONFIG.preset,), CONFIG.seed), 2)
    try:
        local = run_search(CONFIG, tmp_path, backend=backend, progress=False)
    finally:
        backend.close()
    assert slot_archs(ray_out) == slot_archs(tmp_path)
    ray_values = [(r["slot"], r["values_json"]) for r in rows(ray_out, "status = 'evaluated'")]
    assert ray_values == [(r["slot"], r["values_json"]) for r in rows(tmp_path, "status = 'evaluated'")]
    assert (ray_result.best_arch, ray_result.population) == (local.best_arch, local.population)
    assert len(ray_values) == 8


def test_killed_ray_worker_loses_no_evaluation(ray_run, tmp_path):
    ray_out, undisturbed = ray_run
    target = slot_archs(ray_out)[3]
    marker = tmp_path / "marker"
    marker.mkdir()
    scorer = functools.partial(killing_scorer, str(marker), target)
    backend = RayBackend(Job(CONFIG.space, CONFIG.proxies, (CONFIG.preset,), CONFIG.seed, None, scorer))
    try:
        result = run_search(CONFIG, tmp_path / "run", backend=backend, progress=False)
    finally:
        backend.close()
    assert (marker / "killed").exists()  # the worker scoring the target did die
    scored = (marker / "scored.log").read_text().split()
    assert sorted(scored) == sorted(slot_archs(ray_out))  # every candidate scored exactly once
    assert [r["status"] for r in rows(tmp_path / "run", "slot IS NOT NULL")] == ["evaluated"] * 8
    assert slot_archs(tmp_path / "run") == slot_archs(ray_out)
    assert (result.best_arch, result.population) == (undisturbed.best_arch, undisturbed.population)

"""The Ray backend on a real local Ray cluster: same answer as the local process pool at the same
worker count, no evaluation lost when a worker process is killed mid-run, and a candidate whose worker
died scored again by the engine's leanest plans."""
from __future__ import annotations

import functools
import sys

import numpy as np
import pytest

from test_search import killing_scorer, memory_killing_scorer, rows, slot_archs
from vkdnw_fast.backends import MAX_ATTEMPTS, score_all
from vkdnw_fast.scoring import score_architecture
from vkdnw_fast.search import Job, PoolBackend, RayBackend, SearchConfig, run_search
from vkdnw_fast.spaces import nb201

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
    assert {r["arch"]: r["attempts"] for r in rows(tmp_path / "run", "slot IS NOT NULL")} == \
        {arch: 2 if arch == target else 1 for arch in slot_archs(ray_out)}
    assert slot_archs(tmp_path / "run") == slot_archs(ray_out)
    assert (result.best_arch, result.population) == (undisturbed.best_arch, undisturbed.population)


@pytest.mark.parametrize("deaths", [MAX_ATTEMPTS - 1, MAX_ATTEMPTS])
def test_a_ray_task_whose_worker_died_is_scored_again_by_the_leanest_plan(cluster, tmp_path, deaths):
    """Ray says whose worker died: that candidate's next attempts run under engine.least_memory_plans (rows where
    auto takes features on NB201's CIFAR-100 cell), giving the same VKDNW to rounding; the other candidate keeps
    auto's plan; MAX_ATTEMPTS deaths fail it."""
    space = {"name": "nb201", "dataset": "cifar100", "subset": "all"}
    rng = np.random.default_rng(2)
    archs = list(dict.fromkeys(nb201.NB201Space().sample(rng) for _ in range(2)))
    job = Job(space, ("vkdnw",), ("paper",), 0, None,
              functools.partial(memory_killing_scorer, str(tmp_path), archs[0], deaths),
              record_engine_runs=True, batch_size=16)
    records = {}
    score_all([(arch, 0) for arch in archs], lambda seed: job, lambda arch, seed, record: records.update({arch: record}),
              kind="ray", progress=False)
    assert (tmp_path / "killed").read_text() == "x" * deaths
    retried, other = records[archs[0]], records[archs[1]]
    assert "least_memory" not in other and other["engine"]["paper"]["plan"] == "features"
    if deaths == MAX_ATTEMPTS:
        assert "values" not in retried
        assert retried["error"].startswith(f"the worker process died on each of {MAX_ATTEMPTS} attempts (WorkerCrashedError")
        return
    assert retried["least_memory"] is True and retried["engine"]["paper"]["plan"] == "rows"
    direct = score_architecture(nb201.NB201Space(dataset="cifar100"), archs[0], ("vkdnw",), presets=("paper",),
                                batch_size=16)
    assert retried["values"]["vkdnw"] == pytest.approx(direct["vkdnw"], abs=1e-7)

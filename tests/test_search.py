"""The evolutionary search driver: the algorithm against a sequential reference implementation,
determinism, crash and resume, rejected / failed candidates, configuration clashes, the process-pool
backend and the command line."""
from __future__ import annotations

import csv
import functools
import hashlib
import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from vkdnw_fast import backends, benchmarks
from vkdnw_fast.scoring import score_architecture
from vkdnw_fast.search import InProcessBackend, Job, PoolBackend, SearchConfig, SearchError, run_search
from vkdnw_fast.search.cli import main, parse_count
from vkdnw_fast.spaces import mbv2, nb201
from vkdnw_fast.spaces.mbv2 import MBV2Space
from vkdnw_fast.spaces.nb201 import NB201Space

ROOT = Path(__file__).resolve().parents[1]
NB201 = {"name": "nb201", "dataset": "cifar10", "subset": "all"}
MBV2_32 = {"name": "mbv2", "resolution": 32, "num_classes": 10, "flops_budget": 6e6, "max_layers": 14,
           "flops_count": "macs"}
FAKE_PROXIES = ("flops", "params", "naswot")


# ------------------------------------------------------------------ scorers


def _hash01(*parts) -> float:
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") / 2.0 ** 64


def fake_scorer(space, arch, proxies, presets=("paper",), seed=0, device=None):
    """Instant stand-in for score_architecture: exact size figures plus a seeded hash as 'naswot'
    (so that scores tie the way real flops/params do, and differ everywhere else)."""
    cost = space.cost(arch)
    table = {"flops": cost["flops"], "params": cost["params"], "naswot": _hash01(seed, arch, "naswot")}
    return {p: table[p] for p in proxies}


def kill_once(marker_dir, target, arch, times=1) -> None:
    """Kill this process the first ``times`` times ``target`` comes (each death an ``x`` in ``killed`` in
    ``marker_dir``)."""
    marker = Path(marker_dir) / "killed"
    if arch == target and len(marker.read_text() if marker.exists() else "") < times:
        with open(marker, "a") as log:
            log.write("x")
        os._exit(1)


def killing_scorer(marker_dir, target, space, arch, proxies, presets=("paper",), seed=0, device=None):
    """score_architecture, except that the first time it sees ``target`` it kills its own process;
    every completed scoring is logged to ``scored.log``."""
    kill_once(marker_dir, target, arch)
    values = score_architecture(space, arch, proxies, presets=presets, seed=seed, device=device)
    with open(Path(marker_dir) / "scored.log", "a") as log:
        log.write(arch + "\n")
    return values


def always_killing_scorer(target, space, arch, proxies, presets=("paper",), seed=0, device=None):
    if arch == target:
        os._exit(1)
    return fake_scorer(space, arch, proxies, presets, seed, device)


def sleeping_scorer(seconds, space, arch, proxies, presets=("paper",), seed=0, device=None):
    """fake_scorer after ``seconds[arch]`` seconds."""
    time.sleep(seconds.get(arch, 0.0))
    return fake_scorer(space, arch, proxies, presets, seed, device)


def timed_scorer(log_dir, space, arch, proxies, presets=("paper",), seed=0, device=None):
    """fake_scorer after 1.5 s, writing when it began and ended to ``log_dir/<arch>``."""
    began = time.time()
    time.sleep(1.5)
    (Path(log_dir) / arch.replace("|", "_")).write_text(f"{began} {time.time()}")
    return fake_scorer(space, arch, proxies, presets, seed, device)


class Interrupting:
    """fake_scorer that raises KeyboardInterrupt (not an Exception, so not a candidate failure: the
    run itself dies, as under Ctrl-C) on its ``after``-th call."""

    def __init__(self, after: int):
        self.after, self.calls = after, 0

    def __call__(self, *args, **kwargs):
        self.calls += 1
        if self.calls == self.after:
            raise KeyboardInterrupt
        return fake_scorer(*args, **kwargs)


class Counting:
    def __init__(self, scorer=fake_scorer):
        self.scorer, self.archs = scorer, []

    def __call__(self, space, arch, *args, **kwargs):
        self.archs.append(arch)
        return self.scorer(space, arch, *args, **kwargs)


# ------------------------------------------------------------------ the sequential reference


def naive_aggregate(vectors: list[np.ndarray]) -> list[float]:
    """docs/method.md eq. 15 by counting: rank = #smaller + (#equal + 1) / 2, summed log over proxies."""
    table = np.array(vectors)
    total = np.zeros(len(table))
    for column in table.T:
        ranks = np.array([np.sum(column < v) + (np.sum(column == v) + 1) / 2 for v in column])
        total = total + np.log(ranks)
    return list(total)


def reference_search(space, seed, workers, iterations, size, proxies, score):
    """The search as specified, sequentially: slot i is proposed after slots < i - W are
    integrated (slots 0..W at once), results are integrated in slot order. ``score(arch)`` is
    {proxy: value} or None for a failed candidate. Returns (arch per slot, final population as
    [(slot, arch)] in joining order, best (slot, arch))."""
    rng = np.random.default_rng(seed)
    initial = mbv2.initial_arch() if isinstance(space, MBV2Space) else space.sample(rng)
    slots: list[str] = []
    population: list[tuple[int, str, np.ndarray]] = []
    draws, integrated, successes = 0, 0, 0

    def propose():
        nonlocal draws
        while True:
            if draws == 0:
                arch = initial
            else:
                parent = population[rng.integers(len(population))][1] if population else initial
                if isinstance(space, MBV2Space):
                    arch = space.mutate(parent, rng, num_replaces=1 if len(population) <= 10 else 2)
                else:
                    arch = space.mutate(parent, rng)
            draws += 1
            if space.is_feasible(arch)[0] and arch not in slots:
                slots.append(arch)
                return

    while True:
        while len(slots) <= integrated + workers and successes + len(slots) - integrated < iterations:
            propose()
        if integrated == len(slots):
            break
        values = score(slots[integrated])
        if values is not None:
            successes += 1
            population.append((integrated, slots[integrated], np.array([values[p] for p in proxies])))
            if len(population) > size:
                scores = naive_aggregate([v for _, _, v in population])
                worst = max(i for i, s in enumerate(scores) if s == min(scores))
                population.pop(worst)
        integrated += 1
    scores = naive_aggregate([v for _, _, v in population])
    best = scores.index(max(scores))
    return slots, [(s, a) for s, a, _ in population], population[best][:2]


# ------------------------------------------------------------------ helpers


def config(space=NB201, iterations=40, population=6, seed=0, workers=1, proxies=FAKE_PROXIES):
    return SearchConfig(space=space, proxies=proxies, iterations=iterations, population=population, seed=seed,
                        workers=workers)


def search(cfg, out, scorer=fake_scorer, backend=None):
    if backend is None and cfg.workers > 1:
        backend = InProcessBackend(Job(cfg.space, cfg.proxies, (cfg.preset,), cfg.seed, None, scorer))
    return run_search(cfg, out, backend=backend, scorer=scorer, progress=False)


def rows(out, where="1"):
    db = sqlite3.connect(Path(out) / "search.sqlite")
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute(f"SELECT * FROM candidates WHERE {where} ORDER BY seq")]
    finally:
        db.close()


def slot_archs(out):
    return [r["arch"] for r in sorted(rows(out, "slot IS NOT NULL"), key=lambda r: r["slot"])]


def population_of(out):
    return sorted((r["slot"], r["arch"]) for r in rows(out, "in_population = 1"))


def evaluated(out):
    return [(r["slot"], r["arch"], r["values_json"]) for r in rows(out, "status = 'evaluated'")]


# ------------------------------------------------------------------ tests


def test_parse_count():
    assert parse_count("450M") == 450_000_000
    assert parse_count("1.2G") == 1_200_000_000
    assert parse_count("100k") == 100_000
    assert parse_count("5e6") == 5_000_000
    assert parse_count("1000") == 1000
    for bad in ("12X", "", "1.5", "M", "-3"):
        with pytest.raises(ValueError):
            parse_count(bad)


# flops and params alone tie often in NB201 (the same ops on other edges), so the tie rules matter.
@pytest.mark.parametrize("workers,proxies", [(1, FAKE_PROXIES), (3, FAKE_PROXIES), (2, ("flops", "params"))])
def test_matches_sequential_reference(tmp_path, workers, proxies):
    cfg = config(workers=workers, proxies=proxies)
    result = search(cfg, tmp_path)
    space = NB201Space("cifar10")
    slots, population, best = reference_search(space, 0, workers, 40, 6, proxies,
                                               lambda arch: fake_scorer(space, arch, proxies))
    assert slot_archs(tmp_path) == slots
    assert population_of(tmp_path) == sorted(population)
    assert (result.best_slot, result.best_arch) == best
    assert result.counts["evaluated"] == 40
    assert len(result.population) == 6
    # The candidates whose mutation drew an architecture already proposed are on record, unscored.
    for row in rows(tmp_path, "status = 'duplicate'"):
        assert row["arch"] in slots and row["slot"] is None and row["values_json"] is None


def test_answer_depends_on_seed_and_workers_only(tmp_path):
    first = search(config(seed=3), tmp_path / "a")
    again = search(config(seed=3), tmp_path / "b")
    other_seed = search(config(seed=4), tmp_path / "c")
    assert evaluated(tmp_path / "a") == evaluated(tmp_path / "b")
    assert first.best_arch == again.best_arch and first.population == again.population
    assert slot_archs(tmp_path / "a") != slot_archs(tmp_path / "c")
    assert other_seed.counts["evaluated"] == 40


@pytest.mark.parametrize("proxies", [FAKE_PROXIES, ("flops", "params")])
def test_population_is_the_top_by_aggregated_rank(tmp_path, proxies):
    """Re-derive every drop and every best from the stored scores alone, by brute force."""
    size = 5
    search(config(iterations=30, population=size, proxies=proxies), tmp_path)
    history = rows(tmp_path, "status = 'evaluated'")
    members: list[tuple[int, np.ndarray]] = []
    for row in sorted(history, key=lambda r: r["slot"]):
        values = json.loads(row["values_json"])
        members.append((row["slot"], np.array([values[p] for p in proxies])))
        if len(members) > size:
            scores = naive_aggregate([v for _, v in members])
            members.pop(max(i for i, s in enumerate(scores) if s == min(scores)))
        scores = naive_aggregate([v for _, v in members])
        assert row["population_size"] == len(members) <= size
        assert row["best_slot"] == members[scores.index(max(scores))][0]
        assert row["best_aggregate"] == pytest.approx(max(scores), rel=1e-12)
        assert row["best_normalised"] == pytest.approx(max(scores) - len(proxies) * math.log(len(members)), abs=1e-12)
    arch_of = {r["slot"]: r["arch"] for r in history}
    assert len(members) == size
    assert population_of(tmp_path) == sorted((s, arch_of[s]) for s, _ in members)


@pytest.mark.parametrize("workers,crash_at", [(1, 1), (1, 9), (1, 27), (3, 2), (3, 14)])
def test_resume_after_crash_equals_uninterrupted(tmp_path, workers, crash_at):
    cfg = config(workers=workers, iterations=30)
    reference = search(cfg, tmp_path / "whole")
    with pytest.raises(KeyboardInterrupt):
        search(cfg, tmp_path / "crashed", scorer=Interrupting(crash_at))
    stored = evaluated(tmp_path / "crashed")
    assert len(stored) == crash_at - 1
    assert not (tmp_path / "crashed" / "best.txt").exists()
    counting = Counting()
    resumed = search(cfg, tmp_path / "crashed", scorer=counting)
    assert evaluated(tmp_path / "crashed") == evaluated(tmp_path / "whole")
    assert (resumed.best_arch, resumed.population) == (reference.best_arch, reference.population)
    # Nothing scored before the crash was scored again.
    assert not set(counting.archs) & {arch for _, arch, _ in stored}
    assert len(counting.archs) == 30 - len(stored)


def test_infeasible_candidates_are_recorded_and_not_counted(tmp_path):
    space = dict(MBV2_32, flops_budget=4e6, max_layers=8)
    result = search(config(space=space, iterations=25, population=8), tmp_path)
    rejected = rows(tmp_path, "status = 'rejected'")
    assert len(rejected) > 0
    for row in rejected:
        flops, layers = mbv2.flops(row["arch"], 32, 10), mbv2.num_layers(row["arch"])
        assert flops > 4e6 or layers > 8
        assert ("> budget" in row["reason"]) == (flops > 4e6)
        assert ("> max_layers" in row["reason"]) == (layers > 8)
        assert row["slot"] is None and row["values_json"] is None
    scored = rows(tmp_path, "status = 'evaluated'")
    assert [r["iteration"] for r in scored] == list(range(1, 26)) == [r["slot"] + 1 for r in scored]
    assert all(mbv2.flops(r["arch"], 32, 10) <= 4e6 and mbv2.num_layers(r["arch"]) <= 8 for r in scored)
    assert result.counts["evaluated"] == 25 and result.counts["rejected"] == len(rejected)


def failing_scorer(space, arch, proxies, presets=("paper",), seed=0, device=None):
    if nb201.parse(arch)[0] == "avg_pool_3x3":
        raise ValueError(f"refusing {arch}")
    values = fake_scorer(space, arch, proxies, seed=seed)
    if nb201.parse(arch)[0] == "none":
        values["naswot"] = float("nan")
    return values


def test_failed_candidates_are_recorded_with_their_reason(tmp_path):
    result = search(config(iterations=30), tmp_path, scorer=failing_scorer)
    failed = rows(tmp_path, "status = 'failed'")
    assert {nb201.parse(r["arch"])[0] for r in failed} == {"avg_pool_3x3", "none"}
    for row in failed:
        expected = (f"ValueError: refusing {row['arch']}" if nb201.parse(row["arch"])[0] == "avg_pool_3x3"
                    else "the scorer returned NaN for ['naswot']")
        assert row["reason"] == expected
        assert row["iteration"] is None and row["in_population"] == 0 and row["integrated"] == 1
    scored = rows(tmp_path, "status = 'evaluated'")
    assert len(scored) == 30 and [r["iteration"] for r in scored] == list(range(1, 31))
    assert all(nb201.parse(a)[0] not in ("avg_pool_3x3", "none") for a in result.population)


def test_configuration_mismatch_names_the_field(tmp_path):
    search(config(iterations=5), tmp_path)
    with pytest.raises(SearchError, match=r"population \(stored 6, requested 7\)"):
        search(config(iterations=5, population=7), tmp_path)
    with pytest.raises(SearchError, match=r"space\.dataset \(stored 'cifar10', requested 'cifar100'\)"):
        search(config(space=dict(NB201, dataset="cifar100"), iterations=5), tmp_path)
    with pytest.raises(SearchError, match=r"workers \(stored 1, requested 2\)"):
        search(config(iterations=5, workers=2), tmp_path)


def test_a_record_from_before_the_algorithm_field_resumes(tmp_path):
    cfg = config(iterations=5)
    first = search(cfg, tmp_path)
    db = sqlite3.connect(tmp_path / "search.sqlite")
    stored = json.loads(db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0])
    del stored["algorithm"]  # as the code before search algorithms wrote it
    db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(stored, sort_keys=True),))
    db.commit()
    db.close()
    counting = Counting()
    again = search(cfg, tmp_path, scorer=counting)
    assert counting.archs == [] and (again.best_arch, again.population) == (first.best_arch, first.population)


def test_unknown_algorithm_is_named():
    with pytest.raises(ValueError, match=r"unknown search algorithm 'annealing'; search algorithms are \['area', 'evolution', 'naswot', 'random', 'rea'\]"):
        SearchConfig(space=NB201, proxies=FAKE_PROXIES, iterations=5, algorithm="annealing")


def test_outputs(tmp_path):
    result = search(config(iterations=12, population=4), tmp_path)
    space = NB201Space("cifar10")
    lines = (tmp_path / "best.txt").read_text().splitlines()
    assert lines[0] == result.best_arch
    assert lines[1] == f"flops {nb201.flops(result.best_arch, 'cifar10'):.0f}"
    assert lines[2] == f"params {nb201.params(result.best_arch, 'cifar10')}"
    with open(tmp_path / "history.csv") as f:
        history = list(csv.DictReader(f))
    assert [int(r["iteration"]) for r in history] == list(range(1, 13))
    for r in history:
        assert float(r["naswot"]) == fake_scorer(space, r["arch"], ["naswot"])["naswot"]
    assert history[-1]["best_arch"] == result.best_arch
    assert (tmp_path / "best_score.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_pool_backend_with_two_workers_matches_reference(tmp_path):
    cfg = config(space=MBV2_32, iterations=12, population=5, workers=2)
    backend = PoolBackend(Job(cfg.space, cfg.proxies, (cfg.preset,), cfg.seed), 2)
    try:
        result = run_search(cfg, tmp_path, backend=backend, progress=False)
    finally:
        backend.close()
    values = {arch: json.loads(v) for _, arch, v in evaluated(tmp_path)}
    pids = {r["worker"].split(":")[1] for r in rows(tmp_path, "status = 'evaluated'")}
    assert str(os.getpid()) not in pids  # scored in the pool's processes
    slots, population, best = reference_search(MBV2Space(32, 10, 6e6, 14), 0, 2, 12, 5, FAKE_PROXIES, values.__getitem__)
    assert slot_archs(tmp_path) == slots and population_of(tmp_path) == sorted(population)
    assert (result.best_slot, result.best_arch) == best
    # The real scorer ran: its flops is the exact MAC count of the space.
    assert all(v["flops"] == mbv2.flops(a, 32, 10) for a, v in values.items())
    # In-process scoring (one torch thread, like the workers) gives the same bits.
    in_process = search(cfg, tmp_path / "in_process", scorer=score_architecture)
    assert evaluated(tmp_path / "in_process") == evaluated(tmp_path)
    assert in_process.best_arch == result.best_arch


def test_pool_worker_killed_mid_run_loses_no_evaluation(tmp_path):
    cfg = config(space=MBV2_32, iterations=10, population=5, workers=2)
    undisturbed = search(cfg, tmp_path / "undisturbed", scorer=score_architecture,
                         backend=InProcessBackend(Job(cfg.space, cfg.proxies, (cfg.preset,), cfg.seed)))
    target = slot_archs(tmp_path / "undisturbed")[4]
    marker = tmp_path / "marker"
    marker.mkdir()
    scorer = functools.partial(killing_scorer, str(marker), target)
    backend = PoolBackend(Job(cfg.space, cfg.proxies, (cfg.preset,), cfg.seed, None, scorer), 2)
    try:
        result = run_search(cfg, tmp_path / "killed", backend=backend, progress=False)
    finally:
        backend.close()
    assert (marker / "killed").exists()
    scored = (marker / "scored.log").read_text().split()
    # Every candidate scored; the one the other worker was finishing when the pool broke may have
    # logged its score and still lost its result with the pool, so it is re-run (at most workers - 1).
    assert set(scored) == set(slot_archs(tmp_path / "undisturbed"))
    assert len(scored) - len(set(scored)) <= cfg.workers - 1
    assert slot_archs(tmp_path / "killed") == slot_archs(tmp_path / "undisturbed")
    assert (result.best_arch, result.population) == (undisturbed.best_arch, undisturbed.population)
    assert len(rows(tmp_path / "killed", "status = 'evaluated'")) == 10


def test_a_candidate_submitted_after_a_worker_died_waits_for_the_rebuilt_pool():
    """A worker may die between two waits (the other's candidate finished first): the executor then refuses work at
    once. The candidate stays queued, and is scored once the pool is whole, not lost nor the executor's error
    handed to the search (seen on a loaded machine in the killed-worker test above)."""
    import concurrent.futures as cf

    arch = nb201.NB201Space().sample(np.random.default_rng(5))
    pool = PoolBackend(Job(NB201, FAKE_PROXIES, ("paper",), 0, None, fake_scorer), 2)
    executor = pool._pool

    def refuse(*args, **kwargs):
        raise cf.process.BrokenProcessPool("A child process terminated abruptly")
    try:
        pool._pool = SimpleNamespace(submit=refuse, _processes={})
        pool.submit("k", arch)
        assert [t[2] for t in pool._waiting] == [arch] and not pool._pending
        pool._pool = executor
        pool._dispatch()
        ((key, outcome),) = pool.wait()
    finally:
        pool._pool = executor
        pool.close()
    assert key == "k" and outcome["values"] == fake_scorer(nb201.NB201Space(), arch, FAKE_PROXIES)


def test_candidate_that_always_kills_its_worker_is_failed(tmp_path):
    cfg = config(iterations=4, population=4, workers=2)
    search(cfg, tmp_path / "plain")
    target = slot_archs(tmp_path / "plain")[1]
    scorer = functools.partial(always_killing_scorer, target)
    backend = PoolBackend(Job(cfg.space, cfg.proxies, (cfg.preset,), cfg.seed, None, scorer), 2)
    try:
        result = run_search(cfg, tmp_path / "run", backend=backend, progress=False)
    finally:
        backend.close()
    (failed,) = rows(tmp_path / "run", "status = 'failed'")
    assert failed["arch"] == target and failed["attempts"] == 3
    assert failed["reason"].startswith("the worker process died on each of 3 attempts (BrokenProcessPool")
    assert result.counts["evaluated"] == 4 and target not in result.population
    # The candidates that shared the broken pools with it were re-run, not failed.
    assert [r["attempts"] for r in rows(tmp_path / "run", "status = 'evaluated'")] == [1] * 4


@pytest.mark.parametrize("interrupts", [1, 2])
def test_an_interrupted_score_all_keeps_what_the_workers_finish_unless_interrupted_again(interrupts):
    """Ctrl-C (or SIGTERM, ``terminate_as_interrupt``) stops the queue; the candidates under way in the pool's
    workers are recorded as they finish, and a second interrupt drops them and ends the workers at once."""
    from vkdnw_fast.backends import score_all

    rng = np.random.default_rng(1)
    archs = list(dict.fromkeys(nb201.NB201Space().sample(rng) for _ in range(6)))
    # The first finishes at once and is interrupted; the second is under way; the third is sent to the freed
    # worker, and takes a minute where a second interrupt is to drop it.
    seconds = {archs[0]: 0.0, archs[1]: 5.0, archs[2]: 5.0 if interrupts == 1 else 60.0, **{a: 1.0 for a in archs[3:]}}
    job = Job(NB201, FAKE_PROXIES, ("paper",), 0, None, functools.partial(sleeping_scorer, seconds))
    records = {}

    def on_result(arch, seed, record):
        records[arch] = record
        if len(records) <= interrupts:
            raise KeyboardInterrupt
    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        score_all([(a, 0) for a in archs], lambda seed: job, on_result, kind="local", workers=2, progress=False)
    assert sorted(records) == sorted(archs[:3] if interrupts == 1 else archs[:2])
    assert all(r["values"] == fake_scorer(nb201.NB201Space(), r["arch"], FAKE_PROXIES) for r in records.values())
    if interrupts == 2:
        assert time.monotonic() - started < 45  # the third was dropped, not waited for


def test_activation_bytes_are_the_leaf_outputs_of_one_sample_as_a_real_forward_has_them():
    from vkdnw_fast.backends import activation_bytes

    space = nb201.NB201Space("cifar10")
    arch = space.sample(np.random.default_rng(3))
    model, total = space.build_model(arch).train(), []
    for module in model.modules():
        if not list(module.children()):
            module.register_forward_hook(lambda m, args, out: total.append(out.numel() * out.element_size()))
    with torch.no_grad():
        model(torch.randn(1, *space.input_shape))
    assert activation_bytes(space, arch) == sum(total) > 0

    class ToNumpy(nn.Module):  # a network the meta device cannot run: no estimate, and no error
        def forward(self, x):
            return torch.from_numpy(x.numpy())
    cpu_only = SimpleNamespace(input_shape=(3, 8, 8), build_model=lambda arch: nn.Sequential(nn.Flatten(), ToNumpy()))
    assert activation_bytes(cpu_only, "a") is None


def test_the_pool_starts_a_candidate_beside_others_where_their_predicted_memory_fits(tmp_path):
    gib = 2**30
    job = Job(NB201, FAKE_PROXIES, ("paper",), 0, None, functools.partial(timed_scorer, str(tmp_path)))
    # Seen: a took 2 GiB over a 1 GiB worker for 1 GiB of activations, b 4 GiB for 2 GiB: the floor is the smaller
    # one's 2 GiB, the slope b's (4 - 2) / 2 = 1; beyond b's activations no less than 4 GiB x their ratio to b's.
    pool = PoolBackend(job, 3, memory=int(11.125 * gib), seen=[("a", 3 * gib, gib, None), ("b", 5 * gib, gib, None)])
    pool.share = lambda: pool.memory  # the machine's own memory left out (the next test takes it in)
    try:
        pool._activations.update(a=gib, b=2 * gib, small=gib // 4, big=4 * gib, unknown=None)
        assert pool.peak == 5 * gib and pool._calibration() == backends.Calibration(gib, 2 * gib, 1.0, 2 * gib, 4 * gib)
        # small 1 + 2 + 0.25; big 1 + max(2 + 4, 4 x 4 / 2); unknown: the largest peak
        assert (pool.need("small"), pool.need("big"), pool.need("unknown")) == (13 * gib // 4, 9 * gib, 5 * gib)
        # A base is what a worker holds: once this pool's own c reports 0.25 GiB workers, the resumed records'
        # 1 GiB no longer counts; their floor and slope still do.
        pool._activations["c"] = gib
        pool.seen.append(("c", gib // 4 + 2 * gib, gib // 4, None))
        assert pool.need("small") == gib // 4 + 2 * gib + gib // 4
        # Once 16 of its own have (2 x CALIBRATION), enough for a floor and a slope, they alone count: the records
        # may come from an earlier version of the scoring code. Its own took 3 GiB for 1 GiB of activations, c 2:
        # the 8 smallest set the floor at 3 GiB; with 15 of its own, b's (4 - 3) / 2 sets the slope, with 16 none.
        for i in range(15):
            pool._activations[f"own{i}"] = gib
            pool.seen.append((f"own{i}", gib // 4 + 3 * gib, gib // 4, None))
            if i == 13:
                assert pool._calibration() == backends.Calibration(gib // 4, 3 * gib, 0.5, 2 * gib, 4 * gib)
        assert pool._calibration() == backends.Calibration(gib // 4, 3 * gib, 0.0, gib, 3 * gib)
        assert pool.need("small") == gib // 4 + 3 * gib
        del pool.seen[-16:]
        running = {}
        pool._pending = running
        # Alone: always; on the whole batch where that leaves the two other workers their 3.71 GiB, else on the
        # largest chunk that does (a: 4 GiB on the whole batch, 1 + 2 + 5/8 = 3.625 on half), else an eighth (big:
        # not even there, 1 + 2 + 4 x 11/32 = 4.375 GiB).
        assert (pool.placement("small"), pool.placement("a"), pool.placement("big")) == (64, 32, 8)
        running[1] = ("k1", job, "a")
        assert pool.placement("big") == 64  # two of the largest peak fit
        running[2] = ("k2", job, "small")  # three do not: the predictions decide, from at least CALIBRATION records
        assert pool._calibrating() == pool.seen and len(pool.seen) == 2  # a and b: too few, all wait
        assert (pool.placement("small"), pool.placement("a"), pool.placement("big")) == (None, None, None)
        pool.CALIBRATION = 2  # the same floor and slope (the smaller of two sets the floor), now trusted
        # 4 + 3.25 + 3.25 fits in 11.125 GiB; 4 + 3.25 + 4 not, but a on half its batch does; big not even on an eighth
        assert (pool.placement("small"), pool.placement("a"), pool.placement("big")) == (64, 32, None)
        running[1] = ("k1", replace(job, sample_chunk=16), "a")  # a predicted at 1 + 2 + 7/16 GiB so
        assert (pool.placement("a"), pool.placement("big")) == (64, 8)  # 3.44 + 3.25 + 4 fits, and + 4.375
        running[3] = ("k3", job, "small")
        assert pool.placement("small") is None  # every worker busy
        pool._pending = {}
        # Scoring for real, with no memory to share: the first alone (nothing seen yet), then one at a time.
        pool.seen, pool.peak, pool.memory = [], 0, 1
        rng = np.random.default_rng(2)
        archs = list(dict.fromkeys(nb201.NB201Space().sample(rng) for _ in range(7)))
        for arch in archs:
            pool.submit(arch, arch)
        outcomes = []
        while len(outcomes) < len(archs):
            outcomes += pool.wait()
    finally:
        pool.close()
    assert all(o["ok"] and o["peak_rss"] >= o["base_rss"] > 50 * 2**20 for _, o in outcomes)  # torch loaded
    spans = {arch: tuple(map(float, (tmp_path / arch.replace("|", "_")).read_text().split())) for arch in archs}
    for late in archs:  # each ran alone
        assert all(spans[late][1] <= spans[other][0] or spans[other][1] <= spans[late][0]
                   for other in archs if other != late)


def test_a_resumed_candidate_starts_on_the_chunks_its_journal_was_computed_in_where_they_fit(tmp_path):
    """Blocks computed on other chunks differ and would be computed again: the pool of the test above, with the
    journal's notes of what score_job started each candidate on."""
    from vkdnw_fast.backends import score_job
    from vkdnw_fast.journal import cell_directory, kept_sample_chunk

    gib, root = 2**30, tmp_path / "journal"
    job = Job(NB201, ("flops",), ("paper",), 0, None, lambda space, arch, proxies, **_: {"flops": 1.0},
              journal=str(root))
    for arch, samples in (("small", 16), ("a", 64), ("big", 32), ("idle", 32)):
        assert score_job(replace(job, sample_chunk=None if samples == 64 else samples), arch)["ok"]
        assert (cell_directory(root, arch, 0) / "sample_chunk").read_text() == str(samples)
        if arch != "idle":  # a journal that kept no block says nothing
            (cell_directory(root, arch, 0) / "pass0").mkdir()
            (cell_directory(root, arch, 0) / "pass0" / "0-1.pt").write_bytes(b"")
    assert [kept_sample_chunk(cell_directory(root, arch, 0)) for arch in ("small", "a", "big", "idle")] == \
        [16, 64, 32, None]
    pool = PoolBackend(job, 3, memory=int(11.125 * gib), seen=[("a", 3 * gib, gib, None), ("b", 5 * gib, gib, None)])
    pool.share = lambda: pool.memory
    try:
        pool._activations.update(a=gib, b=2 * gib, small=gib // 4, big=4 * gib, idle=gib // 4)
        # Alone (without journals: 64, 32, 8): small on its quarter; a's whole batch, and big's half, would not
        # leave the other workers their share, so they start as any other would.
        assert [pool.placement(arch) for arch in ("small", "a", "big", "idle")] == [16, 32, 8, 64]
        pool._pending = {1: ("k1", job, "a")}
        assert (pool.placement("big"), pool.placement("idle")) == (32, 64)  # two of the largest peak fit
        pool._pending = {}
    finally:
        pool.close()


def test_a_candidate_that_does_not_fit_lets_a_few_later_ones_that_do_go_first():
    gib = 2**30
    job = Job(NB201, FAKE_PROXIES, ("paper",), 0, None, fake_scorer)
    # Seen: t took 0.5 GiB above its worker's 1 GiB for 0.25 GiB of activations, a 2 GiB for 1 GiB and b 4 for 2:
    # the floor is t's 0.5 GiB, the slope b's, 3.5 / 2 = 1.75.
    pool = PoolBackend(job, 4, memory=7 * gib,
                       seen=[("t", 3 * gib // 2, gib, None), ("a", 3 * gib, gib, None), ("b", 5 * gib, gib, None)])
    pool.share = lambda: pool.memory
    pool.CALIBRATION = 3  # the three records trusted to predict from
    smalls = [f"small{i}" for i in range(6)]
    # Needs: a 3.25 GiB, a small 1.72, big 9 (half its batch a chunk 6, a quarter 4.56, an eighth 3.91).
    pool._activations.update(t=gib // 4, a=gib, b=2 * gib, big=4 * gib, **{s: gib // 8 for s in smalls})
    sent = []

    def send(task):  # record instead of scoring
        sent.append(task[2])
        pool._pending[object()] = task
        chunks.append(task[1].sample_chunk)
        return True
    chunks = []
    pool._send = send
    try:
        pool._pending[object()] = ("k", job, "a")
        for arch in ["big", *smalls]:
            pool._waiting.append((arch, job, arch))
        pool._dispatch()
        # big does not fit beside a in 7 GiB, not even an eighth of its batch a chunk (3.25 + 3.91); 3.25 + 1.72 +
        # 1.72 fit, a third small not
        assert sent == smalls[:2]
        del pool._pending[next(k for k, t in pool._pending.items() if t[2] == "a")]
        pool._dispatch()
        assert sent == smalls[:4]  # every worker busy, big overtaken four times: the most
        for key in list(pool._pending)[:2]:
            del pool._pending[key]
        pool._dispatch()
        assert sent == smalls[:4]  # 1.72 + 1.72 + 3.91 does not fit, and no later one may go first now
        del pool._pending[next(iter(pool._pending))]
        pool._dispatch()
        # Beside one small, big fits on a quarter of its batch (1.72 + 4.56), and then no small beside both.
        assert sent == [*smalls[:4], "big"] and chunks == [None] * 4 + [16]
        assert [t[2] for t in pool._waiting] == smalls[4:]
    finally:
        pool._pending.clear()
        pool.close()


def test_a_later_candidate_backfills_where_it_is_predicted_to_end_before_the_running_one():
    """Once the waiting candidate may not be overtaken any more, a later one still starts where it fits and is
    predicted (its MACs at the pool's median seconds a MAC) to end before the running one, which the waiting one
    waits for: it delays nothing, and the worker does not idle."""
    gib = 2**30
    job = Job(NB201, FAKE_PROXIES, ("paper",), 0, None, fake_scorer)
    # A resumed run's records time candidates too, those scored in full (not a resumed one's rest, not a failed one).
    records = [{"arch": "a", "seconds": 100.0, "values": {}}, {"arch": "last", "seconds": 1.0, "values": {}},
               {"arch": "long", "seconds": 1.0, "values": {}, "resumed_blocks": 2},
               {"arch": "big", "seconds": 5.0, "error": "MemoryError"}, {"arch": "quick", "seconds": 50.0, "values": {}}]
    timed = [backends.seconds_seen(record) for record in records]
    assert timed == [("a", 100.0), ("last", 1.0), None, None, ("quick", 50.0)]
    # As above, on two workers: a needs 3.25 GiB, a small one 1.72, big 3.91 on an eighth of its batch (not beside a).
    pool = PoolBackend(job, 2, memory=7 * gib,
                       seen=[("t", 3 * gib // 2, gib, None), ("a", 3 * gib, gib, None), ("b", 5 * gib, gib, None)],
                       timed=[t for t in timed[:-1] if t])
    pool.share = lambda: pool.memory
    pool.CALIBRATION = 3  # the three records trusted to predict from
    pool._activations.update(t=gib // 4, a=gib, b=2 * gib, big=4 * gib, long=gib // 8, quick=gib // 8, last=gib // 8)
    # At a second a GMAC, a (100 GMACs), started 40 s ago, ends in 60 s; long would take 70, quick 50, last 1.
    pool._macs.update(a=100e9, big=200e9, long=70e9, quick=50e9, last=1e9)
    sent = []

    def send(task):  # record instead of scoring
        sent.append(task[2])
        pool._pending[object()] = task
        return True
    pool._send = send
    try:
        pool._pending[object()] = ("ka", job, "a")
        pool._started["ka"] = time.perf_counter() - 40.0
        for arch in ("big", "long", "quick", "last"):
            pool._waiting.append((arch, job, arch))
        pool._overtaken = pool.workers  # big has been overtaken as often as it may be
        pool._dispatch()
        assert sent == []  # too few candidates (BACKFILL_AFTER) to predict times: the worker waits with big
        pool._timed.append(timed[-1])
        pool._dispatch()
        assert sent == ["quick"] and [t[2] for t in pool._waiting] == ["big", "long", "last"]
        assert pool._overtaken == pool.workers  # big still goes next
        # This pool's own candidates are timed as the records are.
        pool._timed = []
        pool._done(("kq", job, "quick"), {"ok": True, "elapsed": 100.0})
        pool._done(("kl", job, "last"), {"ok": True, "elapsed": 1.0, "resumed_blocks": 3})
        pool._done(("kg", job, "long"), {"ok": False, "elapsed": 1.0})
        assert pool._timed == [("quick", 100.0)]
    finally:
        pool._pending.clear()
        pool.close()


def test_a_suspect_reruns_alone_on_the_chunk_a_candidate_alone_takes_where_that_is_smaller():
    """A death says a prediction failed: a TransNAS macro layout predicted at 17.2 GiB on its whole batch, started
    beside a small one, took more than the 21 GiB the pool had, and re-run alone as it was it went to 22.9. So a
    suspect runs on the chunk a candidate starting alone takes (leaving the other workers their share), never on
    a larger one than it ran on. Floor 1 GiB and slope 2 over 1 GiB workers, as in the test below: big (2 GiB of
    activations) is predicted at 7.29 GiB whole, 4.93 on half, over and under the 5 GiB a worker's share is."""
    gib = 2**30
    job = Job(NB201, FAKE_PROXIES, ("paper",), 0)
    pool = PoolBackend(job, 2, memory=10 * gib, seen=[("s", 2 * gib, gib, None), ("q", gib + int(2.75 * gib), gib, 16)])
    pool.share = lambda: pool.memory
    pool.CALIBRATION = 2  # the two records trusted to predict from
    pool._activations.update(s=gib // 4, q=2 * gib, big=2 * gib, small=gib // 4)
    sent = []

    def send(task):  # record instead of scoring
        sent.append(task)
        pool._pending[object()] = task
        return True
    pool._send = send
    try:
        suspects = [("kbig", job, "big"), ("kbig8", replace(job, sample_chunk=8), "big"),
                    ("kculprit", replace(job, least_memory=True), "big"), ("ksmall", job, "small")]
        pool._suspects.extend(suspects)
        for _ in suspects:
            pool._dispatch()
            pool._dispatch()  # one suspect at a time
            assert len(pool._pending) == 1
            pool._pending.clear()
            pool._done(sent[-1], {"ok": True, "elapsed": 1.0})  # cleared: the next suspect goes
        assert not pool._suspects
        # big on half its batch; on an eighth where it ran so; the culprit's 16 samples (least_memory) already
        # fewer than half; small as it was.
        assert [task[1] for task in sent] == [replace(job, sample_chunk=32), *(task[1] for task in suspects[1:])]
    finally:
        pool._pending.clear()
        pool.close()


def test_a_chunked_candidates_activations_count_as_their_share_of_the_whole_batchs():
    """Above a 1 GiB worker, s took 1 GiB for 0.25 GiB of activations on its batch of 64, q 2.75 GiB for 2 GiB
    on a quarter of it a chunk, where they count as 2 x 0.4375 = 0.875 (backends.chunk_share): the floor is s's
    1 GiB, the slope q's (2.75 - 1) / 0.875 = 2. A network of q's activations is predicted at what q took on a
    quarter, more on larger chunks (beyond q's 0.875, no less than 2.75 GiB grown with them), less on an eighth.
    Records say how they were scored (least_memory: 16 samples a chunk)."""
    gib = 2**30
    pool = PoolBackend(Job(NB201, FAKE_PROXIES, ("paper",), 0), 2, memory=10 * gib,
                       seen=[("s", 2 * gib, gib, None), ("q", gib + int(2.75 * gib), gib, 16)])
    try:
        pool._activations.update(s=gib // 4, q=2 * gib, big=2 * gib)
        calibration = pool._calibration()
        assert (calibration.base, calibration.floor, calibration.reach, calibration.reach_took) == (
            gib, gib, 0.875 * gib, int(2.75 * gib))
        assert calibration.slope == pytest.approx(2.0)
        assert [pool.need("big", samples=s) / gib for s in (None, 64, 32, 16, 8)] == pytest.approx(
            [1 + 2.75 * 2 / 0.875, 1 + 2.75 * 2 / 0.875, 1 + 2.75 * 1.25 / 0.875, 3.75, 1 + 1 + 2 * 0.6875], abs=1e-9)
    finally:
        pool.close()
    record = {"arch": "a", "peak_rss": 3, "base_rss": 1}
    assert [backends.memory_seen({**record, **extra}) for extra in
            ({}, {"sample_chunk": 32}, {"least_memory": True}, {"least_memory": True, "sample_chunk": 8})] == [
        ("a", 3, 1, None), ("a", 3, 1, 32), ("a", 3, 1, 16), ("a", 3, 1, 8)]


def test_the_floor_is_the_most_the_smallest_took_and_the_slope_the_largest_of_all_the_others():
    """Of 20 candidates, the CALIBRATION (8) with the smallest activations set the floor, the most any of them took
    (one took 3 GiB where the others took 1 GiB + 2 x their activations); every other one may set the slope (one
    in the middle, 5 GiB for 1 GiB of activations, does: (5 - 3) / 1, where the largest gives (5 - 3) / 2)."""
    gib = 2**30
    tooks = {i: 1 + 0.2 * i for i in range(1, 21)}
    tooks.update({3: 3.0, 10: 5.0})
    pool = PoolBackend(Job(NB201, FAKE_PROXIES, ("paper",), 0), 2, memory=10 * gib,
                       seen=[(f"n{i}", gib + int(took * gib), gib, None) for i, took in tooks.items()])
    try:
        pool._activations.update({f"n{i}": i * gib // 10 for i in tooks}, big=3 * gib)
        calibration = pool._calibration()
        assert (calibration.floor / gib, calibration.slope, calibration.reach / gib, calibration.reach_took / gib) == \
            pytest.approx((3.0, 2.0, 2.0, 5.0), abs=1e-8)
        assert pool.need("big") / gib == pytest.approx(1 + 3 + 2 * 3, abs=1e-8)  # over 5 x 3 / 2 as well
    finally:
        pool.close()


def test_a_candidate_that_fits_only_in_chunks_is_scored_so_and_its_record_says_it(tmp_path, monkeypatch):
    """Every network (1 GiB of activations) predicted at 1 + 1 + 1 = 3 GiB on its batch of 16 (two earlier records:
    1 GiB above a 1 GiB worker for 0.25 GiB of activations, 2 GiB for 1 GiB); 5.75 GiB for two workers. The first
    starts alone on half its batch a chunk, the largest predicted to leave the other worker its 2.875 GiB
    (1 + 1 + 5/8); the second beside it on the whole batch (2.625 + 3 <= 5.75). The chunked one's VKDNW is the
    whole batch's to rounding, and its record says how it was scored."""
    from vkdnw_fast.backends import score_all

    gib = 2**30
    monkeypatch.setattr(backends, "activation_bytes", lambda space, arch: gib // 4 if arch == "small" else gib)
    monkeypatch.setattr(backends, "available_memory", lambda: None)  # the 5.75 GiB given, whatever else runs here
    space = {"name": "nb201", "dataset": "cifar10", "subset": "all"}
    rng = np.random.default_rng(4)
    archs = list(dict.fromkeys(nb201.NB201Space().sample(rng) for _ in range(2)))
    job = Job(space, ("vkdnw",), ("paper",), 0, None, record_engine_runs=True, batch_size=16)
    records, seen = {}, [("small", 2 * gib, gib, None), ("earlier", 3 * gib, gib, None)]
    score_all([(arch, 0) for arch in archs], lambda seed: job, lambda arch, seed, record: records.update({arch: record}),
              kind="local", workers=2, progress=False, seen=seen, memory=int(5.75 * gib))
    first, second = records[archs[0]], records[archs[1]]
    assert first["sample_chunk"] == 8 and "sample_chunk" not in second
    for arch in archs:
        direct = score_architecture(nb201.NB201Space(), arch, ("vkdnw",), presets=("paper",), batch_size=16)
        assert records[arch]["values"]["vkdnw"] == pytest.approx(direct["vkdnw"], abs=1e-7)


def test_the_pools_share_of_memory_shrinks_when_other_processes_take_some(monkeypatch):
    """A second run started beside the pool (here: MemAvailable falling) leaves it less than its budget at
    start: a candidate that the budget admits waits where the memory available now plus what the workers
    hold does not hold the predictions (an OOM kill seen on TransNAS macro layouts before this check)."""
    gib = 2**30
    job = Job(NB201, FAKE_PROXIES, ("paper",), 0)
    pool = PoolBackend(job, 4, memory=10 * gib, seen=[("a", 3 * gib, gib, None), ("b", 5 * gib, gib, None)])
    pool.CALIBRATION = 2  # the two records trusted to predict from
    executor = pool._pool
    try:
        # needs (floor 2 GiB, slope 1): a 4 GiB; mid 5, on half its batch 4.25, a quarter 3.875, an eighth 3.69
        pool._activations.update(a=gib, b=2 * gib, mid=2 * gib)
        pool._pending = {1: ("k1", job, "a")}
        pool._pool = SimpleNamespace(_processes={101: None, 102: None})  # two workers holding 2 GiB each
        monkeypatch.setattr(backends, "resident_memory", lambda pid: 2 * gib)
        monkeypatch.setattr(backends, "available_memory", lambda: 40 * gib)
        assert pool.share() == 10 * gib and pool.placement("mid") == 64  # the budget given binds: two peaks fit
        monkeypatch.setattr(backends, "available_memory", lambda: 5 * gib)
        # 4 + 4.25 > 0.9 (5 + 2 + 2) = 8.1; 4 + 3.875, on a quarter of its batch, not
        assert pool.share() == int(0.9 * 9 * gib) and pool.placement("mid") == 16
        monkeypatch.setattr(backends, "available_memory", lambda: 3 * gib)
        assert pool.placement("mid") is None  # 4 + 3.69 > 0.9 (3 + 4) = 6.3
        pool._pending = {}
        assert pool.placement("mid") == 8  # alone: always (an eighth a chunk: none leaves the others 6.3 / 4)
        monkeypatch.setattr(backends, "available_memory", lambda: None)  # cannot tell: the budget alone
        assert pool.share() == 10 * gib
    finally:
        pool._pool, pool._pending = executor, {}
        pool.close()


def test_score_all_records_a_candidate_that_always_kills_its_worker_as_failed():
    """The evaluation's and the protocol search's path (score_all): the candidate is a failed record, with
    the seconds its attempts ran, and every other candidate is scored (the driver used to stop on it with a
    KeyError, losing the run's remaining work to a network too large for the machine's memory)."""
    from vkdnw_fast.backends import score_all

    rng = np.random.default_rng(0)
    archs = list(dict.fromkeys(nb201.NB201Space().sample(rng) for _ in range(5)))
    job = Job(NB201, FAKE_PROXIES, ("paper",), 0, None, functools.partial(always_killing_scorer, archs[2]))
    records = {}
    score_all([(arch, 0) for arch in archs], lambda seed: job, lambda arch, seed, record: records.update({arch: record}),
              kind="local", workers=2, progress=False)
    assert sorted(records) == sorted(archs)
    failed = records[archs[2]]
    assert failed["error"].startswith("the worker process died on each of 3 attempts (BrokenProcessPool")
    assert failed["seconds"] > 0 and "values" not in failed
    assert all("values" in records[a] for a in archs if a != archs[2])


def memory_killing_scorer(marker_dir, target, times, space, arch, proxies, **kwargs):
    """score_architecture, except that ``target`` kills its process on its first ``times`` attempts, as a network
    too large for the machine's memory would."""
    kill_once(marker_dir, target, arch, times)
    return score_architecture(space, arch, proxies, **kwargs)


def test_a_candidate_that_killed_its_worker_alone_is_scored_again_by_the_leanest_plan(tmp_path):
    """Its next attempt runs under engine.least_memory_plans: rows where auto takes features (NB201's CIFAR-100
    cell, K=100 against D=64), the same VKDNW to rounding; the others keep auto's plan. (Its first death, beside
    another candidate, only makes it a suspect; the second, alone, is charged.)"""
    from vkdnw_fast.backends import score_all

    space = {"name": "nb201", "dataset": "cifar100", "subset": "all"}
    rng = np.random.default_rng(2)
    archs = list(dict.fromkeys(nb201.NB201Space().sample(rng) for _ in range(2)))
    job = Job(space, ("vkdnw",), ("paper",), 0, None, functools.partial(memory_killing_scorer, str(tmp_path), archs[0], 2),
              record_engine_runs=True, batch_size=16)
    records = {}
    score_all([(arch, 0) for arch in archs], lambda seed: job, lambda arch, seed, record: records.update({arch: record}),
              kind="local", workers=2, progress=False)
    assert (tmp_path / "killed").read_text() == "xx"
    retried, other = records[archs[0]], records[archs[1]]
    assert retried["least_memory"] is True and retried["engine"]["paper"]["plan"] == "rows"
    assert "least_memory" not in other and other["engine"]["paper"]["plan"] == "features"
    direct = score_architecture(nb201.NB201Space(dataset="cifar100"), archs[0], ("vkdnw",), presets=("paper",),
                                batch_size=16)
    assert retried["values"]["vkdnw"] == pytest.approx(direct["vkdnw"], abs=1e-7)


def test_a_candidate_the_pool_ran_by_itself_is_charged_its_first_death(tmp_path):
    """Nothing ran beside it (as a network predicted to need most of the memory runs): its worker's death is its
    own, and the next attempt already takes the leanest plans."""
    from vkdnw_fast.backends import score_all

    arch = nb201.NB201Space().sample(np.random.default_rng(3))
    job = Job({"name": "nb201", "dataset": "cifar100", "subset": "all"}, ("vkdnw",), ("paper",), 0, None,
              functools.partial(memory_killing_scorer, str(tmp_path), arch, 1), record_engine_runs=True, batch_size=16)
    records = {}
    score_all([(arch, 0)], lambda seed: job, lambda arch, seed, record: records.update({arch: record}),
              kind="local", workers=2, progress=False)
    assert (tmp_path / "killed").read_text() == "x"
    assert records[arch]["least_memory"] is True and records[arch]["engine"]["paper"]["plan"] == "rows"


def timed_killing_scorer(log_dir, target, space, arch, proxies, presets=("paper",), seed=0, device=None):
    """fake_scorer taking a second, logging which process ran it; kills its process the first time it sees
    ``target``."""
    kill_once(log_dir, target, arch)
    time.sleep(1.0)  # longer than a worker's start, so that a second worker takes part when there is one
    with open(Path(log_dir) / "ran.log", "a") as log:
        log.write(f"{arch} {os.getpid()}\n")
    return fake_scorer(space, arch, proxies, presets, seed, device)


def test_a_worker_death_makes_suspects_only_of_the_candidates_that_were_running(tmp_path):
    """The pool holds one task a worker: a death re-runs alone the two that were running, and the rest of
    the run keeps both workers (it used to make suspects of every queued candidate, so that a long run
    went on one worker at a time after its first out-of-memory kill)."""
    from vkdnw_fast.backends import score_all

    rng = np.random.default_rng(1)
    archs = list(dict.fromkeys(nb201.NB201Space().sample(rng) for _ in range(8)))
    job = Job(NB201, FAKE_PROXIES, ("paper",), 0, None, functools.partial(timed_killing_scorer, str(tmp_path), archs[0]))
    records = {}
    score_all([(arch, 0) for arch in archs], lambda seed: job, lambda arch, seed, record: records.update({arch: record}),
              kind="local", workers=2, progress=False)
    assert (tmp_path / "killed").exists() and all("values" in records[a] for a in archs)
    ran = dict(line.split() for line in (tmp_path / "ran.log").read_text().splitlines())
    assert sorted(ran) == sorted(archs)
    # After the two suspects, the six never started share the rebuilt pool's two workers.
    assert len({ran[a] for a in archs[2:]}) == 2


def _cli(out, *extra):
    return [sys.executable, "-m", "vkdnw_fast.search.cli", "--space", "mbv2", "--resolution", "32",
            "--num-classes", "10", "--flops-budget", "6M", "--iterations", "24", "--population", "6",
            "--proxies", "params", "--seed", "1", "--no-progress", "--out", str(out), *extra]


def test_sigkill_then_rerun_equals_uninterrupted(tmp_path):
    out = tmp_path / "run"
    process = subprocess.Popen(_cli(out), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    killed_after = None
    while time.time() < deadline and process.poll() is None:
        if (out / "search.sqlite").exists():
            try:
                done = len(rows(out, "integrated = 1"))
            except sqlite3.OperationalError:  # the schema is still being created
                done = 0
            if done >= 8:
                process.send_signal(signal.SIGKILL)
                killed_after = done
                break
        time.sleep(0.05)
    process.wait()
    assert killed_after is not None, process.stderr.read().decode()
    before = evaluated(out)
    assert 8 <= len(before) < 24 and not (out / "best.txt").exists()
    subprocess.run(_cli(out, "--resume"), cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    cfg = SearchConfig(space=MBV2_32, proxies=("params",), iterations=24, population=6, seed=1)
    whole = run_search(cfg, tmp_path / "whole", progress=False)
    assert [(s, a) for s, a, _ in evaluated(out)] == [(s, a) for s, a, _ in evaluated(tmp_path / "whole")]
    assert evaluated(out)[:len(before)] == before  # stored scores were kept, not recomputed
    assert (out / "best.txt").read_text().splitlines()[0] == whole.best_arch


def test_cli_nb201_reports_accuracy_and_random_search(tmp_path, capsys):
    assert main(["--space", "nb201", "--budget", "3", "--population", "2", "--proxies", "flops,params",
                 "--seed", "5", "--repeats", "2", "--no-progress", "--out", str(tmp_path)]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["optimum"] == pytest.approx(94.37, abs=0.005)
    assert summary["seeds"] == [5, 6]
    for run, seed in zip(summary["runs"], (5, 6)):
        directory = tmp_path / f"seed_{seed}"
        assert (directory / "best.txt").read_text().splitlines()[0] == run["found_arch"]
        assert run["found_accuracy"] == benchmarks.get("nb201").value(run["found_arch"], "cifar10")
        assert run["random_accuracy"] == benchmarks.get("nb201").value(run["random_arch"], "cifar10")
        db = sqlite3.connect(directory / "search.sqlite")
        baseline = db.execute("SELECT arch, values_json FROM baseline ORDER BY idx").fetchall()
        db.close()
        archs = nb201.archs("all")
        assert [a for a, _ in baseline] == [archs[i] for i in np.random.default_rng(seed).choice(len(archs), 3, replace=False)]
        vectors = [np.array([json.loads(v)[p] for p in ("flops", "params")]) for _, v in baseline]
        assert vectors[0][0] == nb201.flops(baseline[0][0], "cifar10")
        scores = naive_aggregate(vectors)
        assert run["random_arch"] == baseline[scores.index(max(scores))][0]
    found = [r["found_accuracy"] for r in summary["runs"]]
    assert summary["found_mean"] == pytest.approx(np.mean(found))
    assert summary["found_std"] == pytest.approx(np.std(found, ddof=1))
    assert "2 seeds, budget 3: search" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--space", "nb201", "--budget", "3", "--flops-budget", "450M"], "--flops-budget apply to --space mbv2 only"),
    (["--space", "mbv2", "--dataset", "cifar10"], "--dataset does not apply to --space mbv2 (its FLOPs budget is --flops-budget)"),
    (["--space", "nb201"], "--space nb201 needs --budget N"),
    (["--space", "nb201", "--budget", "3", "--iterations", "4"], "--budget 3 and --iterations 4 disagree"),
    (["--space", "nb201", "--budget", "12X"], "'12X' is not a count"),
    (["--space", "nb201", "--budget", "3", "--proxies", "flops,nope"], "unknown proxies ['nope']"),
    (["--space", "nb201", "--budget", "3", "--resume"], "--resume: no search recorded in"),
    (["--space", "nb201", "--budget", "3", "--address", "h:1"], "--address is for --backend ray"),
    (["--space", "mbv2", "--population", "0"], "population must be a positive integer, got 0"),
    (["--space", "mbv2", "--resolution", "0"], "invalid MBV2Space(resolution=0"),
    (["--space", "nb201", "--budget", "3", "--dataset", "mnist"], "unknown dataset 'mnist'"),
])
def test_cli_errors(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--out", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_cli_configuration_mismatch(tmp_path, capsys):
    argv = ["--space", "nb201", "--budget", "1", "--population", "1", "--proxies", "flops", "--no-progress",
            "--out", str(tmp_path)]
    assert main(argv) == 0
    with pytest.raises(SystemExit):
        main(argv[:-2] + ["--seed", "1", "--out", str(tmp_path)])
    assert "seed (stored 0, requested 1)" in capsys.readouterr().err


def test_the_bench_readme_quotes_the_recorded_memory_predictions():
    """bench/README.md's table of the pool's memory predictions is that of bench/results/memory_model_*.json."""
    from pathlib import Path

    root = Path(__file__).parents[1]
    table = " ".join((root / "bench/README.md").read_text().split())
    for suffix, model in (("", "floor + slope (`backends.Calibration`)"),
                          ("_999c395", "one ratio, per-chunk ratios (999c395)"),
                          ("_complete", "floor + slope, the complete run")):
        record = json.loads((root / f"bench/results/memory_model_tnb_macro_class_scene{suffix}.json").read_text())
        under = f"{record['most_under_gib']:.1f} GiB" if record["predicted_under"] else "-"
        by_chunk = ", ".join(f"{v['mean']:.1f}" for v in record["mean_excess_gib_by_samples_a_chunk"].values())
        eighth = record["predicted_gib_by_samples_a_chunk"]["64-12223-basic"]["8"]
        assert (f"| {model} | {record['predicted_under']} of {record['records']} | {under} | "
                f"{record['mean_excess_gib']:.1f} GiB ({by_chunk}) | {eighth:.1f} GiB |") in table

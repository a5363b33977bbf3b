"""Evolutionary search over any SearchSpace (SPEC §7), with deterministic asynchronous scoring and a
durable, resumable record.

The algorithm
-------------
* Candidate 0 is the space's initial architecture (``space.initial``): for MobileNetV2 the
  authors' initial net, for NAS-Bench-201 (which has none) the first draw of ``space.sample``.
* Every later candidate is a child (``space.evolve``) of a parent drawn uniformly from the
  population (the initial architecture while the population is still empty). MobileNetV2
  replaces 1 block while the population has at most 10 members and 2 afterwards, as the authors
  do; other spaces use their ``mutate``.
* A draw that is infeasible (``space.is_feasible``) is recorded as ``rejected``; one already
  proposed before is recorded as ``duplicate`` (each architecture is scored once); neither is an
  iteration, and drawing goes on until a new feasible candidate comes up.
* A scored candidate joins the population. When that makes the population larger than its size,
  the member with the lowest aggregated score (SPEC eq. 15, Σ_m log rank_m over the configured
  proxies, computed over the current population) is dropped; among equal scores the most recently
  added goes. A candidate that cannot be built or scored (any exception) is recorded as
  ``failed`` with the reason and skipped; it is not an iteration either.
* The search stops after ``iterations`` scored candidates. The answer is the member of the final
  population with the highest aggregated score (the earliest added among equals).

Deterministic asynchrony
------------------------
Candidates are numbered by *slot* in the order they are proposed. With W workers, slot i is proposed
from the state reached by integrating slots 0 .. i−W−1 (slots 0..W from the initial state), and
results are integrated strictly in slot order, early arrivals being held back. W+1 candidates are
thus outstanding: W running and one queued, so no worker waits for the driver. The driver stops
proposing once the integrated successes plus the outstanding candidates reach ``iterations``, and
proposes more if some of them fail. Every decision is therefore a function of the seed, W and the
scores, never of timing: the answer is the same for the in-process, process-pool and Ray backends
at equal W, and W (``workers``) is part of the configuration.

Resume
------
The record (``store.py``) holds every draw and every result. A run in a directory that already
holds the same configuration replays it: the driver restarts from the seed, regenerates each draw
(checking architecture and RNG state against the record, so a diverging code version is caught),
takes every stored result instead of scoring it again, and integrates in slot order exactly as the
first run did. Candidates that were in flight when the run stopped come up again identically and
are scored; from there the run goes on. The result equals that of an uninterrupted run.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import spaces
from ..backends import Job, Scorer, make_backend
from ..metrics import aggregate
from ..scoring import score_architecture
from ..spaces import SearchSpace
from .config import SearchConfig
from .store import SearchError, Store

# Draws in a row without a new feasible candidate before the search gives up (space exhausted).
MAX_DRAWS = 10_000
# Failed candidates in a row before the search gives up (the scorer is broken, not the candidates).
MAX_FAILURE_STREAK = 50


@dataclass
class SearchResult:
    best_arch: str
    best_slot: int
    best_values: dict[str, float]
    best_cost: dict[str, float]
    best_aggregate: float
    population: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    directory: Path | None = None


def _rng_state(rng: np.random.Generator) -> str:
    return json.dumps(rng.bit_generator.state, sort_keys=True)


class _Progress:
    """tqdm bar of iterations with the best score so far; created when live scoring starts, so that
    replaying a stored run does not distort its rate."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total, self.bar = enabled, total, None

    def update(self, iterations: int, replayed: bool, postfix: dict[str, Any]) -> None:
        if not self.enabled or replayed:
            return
        if self.bar is None:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=self.total, initial=iterations - 1, unit="it", desc="search", dynamic_ncols=True)
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(iterations - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class Evolution:
    """The search state and its rules; talks to the world only through ``store`` and ``backend``."""

    def __init__(self, config: SearchConfig, space: SearchSpace, store: Store, backend, progress: bool = True):
        self.config, self.space, self.store, self.backend = config, space, store, backend
        self.proxies = config.proxies
        self.rng = np.random.default_rng(config.seed)
        self.initial = space.initial(self.rng)
        feasible, reason = space.is_feasible(self.initial)
        if not feasible:
            raise SearchError(f"the initial architecture {self.initial} is infeasible: {reason}")
        self.stored = store.draws()
        self.members: list[int] = []           # slots of the population, in the order they joined
        self.vectors: dict[int, np.ndarray] = {}
        self.arch_of: dict[int, str] = {}
        self.known: dict[str, int] = {}        # every proposed architecture -> its slot
        self.seq = 0                           # draws so far
        self.next_slot = 0
        self.integrated = 0                    # slots < integrated are integrated
        self.successes = 0
        self.failure_streak = 0
        self.held: dict[int, tuple[dict[str, Any], bool]] = {}  # arrived, not yet integrated
        self.best: tuple[int | None, float | None, float | None] = (None, None, None)
        self.progress = _Progress(progress, config.iterations)

    # ------------------------------------------------------------------ schedule
    def run(self) -> None:
        try:
            self._propose_allowed()
            while self.integrated < self.next_slot:
                if self.integrated not in self.held:
                    for slot, outcome in self.backend.wait():
                        outcome = check_outcome(outcome, self.proxies)
                        self.store.record_outcome(slot, outcome)
                        self.held[slot] = (outcome, False)
                # One integration, then the proposals it allows: slot i must see exactly the
                # integrations of slots < i - W, however many results arrived together.
                while self.integrated in self.held:
                    self._integrate(self.integrated, *self.held.pop(self.integrated))
                    self.integrated += 1
                    self._propose_allowed()
                self.store.commit()
            self.store.set_meta("finished", True)
            self.store.commit()
        finally:
            self.progress.close()

    def _propose_allowed(self) -> None:
        while (self.next_slot <= self.integrated + self.config.workers
               and self.successes + (self.next_slot - self.integrated) < self.config.iterations):
            self._propose()

    # ------------------------------------------------------------------ proposals
    def _propose(self) -> None:
        slot = self.next_slot
        for _ in range(MAX_DRAWS):
            parent_slot = None
            if self.seq == 0:
                arch = self.initial
            else:
                if self.members:
                    parent_slot = self.members[int(self.rng.integers(len(self.members)))]
                parent = self.initial if parent_slot is None else self.arch_of[parent_slot]
                arch = self.space.validate(self.space.evolve(parent, self.rng, len(self.members)))
            seq, state = self.seq, _rng_state(self.rng)
            self.seq += 1
            feasible, reason = self.space.is_feasible(arch)
            if not feasible:
                status = "rejected"
            elif arch in self.known:
                status, reason = "duplicate", f"already proposed as slot {self.known[arch]}"
            else:
                status, reason = "proposed", None
            stored = self._replayed(seq, arch, status, state)
            self.store.add_draw(seq, arch, status, state, slot=slot if status == "proposed" else None,
                                parent_slot=parent_slot, reason=reason, cost=self.space.cost(arch))
            if status != "proposed":
                continue
            self.known[arch] = slot
            self.arch_of[slot] = arch
            self.next_slot += 1
            if stored is not None and stored["status"] in ("evaluated", "failed"):
                self.held[slot] = (_stored_outcome(stored), True)
            else:
                self.backend.submit(slot, arch)
            return
        raise SearchError(f"no new feasible candidate in {MAX_DRAWS} draws in a row (population of "
                          f"{len(self.members)}, {len(self.known)} architectures proposed so far): the "
                          "reachable space looks exhausted; lower the iterations or relax the constraints")

    def _replayed(self, seq: int, arch: str, status: str, state: str):
        """The stored row of draw ``seq``, after checking that this run drew the same."""
        stored = self.stored.get(seq)
        if stored is None:
            return None
        stored_status = "proposed" if stored["status"] in ("proposed", "evaluated", "failed") else stored["status"]
        if (stored["arch"], stored_status, stored["rng_state"]) != (arch, status, state):
            raise SearchError(
                f"{self.store.directory}: the stored search diverges from this run at draw {seq}: stored "
                f"{stored['arch']} ({stored['status']}), drawn now {arch} ({status}); was it made by another "
                "version of the code or search space?")
        return stored

    # ------------------------------------------------------------------ integration
    def _aggregate(self) -> np.ndarray:
        table = np.stack([self.vectors[slot] for slot in self.members])
        return aggregate({p: table[:, j] for j, p in enumerate(self.proxies)}, self.proxies)

    def _integrate(self, slot: int, outcome: dict[str, Any], replayed: bool) -> None:
        dropped, iteration = None, None
        if not outcome["ok"]:
            self.failure_streak += 1
            if self.failure_streak >= MAX_FAILURE_STREAK:
                raise SearchError(f"{self.failure_streak} candidates in a row could not be scored; the last, "
                                  f"{self.arch_of[slot]}: {outcome['reason']}")
        else:
            self.failure_streak = 0
            self.successes += 1
            iteration = self.successes
            self.members.append(slot)
            self.vectors[slot] = np.array([outcome["values"][p] for p in self.proxies], dtype=np.float64)
            if len(self.members) > self.config.population:
                scores = self._aggregate()
                worst = len(scores) - 1 - int(np.argmin(scores[::-1]))  # the newest among the lowest
                dropped = self.members.pop(worst)
                del self.vectors[dropped]
            scores = self._aggregate()
            top = int(np.argmax(scores))  # the earliest added among the highest
            normalised = float(scores[top] - len(self.proxies) * math.log(len(scores)))
            self.best = (self.members[top], float(scores[top]), normalised)
        self.store.record_integration(slot, iteration=iteration, added=outcome["ok"] and slot in self.vectors,
                                      dropped=dropped, population_size=len(self.members), best_slot=self.best[0],
                                      best_aggregate=self.best[1], best_normalised=self.best[2])
        if iteration is not None:
            self.progress.update(iteration, replayed, {"best": f"{self.best[2]:.3f}", "population": len(self.members)})

    def result(self) -> SearchResult:
        best_slot, best_aggregate, _ = self.best
        if best_slot is None:
            raise SearchError("the search integrated no scored candidate")
        arch = self.arch_of[best_slot]
        values = dict(zip(self.proxies, map(float, self.vectors[best_slot])))
        return SearchResult(best_arch=arch, best_slot=best_slot, best_values=values, best_cost=self.space.cost(arch),
                            best_aggregate=best_aggregate, population=[self.arch_of[s] for s in self.members],
                            counts=self.store.counts(), directory=self.store.directory)


def check_outcome(outcome: dict[str, Any], proxies: tuple[str, ...]) -> dict[str, Any]:
    """``outcome``, turned into a failure if it lacks a proxy's value or has NaN for one (±inf ranks)."""
    if not outcome["ok"]:
        return outcome
    missing = [p for p in proxies if p not in outcome["values"]]
    nan = [p for p in proxies if p not in missing and math.isnan(outcome["values"][p])]
    problems = ([f"no value for {missing}"] if missing else []) + ([f"NaN for {nan}"] if nan else [])
    if problems:
        return {**outcome, "ok": False, "reason": "the scorer returned " + " and ".join(problems)}
    return outcome


def _stored_outcome(row) -> dict[str, Any]:
    if row["status"] == "evaluated":
        return {"ok": True, "values": json.loads(row["values_json"])}
    return {"ok": False, "reason": row["reason"]}


def _check_job(job: Job, config: SearchConfig) -> None:
    expected = (config.space, config.proxies, (config.preset,), config.seed)
    scored = (job.space, tuple(job.proxies), tuple(job.presets), job.seed)
    if scored != expected:
        raise ValueError(f"the backend scores (space, proxies, presets, seed) = {scored}, "
                         f"the search is configured for {expected}")


def run_search(config: SearchConfig, out: str | Path, *, backend=None, backend_kind: str = "local",
               address: str | None = None, device: str | None = None, scorer: Scorer = score_architecture,
               progress: bool = True) -> SearchResult:
    """Run (or resume) the search ``config`` in directory ``out`` and write its reports there.

    backend: an object from ``backends`` to score with (its job must match ``config``); by default
        one is made from ``backend_kind`` (``local`` or ``ray``), ``config.workers``, ``address``,
        ``device`` and ``scorer`` and closed at the end.
    scorer: ``scorer(space, arch, proxies, presets=, seed=, device=) -> {column: value}``; a
        picklable function (module level) for worker backends.
    """
    from .report import write_outputs

    space = spaces.from_spec(config.space)
    with Store(out) as store:
        store.start_or_resume(config)
        owned = backend is None
        if owned:
            job = Job(config.space, config.proxies, (config.preset,), config.seed, device, scorer)
            backend = make_backend(backend_kind, job, config.workers, address)
        else:
            _check_job(backend.job, config)
        try:
            evolution = Evolution(config, space, store, backend, progress)
            evolution.run()
        except BaseException:
            store.commit()
            backend.cancel()
            raise
        finally:
            if owned:
                backend.close()
        result = evolution.result()
        store.set_meta("best", {"arch": result.best_arch, "slot": result.best_slot})
        store.commit()
        write_outputs(store, config, result)
    return result


@dataclass
class BaselineResult:
    best_arch: str
    best_values: dict[str, float]
    archs: list[str]
    failed: int


def random_search(config: SearchConfig, out: str | Path, backend) -> BaselineResult:
    """Random search with the same budget: ``config.iterations`` distinct architectures drawn
    uniformly without replacement from the (finite) space with ``default_rng(config.seed)``, each
    scored like a search candidate; the best by the aggregated score over them (the first among
    equals) is its answer. Scores the search already has are reused; results go to the record's
    ``baseline`` table, so a rerun scores nothing twice."""
    space = spaces.from_spec(config.space)
    try:
        members = list(space.enumerate())
    except NotImplementedError as exc:
        raise SearchError(f"random search needs a finite space: {exc}") from None
    if config.iterations > len(members):
        raise SearchError(f"random search of {config.iterations} architectures in a space of {len(members)}")
    picks = np.random.default_rng(config.seed).choice(len(members), size=config.iterations, replace=False)
    archs = [space.validate(members[i]) for i in picks]
    _check_job(backend.job, config)
    with Store(out) as store:
        store.start_or_resume(config)
        done, scored = store.baseline(), store.values_by_arch()
        outcomes: dict[int, dict[str, Any]] = {}
        for idx, arch in enumerate(archs):
            if idx in done:
                if done[idx]["arch"] != arch:
                    raise SearchError(f"{out}: stored random-search architecture {idx} is {done[idx]['arch']}, "
                                      f"drawn now {arch}")
                outcomes[idx] = _stored_outcome(done[idx])
            elif arch in scored:
                outcomes[idx] = {"ok": True, "values": scored[arch]}
                store.add_baseline(idx, arch, outcomes[idx])
            else:
                backend.submit(idx, arch)
        store.commit()
        while len(outcomes) < len(archs):
            for idx, outcome in backend.wait():
                outcome = outcomes[idx] = check_outcome(outcome, config.proxies)
                store.add_baseline(idx, arch=archs[idx], outcome=outcome)
            store.commit()
    good = [i for i in range(len(archs)) if outcomes[i]["ok"]]
    if not good:
        raise SearchError("random search: no architecture could be scored")
    table = {p: np.array([outcomes[i]["values"][p] for i in good]) for p in config.proxies}
    best = good[int(np.argmax(aggregate(table, config.proxies)))]
    return BaselineResult(best_arch=archs[best], best_values={p: outcomes[best]["values"][p] for p in config.proxies},
                          archs=archs, failed=len(archs) - len(good))

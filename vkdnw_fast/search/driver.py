"""The search driver: any search algorithm (``algorithms``) over any search space, with
deterministic asynchronous scoring on a backend and a durable, resumable record.

Screening
---------
Each draw of the algorithm is validated; one that is infeasible (``space.is_feasible``) is recorded
as ``rejected``; one already proposed before is recorded as ``duplicate`` where the algorithm
proposes each architecture once; neither is an iteration, and drawing goes on until a candidate
passes. A candidate that cannot be built or scored (any exception, a missing or NaN proxy value) is
recorded as ``failed`` with the reason and is not an iteration either.

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

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from .. import spaces
from ..backends import Job, Scorer, make_backend
from ..journal import cell_directory, discard
from ..scoring import score_architecture
from ..spaces import SearchSpace
from .algorithms import SearchAlgorithm, SearchResult, get_algorithm
from .config import SearchConfig
from .store import SearchError, Store

# Draws in a row without a new feasible candidate before the search gives up (space exhausted).
MAX_DRAWS = 10_000
# Failed candidates in a row before the search gives up (the scorer is broken, not the candidates).
MAX_FAILURE_STREAK = 50


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


class SearchDriver:
    """Runs ``algorithm`` to the budget: proposes, screens, records, scores on ``backend`` and
    integrates in slot order; talks to the world only through ``store`` and ``backend``."""

    def __init__(self, config: SearchConfig, space: SearchSpace, algorithm: SearchAlgorithm, rng: np.random.Generator,
                 store: Store, backend, progress: bool = True):
        self.config, self.space, self.algorithm, self.rng = config, space, algorithm, rng
        self.store, self.backend = store, backend
        self.stored = store.draws()
        self.arch_of: dict[int, str] = {}
        self.known: dict[str, int] = {}        # every proposed architecture -> its slot
        self.seq = 0                           # draws so far
        self.next_slot = 0
        self.integrated = 0                    # slots < integrated are integrated
        self.successes = 0
        self.failure_streak = 0
        self.held: dict[int, tuple[dict[str, Any], bool]] = {}  # arrived, not yet integrated
        self.progress = _Progress(progress, config.iterations)
        self.journal = backend.job.journal  # where the scorings under way keep their passes
        self.recorded: list[str] = []  # architectures recorded since the last commit

    # ------------------------------------------------------------------ schedule
    def run(self) -> SearchResult:
        try:
            self._propose_allowed()
            while self.integrated < self.next_slot:
                if self.integrated not in self.held:
                    for slot, outcome in self.backend.wait():
                        outcome = check_outcome(outcome, self.config.proxies)
                        self.store.record_outcome(slot, outcome)
                        self.held[slot] = (outcome, False)
                        self.recorded.append(self.arch_of[slot])
                # One integration, then the proposals it allows: slot i must see exactly the
                # integrations of slots < i - W, however many results arrived together.
                while self.integrated in self.held:
                    self._integrate(self.integrated, *self.held.pop(self.integrated))
                    self.integrated += 1
                    self._propose_allowed()
                self._commit()
            self.store.set_meta("finished", True)
            self._commit()
            if self.journal is not None:  # with what a crash between a commit and a removal left
                discard(self.journal)
        finally:
            self.progress.close()
        return dataclasses.replace(self.algorithm.result(), counts=self.store.counts(),
                                   directory=self.store.directory)

    def _commit(self) -> None:
        """Make the recorded outcomes durable, then drop the journals of their scorings."""
        self.store.commit()
        if self.journal is not None:
            for arch in self.recorded:
                discard(cell_directory(self.journal, arch, self.config.scoring_seed))
        self.recorded.clear()

    def _propose_allowed(self) -> None:
        while (self.next_slot <= self.integrated + self.config.workers
               and self.successes + (self.next_slot - self.integrated) < self.config.iterations):
            self._propose()

    # ------------------------------------------------------------------ proposals
    def _propose(self) -> None:
        slot = self.next_slot
        for _ in range(MAX_DRAWS):
            arch, parent_slot = self.algorithm.propose()
            arch = self.space.validate(arch)
            seq, state = self.seq, _rng_state(self.rng)
            self.seq += 1
            feasible, reason = self.space.is_feasible(arch)
            if not feasible:
                status = "rejected"
            elif self.algorithm.unique_candidates and arch in self.known:
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
                self.held[slot] = (stored_outcome(stored), True)
            else:
                self.backend.submit(slot, arch)
            return
        raise SearchError(f"no new feasible candidate in {MAX_DRAWS} draws in a row ({len(self.known)} "
                          "architectures proposed so far): the reachable space looks exhausted; lower the "
                          "iterations or relax the constraints")

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
    def _integrate(self, slot: int, outcome: dict[str, Any], replayed: bool) -> None:
        iteration = None
        if outcome["ok"]:
            self.failure_streak = 0
            self.successes += 1
            iteration = self.successes
        else:
            self.failure_streak += 1
            if self.failure_streak >= MAX_FAILURE_STREAK:
                raise SearchError(f"{self.failure_streak} candidates in a row could not be scored; the last, "
                                  f"{self.arch_of[slot]}: {outcome['reason']}")
        standing = self.algorithm.integrate(slot, self.arch_of[slot], outcome["values"] if outcome["ok"] else None)
        self.store.record_integration(slot, iteration=iteration, added=standing.added, dropped=standing.dropped,
                                      population_size=standing.population_size, best_slot=standing.best_slot,
                                      best_aggregate=standing.best_aggregate,
                                      best_normalised=standing.best_normalised)
        if iteration is not None:
            self.progress.update(iteration, replayed, {"best": f"{standing.best_normalised:.3f}",
                                                       "population": standing.population_size})


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


def stored_outcome(row) -> dict[str, Any]:
    """The outcome a record row holds (``evaluated`` or ``failed``)."""
    if row["status"] == "evaluated":
        return {"ok": True, "values": json.loads(row["values_json"])}
    return {"ok": False, "reason": row["reason"]}


def check_job(job: Job, config: SearchConfig) -> None:
    """ValueError unless ``job`` scores what ``config`` asks for."""
    expected = (config.space, config.proxies, (config.preset,), config.scoring_seed, config.data_source())
    scored = (job.space, tuple(job.proxies), tuple(job.presets), job.seed, job.data)
    if scored != expected:
        raise ValueError(f"the backend scores (space, proxies, presets, seed, data) = {scored}, "
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
    config.check_data()
    with Store(out) as store:
        store.start_or_resume(config)
        owned = backend is None
        if owned:
            # Each scoring under way keeps its finished passes, where local workers can write them.
            journal = str(Path(out) / "journal") if backend_kind == "local" else None
            job = Job(config.space, config.proxies, (config.preset,), config.scoring_seed, device, scorer,
                      config.data_source(), journal=journal)
            backend = make_backend(backend_kind, job, config.workers, address)
        else:
            check_job(backend.job, config)
        try:
            rng = np.random.default_rng(config.seed)
            algorithm = get_algorithm(config.algorithm)(config, space, rng)
            result = SearchDriver(config, space, algorithm, rng, store, backend, progress).run()
        except BaseException:
            store.commit()
            backend.cancel()
            raise
        finally:
            if owned:
                backend.close()
        store.set_meta("best", {"arch": result.best_arch, "slot": result.best_slot})
        store.commit()
        write_outputs(store, config, result)
    return result

"""Regularised evolution (Real et al., AAAI 2019) on a benchmark, and NASWOT's assisted version.

* ``rea``: the population (``config.population``, 10 on NAS-Bench-201) is filled with uniform
  draws; then, every cycle, ``config.tournament`` (3) members are drawn uniformly with replacement,
  the fittest of them is mutated (``space.mutate``: one edge's op on NAS-Bench-201) and the child
  joins the population while the oldest member leaves. Every new architecture is "trained": its
  fitness is a benchmark query (``config.fitness`` on ``config.fitness_dataset``: NAS-Bench-201's
  12-epoch validation accuracy on cifar10-valid, as the benchmark's own REA baseline uses).
  ``config.iterations`` is the budget in such queries (the paper's 12,000 s of simulated training
  cannot be replayed offline: the per-architecture training times are not available). The answer
  is the fittest architecture queried (the first among equals), as the NAS-Bench-201 scripts pick it.
  This follows the NAS-Bench-201 authors' ``regularized_ea`` baseline, except that a mutation picks
  an edge uniformly (theirs picks a node, then one of its edges).
* ``area`` (assisted REA, NASWOT's §5): ``config.warmup`` (20) uniform draws are scored with the
  proxy at initialisation (no training), the ``population`` best of them by the proxy are queried
  and form the initial population, and REA goes on from there. Queries count against the budget;
  proxy scores do not.
"""
from __future__ import annotations

from collections import deque
from typing import Any

from ..store import SearchError
from .base import Integration, SearchAlgorithm, SearchResult
from .registry import register_algorithm


@register_algorithm("rea")
class RegularizedEvolution(SearchAlgorithm):
    unique_candidates = False
    needs_proxies = False
    mutates = True

    def __init__(self, config, space, rng):
        super().__init__(config, space, rng)
        self.population: deque[tuple[int, str, float]] = deque()  # (slot, arch, fitness), oldest first
        self.history: dict[int, tuple[str, float]] = {}
        self.queries = 0
        self.best: tuple[int, float] | None = None

    def evaluates(self) -> str:
        return "fitness"

    def done(self) -> bool:
        return self.queries >= self.config.iterations

    def propose(self) -> tuple[str, int | None]:
        self.queries += 1
        if self.queries <= self.config.population and len(self.population) < self.config.population:
            return self._fill(), None
        # Tournament with replacement among the living population, as the benchmark's baseline does.
        drawn = [self.population[int(self.rng.integers(len(self.population)))]
                 for _ in range(self.config.tournament)]
        parent_slot, parent, _ = max(drawn, key=lambda member: member[2])
        return self.space.mutate(parent, self.rng), parent_slot

    def _fill(self) -> str:
        return self.space.sample(self.rng)

    def integrate(self, slot: int, arch: str, values: dict[str, Any] | None) -> Integration:
        if values is None:
            raise SearchError(f"{self.name}: the benchmark has no fitness for {arch}")
        fitness = float(values["fitness"])
        self.history[slot] = (arch, fitness)
        if self.best is None or fitness > self.best[1]:
            self.best = (slot, fitness)
        self.population.append((slot, arch, fitness))
        dropped = None
        if len(self.population) > self.config.population:
            dropped = self.population.popleft()[0]
        return Integration(True, dropped, len(self.population), self.best[0], self.best[1], self.best[1])

    def result(self) -> SearchResult:
        if self.best is None:
            raise SearchError(f"{self.name}: no architecture was queried")
        slot, fitness = self.best
        arch = self.history[slot][0]
        return SearchResult(best_arch=arch, best_slot=slot, best_values={"fitness": fitness},
                            best_cost=self.space.cost(arch), best_aggregate=fitness,
                            population=[member[1] for member in self.population])


@register_algorithm("area")
class AssistedRegularizedEvolution(RegularizedEvolution):
    needs_proxies = True

    def __init__(self, config, space, rng):
        super().__init__(config, space, rng)
        self.proxy = config.proxies[0]
        self.warmup: list[tuple[str, float]] = []   # (arch, proxy score) of the scored draws
        self.seeds: list[str] | None = None         # the population's founders, best score first
        self._scoring = False

    def evaluates(self) -> str:
        return "proxy" if self._scoring else "fitness"

    def propose(self) -> tuple[str, int | None]:
        self._scoring = len(self.warmup) < self.config.warmup
        if self._scoring:
            return self.space.sample(self.rng), None
        return super().propose()

    def _fill(self) -> str:
        if self.seeds is None:
            ranked = sorted(range(len(self.warmup)), key=lambda i: -self.warmup[i][1])  # stable: first among equals
            self.seeds = [self.warmup[i][0] for i in ranked[: self.config.population]]
        return self.seeds[len(self.population)]

    def integrate(self, slot: int, arch: str, values: dict[str, Any] | None) -> Integration:
        if self._scoring:
            # A draw that cannot be scored ranks last: it is still a draw of the warm-up.
            self.warmup.append((arch, float("-inf") if values is None else float(values[self.proxy])))
            return Integration(False, None, 0, None, None, None)
        return super().integrate(slot, arch, values)

"""Evolutionary search (docs/method.md §7), the authors' algorithm.

* Candidate 0 is the space's initial architecture (``space.initial``): for MobileNetV2 the
  authors' initial net, for NAS-Bench-201 (which has none) the first draw of ``space.sample``.
* Every later candidate is a child (``space.evolve``) of a parent drawn uniformly from the
  population (the initial architecture while the population is still empty). MobileNetV2
  replaces 1 block while the population has at most 10 members and 2 afterwards, as the authors
  do; other spaces use their ``mutate``.
* A draw that is infeasible is recorded as ``rejected``; one already proposed before is recorded as
  ``duplicate`` (each architecture is scored once); neither is an iteration, and drawing goes on
  until a new feasible candidate comes up (the driver's screening).
* A scored candidate joins the population. When that makes the population larger than its size,
  the member with the lowest aggregated score (docs/method.md eq. 15, Σ_m log rank_m over the
  configured proxies, computed over the current population) is dropped; among equal scores the
  most recently added goes. A candidate that cannot be built or scored is recorded as ``failed``
  with the reason and skipped; it is not an iteration either.
* The search stops after ``iterations`` scored candidates. The answer is the member of the final
  population with the highest aggregated score (the earliest added among equals).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...metrics import aggregate
from ..store import SearchError
from .base import Integration, SearchAlgorithm, SearchResult
from .registry import register_algorithm


@register_algorithm("evolution")
class Evolution(SearchAlgorithm):
    mutates = True

    def __init__(self, config, space, rng):
        super().__init__(config, space, rng)
        self.proxies = config.proxies
        self.initial = space.initial(rng)
        feasible, reason = space.is_feasible(self.initial)
        if not feasible:
            raise SearchError(f"the initial architecture {self.initial} is infeasible: {reason}")
        self.draws = 0
        self.members: list[int] = []           # slots of the population, in the order they joined
        self.vectors: dict[int, np.ndarray] = {}
        self.arch_of: dict[int, str] = {}      # of the members
        self.best: tuple[int | None, float | None, float | None] = (None, None, None)

    def propose(self) -> tuple[str, int | None]:
        parent_slot = None
        if self.draws == 0:
            arch = self.initial
        else:
            if self.members:
                parent_slot = self.members[int(self.rng.integers(len(self.members)))]
            parent = self.initial if parent_slot is None else self.arch_of[parent_slot]
            arch = self.space.evolve(parent, self.rng, len(self.members))
        self.draws += 1
        return arch, parent_slot

    def _aggregate(self) -> np.ndarray:
        table = np.stack([self.vectors[slot] for slot in self.members])
        return aggregate({p: table[:, j] for j, p in enumerate(self.proxies)}, self.proxies)

    def integrate(self, slot: int, arch: str, values: dict[str, Any] | None) -> Integration:
        dropped = None
        if values is not None:
            self.members.append(slot)
            self.arch_of[slot] = arch
            self.vectors[slot] = np.array([values[p] for p in self.proxies], dtype=np.float64)
            if len(self.members) > self.config.population:
                scores = self._aggregate()
                worst = len(scores) - 1 - int(np.argmin(scores[::-1]))  # the newest among the lowest
                dropped = self.members.pop(worst)
                del self.vectors[dropped], self.arch_of[dropped]
            scores = self._aggregate()
            top = int(np.argmax(scores))  # the earliest added among the highest
            normalised = float(scores[top] - len(self.proxies) * math.log(len(scores)))
            self.best = (self.members[top], float(scores[top]), normalised)
        return Integration(values is not None and slot in self.vectors, dropped, len(self.members), *self.best)

    def result(self) -> SearchResult:
        best_slot, best_aggregate, _ = self.best
        if best_slot is None:
            raise SearchError("the search integrated no scored candidate")
        arch = self.arch_of[best_slot]
        values = dict(zip(self.proxies, map(float, self.vectors[best_slot])))
        return SearchResult(best_arch=arch, best_slot=best_slot, best_values=values, best_cost=self.space.cost(arch),
                            best_aggregate=best_aggregate, population=[self.arch_of[s] for s in self.members])

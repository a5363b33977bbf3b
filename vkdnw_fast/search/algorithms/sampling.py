"""Search by sampling: NASWOT's Algorithm 1 and the random baseline (docs/method.md §9).

* ``naswot``: draw ``config.iterations`` (N) architectures uniformly from the whole space, with
  replacement as the authors' code does (``np.random.randint(0, 15625, N)``), score each at
  initialisation with the proxy (the first of ``config.proxies``), return the highest-scoring one
  (the first drawn among equals; a failed score is skipped, as the authors' ``nanargmax`` does).
* ``random``: draw N the same way and return one of them uniformly at random: the "Random" row,
  which is a uniform draw from the space.

Both keep the whole sample, so a report can also give the best architecture *in* it by the ground
truth (the "optimal in a sample of N" rows).
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..store import SearchError
from .base import Integration, SearchAlgorithm, SearchResult
from .registry import register_algorithm


class _Sampling(SearchAlgorithm):
    unique_candidates = False

    def __init__(self, config, space, rng):
        super().__init__(config, space, rng)
        self.sample: list[str] = []          # every draw, repeats included, in order
        self.scored: dict[int, float] = {}   # slot -> score, for the draws that were scored

    def propose(self) -> tuple[str, int | None]:
        arch = self.space.sample(self.rng)
        self.sample.append(arch)
        return arch, None

    def done(self) -> bool:
        return len(self.sample) >= self.config.iterations

    def _result(self, slot: int, score: float, values: dict[str, float]) -> SearchResult:
        arch = self.sample[slot]
        return SearchResult(best_arch=arch, best_slot=slot, best_values=values, best_cost=self.space.cost(arch),
                            best_aggregate=score, population=list(self.sample))


@register_algorithm("naswot")
class NaswotSearch(_Sampling):
    def __init__(self, config, space, rng):
        super().__init__(config, space, rng)
        self.proxy = config.proxies[0]
        self.best: tuple[int, float] | None = None

    def integrate(self, slot: int, arch: str, values: dict[str, Any] | None) -> Integration:
        if values is not None:
            score = float(values[self.proxy])
            self.scored[slot] = score
            if self.best is None or score > self.best[1]:
                self.best = (slot, score)
        best_slot, best_score = self.best if self.best is not None else (None, None)
        return Integration(values is not None, None, len(self.scored), best_slot, best_score, best_score)

    def result(self) -> SearchResult:
        if self.best is None:
            raise SearchError(f"naswot: none of the {len(self.sample)} sampled architectures could be scored")
        slot, score = self.best
        return self._result(slot, score, {self.proxy: score})


@register_algorithm("random")
class RandomSearch(_Sampling):
    needs_proxies = False

    def evaluates(self) -> str:
        return "none"

    def integrate(self, slot: int, arch: str, values: dict[str, Any] | None) -> Integration:
        return Integration(True, None, slot + 1, None, None, None)

    def result(self) -> SearchResult:
        if not self.sample:
            raise SearchError("random: nothing was sampled")
        # A generator of its own (seeded from the run's seed alone), so that the pick depends on
        # nothing but the seed, whatever the drawing generator went through.
        pick = int(np.random.default_rng([self.config.seed, 0x52414E44]).integers(len(self.sample)))
        return self._result(pick, float("nan"), {})

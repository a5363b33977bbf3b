"""The interface of a search algorithm: what to propose next, and what to make of a result.

The driver (``search.driver``) owns everything the algorithms share: the RNG (and its recorded
state after every draw), feasibility and duplicate screening, the scoring backend, the
deterministic asynchronous schedule, the durable record and resume by replay, the budget
(``config.iterations`` successfully scored candidates) and giving up on a broken scorer. An
algorithm is only the rule: ``propose`` draws the next candidate from the state integrated so far,
``integrate`` folds in one result (in slot order), ``result`` gives the answer. Because it sees the
world only through these calls, an algorithm is deterministic given the seed, W and the scores, and
a resumed run replays it exactly.

How the algorithms planned next fit (each one module that registers a class):

* ``naswot`` (draw N uniformly WITH replacement, score each with a proxy at initialisation, return
  the best): ``propose`` returns ``space.sample(rng)``; ``unique_candidates = False`` so repeats
  are proposed again; ``integrate`` keeps the best by the proxy. Repeats cost nothing once the
  backend is wrapped in a per-(architecture, init seed) score cache kept in the run directory,
  which R repeated runs (seeds S..S+R-1, one sub-directory each) share: a backend wrapper, so the
  driver is unchanged.
* ``random`` (draw N, return one at random): like ``naswot`` with no proxy column; ``result``
  picks with a generator seeded from ``config.seed`` alone, so the pick does not depend on W.
* ``rea`` (regularised evolution: population 10, tournament 3, mutation of one edge, the oldest
  removed): ``propose`` samples until the population is full, then mutates
  (``space.mutate``) the fittest of 3 members drawn from ``rng``; ``integrate`` appends and drops
  the oldest. Its fitness is a benchmark query (12-epoch validation accuracy), not a proxy: the
  driver is given a backend whose ``submit``/``wait`` answer from a ``Benchmark`` at once, and the
  budget (``config.iterations``) counts queries.
* ``area`` (score 20 random with the proxy, REA from the top 10): its first 20 proposals are
  samples scored by the proxy backend, the rest REA steps on the benchmark backend. This is the one
  extension the interface still needs: a proposal naming which of two backends scores it.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...spaces import SearchSpace

if TYPE_CHECKING:
    from ..config import SearchConfig


@dataclass(frozen=True)
class Integration:
    """The algorithm's standing right after integrating one slot, as the record keeps it."""

    added: bool                   # the slot joined the population (and is still in it)
    dropped: int | None           # the slot that left the population, if one did
    population_size: int
    best_slot: int | None         # the current answer, its score, and that score normalised
    best_aggregate: float | None  # (0 at the top of every proxy) for the progress display
    best_normalised: float | None


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


class SearchAlgorithm(ABC):
    """One search strategy over a space, driven by ``search.driver``.

    ``name`` is the name it is registered under (``register_algorithm``). All randomness must come
    from ``rng``, the driver's generator, whose state is recorded after every draw.
    """

    name: str
    # An architecture is proposed at most once; a repeat is recorded as a ``duplicate`` draw and
    # drawing goes on.
    unique_candidates: bool = True
    # Whether results are made of the configured proxies (scored at initialisation); algorithms that
    # only query a benchmark (``rea``, ``random``) need none.
    needs_proxies: bool = True
    # Whether it proposes children of earlier architectures (``space.mutate``/``evolve``), which may lie
    # outside a benchmark that holds part of the space.
    mutates: bool = False

    def __init__(self, config: "SearchConfig", space: SearchSpace, rng: np.random.Generator):
        self.config, self.space, self.rng = config, space, rng

    @abstractmethod
    def propose(self) -> tuple[str, int | None]:
        """The next draw: (architecture, slot of its parent or None), from the state integrated so
        far. It may be infeasible or a repeat; the driver screens it and asks again."""

    @abstractmethod
    def integrate(self, slot: int, arch: str, values: dict[str, Any] | None) -> Integration:
        """Fold in the result of ``slot`` (its outcome's values, or None if it failed)."""

    def evaluates(self) -> str:
        """What the result of the proposal just made is: ``"proxy"`` (the proxies' values at
        initialisation), ``"fitness"`` (a benchmark query: the architecture "trained") or ``"none"``
        (nothing: the algorithm only needs the architecture)."""
        return "proxy"

    def done(self) -> bool:
        """Whether a run repeated by ``search.protocol`` has used its budget. The driver counts
        ``config.iterations`` scored candidates instead; an algorithm the protocol cannot run says so."""
        raise NotImplementedError(f"the {self.name} algorithm runs under the search driver only")

    @abstractmethod
    def result(self) -> SearchResult:
        """The answer from the state integrated so far (``counts`` and ``directory`` are the
        driver's to fill in); SearchError if there is none."""

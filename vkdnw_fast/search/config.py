"""``SearchConfig``: everything a search's answer depends on, stored with its record."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .. import spaces
from ..config import DEFAULT_PRESET, PRESETS
from ..datasets import DataSource, load
from ..runs import config_from_saved
from ..scoring import check_proxies
from .algorithms import get_algorithm


@dataclass(frozen=True)
class SearchConfig:
    """Everything the answer depends on; stored with the run and checked on resume.

    space: ``{"name": "nb201", "dataset", "subset"}`` or ``{"name": "mbv2", "resolution",
        "num_classes", "flops_budget", "max_layers", "flops_count"}`` (``spaces.from_spec``).
    proxies: the columns aggregated by docs/method.md eq. 15 (and scored).
    iterations: scored candidates to integrate.
    population: population size.
    seed: of the search RNG, and of every score (network init and input noise) unless ``init_seed``.
    workers: W, the lag of the deterministic asynchronous schedule (see ``driver``).
    preset: the Fisher preset of the Fisher proxies.
    algorithm: the search algorithm (``algorithms.available_algorithms()``).
    init_seed: the seed of every score when it is not ``seed``: repeated runs of a sampling
        algorithm then share one score per architecture (``search.protocol``).
    fitness, fitness_dataset, tournament, warmup: regularised evolution's (``rea``, ``area``)
        benchmark metric and dataset, tournament size, and ``area``'s number of proxy-scored draws;
        fitness and its dataset None: the protocol's defaults for the benchmark (``search.protocol``).
    data: the file or directory of real images every score is computed on instead of Gaussian
        noise (``vkdnw_fast.datasets``), as an absolute path; None: Gaussian.
    """

    space: dict[str, Any]
    proxies: tuple[str, ...]
    iterations: int
    population: int = 1024
    seed: int = 0
    workers: int = 1
    preset: str = DEFAULT_PRESET
    algorithm: str = "evolution"
    init_seed: int | None = None
    fitness: str | None = None
    fitness_dataset: str | None = None
    tournament: int = 3
    warmup: int = 20
    data: str | None = None

    def __post_init__(self):
        if self.data is not None:
            object.__setattr__(self, "data", DataSource(self.data).path)
        algorithm = get_algorithm(self.algorithm)
        proxies = tuple(self.proxies)
        object.__setattr__(self, "proxies", tuple(check_proxies(proxies)) if proxies or algorithm.needs_proxies
                           else ())
        if len(set(self.proxies)) != len(self.proxies):
            raise ValueError(f"proxies are listed more than once: {list(self.proxies)}")
        for name in ("iterations", "population", "workers", "tournament", "warmup"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("seed", "init_seed"):
            value = getattr(self, name)
            if value is None and name == "init_seed":
                continue
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {value!r}")
        if self.algorithm == "area" and self.warmup < self.population:
            raise ValueError(f"area starts from the best {self.population} of its {self.warmup} scored draws: "
                             "warmup must be at least the population")
        if self.data is not None and not self.proxies:
            raise ValueError(f"data is read by scoring only, and the {self.algorithm} algorithm scores nothing")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; presets are {sorted(PRESETS)}")
        spaces.from_spec(self.space)  # fails early, naming a bad space argument

    def data_source(self) -> DataSource | None:
        return None if self.data is None else DataSource(self.data)

    def check_data(self, batch_size: int = 64) -> None:
        """An error naming the data file where it cannot feed the space's networks, before scoring."""
        if self.data is not None:
            space = spaces.from_spec(self.space)
            load(self.data).check(input_shape=space.input_shape, num_classes=space.num_classes,
                                  batch_size=batch_size, what=f"the {self.space['name']} space")

    @property
    def scoring_seed(self) -> int:
        """The seed every score is computed with (network init and input noise)."""
        return self.seed if self.init_seed is None else self.init_seed

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps({**asdict(self), "proxies": list(self.proxies)}))

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> "SearchConfig":
        """The configuration stored by ``to_dict``, with defaults for fields the record predates."""
        return config_from_saved(cls, saved)

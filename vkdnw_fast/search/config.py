"""``SearchConfig``: everything a search's answer depends on, stored with its record."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .. import spaces
from ..config import DEFAULT_PRESET, PRESETS
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
    seed: of the search RNG and of every score (network init and input noise).
    workers: W, the lag of the deterministic asynchronous schedule (see ``driver``).
    preset: the Fisher preset of the Fisher proxies.
    algorithm: the search algorithm (``algorithms.available_algorithms()``).
    """

    space: dict[str, Any]
    proxies: tuple[str, ...]
    iterations: int
    population: int = 1024
    seed: int = 0
    workers: int = 1
    preset: str = DEFAULT_PRESET
    algorithm: str = "evolution"

    def __post_init__(self):
        object.__setattr__(self, "proxies", tuple(check_proxies(self.proxies)))
        if len(set(self.proxies)) != len(self.proxies):
            raise ValueError(f"proxies are listed more than once: {list(self.proxies)}")
        for name in ("iterations", "population", "workers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise ValueError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.preset not in PRESETS:
            raise ValueError(f"unknown preset {self.preset!r}; presets are {sorted(PRESETS)}")
        get_algorithm(self.algorithm)
        spaces.from_spec(self.space)  # fails early, naming a bad space argument

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps({**asdict(self), "proxies": list(self.proxies)}))

    @classmethod
    def from_dict(cls, saved: dict[str, Any]) -> "SearchConfig":
        """The configuration stored by ``to_dict``, with defaults for fields the record predates."""
        return config_from_saved(cls, saved)

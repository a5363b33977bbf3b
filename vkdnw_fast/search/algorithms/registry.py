"""The search algorithms by name (``SearchConfig.algorithm``)."""
from __future__ import annotations

from ...registry import Registry
from .base import SearchAlgorithm

_ALGORITHMS: Registry[SearchAlgorithm] = Registry("search algorithm")
register_algorithm = _ALGORITHMS.register
get_algorithm = _ALGORITHMS.get  # the class; the driver constructs it with the run's config, space and RNG
available_algorithms = _ALGORITHMS.names

"""Search algorithms behind one interface (``base.SearchAlgorithm``), by name."""
from . import evolution, rea, sampling  # noqa: F401  (registers the built-in algorithms)
from .base import Integration, SearchAlgorithm, SearchResult
from .registry import available_algorithms, get_algorithm, register_algorithm

__all__ = ["Integration", "SearchAlgorithm", "SearchResult", "available_algorithms", "get_algorithm",
           "register_algorithm"]

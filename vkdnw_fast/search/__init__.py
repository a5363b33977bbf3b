"""Architecture search (docs/method.md §7): algorithms behind one interface (``algorithms``; evolution is the
first), driven with deterministic asynchronous scoring on local processes or Ray and a resumable
SQLite record. See ``driver`` for the schedule and its guarantees, ``algorithms.evolution`` for the
evolutionary search, ``cli`` for ``vkdnw-fast search``."""
from ..backends import InProcessBackend, Job, PoolBackend, RayBackend, make_backend
from .algorithms import SearchAlgorithm, SearchResult, available_algorithms, register_algorithm
from .baseline import BaselineResult, random_search
from .config import SearchConfig
from .driver import run_search
from .store import SearchError, Store

__all__ = ["BaselineResult", "InProcessBackend", "Job", "PoolBackend", "RayBackend", "SearchAlgorithm", "SearchConfig",
           "SearchError", "SearchResult", "Store", "available_algorithms", "make_backend", "random_search",
           "register_algorithm", "run_search"]

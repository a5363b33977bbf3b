"""Evolutionary architecture search (SPEC §7) with deterministic asynchronous scoring on local
processes or Ray, and a resumable SQLite record. See ``driver`` for the algorithm and its
guarantees, ``cli`` for ``vkdnw-fast search``."""
from ..backends import InProcessBackend, Job, PoolBackend, RayBackend, make_backend
from .config import SearchConfig
from .driver import BaselineResult, SearchResult, random_search, run_search
from .store import SearchError, Store

__all__ = ["BaselineResult", "InProcessBackend", "Job", "PoolBackend", "RayBackend", "SearchConfig", "SearchError",
           "SearchResult", "Store", "make_backend", "random_search", "run_search"]

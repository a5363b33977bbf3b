"""Ground truth as objects: a ``Benchmark`` answers which architectures (of which search space),
which datasets, which metrics, and the value of an architecture, from the bundled tables or from
data files the user passes in explicitly. Benchmarks import spaces and data only."""
from . import nats, nb101, nb201, transnas  # noqa: F401  (registers the built-in benchmarks)
from .base import Benchmark, NoRelevanceError, parse_metric
from .registry import available, from_files, get, register_benchmark

__all__ = ["Benchmark", "NoRelevanceError", "available", "from_files", "get", "parse_metric", "register_benchmark"]

"""The benchmarks by name: ``get("nb201")`` (bundled tables) or ``get("nb201", nats_path=...)``."""
from __future__ import annotations

from ..registry import Registry
from .base import Benchmark

_BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
register_benchmark = _BENCHMARKS.register
get = _BENCHMARKS.create  # get(name, **constructor arguments) -> Benchmark
available = _BENCHMARKS.names

"""The benchmarks by name: ``get("nb201")`` (bundled tables) or ``get("nb201", nats_path=...)``."""
from __future__ import annotations

import inspect
from pathlib import Path

from ..registry import Registry
from .base import Benchmark

_BENCHMARKS: Registry[Benchmark] = Registry("benchmark")
register_benchmark = _BENCHMARKS.register
get = _BENCHMARKS.create  # get(name, **constructor arguments) -> Benchmark
available = _BENCHMARKS.names


# The constructor arguments that name a user's files, by the command-line option that gives them.
FILE_OPTIONS = {"nats_path": "--nats-path", "path": "--benchmark-path"}


def add_file_arguments(parser) -> None:
    """``--nats-path`` and ``--benchmark-path`` on an argparse parser or argument group (evaluate,
    report, plot and search share them)."""
    parser.add_argument(FILE_OPTIONS["nats_path"], default=None,
                        help="NATS-Bench API files (nb201: the TSS files; nats_sss: the SSS files, required), "
                             "read through the nats_bench package")
    parser.add_argument(FILE_OPTIONS["path"], default=None,
                        help="nb101: the full NAS-Bench-101 data in NASLib's pickle format (default: the bundled "
                             "292-cell subset)")


def file_options(benchmark: type[Benchmark] | Benchmark) -> list[str]:
    """The command-line options that give ``benchmark`` (a class or an instance) its files."""
    cls = benchmark if isinstance(benchmark, type) else type(benchmark)
    return [FILE_OPTIONS[key] for key in inspect.signature(cls).parameters if key in FILE_OPTIONS]


def from_files(name: str, *, nats_path: str | Path | None = None, path: str | Path | None = None) -> Benchmark:
    """The ground truth of space ``name``: bundled, or read from the files a user points at
    (``nats_path``: NATS-Bench's API folder; ``path``: a benchmark file), with an error that names
    the option a benchmark needs, or one it does not read."""
    given = {key: value for key, value in (("nats_path", nats_path), ("path", path)) if value is not None}
    cls = _BENCHMARKS.get(name)
    accepted, reads = inspect.signature(cls).parameters, file_options(cls)
    for key in given:
        if key not in accepted:
            raise ValueError(f"{FILE_OPTIONS[key]} does not apply to the {name} benchmark"
                             + (f" (it reads {' or '.join(reads)})" if reads else " (it is bundled whole)"))
    for key, parameter in accepted.items():
        if parameter.default is inspect.Parameter.empty and key not in given:
            raise ValueError(f"the {name} benchmark needs {FILE_OPTIONS.get(key, key)} (its data is not bundled)")
    return get(name, **given)

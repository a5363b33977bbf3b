"""NAS-Bench-101 ground truth (CIFAR-10): the bundled 500-cell subset, or a user's full data.

Cells are looked up by the benchmark's graph hash (``spaces.nb101.spec_hash``), so any string of
a cell, or of a cell isomorphic to it, finds its record.

* Bundled (``path=None``): ``data/nb101_subset_val.csv.gz`` (provenance in ``data/README.md``):
  NAS-Bench-Suite-Zero's 500 rows in NASLib's encoding (``spaces.nb101.from_naslib``), each the
  validation accuracy (%) of *one* of the cell's three 108-epoch runs, drawn by NASLib's query.
  The rows hold 292 distinct cells (the trivial input→output cell 55 times); a cell's value is
  the mean of its rows, and ``archs()`` lists each cell once, by its first row's string.
  Metric: ``valid@108``.
* A user's file (``path``): NAS-Bench-101 in NASLib's pickle format (what NASLib's
  ``nb101_api.NASBench`` loads: a dict hash → (fixed statistics ``{module_adjacency,
  module_operations, trainable_parameters}``, ``{epochs: [one dict per run with
  final_validation_accuracy, final_test_accuracy, halfway_*, ...]}``). Metrics ``valid@E`` and
  ``test@E`` for every E the file has: the mean over the runs of ``final_validation_accuracy``
  / ``final_test_accuracy``, in %. The file is unpickled: load only files you trust.
"""
from __future__ import annotations

import ast
import csv
import functools
import gzip
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import data
from ..spaces import nb101
from .base import Benchmark
from .registry import register_benchmark

SUBSET_CSV = Path(data.__file__).with_name("nb101_subset_val.csv.gz")
DATASET = "cifar10"
_SPLITS = {"valid": "final_validation_accuracy", "test": "final_test_accuracy"}


@functools.lru_cache(maxsize=1)
def _subset() -> tuple[tuple[str, ...], dict[str, float]]:
    """(one string per cell in first-row order, {hash: mean valid@108 of its rows})."""
    with gzip.open(SUBSET_CSV, "rt", newline="") as handle:
        rows = [(nb101.from_naslib(ast.literal_eval(row["arch"])), float(row["val_accuracy"]))
                for row in csv.DictReader(handle)]
    archs, accuracies = {}, {}
    for arch, accuracy in rows:
        key = nb101.spec_hash(arch)
        archs.setdefault(key, arch)
        accuracies.setdefault(key, []).append(accuracy)
    return tuple(archs.values()), {key: float(np.mean(values)) for key, values in accuracies.items()}


@register_benchmark("nb101")
class NB101Benchmark(Benchmark):
    """NAS-Bench-101 accuracies on CIFAR-10, from the bundled subset or from ``path``."""

    name = "nb101"
    space = "nb101"
    default_metric = "valid@108"
    space_size = nb101.CELLS

    def __init__(self, path: str | Path | None = None):
        self.path = None if path is None else Path(path)
        self._records: dict | None = None

    def _data(self) -> dict:
        if self._records is None:
            with open(self.path, "rb") as handle:
                self._records = pickle.load(handle)
        return self._records

    def archs(self) -> list[str]:
        """One canonical string per cell: the subset's, or each record's stored cell in file order."""
        if self.path is None:
            return list(_subset()[0])
        return [nb101.from_matrix(fixed["module_adjacency"], fixed["module_operations"])
                for fixed, _ in self._data().values()]

    def complete(self) -> bool:
        return (len(_subset()[0]) if self.path is None else len(self._data())) >= self.space_size

    def datasets(self) -> tuple[str, ...]:
        return (DATASET,)

    def metrics(self, dataset: str) -> tuple[str, ...]:
        self._check_dataset(dataset)
        if self.path is None:
            return (self.default_metric,)
        epochs = sorted(next(iter(self._data().values()))[1])
        return tuple(f"{split}@{e}" for e in epochs for split in _SPLITS)

    def _check_dataset(self, dataset: str) -> None:
        if dataset != DATASET:
            raise ValueError(f"NAS-Bench-101 has one dataset, {DATASET!r}; got {dataset!r}")

    def values(self, archs: Sequence[str], dataset: str, metric: str | None = None) -> np.ndarray:
        """Accuracies (%) of ``archs`` under ``metric`` (default ``valid@108``), in that order;
        ValueError naming a cell the benchmark does not have."""
        metric = self.check_metric(dataset, metric)
        result = np.empty(len(archs))
        for i, arch in enumerate(archs):
            key = nb101.spec_hash(arch)
            try:
                result[i] = self._value(key, metric)
            except KeyError:
                raise ValueError(f"{arch!r} (hash {key}) is not in the nb101 benchmark's "
                                 f"{'bundled subset' if self.path is None else self.path}") from None
        return result

    def _value(self, key: str, metric: str) -> float:
        if self.path is None:
            return _subset()[1][key]
        split, epochs = metric.split("@")
        runs = self._data()[key][1][int(epochs)]
        return 100.0 * float(np.mean([run[_SPLITS[split]] for run in runs]))

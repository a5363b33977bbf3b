"""NAS-Bench-201 / NATS-Bench (topology search space) ground truth.

Values come from the bundled table (``vkdnw_fast/data``, provenance in its README), or, when a path
is given, from the user's NATS-Bench TSS API files through the ``nats_bench`` package. Both are
queried by NATS-Bench index (``spaces.nb201.index_of``), and both answer the same metrics: those the
bundled table has, so that a result does not depend on which source was at hand.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data import NB201_SIZE, nb201_extra_table, nb201_table
from ..spaces import nb201 as space
from .base import Benchmark
from .nats import NATSBenchmark
from .registry import register_benchmark

# metric -> {dataset: (bundled table, its column)}, accuracies in % (data/README.md says which split of
# each dataset and where each column comes from). test@200: mean over the training seeds. valid@200:
# CIFAR-10's cifar10-valid mean over seeds; CIFAR-100's and ImageNet16-120's one seed (NASLib's), the
# only 200-epoch validation accuracies available for every cell. valid@12, test@12: the 12-epoch
# schedule (hp=12), mean over seeds; CIFAR-10's valid is cifar10-valid, regularised evolution's fitness.
_MAIN, _EXTRA = nb201_table, nb201_extra_table
_COLUMNS = {
    "test@200": {"cifar10": (_MAIN, "cifar10_test"), "cifar100": (_MAIN, "cifar100_test"),
                 "ImageNet16-120": (_MAIN, "imagenet16_test")},
    "valid@200": {"cifar10": (_MAIN, "cifar10valid_valid_nb201"), "cifar100": (_EXTRA, "cifar100_valid_naslib"),
                  "ImageNet16-120": (_EXTRA, "imagenet16_valid_naslib")},
    "valid@12": {"cifar10": (_EXTRA, "cifar10_valid_hp12"), "cifar100": (_EXTRA, "cifar100_valid_hp12"),
                 "ImageNet16-120": (_EXTRA, "imagenet16_valid_hp12")},
    "test@12": {"cifar10": (_EXTRA, "cifar10_test_hp12"), "cifar100": (_EXTRA, "cifar100_test_hp12"),
                "ImageNet16-120": (_EXTRA, "imagenet16_test_hp12")},
}


@register_benchmark("nb201")
class NB201Benchmark(Benchmark):
    """NAS-Bench-201 accuracies of all 15,625 cells on cifar10, cifar100 and ImageNet16-120.

    ``nats_path``: the NATS-Bench TSS files to read through ``nats_bench`` (loaded on first use);
    None reads the bundled table. Architectures may be given in any valid form, datasets by any
    alias ``spaces.nb201.canonical_dataset`` accepts.
    """

    space = "nb201"
    default_metric = "test@200"
    space_size = NB201_SIZE

    def __init__(self, nats_path: str | Path | None = None):
        self.nats_path = None if nats_path is None else str(nats_path)
        self._nats = None if nats_path is None else NATSBenchmark(nats_path, "tss")

    def archs(self) -> list[str]:
        """All 15,625 cells in NATS index order; with ``nats_path``, those its files hold."""
        return space.archs("all") if self._nats is None else self._nats.archs()

    def datasets(self) -> tuple[str, ...]:
        return space.DATASETS

    def metrics(self, dataset: str) -> tuple[str, ...]:
        dataset = space.canonical_dataset(dataset)
        return tuple(metric for metric, columns in _COLUMNS.items() if dataset in columns)

    def values(self, archs: Sequence[str], dataset: str, metric: str | None = None) -> np.ndarray:
        dataset = space.canonical_dataset(dataset)
        metric = self.check_metric(dataset, metric)
        if self._nats is not None:  # the query the bundled table was built with (data/README.md)
            return self._nats.values(archs, dataset, metric)
        indices = np.array([space.index_of(arch) for arch in archs], dtype=np.int64)
        table, column = _COLUMNS[metric][dataset]
        return table()[column][indices]


def compare_with_nats(
    nats_path: str | Path,
    datasets: Sequence[str] = space.DATASETS,
    indices: Sequence[int] | None = None,
    tolerance: float = 1e-6,
) -> list[tuple[int, str, float, float]]:
    """(index, dataset, bundled value, NATS value) for every default-metric value on which the
    bundled table and the NATS-Bench API at ``nats_path`` disagree by more than ``tolerance``;
    empty when they agree. The table stores 10 significant digits, so agreement is to about 1e-8."""
    bundled, official = NB201Benchmark(), NB201Benchmark(nats_path)
    all_archs = space.archs("all")
    archs = all_archs if indices is None else [all_archs[i] for i in indices]
    mismatches = []
    for dataset in map(space.canonical_dataset, datasets):
        for arch, ours, theirs in zip(archs, bundled.values(archs, dataset), official.values(archs, dataset)):
            if not abs(ours - theirs) <= tolerance:
                mismatches.append((space.index_of(arch), dataset, float(ours), float(theirs)))
    return mismatches

"""NATS-Bench ground truth (Dong et al. 2021) read through the ``nats_bench`` package from the API
files a user owns; nothing of it is bundled.

Two search spaces: ``sss`` (the size space, architectures of ``spaces.nats_sss``, trained 12 and
90 epochs) and ``tss`` (the topology space = NAS-Bench-201, architectures of ``spaces.nb201``,
trained 12 and 200 epochs). Datasets cifar10, cifar100, ImageNet16-120. Metrics ``test@E`` and
``valid@E``: ``get_more_info(index, dataset, hp=E, is_random=False)``, the mean over the training
seeds, in %. For cifar10, ``test`` is the network trained on train+valid evaluated on the test
set (dataset ``cifar10``), ``valid`` the network trained on the train half evaluated on the
validation half (dataset ``cifar10-valid``), as NATS-Bench's searches use it; for the other two
datasets both come from one training run (splits ``x-test`` and ``x-valid``).
"""
from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..data import NB201_SIZE
from ..spaces import nats_sss, nb201
from .base import Benchmark, parse_metric
from .registry import register_benchmark

# search space -> (its vkdnw_fast space, the module with archs/index_of, the epoch budgets, its size)
_SPACES = {"sss": ("nats_sss", nats_sss, (12, 90), nats_sss.SIZE), "tss": ("nb201", nb201, (12, 200), NB201_SIZE)}
# The fast-mode layout: one file per architecture, named by its index (nats_bench's api_utils).
_RECORD = re.compile(r"([0-9]+)\.pickle\.pbz2")
_VALID_DATASET = {"cifar10": "cifar10-valid"}


class NATSBenchmark(Benchmark):
    """NATS-Bench accuracies of one search space (``"sss"`` or ``"tss"``) from ``nats_path``, the
    directory of its API files (e.g. ``NATS-sss-v1_0-50262-simple``), opened on first use. The
    size space is registered as ``nats_sss``; the topology space is NAS-Bench-201's
    (``benchmarks.get("nb201", nats_path=...)`` reads it through this class)."""

    name = "nats"

    def __init__(self, nats_path: str | Path, search_space: str = "sss"):
        if search_space not in _SPACES:
            raise ValueError(f"unknown NATS-Bench search space {search_space!r}; use one of {sorted(_SPACES)}")
        self.nats_path = str(nats_path)
        self.search_space = search_space
        self.space, self._module, self._epochs, self.space_size = _SPACES[search_space]
        self.default_metric = f"test@{self._epochs[-1]}"
        self._api = None
        self._indices: frozenset[int] | None = None

    def archs(self) -> list[str]:
        """The architectures the API files hold (all of the space in NATS-Bench's release), in index
        order."""
        every = self._module.archs()
        return [every[index] for index in sorted(self._held())]

    def _held(self) -> frozenset[int]:
        """The indices with a record in ``nats_path`` (fast mode reads one file per index)."""
        if self._indices is None:
            directory = Path(self.nats_path)
            if not directory.is_dir():
                raise FileNotFoundError(f"{self.nats_path}: no such directory; --nats-path takes NATS-Bench's "
                                        f"API folder (e.g. NATS-{self.search_space}-v1_0-...-simple)")
            found = (_RECORD.fullmatch(path.name) for path in directory.iterdir())
            self._indices = frozenset(int(match.group(1)) for match in found if match)
        return self._indices

    def datasets(self) -> tuple[str, ...]:
        return nb201.DATASETS

    def metrics(self, dataset: str) -> tuple[str, ...]:
        nb201.canonical_dataset(dataset)
        return tuple(f"{split}@{e}" for e in self._epochs for split in ("test", "valid"))

    def values(self, archs: Sequence[str], dataset: str, metric: str | None = None) -> np.ndarray:
        """Accuracies (%) of ``archs`` under ``metric`` (default: test after the longest
        schedule), in that order."""
        dataset = nb201.canonical_dataset(dataset)
        split, epochs = parse_metric(self.check_metric(dataset, metric))
        query_dataset = _VALID_DATASET.get(dataset, dataset) if split == "valid" else dataset
        api = self._open()
        indices, held = [self._module.index_of(arch) for arch in archs], self._held()
        for arch, index in zip(archs, indices):
            if index not in held:  # nats_bench would fail on an assert
                raise ValueError(f"{arch!r} (NATS index {index}) has no record in {self.nats_path} "
                                 f"(it holds {len(held):,} of the space's {self.space_size:,})")
        return np.array([
            api.get_more_info(index, query_dataset, hp=f"{int(epochs):02d}", is_random=False)[f"{split}-accuracy"]
            for index in indices
        ], dtype=np.float64)

    def _open(self):
        if self._api is None:
            try:
                from nats_bench import create
            except ImportError as error:
                raise ImportError("NATS-Bench ground truth is read through the `nats_bench` package: "
                                  "pip install 'vkdnw_fast[nats]' (or nats_bench)") from error
            self._held()  # a missing directory named here, not deep in nats_bench
            self._api = create(self.nats_path, self.search_space, fast_mode=True, verbose=False)
        return self._api


@register_benchmark("nats_sss")
class NATSSizeBenchmark(NATSBenchmark):
    """NATS-Bench's size space (``spaces.nats_sss``), from the user's API files."""

    name = "nats_sss"

    def __init__(self, nats_path: str | Path):
        super().__init__(nats_path, "sss")

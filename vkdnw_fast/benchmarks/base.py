"""The interface of a benchmark: the trained ground truth of a search space's architectures, passed
explicitly to whatever ranks or searches against it (no module-level data paths)."""
from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

_METRIC = re.compile(r"([a-z]+)@([1-9][0-9]*)")


def parse_metric(metric: str) -> tuple[str, int]:
    """(split, epochs) of a metric name ``"<split>@<epochs>"``, e.g. ``"valid@12"`` -> ("valid", 12):
    the accuracy on that split of the network trained that many epochs."""
    match = _METRIC.fullmatch(metric) if isinstance(metric, str) else None
    if match is None:
        raise ValueError(f"a metric is named '<split>@<epochs>', e.g. 'test@200' or 'valid@12'; got {metric!r}")
    return match.group(1), int(match.group(2))


class NoRelevanceError(ValueError):
    """A metric that nDCG cannot take its gains from (a loss, say): nDCG is undefined against it."""


class Benchmark(ABC):
    """Trained accuracies of the architectures of one search space, on one or more datasets (or
    tasks), under one or more metrics (``"<split>@<epochs>"``, see ``parse_metric``).

    ``name`` is the name it is registered under; ``space`` the registered name of the search space
    whose architecture strings it answers for (``vkdnw_fast.spaces.get(space, ...)``);
    ``default_metric`` the metric used when none is asked for; ``space_size`` the number of
    architectures of that space (distinct cells where the benchmark keys on cells), so that a search
    can tell a benchmark that holds them all from one that holds a part (``complete``); None: not
    known, the benchmark taken as whole.
    """

    name: str
    space: str
    default_metric: str
    space_size: int | None = None

    @abstractmethod
    def archs(self) -> list[str]:
        """Every architecture the benchmark has a value for, canonical, in the benchmark's order."""

    @abstractmethod
    def datasets(self) -> tuple[str, ...]:
        """The datasets (or tasks) it has values for, by their canonical names."""

    @abstractmethod
    def metrics(self, dataset: str) -> tuple[str, ...]:
        """The metrics it has for ``dataset``."""

    @abstractmethod
    def values(self, archs: Sequence[str], dataset: str, metric: str | None = None) -> np.ndarray:
        """The value of ``metric`` (None: ``default_metric``) for each of ``archs``, in that order
        (float64). ValueError naming an architecture, dataset or metric it does not have."""

    def complete(self) -> bool:
        """Whether it has a value for every architecture of its space (a bundled subset, or a user's
        partial files, has not: a search then draws from ``archs()`` instead of the space)."""
        return self.space_size is None or len(self.archs()) >= self.space_size

    def unit(self, dataset: str, metric: str | None = None) -> str:
        """What the values of ``metric`` are measured in, for an axis label; by default "%" (accuracy)."""
        return "%"

    def show(self, value: float, dataset: str, metric: str | None = None) -> str:
        """One value of ``metric`` as a reader reads it; by default an accuracy in percent."""
        return f"{value:.2f}%"

    def ndcg_relevance(self, values: np.ndarray, dataset: str, metric: str | None = None) -> np.ndarray:
        """The relevance r that nDCG's gains 2^r − 1 are taken from (docs/method.md §5), for ``values``
        of ``metric``: by default the values themselves, accuracies in percent, so that a gain doubles
        per point. ``NoRelevanceError`` saying why where the metric has no such reading."""
        return values

    def value(self, arch: str, dataset: str, metric: str | None = None) -> float:
        """The value of ``metric`` for one architecture."""
        return float(self.values([arch], dataset, metric)[0])

    def check_metric(self, dataset: str, metric: str | None) -> str:
        """``metric`` (or the default), after checking that ``dataset`` has it."""
        metric = self.default_metric if metric is None else metric
        parse_metric(metric)
        if metric not in self.metrics(dataset):
            raise ValueError(f"the {self.name} benchmark has no metric {metric!r} for {dataset}; "
                             f"it has {list(self.metrics(dataset))}")
        return metric

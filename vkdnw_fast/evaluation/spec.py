"""What an evaluation computes (``EvaluationSpec``), and the ground truth it ranks against."""
from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass

import numpy as np

from .. import benchmarks, spaces
from ..benchmarks import Benchmark
from ..config import DEFAULT_PRESET, PRESETS
from ..datasets import DataSource, load
from ..runs import config_from_saved
from ..scoring import check_proxies, columns

# docs/method.md §6 eq. 15: the non-linear aggregation of VKDNW_single, Jacov, expressivity, trainability, FLOPs.
AGGREGATE_PROXIES = ("vkdnw_single", "jacov", "expressivity", "trainability", "flops")
# Fields added after runs were first recorded: written only where they differ from their default,
# so that the record (run.json) and report (metrics.json) of such a run read as they always did.
_LATER_FIELDS = ("space", "metric", "data")


@dataclass(frozen=True)
class EvaluationSpec:
    """What a run computes; stored in ``run.json`` and checked on resume.

    ``space`` and ``dataset`` name the architectures' search space and the dataset (or task) their
    networks are built for and ranked on (None: the space's default, NB201's cifar10, TransNAS-Bench-101's
    class_scene); ``subset`` a structural subset of the space (NB201:
    "unique", "all" or "paper"; ignored by spaces without subsets), ``limit`` a seeded sample of it;
    ``metric`` the ground truth they are ranked against (a metric of the benchmark registered under
    the space's name, ``benchmarks.get(space)``; None: its default). A space's constructor takes
    ``dataset`` and ``subset`` where it has them; the architectures are the space's (or, where the
    space is too large to enumerate, the benchmark's, e.g. NAS-Bench-101's 292 cells). ``data``: the
    file or directory of real images scored on instead of Gaussian noise (``vkdnw_fast.datasets``),
    stored as an absolute path; None: Gaussian.
    """

    dataset: str | None = None
    proxies: tuple[str, ...] = AGGREGATE_PROXIES
    presets: tuple[str, ...] = (DEFAULT_PRESET,)
    subset: str = "unique"
    limit: int | None = None
    sample_seed: int = 0
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    ndcg_k: int = 1000
    space: str = "nb201"
    metric: str | None = None
    data: str | None = None

    def __post_init__(self):
        if self.data is not None:
            object.__setattr__(self, "data", DataSource(self.data).path)
        # The space's canonical name of the dataset, where the space has one (it checks it); NAS-Bench-101, which
        # has none, is CIFAR-10's.
        object.__setattr__(self, "dataset", getattr(self.space_object(), "dataset", self.dataset or "cifar10"))
        object.__setattr__(self, "proxies", tuple(check_proxies(self.proxies)))
        object.__setattr__(self, "presets", tuple(self.presets))
        object.__setattr__(self, "seeds", tuple(int(s) for s in self.seeds))
        if not self.presets or any(p not in PRESETS for p in self.presets):
            raise ValueError(f"presets must be a non-empty subset of {sorted(PRESETS)}, got {self.presets}")
        if not self.seeds:
            raise ValueError("at least one seed is needed")
        if self.limit is not None and self.limit < 2:
            raise ValueError(f"--limit must be at least 2 architectures, got {self.limit}")
        if self.metric is not None:
            benchmarks.parse_metric(self.metric)

    def space_spec(self) -> dict:
        """The space as a scoring job carries it (``spaces.from_spec``): its name, and the dataset
        and subset where its constructor takes them."""
        accepted = inspect.signature(spaces.space_class(self.space)).parameters
        return {"name": self.space, **{k: getattr(self, k) for k in ("dataset", "subset")
                                       if k in accepted and getattr(self, k) is not None}}

    def space_object(self) -> spaces.SearchSpace:
        return spaces.from_spec(self.space_spec())

    def archs(self, benchmark: Benchmark | None = None) -> list[str]:
        """The evaluated architectures in the space's order (the benchmark's where the space cannot be
        enumerated; only those a partial benchmark holds): the subset, or a seeded sample of it."""
        try:
            pool = list(self.space_object().enumerate())
        except NotImplementedError:
            pool = self.ground_truth(benchmark).archs()
        else:
            if benchmark is not None and not benchmark.complete():  # what it lacks cannot be ranked
                held = set(benchmark.archs())
                pool = [arch for arch in pool if arch in held]
        if self.limit is None or self.limit >= len(pool):
            return pool
        chosen = np.random.default_rng(self.sample_seed).choice(len(pool), self.limit, replace=False)
        return [pool[i] for i in sorted(chosen)]

    def data_source(self) -> DataSource | None:
        return None if self.data is None else DataSource(self.data)

    def check_data(self, batch_size: int = 64) -> None:
        """An error naming the data file where it cannot feed the space's networks (read here, so
        that a bad file fails once, before any architecture is scored)."""
        if self.data is not None:
            space = self.space_object()
            load(self.data).check(input_shape=space.input_shape, num_classes=space.num_classes,
                                  batch_size=batch_size, what=f"the {self.space} space on {self.dataset}")

    def columns(self) -> list[str]:
        return columns(self.proxies, self.presets)

    def fields(self) -> dict:
        """Every field, defaults included: what two specs are compared by."""
        return dataclasses.asdict(self)

    def to_json(self) -> dict:
        """The fields as ``run.json`` and the report store them (see ``_LATER_FIELDS``)."""
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        return {k: v for k, v in self.fields().items() if k not in _LATER_FIELDS or v != defaults[k]}

    @classmethod
    def from_json(cls, data: dict) -> "EvaluationSpec":
        return config_from_saved(cls, data)

    def ground_truth(self, benchmark: Benchmark | None = None) -> Benchmark:
        """``benchmark`` (default: the bundled one of the space's name), checked to answer this spec."""
        benchmark = benchmarks.get(self.space) if benchmark is None else benchmark
        if benchmark.space != self.space:
            raise ValueError(f"the {benchmark.name} benchmark has architectures of the {benchmark.space} space, "
                             f"the evaluation is of the {self.space} space")
        benchmark.check_metric(self.dataset, self.metric)
        return benchmark

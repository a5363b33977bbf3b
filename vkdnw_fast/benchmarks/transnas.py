"""TransNAS-Bench-101 ground truth (Duan et al., CVPR 2021): every architecture of its micro
(``tnb_micro``, 4,096 cells) and macro (``tnb_macro``, 3,256 layouts) spaces on its seven tasks.

Bundled: ``data/transnas101_val.csv.gz`` (provenance in ``data/README.md``), the validation metric
NAS-Bench-Suite-Zero read from the benchmark's API with NASLib (``mode='final'``: after the last
epoch). Its op-index tuples are turned into the benchmark's strings by their digits
(``spaces.transnas.from_naslib``), as NASLib queried the API.

One metric per task, ``valid@<epochs>`` with the task's training length (the benchmark's configs):
top-1 accuracy (%) for ``class_object``, ``class_scene`` (25 epochs) and ``jigsaw`` (10); the negated
loss for ``room_layout`` (25); pixel accuracy (%) for ``segmentsemantic`` (30); SSIM for ``normal``
and ``autoencoder`` (30). Higher is better for all. nDCG's gains (``ndcg_relevance``) read an SSIM in
percent, so that they are as steep as an accuracy's, and are undefined for ``room_layout``: a negated
loss is no relevance (its gains 2^r − 1 are all negative).
"""
from __future__ import annotations

import ast
import csv
import functools
import gzip
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .. import data
from ..spaces import transnas
from .base import Benchmark, NoRelevanceError
from .registry import register_benchmark

CSV = Path(data.__file__).with_name("transnas101_val.csv.gz")
EPOCHS = {"class_object": 25, "class_scene": 25, "jigsaw": 10, "room_layout": 25,
          "segmentsemantic": 30, "normal": 30, "autoencoder": 30}
_SPACES = {"micro": "tnb_micro", "macro": "tnb_macro"}
_SSIM_TASKS = ("normal", "autoencoder")


@functools.lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, dict[str, float]]]:
    """{space: {task: {benchmark string: value}}} of the bundled file, checked to hold every
    architecture of both spaces exactly once per task."""
    table: dict[str, dict[str, dict[str, float]]] = {space: {task: {} for task in EPOCHS} for space in _SPACES.values()}
    strings: dict[tuple[str, str], str] = {}  # each tuple is converted once, not once per task
    with gzip.open(CSV, "rt", newline="") as handle:
        for line, row in enumerate(csv.DictReader(handle), start=2):
            space = _SPACES[row["search_space"]]
            key = (space, row["arch"])
            arch = strings.get(key)
            if arch is None:
                arch = strings[key] = transnas.from_naslib(space, ast.literal_eval(row["arch"]))
            values = table[space][row["task"]]
            if arch in values:
                raise ValueError(f"{CSV}, line {line}: {arch} appears twice for {row['task']}")
            values[arch] = float(row["val_metric"])
    for space, archs in (("tnb_micro", transnas.micro_archs()), ("tnb_macro", transnas.macro_archs())):
        for task, values in table[space].items():
            if set(values) != set(archs):
                raise ValueError(f"{CSV}: {space} on {task} has {len(values)} architectures, "
                                 f"not the space's {len(archs)}")
    return table


class _TransNASBenchmark(Benchmark):
    """One space's architectures on the seven tasks (``datasets``); see the module docstring."""

    def archs(self) -> list[str]:
        """Every architecture, in the space's order."""
        return list(transnas.micro_archs() if self.space == "tnb_micro" else transnas.macro_archs())

    def datasets(self) -> tuple[str, ...]:
        return transnas.TASKS

    def metrics(self, dataset: str) -> tuple[str, ...]:
        if dataset not in EPOCHS:
            raise ValueError(f"TransNAS-Bench-101 has no task {dataset!r}; tasks are {transnas.TASKS}")
        return (f"valid@{EPOCHS[dataset]}",)

    def check_metric(self, dataset: str, metric: str | None) -> str:
        """``metric``, or the task's one metric (the default, which depends on the task)."""
        return super().check_metric(dataset, self.metrics(dataset)[0] if metric is None else metric)

    def unit(self, dataset: str, metric: str | None = None) -> str:
        if dataset in _SSIM_TASKS:
            return "SSIM"
        return "negated L2 loss" if dataset == "room_layout" else super().unit(dataset, metric)

    def show(self, value: float, dataset: str, metric: str | None = None) -> str:
        if dataset in _SSIM_TASKS:
            return f"SSIM {value:.3f}"
        if dataset == "room_layout":
            return f"L2 loss {-value:.3f}"
        return super().show(value, dataset, metric)

    def ndcg_relevance(self, values: np.ndarray, dataset: str, metric: str | None = None) -> np.ndarray:
        if dataset in _SSIM_TASKS:
            return 100.0 * values
        if dataset == "room_layout":
            raise NoRelevanceError("nDCG is undefined for room_layout: its metric is a negated L2 loss, "
                                       "not a relevance (every gain 2^r − 1 would be negative)")
        return super().ndcg_relevance(values, dataset, metric)

    def values(self, archs: Sequence[str], dataset: str, metric: str | None = None) -> np.ndarray:
        """The task's validation metric of ``archs``; ValueError naming a string outside the space."""
        self.check_metric(dataset, metric)
        values = _table()[self.space][dataset]
        result = np.empty(len(archs))
        for i, arch in enumerate(archs):
            value = values.get(arch)
            if value is None:
                parse = transnas.parse_micro if self.space == "tnb_micro" else transnas.parse_macro
                parse(arch)  # says what is malformed
                raise ValueError(f"{arch!r} is not an architecture of the {self.space} benchmark")
            result[i] = value
        return result


@register_benchmark("tnb_micro")
class TransNASMicroBenchmark(_TransNASBenchmark):
    name = "tnb_micro"
    space = "tnb_micro"
    space_size = transnas.MICRO_SIZE


@register_benchmark("tnb_macro")
class TransNASMacroBenchmark(_TransNASBenchmark):
    name = "tnb_macro"
    space = "tnb_macro"
    space_size = transnas.MACRO_SIZE

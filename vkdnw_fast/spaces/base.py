"""The interface every search space implements, so drivers and benchmarks treat them alike."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterator

import numpy as np
from torch import nn


class SearchSpace(ABC):
    """A set of architectures named by strings.

    Implementations fix the task (input shape, number of classes) at construction, so that
    ``build_model`` and ``cost`` need only the architecture. All randomness comes from the
    ``numpy.random.Generator`` passed in, so a seed reproduces a run.
    """

    name: str
    input_shape: tuple[int, ...]
    num_classes: int

    @abstractmethod
    def validate(self, arch: str) -> str:
        """The canonical form of ``arch``; ValueError saying what is wrong if it is malformed."""

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> str:
        """A random architecture."""

    @abstractmethod
    def mutate(self, arch: str, rng: np.random.Generator) -> str:
        """A random neighbour of ``arch`` (may violate constraints; see ``is_feasible``)."""

    @abstractmethod
    def build_model(self, arch: str) -> nn.Module:
        """A freshly constructed network for ``arch``, returning logits (N, num_classes)."""

    @abstractmethod
    def cost(self, arch: str) -> dict[str, float]:
        """Size figures of ``arch``: at least ``flops`` (conv+linear MACs at batch 1), ``params``
        and ``layers``."""

    def enumerate(self) -> Iterator[str]:
        """Every architecture, where the space is finite."""
        raise NotImplementedError(f"the {self.name} space cannot be enumerated")

    def is_feasible(self, arch: str) -> tuple[bool, str]:
        """Whether ``arch`` meets the space's constraints, and if not, why."""
        return True, ""

"""The interface every search space implements, so that the search, the scoring backends and the
benchmarks treat all spaces alike, and nothing outside this package needs to know which space it has."""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterator, Sequence

import numpy as np
from torch import nn


def change_one(values: Sequence, choices: Sequence, rng: np.random.Generator) -> list:
    """``values`` with one position, drawn uniformly, set to one of the other ``choices``, uniformly:
    the one-step mutation of the cell and channel spaces."""
    changed = list(values)
    position = int(rng.integers(len(changed)))
    others = [c for c in choices if c != changed[position]]
    changed[position] = others[rng.integers(len(others))]
    return changed


def relu_conv_bn(c_in: int, c_out: int, kernel: int, stride: int) -> nn.Sequential:
    """ReLU → conv (no bias, "same" padding) → BN: the convolution op of the NAS-Bench-201 family of cells."""
    return nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(c_out),
    )


class SearchSpace(ABC):
    """A set of architectures named by strings.

    Implementations fix the task (input shape, number of classes) at construction, so that
    ``build_model`` and ``cost`` need only the architecture. All randomness comes from the
    ``numpy.random.Generator`` passed in, so a seed reproduces a run. ``name`` is the name the
    space is registered under (``spaces.register_space``).
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

    def initial(self, rng: np.random.Generator) -> str:
        """Where an evolutionary search starts: a random architecture, unless the space has a
        conventional starting net (MobileNetV2: the authors' initial net)."""
        return self.validate(self.sample(rng))

    def evolve(self, parent: str, rng: np.random.Generator, population_size: int) -> str:
        """The child an evolutionary search makes of ``parent`` while its population has
        ``population_size`` members: ``mutate``, unless the space's search varies the step with
        the population (MobileNetV2's authors replace one block in a small population, two later)."""
        return self.mutate(parent, rng)

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

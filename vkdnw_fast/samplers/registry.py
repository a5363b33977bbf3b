"""The sampler registry: which ``WeightSampler`` serves a module type."""
from __future__ import annotations

from torch import nn

from .base import WeightSampler

_REGISTRY: dict[type[nn.Module], WeightSampler] = {}


def register_sampler(*module_types: type[nn.Module]):
    """Class decorator registering a WeightSampler for exactly these module types.

    Lookup is by exact type: a subclass may override ``forward`` so that the parent's per-sample
    gradient formula no longer holds, so it must be registered on its own.
    """
    def decorate(cls: type[WeightSampler]) -> type[WeightSampler]:
        instance = cls()
        for module_type in module_types:
            _REGISTRY[module_type] = instance
        return cls
    return decorate


def sampler_for(module: nn.Module) -> WeightSampler | None:
    return _REGISTRY.get(type(module))


def supported_types() -> list[str]:
    return sorted(t.__name__ for t in _REGISTRY)

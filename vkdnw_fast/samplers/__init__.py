"""Per-layer weight samplers, in a registry keyed by module type (as Opacus's grad_sample/).

A sampler knows, for one module type, how to turn sampled elements of its parameters into the
coordinates of the ``sampled_grad`` op, what to keep from the forward (only the input channels
those coordinates read), and how to reduce (kept input, output gradient) to per-sample gradients
inside the backward. Register a sampler for your own layer with ``register_sampler``.
"""
from __future__ import annotations

from torch import nn

from .base import ModulePlan, WeightSampler

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


from . import batchnorm, conv, linear  # noqa: E402,F401  (registration)

__all__ = ["register_sampler", "sampler_for", "supported_types", "WeightSampler", "ModulePlan"]

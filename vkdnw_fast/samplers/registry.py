"""The sampler registry: which ``WeightSampler`` serves a module type.

Lookup walks the module's class hierarchy (``type(module).__mro__``): an explicit registration of
the class wins, else the nearest registered base class serves it. A subclass that overrides one of
that base's methods (typically ``forward``, e.g. a BatchNorm with its activation inside) may no
longer produce the base's output from its input, so the engine taps it where the base's formula
holds and verifies it there (``engine._OpTap``); one that only adds attributes (``out_proj`` of
``nn.MultiheadAttention``) is the base class.
"""
from __future__ import annotations

from torch import nn

from .base import WeightSampler

_REGISTRY: dict[type[nn.Module], WeightSampler] = {}
# Methods a subclass may redefine without changing what the base class's forward computes.
_HARMLESS = {"__init__", "extra_repr", "reset_parameters", "_load_from_state_dict", "__setstate__", "__repr__"}


def register_sampler(*module_types: type[nn.Module]):
    """Class decorator registering a WeightSampler for these module types and, unless they are
    registered themselves, their subclasses (see the module docstring)."""
    def decorate(cls: type[WeightSampler]) -> type[WeightSampler]:
        instance = cls()
        for module_type in module_types:
            _REGISTRY[module_type] = instance
        return cls
    return decorate


def registered_base(module: nn.Module) -> type[nn.Module] | None:
    """The nearest class of ``module``'s hierarchy with a registered sampler (its own class first)."""
    return next((cls for cls in type(module).__mro__ if cls in _REGISTRY), None)


def sampler_for(module: nn.Module) -> WeightSampler | None:
    base = registered_base(module)
    return None if base is None else _REGISTRY[base]


def overridden_methods(module: nn.Module) -> list[str]:
    """The methods of the registered base class that ``module``'s own class redefines (besides
    construction and representation), e.g. ``['forward']``; empty for a registered class."""
    base = registered_base(module)
    if base is None:
        return []
    below = type(module).__mro__[: type(module).__mro__.index(base)]
    return sorted({name for cls in below for name, value in vars(cls).items()
                   if callable(value) and name not in _HARMLESS and callable(getattr(base, name, None))})


def supported_types() -> list[str]:
    return sorted(t.__name__ for t in _REGISTRY)

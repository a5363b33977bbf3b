"""The search spaces by name: ``get("nb201", dataset="cifar10")``, or ``from_spec`` for the
``{"name": ..., **constructor arguments}`` dicts that scoring jobs and search configurations carry
(plain data, so that they can be stored in a record and sent to a worker process)."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..registry import Registry
from .base import SearchSpace

_SPACES: Registry[SearchSpace] = Registry("search space")
register_space = _SPACES.register
get = _SPACES.create  # get(name, **constructor arguments) -> SearchSpace
space_class = _SPACES.get  # the registered class, e.g. to read its constructor's arguments
available = _SPACES.names


def from_spec(spec: Mapping[str, Any]) -> SearchSpace:
    """The space described by ``{"name": ..., **constructor arguments}``."""
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError(f"a search space is described by {{'name': ..., **arguments}}, got {spec!r}")
    arguments = dict(spec)
    return get(arguments.pop("name"), **arguments)

"""The proxy registry: a proxy is a function ``fn(ctx: ProxyContext) -> float``, higher is better,
registered under a name with ``@register_proxy("name")``."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .context import ProxyContext

ProxyFn = Callable[["ProxyContext"], float]


@dataclass(frozen=True)
class _Entry:
    fn: ProxyFn
    may_be_neg_inf: bool
    uses_labels: bool = False
    uses_training_forward: bool = False


_REGISTRY: dict[str, _Entry] = {}


class ProxyError(RuntimeError):
    """A proxy failed (or returned a value its definition does not allow) on some network."""

    def __init__(self, name: str, where: str, reason: str):
        super().__init__(f"proxy {name!r} failed on {where}: {reason}")
        self.proxy = name
        self.where = where


def register_proxy(name: str, *, may_be_neg_inf: bool = False, uses_labels: bool = False,
                   uses_training_forward: bool = False) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator registering ``fn(ctx) -> float`` under ``name``.

    ``may_be_neg_inf``: the definition itself gives -inf on some networks (e.g. AZ-NAS
    trainability of an identity block); ``compute_proxies`` rejects every other non-finite value.
    ``uses_labels``: it reads the batch's labels (``batches.labelled_batch``: random and seeded unless
    the caller gives real data), so it is not label-free (``label_free``).
    ``uses_training_forward``: it reads the shared training-mode forward (``forward.training_forward``),
    whose autograd graph lives as long as the context; ``compute_on`` runs such proxies after the others.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a proxy name must be a non-empty string, got {name!r}")

    def decorator(fn: ProxyFn) -> ProxyFn:
        old = _REGISTRY.get(name)
        # Re-registering the same function (a module reload) is fine; a second one is a clash.
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"proxy {name!r} is already registered by {old.fn.__module__}.{old.fn.__qualname__}")
        _REGISTRY[name] = _Entry(fn, may_be_neg_inf, uses_labels, uses_training_forward)
        return fn

    return decorator


def entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown proxy {name!r}; known proxies are {available_proxies()}") from None


def get_proxy(name: str) -> ProxyFn:
    """The function registered under ``name`` (ValueError listing the known names otherwise)."""
    return entry(name).fn


def available_proxies() -> list[str]:
    """The registered proxy names, sorted."""
    return sorted(_REGISTRY)


def label_free(name: str) -> bool:
    """Whether the proxy ``name`` reads no labels (random or real): its score is the network's and the
    inputs' alone."""
    return not entry(name).uses_labels


__all__ = ["ProxyError", "ProxyFn", "register_proxy", "get_proxy", "available_proxies", "entry", "label_free"]

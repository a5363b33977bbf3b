"""Training-free proxies behind one registry: ``compute_proxies(model, names, ...)`` evaluates any
of ``available_proxies()`` on one initialised copy of a network and one input batch.

Importing this package registers every proxy module below.
"""
from .registry import (ProxyContext, ProxyError, available_proxies, build_context, compute_proxies,
                       evaluate, get_proxy, register_proxy)

# Proxy modules, imported for their @register_proxy side effects.
from . import aznas, jacov, naswot, size, vkdnw, zero_cost  # noqa: E402,F401
from .vkdnw import fisher_result

__all__ = ["ProxyContext", "ProxyError", "available_proxies", "build_context", "compute_proxies",
           "evaluate", "fisher_result", "get_proxy", "register_proxy"]

"""Training-free proxies behind one registry: ``compute_proxies(model, names, ...)`` evaluates any
of ``available_proxies()`` on one prepared copy of a network and one input batch.

Importing this package registers every proxy module below.
"""
from .compute import compute_on, compute_proxies
from .context import ProxyContext, build_context
from .registry import ProxyError, available_proxies, get_proxy, label_free, register_proxy

# Proxy modules, imported for their @register_proxy side effects.
from . import aznas, epe_nas, jacov, meco, naswot, size, swap, tenas, vkdnw, zen, zero_cost, zico  # noqa: E402,F401
from .vkdnw import fisher_result

__all__ = ["ProxyContext", "ProxyError", "available_proxies", "build_context", "compute_on", "compute_proxies",
           "fisher_result", "get_proxy", "label_free", "register_proxy"]

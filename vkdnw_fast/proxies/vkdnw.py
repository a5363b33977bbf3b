"""The Fisher proxies: VKDNW (spectrum entropy), aleph (network size) and VKDNW_single = aleph +
VKDNW (docs/method.md §2), from one engine run per context on its prepared model, configured by
``ctx.fisher_config``."""
from __future__ import annotations

import time

from ..engine import FisherResult, score_prepared
from .context import ProxyContext
from .registry import register_proxy


def fisher_result(ctx: ProxyContext) -> FisherResult:
    """The engine's result for the context's prepared model and batch, cached."""
    if "fisher" not in ctx.cache:
        started = time.perf_counter()
        ctx.cache["fisher"] = score_prepared(ctx.prepared, ctx.fisher_config)
        ctx.cache["fisher_seconds"] = time.perf_counter() - started
    return ctx.cache["fisher"]


def engine_run(ctx: ProxyContext) -> dict | None:
    """What the engine did, where a Fisher proxy has run it on this context (nothing is run here): its pass plan
    (``FisherResult.plan``), passes and seconds; else None."""
    result = ctx.cache.get("fisher")
    if result is None or result.plan is None:
        return None
    return {"plan": result.plan, "passes": result.passes, "seconds": ctx.cache["fisher_seconds"]}


@register_proxy("vkdnw")
def vkdnw(ctx: ProxyContext) -> float:
    return fisher_result(ctx).vkdnw


@register_proxy("aleph")
def aleph(ctx: ProxyContext) -> float:
    return float(fisher_result(ctx).aleph)


@register_proxy("vkdnw_single")
def vkdnw_single(ctx: ProxyContext) -> float:
    return fisher_result(ctx).single


def _register_quantile_level(k: int) -> None:
    @register_proxy(f"fim_q{k}")
    def level(ctx: ProxyContext) -> float:
        levels = fisher_result(ctx).quantile_levels
        if k > levels.numel():
            raise ValueError(f"fim_q{k} needs at least {k} quantiles, the config has {levels.numel()}")
        return float(levels[k - 1])
    level.__doc__ = f"The {k}-th spectrum quantile level of the Fisher matrix (a model-driven ranking feature)."


for _k in range(1, 10):
    _register_quantile_level(_k)

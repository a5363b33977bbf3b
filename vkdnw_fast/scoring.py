"""Scoring one architecture of a search space with any proxies, for one or more Fisher presets.

Every preset sees the same network initialisation and input batch (both come from ``seed``);
the proxies that do not depend on the preset are computed once.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from .config import DEFAULT_PRESET, FisherConfig
from .proxies import available_proxies, compute_proxies
from .spaces.base import SearchSpace
from .timing import stage

FISHER_PROXIES = ("vkdnw", "vkdnw_single", "aleph") + tuple(f"fim_q{k}" for k in range(1, 10))


def column(proxy: str, preset: str, presets: Sequence[str]) -> str:
    """A result column: Fisher proxies carry their preset when several presets are scored."""
    return f"{proxy}@{preset}" if proxy in FISHER_PROXIES and len(presets) > 1 else proxy


def columns(proxies: Iterable[str], presets: Sequence[str]) -> list[str]:
    return [column(p, preset, presets) for p in proxies
            for preset in (presets if p in FISHER_PROXIES else presets[:1])]


def check_proxies(proxies: Iterable[str]) -> list[str]:
    proxies = list(proxies)
    unknown = [p for p in proxies if p not in available_proxies()]
    if unknown:
        raise ValueError(f"unknown proxies {unknown}; known proxies are {available_proxies()}")
    if not proxies:
        raise ValueError("no proxies requested")
    return proxies


def score_architecture(space: SearchSpace, arch: str, proxies: Sequence[str], *,
                       presets: Sequence[str | FisherConfig] = (DEFAULT_PRESET,), seed: int = 0,
                       device=None, batch_size: int = 64, model=None) -> dict[str, float]:
    """{column: value} for ``arch`` (see ``column`` for the names). ``model``: a network already
    built for ``arch`` (e.g. on another thread), else it is built here."""
    arch = space.validate(arch)
    proxies = check_proxies(proxies)
    names = [p if isinstance(p, str) else (p.preset_name or "custom") for p in presets]
    if model is None:
        with stage("build"):
            model = space.build_model(arch)
    common = dict(input_shape=space.input_shape, num_classes=space.num_classes, seed=seed, device=device,
                  arch=arch, space=space, batch_size=batch_size)
    fisher = [p for p in proxies if p in FISHER_PROXIES]
    others = [p for p in proxies if p not in FISHER_PROXIES]
    values: dict[str, float] = {}
    for i, (name, preset) in enumerate(zip(names, presets)):
        wanted = fisher + (others if i == 0 else [])
        if wanted:
            result = compute_proxies(model, wanted, fisher_config=preset, **common)
            values.update({column(p, name, names): v for p, v in result.items()})
    return values

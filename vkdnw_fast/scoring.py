"""Scoring one architecture of a search space with any proxies, for one or more Fisher presets.

The network is built once and prepared once per (initialisation, memory format), so every preset
sees the same network initialisation and input batch (both come from ``seed``); the proxies that
do not depend on the preset are computed once, on the first preset's context.
"""
from __future__ import annotations

from typing import Iterable, Sequence

from .config import DEFAULT_PRESET, FisherConfig, resolve_config
from .datasets import DataSource
from .memory import retained_heap
from .prepare import check_seed, prepare, resolve_device
from .proxies import ProxyContext, available_proxies, compute_on
from .proxies.compute import seeded_global_rng
from .proxies.vkdnw import engine_run
from .timing import stage

FISHER_PROXIES = ("vkdnw", "vkdnw_single", "aleph") + tuple(f"fim_q{k}" for k in range(1, 10))
DEFAULT_BATCH_SIZE = 64


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


@retained_heap()
def score_architecture(space, arch: str, proxies: Sequence[str], *,
                       presets: Sequence[str | FisherConfig] = (DEFAULT_PRESET,), seed: int = 0,
                       device=None, batch_size: int = DEFAULT_BATCH_SIZE, model=None, consume_model: bool = False,
                       data: DataSource | str | None = None, failures: dict[str, str] | None = None,
                       engine_runs: dict[str, dict] | None = None) -> dict[str, float]:
    """{column: value} for ``arch`` of ``space`` (see ``column`` for the names). A proxy that fails
    raises ``ProxyError``; given a ``failures`` dict, its columns go there with the error instead
    ({column: message}) and are left out of the result. ``model``: a network
    already built for ``arch`` (e.g. on another thread), else it is built here; left untouched unless
    ``consume_model`` says it was built for this call alone, when it is prepared in place as one built
    here is (no copy). ``data``: real images (and labels) for the scoring batch instead of Gaussian noise
    (``vkdnw_fast.datasets``). ``engine_runs``: a dict that gets, for each preset whose Fisher proxies were
    scored, what the engine did (``proxies.vkdnw.engine_run``: its pass plan, rows, features, forward or per_sample,
    which decides the time and memory a network takes, not its scores beyond rounding, docs/method.md §4; its
    passes; its seconds)."""
    arch = space.validate(arch)
    proxies = check_proxies(proxies)
    seed = check_seed(seed)
    configs = [resolve_config(p) for p in presets]
    names = [p if isinstance(p, str) else (p.preset_name or "custom") for p in presets]
    built_here = model is None
    consumable = built_here or consume_model
    if built_here:
        with stage("build"):
            model = space.build_model(arch)
    device = resolve_device(model, None, device)
    fisher = [p for p in proxies if p in FISHER_PROXIES]
    others = [p for p in proxies if p not in FISHER_PROXIES]
    # Each preset's proxies: the Fisher ones, and the others on the first preset only.
    plan = [(name, config, fisher + (others if i == 0 else [])) for i, (name, config) in enumerate(zip(names, configs))]
    plan = [step for step in plan if step[2]]
    # One preparation per (initialisation, memory format), in the plan's order; the last of them may
    # take a network built for this call for itself instead of a copy.
    keys = list(dict.fromkeys((config.init, config.memory_format) for _, config, _ in plan))
    prepared = {}
    values: dict[str, float] = {}
    for name, config, wanted in plan:
        key = (config.init, config.memory_format)
        if key not in prepared:
            with stage("prepare"):
                prepared[key] = prepare(model, input_shape=space.input_shape, batch_size=batch_size, seed=seed,
                                        device=device, init=config.init, memory_format=config.memory_format,
                                        data=data, copy_model=not (consumable and key == keys[-1]))
        ctx = ProxyContext(prepared[key], num_classes=space.num_classes, arch=arch, space=space, fisher_config=config)
        failed: dict[str, str] | None = None if failures is None else {}
        with seeded_global_rng(seed, device):  # each preset's proxies see the same global stream
            values.update({column(p, name, names): v for p, v in compute_on(ctx, wanted, failures=failed).items()})
        if failed:
            failures.update({column(p, name, names): message for p, message in failed.items()})
        if engine_runs is not None and (run := engine_run(ctx)) is not None:
            engine_runs[name] = run
    return values

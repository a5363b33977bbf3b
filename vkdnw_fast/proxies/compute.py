"""Evaluating proxies: on a context (``compute_on``), or on a model from scratch
(``compute_proxies``, which prepares it once for all the proxies asked for)."""
from __future__ import annotations

import contextlib
import math
from typing import Any, Iterable, Iterator

import torch
from torch import nn

from ..config import FisherConfig
from ..datasets import DataSource
from ..memory import forget_tracebacks, retained_heap
from ..prepare import check_seed, ieee_float32, resolve_device
from ..timing import stage
from .context import FROM_CONFIG, GLOBAL_STREAM, ArchitectureSpace, ProxyContext, build_context, derived_seed
from .registry import ProxyError, entry


@retained_heap()
def compute_on(ctx: ProxyContext, names: str | Iterable[str], *, failures: dict[str, str] | None = None
               ) -> dict[str, float]:
    """Evaluate the named proxies on one context; failures and disallowed non-finite values
    raise ProxyError naming the proxy and the network, or, given a ``failures`` dict, are put there
    ({proxy: the error}) and left out of the result while the other proxies go on (each proxy's
    value is the same whichever others are asked for or fail). Returned in the order asked; run with the
    proxies reading the shared training forward last, so that the others' own forwards (naswot_128's
    batch of 128, Zen-NAS's, the Fisher engine's passes) do not add their memory to that forward's graph,
    which the context keeps (their values do not depend on the order: every random draw is seeded).
    Float32 runs at full precision (``prepare.ieee_float32``), so a GPU gives the CPU's values."""
    names = [names] if isinstance(names, str) else list(names)
    entries = {name: entry(name) for name in names}  # unknown names fail before any work
    results: dict[str, float] = {}
    for name, proxy in sorted(entries.items(), key=lambda item: item[1].uses_training_forward):
        try:
            results[name] = _value(ctx, name, proxy)
        except ProxyError as error:
            if failures is None:
                raise
            failures[name] = str(error)
            forget_tracebacks(error)
    return {name: results[name] for name in entries if name in results}


def _value(ctx: ProxyContext, name: str, proxy) -> float:
    """One proxy's value, or a ProxyError naming the proxy, the network and what went wrong."""
    try:
        with stage(f"proxy:{name}"), ieee_float32():
            value = float(proxy.fn(ctx))
    except Exception as exc:
        raise ProxyError(name, ctx.describe(), f"{type(exc).__name__}: {exc}") from exc
    if math.isnan(value) or value == math.inf or (value == -math.inf and not proxy.may_be_neg_inf):
        raise ProxyError(name, ctx.describe(), f"returned {value}, which its definition does not allow")
    return value


@contextlib.contextmanager
def seeded_global_rng(seed: int, device: torch.device) -> Iterator[None]:
    """Torch's global generators (CPU, and ``device``'s if CUDA) seeded from ``seed`` for the block,
    and restored afterwards: randomness inside a model (e.g. dropout) is then reproducible and the
    caller's RNG state is left as it was."""
    cuda_devices = [device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        global_seed = derived_seed(seed, GLOBAL_STREAM)
        torch.default_generator.manual_seed(global_seed)
        for index in cuda_devices:
            torch.cuda.default_generators[index].manual_seed(global_seed)
        yield


@retained_heap()
def compute_proxies(model: nn.Module, names: str | Iterable[str], *, inputs: torch.Tensor | None = None,
                    input_shape: tuple[int, ...] | None = None, batch_size: int = 64,
                    num_classes: int | None = None, seed: int = 0,
                    device: torch.device | str | None = None, arch: str | None = None,
                    space: ArchitectureSpace | None = None, fisher_config: FisherConfig | str | None = None,
                    init: str | None = FROM_CONFIG, logits: Any = None,
                    data: DataSource | str | None = None, failures: dict[str, str] | None = None
                    ) -> dict[str, float]:
    """Evaluate the named proxies on one initialised copy of ``model`` and one input batch.

    inputs: the scoring batch; default ``batch_size`` samples of N(0, 1) noise of shape
        ``input_shape`` (or ``space.input_shape``), drawn after the initialisation from the
        same seeded stream. Proxies needing another batch size (``naswot_128``) draw it from that
        stream too; Zen-NAS's score is defined on Gaussian noise and draws it whatever the batch.
    data: real images instead of the Gaussian batch (a ``datasets.DataSource`` or a path: a CIFAR
        python-format batch or directory, or an ``.npz``): the first ``batch_size`` after a shuffle
        seeded by ``seed``, normalised; the proxies needing labels get theirs instead of random ones.
    num_classes: default ``space.num_classes``, else read off the model's logits.
    device: default the device of the caller's model (or of ``inputs``).
    fisher_config: the Fisher proxies' configuration (default the default preset); its ``init``
        initialises the copy every proxy sees, unless ``init`` is given: a method
        (``kaiming_normal_fan_in``) or None to keep the model's weights.
    logits: where the logits are in the model's output when it is not one tensor (a key, an
        index, an attribute name or a callable; ``vkdnw_fast.prepare.pick_logits``).
    failures: a dict to collect the proxies that fail ({name: the error}) while the others go on
        (``compute_on``); without it the first failure raises ``ProxyError``.
    Returns {name: value}, higher is better. The caller's model and torch's global RNG state
    are left unchanged: the proxies run inside ``torch.random.fork_rng`` with the global generator
    seeded from ``seed``, so that randomness inside a model (e.g. dropout) is reproducible.
    """
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        entry(name)
    seed = check_seed(seed)
    device = resolve_device(model, inputs, device)
    with seeded_global_rng(seed, device):
        with stage("prepare"):
            ctx = build_context(model, inputs=inputs, input_shape=input_shape, batch_size=batch_size,
                                num_classes=num_classes, seed=seed, device=device, arch=arch, space=space,
                                fisher_config=fisher_config, init=init, logits=logits, data=data)
        return compute_on(ctx, names, failures=failures)


__all__ = ["compute_on", "compute_proxies", "seeded_global_rng"]

"""The proxy registry, the context every proxy receives, and ``compute_proxies``.

A proxy is a function ``fn(ctx: ProxyContext) -> float``, higher is better, registered under a
name with ``@register_proxy("name")``. ``compute_proxies`` builds one context (one initialised
copy of the network, one input batch) and evaluates any number of proxies on it, so that they
all see the same network and data.

Randomness. Everything is drawn from local ``torch.Generator``s derived from ``seed``:

* the initialisation draws from ``Generator().manual_seed(seed)`` (on the CPU, as
  ``vkdnw_fast.init.initialise`` requires), and the Gaussian batch continues that same stream
  (as the authors' scripts do: init, then ``torch.randn``). ``ctx.gaussian_inputs(b)`` replays the
  stream from that point, so a batch of another size starts with the same draws;
* ``ctx.generator()`` (Rademacher vectors, random labels) is seeded from ``(seed, stream)``
  through ``numpy.random.SeedSequence``, so its draws are not a copy of the init's stream.

``compute_proxies`` also runs inside ``torch.random.fork_rng`` with the global generator seeded
from ``seed``, so that randomness inside a model (e.g. dropout in training mode) is reproducible
and the caller's global RNG state is left exactly as it was.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..config import FisherConfig, resolve_config
from ..engine import use_channels_last
from ..timing import stage
from ..init import gaussian_inputs as _draw_gaussian
from ..init import initialise
from ..spaces.base import SearchSpace

ProxyFn = Callable[["ProxyContext"], float]

# Stream tags mixed with the seed by SeedSequence; arbitrary but fixed.
_PROXY_STREAM = 0x50524F58  # ctx.generator()
_GLOBAL_STREAM = 0x474C4F42  # torch's global generator inside compute_proxies


@dataclass(frozen=True)
class _Entry:
    fn: ProxyFn
    may_be_neg_inf: bool


_REGISTRY: dict[str, _Entry] = {}


class ProxyError(RuntimeError):
    """A proxy failed (or returned a value its definition does not allow) on some network."""

    def __init__(self, name: str, where: str, reason: str):
        super().__init__(f"proxy {name!r} failed on {where}: {reason}")
        self.proxy = name
        self.where = where


def register_proxy(name: str, *, may_be_neg_inf: bool = False) -> Callable[[ProxyFn], ProxyFn]:
    """Decorator registering ``fn(ctx) -> float`` under ``name``.

    ``may_be_neg_inf``: the definition itself gives -inf on some networks (e.g. AZ-NAS
    trainability of an identity block); ``compute_proxies`` rejects every other non-finite value.
    """
    if not isinstance(name, str) or not name:
        raise ValueError(f"a proxy name must be a non-empty string, got {name!r}")

    def decorator(fn: ProxyFn) -> ProxyFn:
        old = _REGISTRY.get(name)
        # Re-registering the same function (a module reload) is fine; a second one is a clash.
        if old is not None and (old.fn.__module__, old.fn.__qualname__) != (fn.__module__, fn.__qualname__):
            raise ValueError(f"proxy {name!r} is already registered by {old.fn.__module__}.{old.fn.__qualname__}")
        _REGISTRY[name] = _Entry(fn, may_be_neg_inf)
        return fn

    return decorator


def _entry(name: str) -> _Entry:
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown proxy {name!r}; known proxies are {available_proxies()}") from None


def get_proxy(name: str) -> ProxyFn:
    """The function registered under ``name`` (ValueError listing the known names otherwise)."""
    return _entry(name).fn


def available_proxies() -> list[str]:
    """The registered proxy names, sorted."""
    return sorted(_REGISTRY)


def _derived_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0])


@dataclass
class ProxyContext:
    """What a proxy gets. ``model`` and ``inputs`` are shared by all proxies of one evaluation:
    a proxy must not change ``model``'s weights, buffers or mode (work on ``copy_model()``).

    model: the initialised network (on ``device``), in the mode the caller's model was in.
    inputs: the scoring batch, (64, 3, R, R) by default, on ``device``.
    num_classes: the number of logits; None only in a hand-built context (proxies then read it
        off the logits).
    seed: what the init, the batch and ``generator()`` were derived from.
    device: where model and inputs live (default: the inputs' device).
    fisher_config: the Fisher proxies' configuration (a FisherConfig; None gives the ``paper``
        preset, a string names a preset).
    cache: results shared between proxies of one evaluation (e.g. AZ-NAS's single forward).
    input_rng_state: state of the CPU generator the Gaussian batch is drawn from; None means a
        generator freshly seeded with ``seed``.
    """

    model: nn.Module
    inputs: torch.Tensor
    num_classes: int | None = None
    seed: int = 0
    device: torch.device | str | None = None
    arch: str | None = None
    space: SearchSpace | None = None
    fisher_config: FisherConfig | str | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    input_rng_state: torch.Tensor | None = None

    def __post_init__(self) -> None:
        _check_seed(self.seed)
        self.device = self.inputs.device if self.device is None else torch.device(self.device)
        self.fisher_config = resolve_config(self.fisher_config)

    def copy_model(self) -> nn.Module:
        """A deep copy of ``model``, free to be changed."""
        return copy.deepcopy(self.model)

    def gaussian_inputs(self, batch_size: int) -> torch.Tensor:
        """A Gaussian batch of ``batch_size`` samples shaped like ``inputs``, drawn from the same
        stream as the default batch (so with the same seed), on ``device``."""
        generator = torch.Generator()
        if self.input_rng_state is None:
            generator.manual_seed(self.seed)
        else:
            generator.set_state(self.input_rng_state)
        batch = _draw_gaussian(batch_size, tuple(self.inputs.shape[1:]), generator, dtype=self.inputs.dtype)
        return batch.to(self.device)

    def generator(self) -> torch.Generator:
        """A fresh CPU generator, seeded from ``seed``; every call gives the same stream."""
        return torch.Generator().manual_seed(_derived_seed(self.seed, _PROXY_STREAM))

    def describe(self) -> str:
        """How error messages name the network."""
        return f"arch {self.arch!r}" if self.arch is not None else f"a {type(self.model).__name__}"


def _check_seed(seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")


def logits_of(output: Any, model: nn.Module) -> torch.Tensor:
    """The (N, C) logits a model returned; a clear error for anything else."""
    if not isinstance(output, torch.Tensor) or output.dim() != 2:
        got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise TypeError(f"{type(model).__name__} must return logits of shape (N, num_classes), got {got}")
    return output


def _resolve_device(model: nn.Module, inputs: torch.Tensor | None,
                    device: torch.device | str | None) -> torch.device:
    if device is None:
        first = next(model.parameters(), None)
        device = inputs.device if inputs is not None else first.device if first is not None else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def build_context(model: nn.Module, *, inputs: torch.Tensor | None = None,
                  input_shape: tuple[int, ...] | None = None, batch_size: int = 64,
                  num_classes: int | None = None, seed: int = 0,
                  device: torch.device | str | None = None, arch: str | None = None,
                  space: SearchSpace | None = None, fisher_config: FisherConfig | str | None = None,
                  init: str | None = "kaiming_normal_fan_in") -> ProxyContext:
    """The context ``compute_proxies`` evaluates proxies on (see there for the arguments).

    Copies ``model`` (the caller's is never touched), initialises the copy on the CPU from
    ``seed`` and moves it to ``device``; draws the Gaussian batch unless ``inputs`` is given.
    Convolutional models run channels-last on CPU when ``fisher_config.memory_format`` allows
    (the engine's policy), which changes values only by rounding.
    """
    _check_seed(seed)
    device = _resolve_device(model, inputs, device)

    work = copy.deepcopy(model).to("cpu")
    generator = torch.Generator().manual_seed(int(seed))
    initialise(work, init, generator)
    input_state = generator.get_state()
    work.to(device)

    if inputs is None:
        if input_shape is None:
            if space is None:
                raise ValueError("give inputs, input_shape or space, so the input batch's shape is known")
            input_shape = space.input_shape
        inputs = _draw_gaussian(batch_size, tuple(input_shape), generator)
    elif input_shape is not None and tuple(inputs.shape[1:]) != tuple(input_shape):
        raise ValueError(f"inputs have sample shape {tuple(inputs.shape[1:])}, input_shape says {tuple(input_shape)}")
    inputs = inputs.detach().to(device)
    fisher_config = resolve_config(fisher_config)
    if use_channels_last(work, inputs, fisher_config):  # 2-3x faster convolutions on CPU
        work = work.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)

    if num_classes is None:
        if space is not None:
            num_classes = space.num_classes
        else:
            was_training = work.training
            work.eval()  # one sample; eval mode leaves the BN buffers alone
            with torch.no_grad():
                num_classes = logits_of(work(inputs[:1]), work).shape[1]
            work.train(was_training)

    return ProxyContext(model=work, inputs=inputs, num_classes=int(num_classes), seed=int(seed),
                        device=device, arch=arch, space=space, fisher_config=fisher_config,
                        input_rng_state=input_state)


def evaluate(ctx: ProxyContext, names: str | Iterable[str]) -> dict[str, float]:
    """Evaluate the named proxies on one context; failures and disallowed non-finite values
    raise ProxyError naming the proxy and the network."""
    names = [names] if isinstance(names, str) else list(names)
    entries = {name: _entry(name) for name in names}  # unknown names fail before any work
    results: dict[str, float] = {}
    for name, entry in entries.items():
        try:
            with stage(f"proxy:{name}"):
                value = float(entry.fn(ctx))
        except Exception as exc:
            raise ProxyError(name, ctx.describe(), f"{type(exc).__name__}: {exc}") from exc
        if math.isnan(value) or value == math.inf or (value == -math.inf and not entry.may_be_neg_inf):
            raise ProxyError(name, ctx.describe(), f"returned {value}, which its definition does not allow")
        results[name] = value
    return results


def compute_proxies(model: nn.Module, names: str | Iterable[str], *, inputs: torch.Tensor | None = None,
                    input_shape: tuple[int, ...] | None = None, batch_size: int = 64,
                    num_classes: int | None = None, seed: int = 0,
                    device: torch.device | str | None = None, arch: str | None = None,
                    space: SearchSpace | None = None, fisher_config: FisherConfig | str | None = None,
                    init: str | None = "kaiming_normal_fan_in") -> dict[str, float]:
    """Evaluate the named proxies on one initialised copy of ``model`` and one input batch.

    inputs: the scoring batch; default ``batch_size`` samples of N(0, 1) noise of shape
        ``input_shape`` (or ``space.input_shape``), drawn after the initialisation from the
        same seeded stream. Proxies needing another batch size (``naswot_128``) always draw
        Gaussian noise from that stream.
    num_classes: default ``space.num_classes``, else read off the model's logits.
    device: default the device of the caller's model (or of ``inputs``).
    init: ``kaiming_normal_fan_in`` (vkdnw_fast.init) or None to keep the model's weights.
    Returns {name: value}, higher is better. The caller's model and torch's global RNG state
    are left unchanged.
    """
    names = [names] if isinstance(names, str) else list(names)
    for name in names:
        _entry(name)
    _check_seed(seed)
    device = _resolve_device(model, inputs, device)
    cuda_devices = [device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda_devices):
        global_seed = _derived_seed(int(seed), _GLOBAL_STREAM)
        torch.default_generator.manual_seed(global_seed)
        for index in cuda_devices:
            torch.cuda.default_generators[index].manual_seed(global_seed)
        with stage("context"):
            ctx = build_context(model, inputs=inputs, input_shape=input_shape, batch_size=batch_size,
                                num_classes=num_classes, seed=seed, device=device, arch=arch, space=space,
                                fisher_config=fisher_config, init=init)
        return evaluate(ctx, names)


__all__ = ["ProxyContext", "ProxyError", "register_proxy", "get_proxy", "available_proxies",
           "build_context", "evaluate", "compute_proxies", "logits_of"]

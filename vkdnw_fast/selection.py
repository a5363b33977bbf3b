"""Which scalar weights are sampled (docs/method.md §3), and the size term aleph."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Collection

import numpy as np
from torch import nn

from .config import FisherConfig
from .layers import count_layers, named_layers
from .samplers import sampler_for, supported_types


@dataclass(frozen=True)
class SampledWeight:
    """One sampled scalar: ``module_name.param_name`` at ``flat_index``; ``coord`` is the
    sampler's op coordinate for it."""

    module_name: str
    param_name: str
    flat_index: int
    coord: tuple[int, ...]

    @property
    def param_key(self) -> str:
        """The parameter's name in ``named_parameters()``."""
        return f"{self.module_name}.{self.param_name}" if self.module_name else self.param_name

    @property
    def name(self) -> str:
        prefix = f"{self.module_name}." if self.module_name else ""
        return f"{prefix}{self.param_name}[{self.flat_index}]"


def _element_index(config: FisherConfig, numel: int, rng: np.random.Generator) -> int:
    if config.element == "first":
        return 0
    if config.element == "relative":
        return int(round(config.element_position * (numel - 1)))
    return int(rng.integers(numel))


def _owners(model: nn.Module) -> dict[int, tuple[str, nn.Module, str]]:
    """Parameter id -> (module name, module, attribute name), first owner wins (shared weights)."""
    owners: dict[int, tuple[str, nn.Module, str]] = {}
    for module_name, module in model.named_modules():
        for param_name, param in module._parameters.items():
            if param is not None and id(param) not in owners:
                owners[id(param)] = (module_name, module, param_name)
    return owners


@dataclass(frozen=True)
class Selection:
    """The sampled weights in column order, and what was left out with the reason: layers
    (``layers``) or parameter tensors (``parameter_tensors``), {name: reason}."""

    weights: list[SampledWeight]
    skipped: dict[str, str]


def _no_sampler(module: nn.Module) -> str:
    return (f"no weight sampler is registered for {type(module).__name__} or a base class of it (supported: "
            f"{', '.join(supported_types())}); register one with vkdnw_fast.samplers.register_sampler")


NOT_CALLED = ("the forward never calls it as a module, so no tap can see its output (its owner may apply "
              "its weight through a functional call, as nn.MultiheadAttention does with out_proj)")


def _unsampleable(module: nn.Module, param_name: str, called: Collection[nn.Module] | None) -> str | None:
    """Why ``param_name`` of ``module`` cannot be sampled, or None."""
    sampler = sampler_for(module)
    if sampler is None:
        return _no_sampler(module)
    if param_name not in sampler.sampled_params:
        return f"its sampler samples {', '.join(sampler.sampled_params)} only"
    if called is not None and module not in called:
        return NOT_CALLED
    return None


def select_weights(model: nn.Module, config: FisherConfig, called: Collection[nn.Module] | None = None) -> Selection:
    """Which scalar weights are sampled (docs/method.md §3). ``parameter_tensors``: one element of each of the
    first ``max_weights`` parameter tensors, an error naming the module if one cannot be sampled.
    ``layers``: the ``weight`` of each of the first ``max_weights`` layers the engine can sample.
    ``called``: the modules the forward calls (``prepare.probe_forward``); one it does not call
    cannot be sampled. Every layer (``layers``) or parameter tensor (``parameter_tensors``) left out
    is in ``skipped`` with the reason, so that aleph = sampled + skipped under ``exact``."""
    rng = np.random.default_rng(config.element_seed)
    chosen: list[tuple[str, nn.Module, str]] = []
    skipped: dict[str, str] = {}
    beyond = f"beyond the first max_weights={config.max_weights}"
    if config.weights == "parameter_tensors":
        owners = _owners(model)
        for position, (key, param) in enumerate(model.named_parameters()):
            if position >= config.max_weights:
                skipped[key] = f"{beyond} parameter tensors"
                continue
            module_name, module, param_name = owners[id(param)]
            reason = _unsampleable(module, param_name, called)
            if reason is not None:
                raise ValueError(f"cannot sample parameter '{param_name}' of {type(module).__name__} "
                                 f"'{module_name}': {reason}")
            chosen.append((module_name, module, param_name))
    else:
        for module_name, module in named_layers(model):
            reason = "it has no weight" if getattr(module, "weight", None) is None else \
                _unsampleable(module, "weight", called)
            if reason is None and len(chosen) == config.max_weights:
                reason = f"{beyond} sampleable layers"
            if reason is None:
                chosen.append((module_name, module, "weight"))
            else:
                skipped[module_name] = reason
    selected = []
    for module_name, module, param_name in chosen:
        numel = getattr(module, param_name).numel()
        index = _element_index(config, numel, rng)
        selected.append(SampledWeight(module_name, param_name, index,
                                      sampler_for(module).coordinate(module, param_name, index)))
    if not selected:
        raise ValueError(f"{type(model).__name__} has no weights to sample for weights={config.weights!r} "
                         "(no parameters, or no layer the engine can sample: "
                         f"{skipped or 'no conv/linear layers'})")
    return Selection(selected, skipped)


def aleph(model: nn.Module, config: FisherConfig) -> int:
    """The size term: parameter tensors (the authors' code) or layers (``vkdnw_fast.layers``)."""
    if config.aleph == "parameter_tensors":
        return len(list(model.parameters()))
    return count_layers(model)

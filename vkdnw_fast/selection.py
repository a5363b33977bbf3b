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
    sampler's op coordinate for it. ``general``: why no sampler's tap can take it (the engine's
    general path then does, by forward-mode AD), None when one can."""

    module_name: str
    param_name: str
    flat_index: int
    coord: tuple[int, ...]
    general: str | None = None

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

    @property
    def general(self) -> dict[str, str]:
        """The sampled weights that take the engine's general path, with the reason."""
        return {w.name: w.general for w in self.weights if w.general is not None}


def _no_sampler(module: nn.Module) -> str:
    return (f"no weight sampler is registered for {type(module).__name__} or a base class of it (supported: "
            f"{', '.join(supported_types())}); register one with vkdnw_fast.samplers.register_sampler")


NOT_CALLED = ("the forward never calls it as a module, so no tap can see its output (its owner may apply "
              "its weight through a functional call)")


def _sampled_through(modules: dict[str, nn.Module], module_name: str, module: nn.Module,
                     param_name: str) -> tuple[str, nn.Module, str]:
    """Where ``param_name`` of ``module`` is sampled: at its parent as ``child.param`` when the parent's
    sampler samples it there (nn.MultiheadAttention applies its ``out_proj``'s weight and bias itself,
    through F.linear, never calling the module), else at the module itself."""
    parent_name, _, child = module_name.rpartition(".")
    parent = modules.get(parent_name) if module_name else None
    sampler = sampler_for(parent) if parent is not None else None
    if sampler is not None and f"{child}.{param_name}" in sampler.sampled_params:
        return parent_name, parent, f"{child}.{param_name}"
    return module_name, module, param_name


def _untappable(module: nn.Module, param_name: str, called: Collection[nn.Module] | None) -> str | None:
    """Why no sampler's tap can take ``param_name`` of ``module`` (the general path then does), or None."""
    sampler = sampler_for(module)
    if sampler is None:
        return _no_sampler(module)
    if param_name not in sampler.sampled_params:
        return f"its sampler samples {', '.join(sampler.sampled_params)} only"
    if called is not None and module not in called:
        return NOT_CALLED
    layout = getattr(called, "not_batch_first", {}).get(module)
    if layout is not None and not sampler.taps_calls:  # such a sampler finds the samples in each call
        return f"it is called on {layout} (samples not along the first dimension), which its sampler cannot reduce"
    return None


def select_weights(model: nn.Module, config: FisherConfig, called: Collection[nn.Module] | None = None) -> Selection:
    """Which scalar weights are sampled (docs/method.md §3). ``parameter_tensors``: one element of each of the
    first ``max_weights`` parameter tensors. ``layers``: the ``weight`` of each of the first ``max_weights``
    layers that have one. A weight no sampler's tap can take (no sampler, a parameter its sampler does not
    sample, a module the forward does not call or calls on tensors that are not batch-first) is marked
    ``general``, for the engine's general path. ``called``: the modules the forward calls
    (``prepare.probe_forward``). Every layer (``layers``) or parameter tensor (``parameter_tensors``) left
    out is in ``skipped`` with the reason, so that aleph = sampled + skipped under ``exact``."""
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
            chosen.append(owners[id(param)])
    else:
        for module_name, module in named_layers(model):
            if getattr(module, "weight", None) is None:
                skipped[module_name] = "it has no weight"
            elif len(chosen) == config.max_weights:
                skipped[module_name] = f"{beyond} sampleable layers"
            else:
                chosen.append((module_name, module, "weight"))
    selected = []
    modules = dict(model.named_modules())
    for chosen_name, chosen_module, chosen_param in chosen:
        module_name, module, param_name = _sampled_through(modules, chosen_name, chosen_module, chosen_param)
        numel = module.get_parameter(param_name).numel()
        index = _element_index(config, numel, rng)
        general = _untappable(module, param_name, called)
        coord = () if general is not None else sampler_for(module).coordinate(module, param_name, index)
        selected.append(SampledWeight(module_name, param_name, index, coord, general))
    if not selected:
        raise ValueError(f"{type(model).__name__} has no weights to sample for weights={config.weights!r} "
                         f"(no parameters, or no conv/linear layer with a weight: {skipped or 'none'})")
    return Selection(selected, skipped)


def aleph(model: nn.Module, config: FisherConfig) -> int:
    """The size term: parameter tensors (the authors' code) or layers (``vkdnw_fast.layers``)."""
    if config.aleph == "parameter_tensors":
        return len(list(model.parameters()))
    return count_layers(model)

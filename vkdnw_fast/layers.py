"""What counts as a *layer*: the one definition behind the ``layers`` size term aleph, the ``layers``
weight selection of the ``exact`` preset, the initialisation and the zero-cost proxies' layer
weights (docs/method.md §2-§3, §6).

A layer is any convolution (1-, 2-, 3-d, transposed or not) or ``nn.Linear``, subclasses included
(e.g. the ``out_proj`` of ``nn.MultiheadAttention``): what a network's depth is counted in.
Whether a sampler's tap can take a layer's weights is a separate question, answered by the sampler
registry; the engine's general path takes those no tap can (reported in ``FisherResult.general``).
"""
from __future__ import annotations

import math

import torch
from torch import nn

LAYER_TYPES: tuple[type[nn.Module], ...] = (nn.modules.conv._ConvNd, nn.Linear)
# Normalisation layers whose affine parameters the initialisation resets (gamma 1, beta 0).
NORM_TYPES: tuple[type[nn.Module], ...] = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


def is_layer(module: nn.Module) -> bool:
    return isinstance(module, LAYER_TYPES)


def named_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The layers of ``model`` in ``named_modules`` order (a shared module once)."""
    return [(name, module) for name, module in model.named_modules() if is_layer(module)]


def layer_macs(layer: nn.Module, args: tuple, output: torch.Tensor) -> int:
    """Multiply-accumulates of one call of a layer (a forward hook's arguments): a convolution costs (output
    elements) x (input channels / groups) x (kernel volume), a transposed one (input elements) x (output
    channels / groups) x (kernel volume), a Linear layer (output elements) x (in_features); biases not counted."""
    if isinstance(layer, nn.Linear):
        return output.numel() * layer.in_features
    if layer.transposed:  # every input element is scattered over out/groups x kernel outputs
        return args[0].numel() * (layer.out_channels // layer.groups) * math.prod(layer.kernel_size)
    return output.numel() * (layer.in_channels // layer.groups) * math.prod(layer.kernel_size)


def count_layers(model: nn.Module) -> int:
    return len(named_layers(model))


def layer_weights(model: nn.Module) -> list:
    """The weight tensors of the layers (those that have one), in order."""
    return [module.weight for _, module in named_layers(model) if getattr(module, "weight", None) is not None]


__all__ = ["LAYER_TYPES", "NORM_TYPES", "is_layer", "named_layers", "layer_macs", "count_layers", "layer_weights"]

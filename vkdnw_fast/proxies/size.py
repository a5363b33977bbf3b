"""Size proxies: FLOPs (conv + linear multiply-accumulates) and the number of parameters.

flops: multiply-accumulates of the layers (``vkdnw_fast.layers``: every convolution and Linear)
in one forward of one sample (the first of the context's batch; only its shape matters), counted
by forward hooks, so a module called twice counts twice; when the context names an architecture
of a search space, the space's analytic count of the same quantity (``space.cost(arch)['flops']``,
tested equal) instead. A convolution costs (output elements) x (input channels / groups) x
(kernel volume), a transposed one (input elements) x (output channels / groups) x (kernel
volume), a Linear layer (output elements) x (in_features); biases, BatchNorm, pooling and
activations are not counted. Run in eval mode on a copy (BatchNorm cannot use batch statistics of
one sample).
params: the number of scalar parameters (``model.parameters()``, shared tensors once).
"""
from __future__ import annotations

import torch
from torch import nn

from ..hooks import removing
from ..layers import layer_macs, named_layers
from .context import ProxyContext
from .registry import register_proxy


def count_macs(model: nn.Module, sample: torch.Tensor) -> int:
    """Conv + linear multiply-accumulates of ``model(sample)`` (the model is run as it is)."""
    total = 0

    def count(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal total
        total += layer_macs(module, args, output)

    layers = [module for _, module in named_layers(model)]
    with removing(m.register_forward_hook(count) for m in layers), torch.no_grad():
        model(sample)
    return total


@register_proxy("flops")
def flops(ctx: ProxyContext) -> float:
    if ctx.space is not None and ctx.arch is not None:
        return float(ctx.space.cost(ctx.arch)["flops"])
    return float(count_macs(ctx.copy_model().eval(), ctx.inputs[:1]))


@register_proxy("params")
def params(ctx: ProxyContext) -> float:
    return float(sum(p.numel() for p in ctx.model.parameters()))

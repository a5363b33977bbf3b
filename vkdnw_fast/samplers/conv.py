"""Conv1d / Conv2d: any stride, zero padding (incl. 'same'/'valid'), dilation and groups."""
from __future__ import annotations

import torch
from torch import nn

from .. import ops
from .registry import register_sampler
from .base import ModulePlan, WeightSampler


def left_padding(module: nn.Module) -> tuple[int, ...]:
    """Zero padding before the first input position; 'same' pads the odd extra on the right."""
    if module.padding == "valid":
        return (0,) * len(module.kernel_size)
    if module.padding == "same":
        return tuple(d * (k - 1) // 2 for d, k in zip(module.dilation, module.kernel_size))
    return tuple(module.padding)


@register_sampler(nn.Conv1d, nn.Conv2d)
class ConvSampler(WeightSampler):
    def check(self, module, module_name):
        if module.padding_mode != "zeros":
            raise ValueError(f"{type(module).__name__} '{module_name}' uses padding_mode="
                             f"{module.padding_mode!r}; only zero padding can be sampled")

    def coordinate(self, module, param_name, flat_index):
        if param_name == "bias":
            return (flat_index, -1) + (0,) * len(module.kernel_size)
        o, i, *kernel = torch.unravel_index(torch.tensor(flat_index), module.weight.shape)
        in_per_group = module.in_channels // module.groups
        out_per_group = module.out_channels // module.groups
        channel = int(o) // out_per_group * in_per_group + int(i)
        return (int(o), channel, *(int(k) for k in kernel))

    def capture(self, module, plan, args):
        return (plan.keep(args[0], 1),)

    def grads(self, module, plan, saved, grad_output):
        return ops.sampled_grad(saved[0], grad_output, plan.op_coords, module.stride,
                                left_padding(module), module.dilation, 1)


__all__ = ["ConvSampler", "ModulePlan", "left_padding"]

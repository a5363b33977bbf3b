"""ConvTranspose1d/2d/3d: any stride, padding, output padding, dilation and groups.

The weight is (C_in, C_out / groups, *kernel); a coordinate is (absolute output channel, absolute
input channel or -1 for a bias, kernel offsets), and only the sampled input channels are kept.
"""
from __future__ import annotations

import torch
from torch import nn

from .base import WeightSampler
from .registry import register_sampler
from .windows import conv_transpose_grads


@register_sampler(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
class ConvTransposeSampler(WeightSampler):
    def coordinate(self, module, param_name, flat_index):
        if param_name == "bias":
            return (flat_index, -1) + (0,) * len(module.kernel_size)
        c, o, *kernel = (int(v) for v in torch.unravel_index(torch.tensor(flat_index), module.weight.shape))
        out_per_group = module.out_channels // module.groups
        in_per_group = module.in_channels // module.groups
        return (c // in_per_group * out_per_group + o, c, *kernel)

    def capture(self, module, plan, args):
        return (plan.keep(args[0], 1),)

    def grads(self, module, plan, saved, grad_output):
        return conv_transpose_grads(saved[0], grad_output, plan.op_coords, module.stride, module.padding,
                                    module.dilation)

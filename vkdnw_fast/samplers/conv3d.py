"""Conv3d: the Conv1d/2d sampler's coordinates and checks, gradients in plain PyTorch (``windows``)."""
from __future__ import annotations

from torch import nn

from .conv import ConvSampler, left_padding
from .registry import register_sampler
from .windows import conv_grads


@register_sampler(nn.Conv3d)
class Conv3dSampler(ConvSampler):
    def grads(self, module, plan, saved, grad_output):
        return conv_grads(saved[0], grad_output, plan.op_coords, module.stride, left_padding(module), module.dilation)

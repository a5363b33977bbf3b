"""BatchNorm1d/2d/3d gamma and beta, in eval mode with running statistics.

y = gamma * x_hat + beta per channel, so d y / d gamma_c = x_hat_c and d y / d beta_c = 1: a
depthwise 1x1 convolution of x_hat plus a bias, which is how the op is called. Only the sampled
channels of x_hat are formed and kept.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..prepare import check_batchnorm
from .registry import register_sampler
from .base import WeightSampler


def flatten_spatial(t: torch.Tensor) -> torch.Tensor:
    """(N, C, *S) -> (N, C, L) with L = prod(S) (1 for (N, C) inputs)."""
    return t.unsqueeze(-1) if t.dim() == 2 else t.flatten(2)


@register_sampler(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
class BatchNormSampler(WeightSampler):
    def check(self, module, module_name):
        check_batchnorm(module, module_name)

    def coordinate(self, module, param_name, flat_index):
        return (flat_index, -1 if param_name == "bias" else flat_index, 0)

    def capture(self, module, plan, args):
        x = plan.keep(flatten_spatial(args[0]), 1)
        shape = (1, -1, 1)
        mean = plan.keep(module.running_mean, 0).view(shape)
        var = plan.keep(module.running_var, 0).view(shape)
        return ((x - mean) * torch.rsqrt(var + module.eps),)

    def grads(self, module, plan, saved, grad_output):
        return ops.sampled_grad(saved[0], flatten_spatial(grad_output), plan.op_coords, (1,), (0,), (1,), 1)

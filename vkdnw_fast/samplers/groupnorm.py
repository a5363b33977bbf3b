"""GroupNorm (gamma, beta per channel) on (N, C, *): statistics per sample and group of channels."""
from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from .batchnorm import flatten_spatial
from .norm import AffineNormSampler
from .registry import register_sampler


@register_sampler(nn.GroupNorm)
class GroupNormSampler(AffineNormSampler):
    module_type = nn.GroupNorm

    def normalise(self, module, x):
        return F.group_norm(x, module.num_groups, None, None, module.eps)

    def channels_first(self, module, t):
        return flatten_spatial(t)

"""LayerNorm (gamma, beta) on (N, *, *normalized_shape): normalised over the trailing dims, gamma and
beta indexed by them (flattened), every leading position (tokens, pixels) summed."""
from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from .norm import AffineNormSampler, channels_last_as_first
from .registry import register_sampler


@register_sampler(nn.LayerNorm)
class LayerNormSampler(AffineNormSampler):
    module_type = nn.LayerNorm

    def normalise(self, module, x):
        return F.layer_norm(x, module.normalized_shape, None, None, module.eps)

    def channels_first(self, module, t):
        return channels_last_as_first(t, module.normalized_shape)

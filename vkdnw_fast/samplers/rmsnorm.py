"""RMSNorm (gamma) on (N, *, *normalized_shape): x / rms(x) over the trailing dims, times gamma."""
from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from .norm import AffineNormSampler, channels_last_as_first
from .registry import register_sampler


@register_sampler(nn.RMSNorm)
class RMSNormSampler(AffineNormSampler):
    module_type = nn.RMSNorm
    sampled_params = ("weight",)

    def normalise(self, module, x):
        return F.rms_norm(x, module.normalized_shape, None, module.eps)

    def channels_first(self, module, t):
        return channels_last_as_first(t, module.normalized_shape)

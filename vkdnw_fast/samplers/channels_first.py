"""LayerNorm and RMSNorm subclasses that normalise over the channels of (N, C, *) inputs (ConvNeXt's
LayerNorm2d, RmsNorm2d): not registered for any type, since only the model's author knows that a
subclass permutes; register them for yours::

    register_sampler(LayerNorm2d)(ChannelsFirstLayerNormSampler)

The module's ``normalized_shape`` must be (C,); gamma and beta are per channel as for GroupNorm.
"""
from __future__ import annotations

from torch import nn
from torch.nn import functional as F

from .batchnorm import flatten_spatial
from .norm import AffineNormSampler


class ChannelsFirstLayerNormSampler(AffineNormSampler):
    module_type = nn.LayerNorm

    def check(self, module, module_name):
        # Registered by the user for a subclass whose forward permutes; what is checkable is the shape.
        if len(module.normalized_shape) != 1:
            raise ValueError(f"{type(module).__name__} '{module_name}' has normalized_shape={module.normalized_shape}; "
                             f"{type(self).__name__} normalises over the channel dim of (N, C, *) only")

    def normalise(self, module, x):
        return F.layer_norm(x.movedim(1, -1), module.normalized_shape, None, None, module.eps).movedim(-1, 1)

    def channels_first(self, module, t):
        return flatten_spatial(t)


class ChannelsFirstRMSNormSampler(ChannelsFirstLayerNormSampler):
    module_type = nn.RMSNorm
    sampled_params = ("weight",)

    def normalise(self, module, x):
        return F.rms_norm(x.movedim(1, -1), module.normalized_shape, None, module.eps).movedim(-1, 1)

"""Per-layer weight samplers, in a registry keyed by module type (as Opacus's grad_sample/).

A sampler knows, for one module type, how to turn sampled elements of its parameters into the
coordinates of the ``sampled_grad`` op, what to keep from the forward (only the input channels
those coordinates read), and how to reduce (kept input, output gradient) to per-sample gradients
inside the backward (the ``sampled_grad`` op; plain PyTorch for 3-d and transposed convolutions,
``windows``). nn.MultiheadAttention's sampler taps the ``F.linear`` calls inside its forward instead of
its output (``taps_calls``). Register a sampler for your own layer with ``register_sampler``.
"""
from .base import ModulePlan, WeightSampler
from .registry import register_sampler, sampler_for, supported_types

from . import batchnorm, conv, linear  # noqa: E402,F401  (registration)
from . import attention, conv3d, conv_transpose, embedding, groupnorm, layernorm, rmsnorm  # noqa: E402,F401
from .channels_first import ChannelsFirstLayerNormSampler, ChannelsFirstRMSNormSampler

__all__ = ["register_sampler", "sampler_for", "supported_types", "WeightSampler", "ModulePlan",
           "ChannelsFirstLayerNormSampler", "ChannelsFirstRMSNormSampler"]

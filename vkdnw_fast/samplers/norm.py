"""What LayerNorm, RMSNorm and GroupNorm samplers share: y = gamma * x_hat + beta per channel.

d y / d gamma_c = x_hat_c and d y / d beta_c = 1, so the per-sample gradients are a depthwise 1x1
convolution's (as for BatchNorm): the forward keeps x_hat of the sampled channels only, as
(N, k, L) with L every position the channel's gamma multiplies, and the backward calls
``sampled_grad`` on it and the output gradient in the same (N, C, L) layout.
"""
from __future__ import annotations

import torch
from torch import nn

from .. import ops
from .base import ModulePlan, WeightSampler


class AffineNormSampler(WeightSampler):
    """Subclasses give the module type whose ``forward`` they model, the normalisation without
    the affine part, and the (N, C, L) layout of the module's input and output."""

    module_type: type[nn.Module]

    def check(self, module, module_name):
        # A subclass that overrides forward (e.g. a channels-first LayerNorm permuting its input)
        # normalises along other axes than the formula assumes: refuse rather than score wrongly.
        if type(module).forward is not self.module_type.forward:
            raise ValueError(f"{type(module).__name__} '{module_name}' overrides {self.module_type.__name__}.forward, "
                             f"so the {self.module_type.__name__} sampler cannot know which axes it normalises; "
                             "register a sampler for it with vkdnw_fast.samplers.register_sampler")

    def coordinate(self, module, param_name, flat_index):
        return (flat_index, -1 if param_name == "bias" else flat_index, 0)

    def normalise(self, module: nn.Module, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def channels_first(self, module: nn.Module, t: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def capture(self, module, plan: ModulePlan, args):
        # The whole x_hat is formed by the module's own functional normalisation (bit-for-bit its
        # arithmetic, eps defaults included), then only the sampled channels are kept.
        with torch.no_grad():
            x_hat = self.channels_first(module, self.normalise(module, args[0].detach()))
        return (plan.keep(x_hat, 1),)

    def grads(self, module, plan, saved, grad_output):
        return ops.sampled_grad(saved[0], self.channels_first(module, grad_output), plan.op_coords,
                                (1,), (0,), (1,), 1)


def channels_last_as_first(t: torch.Tensor, normalized_shape: tuple[int, ...]) -> torch.Tensor:
    """(N, *, *normalized_shape) -> (N, prod(normalized_shape), L) view."""
    features = 1
    for size in normalized_shape:
        features *= size
    return t.reshape(t.shape[0], -1, features).transpose(1, 2)

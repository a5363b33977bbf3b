"""Linear on (N, D) or (N, *, D) inputs: a 1-d convolution with kernel size 1."""
from __future__ import annotations

from torch import nn

from .. import ops
from .registry import register_sampler
from .base import WeightSampler


def as_channels_first(t):
    """(N, *, D) -> (N, D, L) view, the layout sampled_grad reads."""
    return t.reshape(t.shape[0], -1, t.shape[-1]).transpose(1, 2)


@register_sampler(nn.Linear)
class LinearSampler(WeightSampler):
    def coordinate(self, module, param_name, flat_index):
        if param_name == "bias":
            return (flat_index, -1, 0)
        return (flat_index // module.in_features, flat_index % module.in_features, 0)

    def capture(self, module, plan, args):
        return (as_channels_first(plan.keep(args[0], -1)),)

    def grads(self, module, plan, saved, grad_output):
        n = saved[0].shape[0]
        # grad_output is (N, *, C_out); the same reshape as the input, keeping the sample axis.
        g = grad_output.reshape(n, -1, grad_output.shape[-1]).transpose(1, 2)
        return ops.sampled_grad(saved[0], g, plan.op_coords, (1,), (0,), (1,), 1)

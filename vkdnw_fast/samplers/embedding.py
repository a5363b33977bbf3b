"""Embedding: the per-sample gradient of weight[i, j] is the sum of the output gradient's feature j
over the positions whose token is i. With the token indicator of each sampled row i as an input
channel (N, k, L), that is a 1x1 convolution's weight gradient (o = j, input channel = i)."""
from __future__ import annotations

from torch import nn

from .. import ops
from .linear import as_channels_first
from .registry import register_sampler
from .base import WeightSampler


@register_sampler(nn.Embedding)
class EmbeddingSampler(WeightSampler):
    sampled_params = ("weight",)

    def check(self, module, module_name):
        if module.max_norm is not None:
            raise ValueError(f"Embedding '{module_name}' has max_norm={module.max_norm}: its forward renormalises "
                             "the rows of the looked-up tokens in place, so the sampled weights depend on the batch")
        if module.scale_grad_by_freq:
            raise ValueError(f"Embedding '{module_name}' has scale_grad_by_freq=True: its gradient is scaled by "
                             "token counts over the whole batch, which per-sample gradients do not have")

    def coordinate(self, module, param_name, flat_index):
        return (flat_index % module.embedding_dim, flat_index // module.embedding_dim, 0)

    def capture(self, module, plan, args):
        tokens = args[0]
        indicator = tokens.reshape(tokens.shape[0], 1, -1) == plan.input_channels.view(1, -1, 1)
        if module.padding_idx is not None:
            # The padding row receives no gradient (F.embedding's backward skips it).
            indicator &= (plan.input_channels != module.padding_idx).view(1, -1, 1)
        return (indicator.to(module.weight.dtype),)

    def grads(self, module, plan, saved, grad_output):
        return ops.sampled_grad(saved[0], as_channels_first(grad_output), plan.op_coords, (1,), (0,), (1,), 1)

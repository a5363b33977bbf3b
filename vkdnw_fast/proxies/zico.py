"""ZiCo (Li, Yang, Bhardwaj & Marculescu, ICLR 2023, "ZiCo: Zero-shot NAS via Inverse Coefficient
of Variation on Gradients"): gradients that are large and agree across batches.

For every layer (``vkdnw_fast.layers``: convolution or Linear) and every weight theta of it, with
g_b = dL_b/dtheta on batch b = 1..B: mu = mean_b |g_b|, sigma = std_b g_b (population std);
score = sum over layers of log(sum over weights with sigma > 0 of mu / sigma), a layer whose sum
is 0 (no weight with sigma > 0) left out. L_b is the mean cross-entropy of batch b.

As in the authors' code (github.com/SLDGroup/ZiCo, ZeroShotProxy/compute_zico.py) and its NB201
copy (VKDNW repo NB201/ZeroShotProxy/compute_zico_score.py): a copy in training mode (BatchNorm
with each batch's statistics), one forward and backward per batch, two batches; a layer whose
weight gets no gradient is left out (the NB201 copy's check). The two batches are the halves of
the context's batch with their halves of its labels (``batches.split_batches``: random and
seeded, or the real ones when the caller gives real data, ``data=``/``--data``; 32 + 32 samples by
default, theirs 2 x 64 real images with their labels; ``batch_size=128`` gives their sizes). sigma and the sums in float64.

Finite by definition (each ratio is >= 1, so every term is >= 0); non-finite logits or gradients
are an error.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .batches import split_batches
from .context import ProxyContext
from .forward import check_finite, class_logits
from .registry import register_proxy
from .zero_cost import layer_weights

BATCHES = 2


@register_proxy("zico", uses_labels=True)
def zico(ctx: ProxyContext) -> float:
    model = ctx.copy_model().train().requires_grad_(True)
    weights = layer_weights(model)
    per_batch = []
    for inputs, labels in split_batches(ctx, BATCHES):
        loss = F.cross_entropy(class_logits(ctx, model, model(inputs)), labels)
        grads = torch.autograd.grad(loss, weights, allow_unused=True)
        per_batch.append([None if g is None else check_finite(g, "a gradient of the loss").double() for g in grads])
    total = 0.0
    for grads in zip(*per_batch):
        if any(g is None for g in grads):
            continue
        g = torch.stack(grads)
        sigma = g.std(0, correction=0)
        ratio_sum = float((g.abs().mean(0)[sigma > 0] / sigma[sigma > 0]).sum())
        if ratio_sum > 0:
            total += math.log(ratio_sum)
    return total

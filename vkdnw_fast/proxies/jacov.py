"""Jacov (Mellor et al., 2020 preprint of NASWOT): correlation of input gradients across samples.

g_n = d(sum_c z_c(x_n)) / d x_n, flattened; R = corrcoef(g_1..g_N); v = eigenvalues of R;
score = -sum_i [ln(v_i + 1e-5) + 1 / (v_i + 1e-5)].

As in the authors' code (VKDNW repo, NB201/ZeroShotProxy/compute_jacov_score.py): training mode
(``model.train()``), so BatchNorm uses the batch's statistics, and the gradients are those of
``logits.backward(ones)``, i.e. of sum_n sum_c z_c(x_n) with respect to the whole batch. With
batch statistics a sample's logits depend on the other samples, so g_n also carries those
cross-sample terms (in eval mode, or without BatchNorm, it is exactly the per-sample gradient).
Input: the context's Gaussian batch (theirs reads a batch of real images from a loader; VKDNW's
comparison, like SPEC §6, uses Gaussian noise). Correlations and eigenvalues in float64.

Non-finite values: -inf when R is undefined, i.e. some sample's gradient is constant (e.g.
zero); the authors' code returns NaN there (their try/except), which we map to the worst score
so that rankings stay defined.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .context import ProxyContext, as_logits
from .registry import register_proxy


def jacov_from_gradients(gradients: np.ndarray) -> float:
    """The score of per-sample gradients given as the rows of a (N, D) array."""
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(np.asarray(gradients, dtype=np.float64))
    if not np.all(np.isfinite(corr)):
        return -math.inf
    v = np.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


@register_proxy("jacov", may_be_neg_inf=True)
def jacov(ctx: ProxyContext) -> float:
    model = ctx.copy_model().train().requires_grad_(False)  # only input gradients are needed
    x = ctx.inputs.detach().clone().requires_grad_(True)
    logits = as_logits(model(x), model)
    (grad,) = torch.autograd.grad(logits.sum(), x)
    return jacov_from_gradients(grad.reshape(grad.shape[0], -1).double().cpu().numpy())

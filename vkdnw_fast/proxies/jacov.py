"""Jacov (Mellor et al., 2020 preprint of NASWOT): correlation of input gradients across samples.

g_n = d(sum_c z_c(x_n)) / d x_n, flattened; R = corrcoef(g_1..g_N); v = eigenvalues of R;
score = -sum_i [ln(v_i + 1e-5) + 1 / (v_i + 1e-5)].

As in the authors' code (VKDNW repo, NB201/ZeroShotProxy/compute_jacov_score.py): training mode
(``model.train()``), so BatchNorm uses the batch's statistics, and the gradients are those of
``logits.backward(ones)``, i.e. of sum_n sum_c z_c(x_n) with respect to the whole batch. With
batch statistics a sample's logits depend on the other samples, so g_n also carries those
cross-sample terms (in eval mode, or without BatchNorm, it is exactly the per-sample gradient).
Input: the context's Gaussian batch (theirs reads a batch of real images from a loader; VKDNW's
comparison, like docs/method.md §6, uses Gaussian noise). The gradients come from the forward shared with
the other training-mode proxies (``forward.input_gradients``). Correlations and eigenvalues in
float64.

Non-finite values: -inf when R is undefined, i.e. some sample's gradient is constant (e.g.
zero); the authors' code returns NaN there (their try/except), which we map to the worst score
so that rankings stay defined. Non-finite logits or gradients are an error.
"""
from __future__ import annotations

import math

import numpy as np

from .context import ProxyContext
from .forward import input_gradients
from .registry import register_proxy


def correlations(gradients: np.ndarray) -> np.ndarray | None:
    """corrcoef of the rows of ``gradients`` (float64), None where some row is constant."""
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.corrcoef(np.asarray(gradients, dtype=np.float64))
    return corr if np.all(np.isfinite(corr)) else None


def jacov_from_gradients(gradients: np.ndarray) -> float:
    """The score of per-sample gradients given as the rows of a (N, D) array."""
    corr = correlations(gradients)
    if corr is None:
        return -math.inf
    v = np.linalg.eigvalsh(corr)
    k = 1e-5
    return float(-np.sum(np.log(v + k) + 1.0 / (v + k)))


@register_proxy("jacov", may_be_neg_inf=True, uses_training_forward=True)
def jacov(ctx: ProxyContext) -> float:
    return jacov_from_gradients(input_gradients(ctx).numpy())

"""TE-NAS (Chen, Gong & Wang, ICLR 2021, "Neural Architecture Search on ImageNet in Four GPU
Hours: A Theoretically Inspired Perspective"): trainability by the condition number of the neural
tangent kernel, expressivity by the number of linear regions, combined by their ranks.

* te_nas_ntk = -kappa, kappa = lambda_max / lambda_min of the empirical NTK Theta = J J^T
  (batch x batch), J[n] = d(sum_c z_c(x_n))/dtheta over the parameters whose name contains
  ``weight`` (convolutions, Linear layers and BatchNorm gammas), as TE-NAS's ``get_ntk_n``: the
  gradient of each sample's summed logits through the training-mode forward (BatchNorm with batch
  statistics, so a sample's logits depend on the others). Theta accumulated and its eigenvalues
  computed in float64.
* te_nas_lr = the number of distinct activation patterns over the batch, a sample's pattern being
  the signs of all its ReLU inputs (their ``LinearRegionCount.calc_LR``: sum over samples of
  1 / the number of samples with the same pattern). Read off NASWOT's Hamming kernel: samples i
  and j have the same pattern exactly when K_H[i, j] = K_H[i, i], the number of ReLU units.
* te_nas, the combination, exists only within a set of networks: TE-NAS ranks the networks by
  each of the two and sums the ranks, ``vkdnw_fast.metrics.rank_sum(table, TE_NAS_TERMS)`` (dense
  ranks, as TE-NAS's ``prune_tenas.py``: tied values share a rank, the next value gets the next).

As in the NB201 version the AZ-NAS and VKDNW authors compare with (VKDNW repo,
NB201/ZeroShotProxy/compute_te_nas_score.py, from ZenNAS's, from TE-NAS's lib/procedures): both
on one batch of the batch size, in training mode (theirs: real images for the NTK, a fresh
Gaussian batch for the linear regions; here the context's Gaussian batch for both, through the
forward shared with the other training-mode proxies, ``forward.training_forward``). ReLUs are
hooked as modules (``nn.ReLU``; theirs keep those with 4-d inputs, all of NB201's). The original
TE-NAS prunes a supernet and counts linear regions on a thin copy (one channel, 3 x 3 inputs, 3,000
samples); on whole NB201 networks nearly every network whose output depends on its input has as
many patterns as samples (the count saturates at the batch size).

Non-finite values: te_nas_ntk is -inf when Theta is singular or zero (lambda_min <= lambda_max x
batch x float64 eps, numpy's ``matrix_rank`` tolerance); theirs turns 0/0 into kappa = 1e5 and a
negative rounded lambda_min into a negative kappa, i.e. a huge score. Non-finite logits or gradients are an error.
"""
from __future__ import annotations

import math

import torch

from .context import ProxyContext
from .forward import check_finite, training_forward
from .registry import register_proxy

TE_NAS_TERMS = ("te_nas_ntk", "te_nas_lr")
# Cotangent rows per vmapped backward: memory grows with rows x parameters.
_NTK_ROWS = 16
# Gradient columns per float64 product when accumulating Theta.
_NTK_COLUMNS = 1 << 20


def ntk(ctx: ProxyContext) -> torch.Tensor:
    """Theta = J J^T (float64, batch x batch) of the shared training forward."""
    forward = training_forward(ctx)
    logits = forward.finite_output()
    weights = [p for name, p in forward.model.named_parameters() if "weight" in name]
    batch = logits.shape[0]
    rows = []
    for start in range(0, batch, _NTK_ROWS):
        stop = min(batch, start + _NTK_ROWS)
        # Cotangent k selects sample start + k: the gradient of that sample's summed logits.
        cotangents = torch.zeros(stop - start, *logits.shape, dtype=logits.dtype, device=logits.device)
        cotangents[torch.arange(stop - start), torch.arange(start, stop)] = 1
        grads = torch.autograd.grad(logits, weights, cotangents, retain_graph=True, allow_unused=True,
                                    is_grads_batched=True)
        rows.append(torch.cat([g.reshape(stop - start, -1) for g in grads if g is not None], 1))
    jacobian = check_finite(torch.cat(rows), "a per-sample gradient")
    theta = torch.zeros(batch, batch, dtype=torch.float64, device=jacobian.device)
    for start in range(0, jacobian.shape[1], _NTK_COLUMNS):
        block = jacobian[:, start:start + _NTK_COLUMNS].double()
        theta += block @ block.T
    return theta


@register_proxy("te_nas_ntk", may_be_neg_inf=True, uses_training_forward=True)
def te_nas_ntk(ctx: ProxyContext) -> float:
    theta = ntk(ctx)
    eigenvalues = torch.linalg.eigvalsh(theta)
    smallest, largest = float(eigenvalues[0]), float(eigenvalues[-1])
    # Singular up to rounding: numpy's matrix_rank tolerance (largest x size x eps).
    if largest <= 0 or smallest <= largest * theta.shape[0] * torch.finfo(theta.dtype).eps:
        return -math.inf
    return -largest / smallest


@register_proxy("te_nas_lr", uses_training_forward=True)
def te_nas_lr(ctx: ProxyContext) -> float:
    kernel = training_forward(ctx).hamming.get()
    same = kernel == kernel.diagonal()[:, None]
    # A pattern is counted at its first sample: one with no earlier sample of the same pattern.
    return float((~same.tril(-1).any(1)).sum())


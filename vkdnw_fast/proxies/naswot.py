"""NASWOT (Mellor et al., ICML 2021): how differently the ReLUs partition the input batch.

Every ``nn.ReLU`` contributes the binary code C_l (samples x units) of the sign of its input;
K_H = sum_l [C_l C_l^T + (1 - C_l)(1 - C_l)^T], i.e. K_H[i, j] = N_A - d_H(c_i, c_j) with N_A the
number of ReLU units and d_H the Hamming distance of the two samples' codes. Score =
log|det K_H| (slogdet, sign ignored).

As in the authors' code (VKDNW repo, NB201/ZeroShotProxy/compute_naswot_score.py):
* training mode: their driver puts the network in ``train()`` before scoring, so BatchNorm
  normalises with the scoring batch's statistics;
* Gaussian N(0, 1) input, batch 64 (``naswot``, VKDNW's comparison) or 128 (``naswot_128``,
  the original paper's batch size, there with real images: with ``data=``/``--data`` both take
  real images, ``naswot_128`` the first 128 of the same seeded shuffle);
* only ``nn.ReLU`` modules are seen (their forward hooks). ReLUs called as functions
  (``F.relu``, ``torch.relu``) cannot be hooked and are silently missed; a model with no
  ``nn.ReLU`` at all is an error.
Differences: the codes are read by a forward *pre*-hook (the same codes, also for in-place
ReLUs, since relu(x) > 0 exactly when x > 0) and no backward pass is run (theirs computes an
unused input gradient). ``naswot`` reads its codes from the forward shared with the other
training-mode proxies (``forward.training_forward``); ``naswot_128`` runs its own.

Non-finite values: -inf when K_H is singular (more samples than distinct activation patterns
allow, e.g. a network with very few ReLU units), as slogdet defines it. A ReLU input with NaN or
±inf is an error.
"""
from __future__ import annotations

import torch

from .context import ProxyContext
from .forward import hamming_kernel, training_forward
from .registry import register_proxy


def log_abs_det(kernel: torch.Tensor) -> float:
    return float(torch.linalg.slogdet(kernel).logabsdet)


@register_proxy("naswot", may_be_neg_inf=True, uses_training_forward=True)
def naswot(ctx: ProxyContext) -> float:
    """NASWOT on the context's batch (64 Gaussian samples by default)."""
    return log_abs_det(training_forward(ctx).hamming.get())


@register_proxy("naswot_128", may_be_neg_inf=True)
def naswot_128(ctx: ProxyContext) -> float:
    """NASWOT on a batch of 128 drawn from the context's seed (Gaussian, or real images)."""
    model = ctx.copy_model().train()  # train-mode BN updates buffers: work on a copy
    return log_abs_det(hamming_kernel(model, ctx.batch_inputs(128)))

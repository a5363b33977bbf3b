"""NASWOT (Mellor et al., ICML 2021): how differently the ReLUs partition the input batch.

Every ``nn.ReLU`` contributes the binary code C_l (samples x units) of the sign of its input;
K_H = sum_l [C_l C_l^T + (1 - C_l)(1 - C_l)^T], i.e. K_H[i, j] = N_A - d_H(c_i, c_j) with N_A the
number of ReLU units and d_H the Hamming distance of the two samples' codes. Score =
log|det K_H| (slogdet, sign ignored).

As in the authors' code (VKDNW repo, NB201/ZeroShotProxy/compute_naswot_score.py):
* training mode: their driver puts the network in ``train()`` before scoring, so BatchNorm
  normalises with the scoring batch's statistics;
* Gaussian N(0, 1) input, batch 64 (``naswot``, VKDNW's comparison) or 128 (``naswot_128``,
  the original paper's batch size, there with real images);
* only ``nn.ReLU`` modules are seen (their forward hooks). ReLUs called as functions
  (``F.relu``, ``torch.relu``) cannot be hooked and are silently missed; a model with no
  ``nn.ReLU`` at all is an error.
Differences: the codes are read by a forward *pre*-hook (the same codes, also for in-place
ReLUs, since relu(x) > 0 exactly when x > 0) and no backward pass is run (theirs computes an
unused input gradient).

Non-finite values: -inf when K_H is singular (more samples than distinct activation patterns
allow, e.g. a network with very few ReLU units), as slogdet defines it.
"""
from __future__ import annotations

import torch
from torch import nn

from ..hooks import removing
from .context import ProxyContext
from .registry import register_proxy

# Column chunk of the 0/1 code matrix per float32 matmul: every partial sum is an integer below
# 2**24, so the float32 products are exact; they are accumulated in float64.
_CHUNK = 1 << 23


def hamming_kernel(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """K_H (float64, batch x batch) of ``model`` (used as is: the caller sets its mode)."""
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError(f"NASWOT needs nn.ReLU modules and {type(model).__name__} has none "
                         "(functional relu calls cannot be hooked)")
    batch = inputs.shape[0]
    kernel = torch.zeros(batch, batch, dtype=torch.float64, device=inputs.device)

    def accumulate(module: nn.Module, args: tuple) -> None:
        if args[0].shape[0] != batch:
            raise ValueError(f"an nn.ReLU of {type(model).__name__} got input of shape {tuple(args[0].shape)}; "
                             f"NASWOT needs the batch ({batch}) as its first dimension")
        codes = (args[0].detach() > 0).reshape(batch, -1)
        for start in range(0, codes.shape[1], _CHUNK):
            c = codes[:, start:start + _CHUNK].float()
            kernel.add_((c @ c.T + (1 - c) @ (1 - c).T).double())

    with removing(m.register_forward_pre_hook(accumulate) for m in relus), torch.no_grad():
        model(inputs)
    return kernel


def naswot_score(ctx: ProxyContext, inputs: torch.Tensor) -> float:
    model = ctx.copy_model().train()  # train-mode BN updates buffers: work on a copy
    return float(torch.linalg.slogdet(hamming_kernel(model, inputs)).logabsdet)


@register_proxy("naswot", may_be_neg_inf=True)
def naswot(ctx: ProxyContext) -> float:
    """NASWOT on the context's batch (64 Gaussian samples by default)."""
    return naswot_score(ctx, ctx.inputs)


@register_proxy("naswot_128", may_be_neg_inf=True)
def naswot_128(ctx: ProxyContext) -> float:
    """NASWOT on a Gaussian batch of 128 drawn from the context's seed."""
    return naswot_score(ctx, ctx.gaussian_inputs(128))

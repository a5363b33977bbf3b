"""SWAP (Peng et al., ICLR 2024, "SWAP-NAS: Sample-Wise Activation Patterns for Ultra-fast NAS"):
the number of distinct sample-wise activation patterns.

Every ReLU unit u (one element of an ``nn.ReLU`` input, per sample) has a pattern over the S
samples of the batch: the vector of its signs (1 where the input is > 0). swap = the number of
distinct patterns over all units of all ReLUs. swap_reg multiplies it by the size regulariser
exp(-(P - mu)^2 / sigma), P the number of parameters in thousands (as the authors' code counts
it: every parameter, / 1e3).

As in the authors' code (github.com/pym1024/SWAP, src/metrics/swap.py and correlation.py): layer
weights N(0, 1), BN gamma 1 and beta 0, training mode, S = 16 Gaussian samples here (theirs: 16
real images, and the mean over 32 re-initialisations). The patterns are read from the forward
shared with Zen-NAS (``forward.gaussian_forward``: the N(0, 1) copy on the context's 64-sample
Gaussian batch), as the first 16 samples' signs, so BatchNorm there normalises with the statistics
of the 64 samples rather than of 16. One re-initialisation (seeded). ReLUs are hooked as modules
(``nn.ReLU``); the authors keep only those with 4-d inputs (all of NB201's).

swap_reg's mu and sigma are not in the authors' released code (their ``SWAP`` takes them as
arguments; ``correlation.py`` of pym1024/SWAP and of its successor SWAP_Universal scores with the
regulariser off), and the paper's section that states them could not be read offline.
``SWAP_REG_MU`` and ``SWAP_REG_SIGMA`` below are this project's placeholder, centred on NB201's
larger networks, NOT the paper's values: set them from the paper before comparing swap_reg with
its published figures (Spearman 0.90 on NB201 CIFAR-100, the abstract's one figure).
"""
from __future__ import annotations

import math

import torch

from .context import ProxyContext
from .forward import gaussian_forward
from .registry import register_proxy
from .size import params

SWAP_REG_MU = 1000.0  # thousands of parameters
SWAP_REG_SIGMA = 500_000.0  # (thousands of parameters)^2


def swap_score(ctx: ProxyContext) -> int:
    return int(torch.unique(torch.cat(gaussian_forward(ctx).swap_codes.get())).numel())


@register_proxy("swap")
def swap(ctx: ProxyContext) -> float:
    return float(swap_score(ctx))


@register_proxy("swap_reg")
def swap_reg(ctx: ProxyContext) -> float:
    thousands = params(ctx) / 1e3
    return swap_score(ctx) * math.exp(-((thousands - SWAP_REG_MU) ** 2) / SWAP_REG_SIGMA)

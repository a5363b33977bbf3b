"""AZ-NAS (Lee & Ham, CVPR 2024): expressivity, progressivity and trainability.

The model names its feature maps: ``model.feature_blocks()`` returns the modules whose outputs
are F_0 (after the stem), F_1, ..., F_L (after every cell/block), in forward order, each block's
input being (a function of) the previous block's output.

* expressivity E = sum_l E_l, E_l = -sum_i p_i ln(p_i + 1e-8), p = eigenvalues of the centred
  channel covariance of F_l (reshaped to (B*H*W) x C) divided by their sum;
* progressivity P = min_l (E_{l+1} - E_l);
* trainability T = mean over l = 1..L of (-s - 1/(s + 1e-6) + 2), s the largest singular value of
  g_in^T g_out / (B*H*W): g_out is a Rademacher (+-1) tensor shaped like F_l, g_in its
  vector-Jacobian product at F_{l-1} (pixel-unshuffled by the stride when the resolution drops,
  so the channel counts of g_in and g_out may differ: the matrix is rectangular). A block whose
  g_in equals g_out exactly (an identity) scores -inf.

As in the authors' code (VKDNW repo, NB201/ZeroShotProxy/compute_az_nas_score.py, and the MBV2
copy): one forward in training mode (BatchNorm with the batch's statistics) on the Gaussian batch
(the forward shared with the other training-mode proxies, ``forward.training_forward``; theirs
stops after the last feature block, their ``extract_cell_features``); the Rademacher tensors
are drawn block by block from the last to the first, here as
``randint(0, 2, generator=ctx.generator()) * 2 - 1`` on the CPU; NaN results become -inf.
Differences: covariances, eigenvalues and the singular values in float64 (theirs float32); a
feature map that does not depend on the previous one at all gets g_in = 0 (theirs would raise),
which scores -1/(1e-6) + 2 like their zero-op cells; later modules receive a copy of each
stored feature map, so an in-place op in them cannot change it (same values, one copy more).

Non-finite values (-inf): E and P when some F_l is constant over the batch and positions (zero
covariance, e.g. after an all-``none`` NB201 cell: 0/0 gives NaN, mapped to -inf as the authors
do); T when some block is an identity. A feature map with NaN or ±inf is an error.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .context import ProxyContext
from .forward import check_finite, training_forward
from .registry import register_proxy


def _channels_last_rows(t: torch.Tensor) -> torch.Tensor:
    """(B, C, *S) -> (B * prod(S), C), float64, in one copy (the float32 map is not copied first)."""
    rows = torch.empty(t.shape[0], *t.shape[2:], t.shape[1], dtype=torch.float64, device=t.device)
    return rows.copy_(t.movedim(1, -1)).reshape(-1, t.shape[1])


def spectral_entropy(feature: torch.Tensor) -> float:
    """E_l of one feature map (NaN if it is constant)."""
    f = _channels_last_rows(feature.detach())
    f -= f.mean(dim=0, keepdim=True)
    eigenvalues = torch.linalg.eigvalsh(f.T @ f / f.shape[0])
    p = eigenvalues / eigenvalues.sum()
    return float(-(p * torch.log(p + 1e-8)).sum())


def block_trainability(g_in: torch.Tensor, g_out: torch.Tensor) -> float:
    """-s - 1/(s + 1e-6) + 2 for one block, from its output cotangent and input VJP."""
    if g_in.shape == g_out.shape and torch.equal(g_in, g_out):
        return -math.inf
    if g_in.dim() == 4 and g_in.shape[2:] != g_out.shape[2:]:
        (hi, wi), (ho, wo) = g_in.shape[2:], g_out.shape[2:]
        stride = hi // ho if ho else 0
        if stride < 2 or hi != stride * ho or wi != stride * wo:
            raise ValueError(f"feature map resolution goes from {hi}x{wi} to {ho}x{wo}; AZ-NAS "
                             "trainability handles only a reduction by an integer stride")
        g_in = F.pixel_unshuffle(g_in, stride)
    gi, go = _channels_last_rows(g_in), _channels_last_rows(g_out)
    if gi.shape[0] != go.shape[0]:
        raise ValueError(f"cannot pair the positions of consecutive feature maps of shapes "
                         f"{tuple(g_in.shape)} and {tuple(g_out.shape)}")
    s = float(torch.linalg.matrix_norm(gi.T @ go / go.shape[0], ord=2))
    return -s - 1.0 / (s + 1e-6) + 2.0


def aznas_terms(ctx: ProxyContext) -> dict[str, float]:
    """E, P and T from the shared training forward, cached in ``ctx.cache['aznas']``."""
    if "aznas" in ctx.cache:
        return ctx.cache["aznas"]
    maps = training_forward(ctx).feature_maps.get()
    for index, f in enumerate(maps):
        check_finite(f, f"feature map {index}")

    entropies = np.array([spectral_entropy(f) for f in maps])
    expressivity = np.sum(entropies)
    progressivity = np.min(entropies[1:] - entropies[:-1])

    generator = ctx.generator()
    scores = []
    for index in reversed(range(1, len(maps))):
        f_in, f_out = maps[index - 1], maps[index]
        g_out = (torch.randint(0, 2, f_out.shape, generator=generator) * 2 - 1).to(f_out.device, f_out.dtype)
        g_in = None
        if f_out.requires_grad and f_in.requires_grad:
            (g_in,) = torch.autograd.grad(f_out, f_in, g_out, retain_graph=True, allow_unused=True)
        scores.append(block_trainability(torch.zeros_like(f_in) if g_in is None else g_in, g_out))
    trainability = np.mean(scores)

    terms = {name: -math.inf if np.isnan(value) else float(value)
             for name, value in (("expressivity", expressivity), ("progressivity", progressivity),
                                 ("trainability", trainability))}
    ctx.cache["aznas"] = terms
    return terms


@register_proxy("expressivity", may_be_neg_inf=True, uses_training_forward=True)
def expressivity(ctx: ProxyContext) -> float:
    return aznas_terms(ctx)["expressivity"]


@register_proxy("progressivity", may_be_neg_inf=True, uses_training_forward=True)
def progressivity(ctx: ProxyContext) -> float:
    return aznas_terms(ctx)["progressivity"]


@register_proxy("trainability", may_be_neg_inf=True, uses_training_forward=True)
def trainability(ctx: ProxyContext) -> float:
    return aznas_terms(ctx)["trainability"]

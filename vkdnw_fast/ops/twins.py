"""Pure-PyTorch twins of the custom ops.

They define what the C++/CUDA kernels compute, serve as the test oracle for them, and are the
fallback when the extension is not built. The ops accept tensors of any strides.

sampled_grad(input, grad_output, coords, stride, padding, dilation, groups) -> Tensor
    Per-sample (and per-cotangent) gradients of selected coordinates of a convolution weight or
    bias, for a convolution y = conv(x, W, b, stride, padding, dilation, groups) with d = 1 or 2
    spatial dimensions (a Linear layer is the d = 1 case with kernel size 1).

    input:        (N, C_in, *S_in)
    grad_output:  (N, C_out, *S_out) or (K, N, C_out, *S_out)  (K cotangents of the same batch)
    coords:       int64 (P, 2 + d), rows (o, i, k_1, ..., k_d): weight W[o, i, k_1, ..., k_d] with i
                  the input channel within o's group; i == -1 selects the bias b[o] (k ignored).
    returns:      (N, P) or (K, N, P), dtype of grad_output:
                  out[k, n, p] = sum_s grad_output[k, n, o, s] * input[n, g(o) * C_in/groups + i,
                                                                  s * stride - padding + k * dilation]
                  (terms outside the input are zero), or sum_s grad_output[k, n, o, s] for a bias.

multinomial_factor(logits, basis, variant, prob_scale, prob_offset) -> Tensor
    Applies a square root M of the multinomial covariance Sigma = diag(p) - p p^T, per sample, to a
    basis (a Jacobian J, or the identity to get M itself), with p = prob_scale * softmax(logits) +
    prob_offset.

    logits: (N, C); basis: (N, C, P) (same dtype; e.g. an expanded identity); returns (N, K, P).
    variant "cholesky": M = L~^T, K = C - 1, from the Tanabe-Sagae factorisation Sigma = L~ L~^T,
        computed from log-probabilities and tail log-sum-exps (never 1 - cumsum(p)):
            row j = sqrt(d_j) (J_j - mu_j),  mu_j = sum_{i>j} p_i J_i / q_j,  q_j = sum_{i>j} p_i,
            d_j = p_j q_j / q_{j-1}.
        mu is carried as a convex combination, mu_{j-1} = a_j J_j + (1 - a_j) mu_j with
        a_j = p_j / q_{j-1}, so it stays finite and exact for logits of any magnitude.
        Needs sum(p) = 1.
    variant "sqrt": M = B = diag(sqrt p) - sqrt(p) p^T, K = C: row c = sqrt(p_c) (J_c - sum_k p_k J_k).
        Needs sum(p) = 1.
    variant "paper": the authors' code: M = L~ with q = 1 - cumsum(p), q_{C-1} := 0, q_{-1} := 1,
        d_j = sqrt(p_j q_j / q_{j-1}), L~_ii = d_i, L~_ij = -p_i d_j / q_j for i > j (0 where q_j = 0,
        as their nan_to_num does). K = C. Applied as L~ J, which is their fault 1 (docs/method.md §8).

binary_gram(codes) -> Tensor
    The Gram matrix of binary codes: codes (N, U) bool; returns (N, N) int64, G[i, j] = the number of
    units u with codes[i, u] and codes[j, u] (NASWOT's Hamming kernel is 2G + U - G_ii - G_jj). The
    compiled kernel counts bit-packed rows with popcount; the twin multiplies float32 blocks of units,
    exact while a block's counts stay below 2^24.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

VARIANTS = ("cholesky", "sqrt", "paper")


def factor_rows(variant: str, num_classes: int) -> int:
    """Number of rows K of the factor for C classes."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown multinomial factor variant {variant!r}; variants are {VARIANTS}")
    return num_classes - 1 if variant == "cholesky" else num_classes


def check_sampled_grad_args(input, grad_output, coords, stride, padding, dilation, groups) -> int:
    """Validate the arguments of sampled_grad; returns the number of spatial dimensions d."""
    d = input.dim() - 2
    if d not in (1, 2):
        raise ValueError(f"sampled_grad: input must be (N, C_in, L) or (N, C_in, H, W), got shape {tuple(input.shape)}")
    if grad_output.dim() not in (d + 2, d + 3):
        raise ValueError(f"sampled_grad: grad_output must have {d + 2} or {d + 3} dims for a {d}-d input, "
                         f"got shape {tuple(grad_output.shape)}")
    n = grad_output.shape[-(d + 2)]
    if n != input.shape[0]:
        raise ValueError(f"sampled_grad: batch of grad_output ({n}) differs from input ({input.shape[0]})")
    if input.dtype != grad_output.dtype or input.device != grad_output.device:
        raise ValueError("sampled_grad: input and grad_output need the same dtype and device, got "
                         f"{input.dtype}/{input.device} and {grad_output.dtype}/{grad_output.device}")
    if coords.dtype != torch.int64 or coords.dim() != 2 or coords.shape[1] != 2 + d:
        raise ValueError(f"sampled_grad: coords must be int64 of shape (P, {2 + d}), got {coords.dtype} {tuple(coords.shape)}")
    for name, value in (("stride", stride), ("padding", padding), ("dilation", dilation)):
        if len(value) != d:
            raise ValueError(f"sampled_grad: {name} must have {d} entries, got {list(value)}")
    if any(s < 1 for s in stride) or any(s < 1 for s in dilation) or any(p < 0 for p in padding):
        raise ValueError(f"sampled_grad: invalid stride {list(stride)}, padding {list(padding)} or dilation {list(dilation)}")
    c_in, c_out = input.shape[1], grad_output.shape[-(d + 1)]
    if groups < 1 or c_in % groups or c_out % groups:
        raise ValueError(f"sampled_grad: groups={groups} must divide C_in={c_in} and C_out={c_out}")
    if coords.numel():
        cc = coords.cpu()
        o, i = cc[:, 0], cc[:, 1]
        if (o < 0).any() or (o >= c_out).any() or (i < -1).any() or (i >= c_in // groups).any():
            raise ValueError(f"sampled_grad: coords out of range for C_out={c_out}, C_in/groups={c_in // groups}")
        kmax = cc[:, 2:][i >= 0]
        if (kmax < 0).any():
            raise ValueError("sampled_grad: negative kernel index in coords")
    return d


def sampled_grad(input: torch.Tensor, grad_output: torch.Tensor, coords: torch.Tensor,
                 stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                 groups: int) -> torch.Tensor:
    d = check_sampled_grad_args(input, grad_output, coords, stride, padding, dilation, groups)
    batched = grad_output.dim() == d + 3
    g = grad_output if batched else grad_output.unsqueeze(0)
    out_spatial = g.shape[3:]
    c_in_per_group = input.shape[1] // groups
    c_out_per_group = g.shape[2] // groups
    # Pad once so that every kernel offset is a strided slice of the padded input: left by the
    # padding, right by whatever the furthest sampled offset reaches (zeros, as in the conv).
    weight_rows = coords[coords[:, 1] >= 0]
    reach = weight_rows[:, 2:].amax(0).tolist() if len(weight_rows) else [0] * d
    pad = []
    for axis in reversed(range(d)):
        needed = reach[axis] * dilation[axis] + stride[axis] * (out_spatial[axis] - 1) + 1
        pad += [padding[axis], max(0, needed - padding[axis] - input.shape[2 + axis])]
    x = torch.nn.functional.pad(input, pad) if any(pad) else input
    columns = []
    for row in coords.tolist():
        o, i, kernel = row[0], row[1], row[2:]
        g_o = g[:, :, o]
        if i < 0:
            columns.append(g_o.sum(dim=tuple(range(2, 2 + d))))
            continue
        c = (o // c_out_per_group) * c_in_per_group + i
        window = x[:, c]
        for axis, (k, s, dil, size) in enumerate(zip(kernel, stride, dilation, out_spatial)):
            window = window.narrow(1 + axis, k * dil, s * (size - 1) + 1)
            window = window[(slice(None),) * (1 + axis) + (slice(None, None, s),)]
        columns.append((g_o * window.unsqueeze(0)).sum(dim=tuple(range(2, 2 + d))))
    if columns:
        out = torch.stack(columns, dim=-1)
    else:
        out = g.new_zeros(g.shape[:2] + (0,))
    return out if batched else out[0]


def probability_constants(num_classes: int, smoothing: float, fp16_constants: bool) -> tuple[float, float]:
    """(scale, offset) with p = scale * softmax(z) + offset.

    The fp16 constants are what the authors' code computes: alpha = fp16(0.05);
    (1 - alpha) is evaluated in float16, alpha / C too, and both are added to a float32 softmax.
    """
    if fp16_constants:
        alpha = torch.tensor(smoothing, dtype=torch.float16)
        scale = float(torch.ones((), dtype=torch.float16) - alpha)
        offset = float(alpha / num_classes)
        return scale, offset
    return 1.0 - smoothing, smoothing / num_classes


def log_probabilities(logits: torch.Tensor, prob_scale: float, prob_offset: float) -> torch.Tensor:
    """log(prob_scale * softmax(z) + prob_offset), without forming softmax(z) when it underflows."""
    logp = torch.log_softmax(logits, dim=-1)
    if prob_scale != 1.0:
        logp = logp + math.log(prob_scale)
    if prob_offset > 0.0:
        logp = torch.logaddexp(logp, torch.full_like(logp, math.log(prob_offset)))
    return logp


def check_factor_args(logits, basis, variant, prob_scale, prob_offset) -> None:
    factor_rows(variant, 2)
    if logits.dim() != 2 or basis.dim() != 3 or basis.shape[:2] != logits.shape:
        raise ValueError(f"multinomial_factor: logits must be (N, C) and basis (N, C, P), got "
                         f"{tuple(logits.shape)} and {tuple(basis.shape)}")
    if logits.shape[1] < 2:
        raise ValueError(f"multinomial_factor: needs at least 2 classes, got C={logits.shape[1]}")
    if logits.dtype != basis.dtype or logits.dtype not in (torch.float32, torch.float64):
        raise ValueError(f"multinomial_factor: logits and basis must both be float32 or float64, got {logits.dtype} and {basis.dtype}")
    if not (prob_scale > 0.0 and prob_offset >= 0.0):
        raise ValueError(f"multinomial_factor: need prob_scale > 0 and prob_offset >= 0, got {prob_scale}, {prob_offset}")
    total = prob_scale + logits.shape[1] * prob_offset
    if variant != "paper" and abs(total - 1.0) > 1e-9:
        raise ValueError(f"multinomial_factor: variant {variant!r} needs probabilities summing to 1, "
                         f"these sum to {total!r} (only 'paper' accepts that)")


def multinomial_factor(logits: torch.Tensor, basis: torch.Tensor, variant: str,
                       prob_scale: float = 1.0, prob_offset: float = 0.0) -> torch.Tensor:
    check_factor_args(logits, basis, variant, prob_scale, prob_offset)
    num_classes = logits.shape[1]
    if variant == "paper":
        return _paper_factor(logits, basis, prob_scale, prob_offset)
    logp = log_probabilities(logits, prob_scale, prob_offset)
    if variant == "sqrt":
        p = logp.exp()
        mean = torch.einsum("nc,ncp->np", p, basis)
        return (0.5 * logp).exp().unsqueeze(-1) * (basis - mean.unsqueeze(1))
    # cholesky: reverse sweep over classes carrying the tail mean mu as a convex combination.
    lse_ge = torch.logcumsumexp(logp.flip(-1), dim=-1).flip(-1)  # logsumexp(logp[j:])
    rows = []
    mu = basis[:, num_classes - 1]
    for j in range(num_classes - 2, -1, -1):
        lse_gt, lse_j = lse_ge[:, j + 1], lse_ge[:, j]
        sqrt_d = (0.5 * (logp[:, j] + lse_gt - lse_j)).exp().unsqueeze(-1)
        rows.append(sqrt_d * (basis[:, j] - mu))
        a = (logp[:, j] - lse_j).exp().unsqueeze(-1)
        b = (lse_gt - lse_j).exp().unsqueeze(-1)
        mu = a * basis[:, j] + b * mu
    return torch.stack(rows[::-1], dim=1)


def _paper_factor(logits, basis, prob_scale, prob_offset):
    p = prob_scale * torch.softmax(logits, dim=-1) + prob_offset
    q = 1.0 - torch.cumsum(p, dim=-1)
    q[:, -1] = 0.0
    q_prev = torch.cat([torch.ones_like(q[:, :1]), q[:, :-1]], dim=-1)
    d = torch.sqrt(p * q / q_prev)
    # coefficient of basis_j in the prefix sum: d_j / q_j, and 0 where q_j = 0 (their nan_to_num).
    w = torch.where(q != 0, d / torch.where(q != 0, q, torch.ones_like(q)), torch.zeros_like(q))
    weighted = w.unsqueeze(-1) * basis
    prefix = torch.cat([torch.zeros_like(weighted[:, :1]), torch.cumsum(weighted, dim=1)[:, :-1]], dim=1)
    return d.unsqueeze(-1) * basis - p.unsqueeze(-1) * prefix


# Units per float32 product in the twin: the counts of a block stay exact integers (< 2^24).
_GRAM_BLOCK = 1 << 23


def check_binary_gram_args(codes: torch.Tensor) -> None:
    if codes.dim() != 2 or codes.dtype != torch.bool:
        dtype = str(codes.dtype).removeprefix("torch.")
        raise ValueError(f"binary_gram: codes must be a 2-d bool tensor (N, U), got {dtype} of shape {list(codes.shape)}")


def binary_gram(codes: torch.Tensor) -> torch.Tensor:
    check_binary_gram_args(codes)
    gram = torch.zeros(codes.shape[0], codes.shape[0], dtype=torch.int64, device=codes.device)
    for start in range(0, codes.shape[1], _GRAM_BLOCK):
        block = codes[:, start:start + _GRAM_BLOCK].float()
        gram += (block @ block.T).long()
    return gram

"""Per-sample gradients of sampled convolution weights in plain PyTorch, for any number of spatial
dims (the compiled ``sampled_grad`` op covers 1-d and 2-d convolutions only).

A weight coordinate (o, c, k) of a convolution collects, for each sample, the products of one
channel of the output gradient with one strided window of one input channel; for a transposed
convolution the roles swap (input channel times a strided window of the output gradient). Each
coordinate costs one elementwise product over N x (output or input) positions; nothing else of
the weight gradient is formed.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F


def _window(t: torch.Tensor, offset, stride, dilation, size) -> torch.Tensor:
    """t[:, k*dil + s*q] for q < size along each spatial axis of t (N, *S): a strided view."""
    for axis, (k, s, dil, n) in enumerate(zip(offset, stride, dilation, size)):
        t = t.narrow(1 + axis, k * dil, s * (n - 1) + 1)
        t = t[(slice(None),) * (1 + axis) + (slice(None, None, s),)]
    return t


def _padding(source_size, left, reach, stride, dilation, size) -> list[int]:
    """F.pad amounts (last axis first): ``left`` zeros before, enough after for every window."""
    pad = []
    for axis in reversed(range(len(size))):
        needed = reach[axis] * dilation[axis] + stride[axis] * (size[axis] - 1) + 1
        pad += [left[axis], max(0, needed - left[axis] - source_size[axis])]
    return pad


def _reach(coords: list[list[int]], d: int) -> list[int]:
    weights = [c[2:] for c in coords if c[1] >= 0]
    return [max(k[axis] for k in weights) if weights else 0 for axis in range(d)]


def conv_grads(kept: torch.Tensor, grad_output: torch.Tensor, coords: torch.Tensor,
               stride, padding, dilation) -> torch.Tensor:
    """(N, P) for a convolution: kept (N, k, *S_in) input channels, grad_output (N, C_out, *S_out),
    coords (P, 2 + d) rows (o, kept channel or -1 for the bias, kernel offsets)."""
    rows = coords.tolist()
    d = grad_output.dim() - 2
    size = grad_output.shape[2:]
    x = F.pad(kept, _padding(kept.shape[2:], padding, _reach(rows, d), stride, dilation, size))
    columns = []
    for o, c, *k in rows:
        g = grad_output[:, o]
        product = g if c < 0 else g * _window(x[:, c], k, stride, dilation, size)
        columns.append(product.flatten(1).sum(1))
    return torch.stack(columns, dim=-1)


def conv_transpose_grads(kept: torch.Tensor, grad_output: torch.Tensor, coords: torch.Tensor,
                         stride, padding, dilation) -> torch.Tensor:
    """(N, P) for a transposed convolution, whose input position p feeds output position
    p*s - padding + k*dil: weight (c, o, k) pairs x[c, p] with that output gradient (zero outside)."""
    rows = coords.tolist()
    d = grad_output.dim() - 2
    size = kept.shape[2:]
    reach = _reach(rows, d)
    columns = []
    for o, c, *k in rows:
        g = grad_output[:, o]
        if c < 0:
            columns.append(g.flatten(1).sum(1))
            continue
        g = F.pad(g, _padding(g.shape[1:], padding, reach, stride, dilation, size))
        columns.append((kept[:, c] * _window(g, k, stride, dilation, size)).flatten(1).sum(1))
    return torch.stack(columns, dim=-1)

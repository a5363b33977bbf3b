"""From the stacked factors A to the Fisher spectrum and the VKDNW entropy (docs/method.md §1-2)."""
from __future__ import annotations

import math

import torch

_EPS = 1e-10


def fisher_eigenvalues(a: torch.Tensor, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Eigenvalues of F = (1/N) sum_n A_n^T A_n, descending, from A of shape (N, K, P).

    Singular values of the stacked A / sqrt(N), squared: F itself is never formed or factored.
    When N*K < P, F has at least P - N*K zero eigenvalues, which are appended.
    """
    n, k, p = a.shape
    stacked = a.reshape(n * k, p).to(dtype) / math.sqrt(n)
    values = torch.linalg.svdvals(stacked) ** 2
    if values.numel() < p:
        values = torch.cat([values, values.new_zeros(p - values.numel())])
    return values.sort(descending=True).values


def vkdnw_entropy(eigenvalues: torch.Tensor, quantiles: tuple[float, ...]) -> tuple[float, torch.Tensor]:
    """Entropy of the normalised spectrum quantiles (linear interpolation, as torch.quantile)."""
    q = torch.tensor(quantiles, dtype=eigenvalues.dtype, device=eigenvalues.device)
    levels = torch.quantile(eigenvalues, q)
    t = levels / (levels.sum() + _EPS)
    return float(-(t * torch.log(t + _EPS)).sum()), levels

"""The multinomial covariance factor against independent oracles: dense float64 formulas, the
authors' construction, and a 50-digit mpmath computation for probabilities down to 1e-300."""
from __future__ import annotations

import mpmath
import pytest
import torch

from vkdnw_fast import ops
from vkdnw_fast.ops import twins

from fisher_oracle import authors_ltilde

IMPLEMENTATIONS = {
    "dispatch": lambda z, basis, variant, **kw: ops.multinomial_factor(z, basis, variant, **kw),
    "twin": lambda z, basis, variant, smoothing=0.0, fp16_constants=False: twins.multinomial_factor(
        z, basis, variant, *twins.probability_constants(z.shape[1], smoothing, fp16_constants)),
}


def identity(n, c, dtype=torch.float64):
    return torch.eye(c, dtype=dtype).expand(n, c, c)


def sigma_of(z):
    p = torch.softmax(z, dim=1)
    return torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)


def mp_sigma_diagonal(logits):
    """p_i (1 - p_i) to 50 digits, for one sample."""
    mpmath.mp.dps = 50
    z = [mpmath.mpf(float(v)) for v in logits]
    top = max(z)
    weights = [mpmath.exp(v - top) for v in z]
    total = mpmath.fsum(weights)
    return [float(w / total * (1 - w / total)) for w in weights]


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("variant", ["cholesky", "sqrt"])
def test_factor_is_a_square_root_of_sigma(impl, variant):
    z = torch.randn(5, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 3
    m = IMPLEMENTATIONS[impl](z, identity(5, 12), variant)
    assert m.shape == (5, 11 if variant == "cholesky" else 12, 12)
    assert torch.allclose(m.transpose(1, 2) @ m, sigma_of(z), rtol=0, atol=1e-12)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("variant", ["cholesky", "sqrt"])
def test_tiny_probabilities_stay_relatively_exact(impl, variant):
    """Probabilities from 1 down to about 1e-300: the diagonal of M^T M equals p_i (1 - p_i) to a
    relative 1e-10, where forming 1 - cumsum(p) would have lost every digit of the tail."""
    logits = torch.linspace(0.0, -690.0, 40, dtype=torch.float64).unsqueeze(0)
    m = IMPLEMENTATIONS[impl](logits, identity(1, 40), variant)
    diagonal = torch.diagonal(m.transpose(1, 2) @ m, dim1=1, dim2=2)[0]
    truth = torch.tensor(mp_sigma_diagonal(logits[0]), dtype=torch.float64)
    assert torch.all(truth > 0)
    assert float(((diagonal - truth).abs() / truth).max()) < 1e-10


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("variant", ["cholesky", "sqrt"])
def test_saturated_and_huge_logits_stay_finite_and_exact(variant, dtype):
    z = torch.zeros(3, 1000, dtype=dtype)
    z[0, 7] = 1e8                        # one-hot saturation
    z[1] = torch.linspace(-1e8, 1e8, 1000, dtype=dtype)
    z[2, ::2] = 5e7                      # two plateaus 5e7 apart
    m = ops.multinomial_factor(z, identity(3, 1000, dtype), variant)
    assert torch.isfinite(m).all()
    truth = sigma_of(z.double())
    assert torch.allclose((m.transpose(1, 2) @ m).double(), truth, rtol=0, atol=1e-6 if dtype == torch.float32 else 1e-15)
    # The third sample is uniform over 500 classes: Sigma_ii = 1/500 (1 - 1/500) exactly.
    assert float((m[2].transpose(0, 1) @ m[2])[0, 0]) == pytest.approx(499 / 500**2, rel=1e-5 if dtype == torch.float32 else 1e-13)


@pytest.mark.parametrize("impl", sorted(IMPLEMENTATIONS))
@pytest.mark.parametrize("classes", [2, 10, 120])
def test_paper_factor_is_the_authors_ltilde(impl, classes):
    z = torch.randn(4, classes, dtype=torch.float64, generator=torch.Generator().manual_seed(classes)) * 4
    m = IMPLEMENTATIONS[impl](z, identity(4, classes), "paper", smoothing=0.05, fp16_constants=True)
    # 1 - cumsum(p) cancels, so a different summation order moves the last digits (the kernel's).
    assert torch.allclose(m, authors_ltilde(z, classes), rtol=0, atol=1e-12)
    jac = torch.randn(4, classes, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    applied = IMPLEMENTATIONS[impl](z, jac, "paper", smoothing=0.05, fp16_constants=True)
    assert torch.allclose(applied, authors_ltilde(z, classes) @ jac, rtol=0, atol=1e-12)


def test_paper_factor_is_not_a_root_of_sigma():
    """The authors' fault 1 (docs/method.md §8): L~ J gives J^T L~^T L~ J, about 47% off J^T Sigma J."""
    z = torch.randn(1, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    jac = torch.randn(1, 10, 30, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    a = ops.multinomial_factor(z, jac, "paper", smoothing=0.05, fp16_constants=True)[0]
    scale, offset = twins.probability_constants(10, 0.05, True)
    p = scale * torch.softmax(z[0], 0) + offset
    exact = jac[0].T @ (torch.diag(p) - torch.outer(p, p)) @ jac[0]
    assert float((a.T @ a - exact).norm() / exact.norm()) > 0.2


def test_fp16_constants_are_the_authors():
    scale, offset = twins.probability_constants(10, 0.05, True)
    assert scale == 0.9501953125                         # fp16(1 - fp16(0.05))
    assert offset == float(torch.tensor(0.05, dtype=torch.float16) / 10)
    assert scale + 10 * offset > 1.0                     # why 1 - cumsum(p) can turn negative


def test_exact_factors_refuse_probabilities_that_do_not_sum_to_one():
    with pytest.raises(ValueError, match="summing to 1"):
        ops.multinomial_factor(torch.zeros(1, 10, dtype=torch.float64), identity(1, 10), "cholesky",
                               smoothing=0.05, fp16_constants=True)

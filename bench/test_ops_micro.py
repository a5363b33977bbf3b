"""The custom ops, compiled kernel against its pure-PyTorch twin, on the shapes the engine (and
NASWOT) gives them for NB201 networks at batch 64 (CPU).

Each benchmark group holds one pair, ``compiled`` and ``twin``, on the same tensors; ``extra_info``
carries the shapes. The compiled side goes through ``vkdnw_fast.ops`` (which dispatches to the
extension) and is skipped when the extension is not built.

sampled_grad, a 3x3 conv (stride 1, padding 1) of each NB201 stage (16, 32, 64 channels at 32, 16,
8 px), float32, channels-last output gradients as the CPU engine has them:
  engine  the engine's case: one sampled weight, so one kept input channel, P = 1;
  p16     16 sampled weights over all input channels of the layer, P = 16.
multinomial_factor, float64 logits (64, C) with C = 10, 100, 1000, each variant:
  C = 10        basis = the identity, expanded (the ``rows`` plan: the factor itself);
  C = 100, 1000 basis = a final Linear's weight (C, 64), expanded (the ``features`` plan: M W).
binary_gram, NASWOT's codes of one nn.ReLU input at batch 128 (half of them set): an NB201 stage's
  (16, 32, 64 channels at 32, 16, 8 px) and a TransNAS-Bench micro cell's first stage (64 channels at
  64 px, the 256 px input after the stem).
"""
from __future__ import annotations

import pytest
import torch

from vkdnw_fast import ops
from vkdnw_fast.ops import twins

BATCH = 64
STAGES = [(16, 32), (32, 16), (64, 8)]  # (channels, pixels) of the three NB201 stages
IMPLS = ["compiled", "twin"]


def _impl(name, compiled, twin):
    if name == "compiled":
        if ops.backend("cpu") == "twin":
            pytest.skip("the compiled extension is not built (vkdnw_fast.ops.backend() == 'twin')")
        return compiled
    return twin


def _sampled_grad_case(channels, pixels, case):
    g = torch.Generator().manual_seed(0)
    grad_output = torch.randn(BATCH, channels, pixels, pixels, generator=g).contiguous(
        memory_format=torch.channels_last)
    if case == "engine":
        x = torch.randn(BATCH, 1, pixels, pixels, generator=g)
        coords = torch.tensor([[channels // 2, 0, 1, 2]])
    else:
        x = torch.randn(BATCH, channels, pixels, pixels, generator=g).contiguous(memory_format=torch.channels_last)
        coords = torch.stack([torch.randint(0, channels, (16,), generator=g),
                              torch.randint(0, channels, (16,), generator=g),
                              torch.randint(0, 3, (16,), generator=g),
                              torch.randint(0, 3, (16,), generator=g)], dim=1)
    return x, grad_output, coords


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("case", ["engine", "p16"])
@pytest.mark.parametrize("channels,pixels", STAGES, ids=[f"c{c}-{p}px" for c, p in STAGES])
def test_sampled_grad(benchmark, channels, pixels, case, impl):
    fn = _impl(impl, ops.sampled_grad, twins.sampled_grad)
    x, grad_output, coords = _sampled_grad_case(channels, pixels, case)
    args = (x, grad_output, coords, (1, 1), (1, 1), (1, 1), 1)
    benchmark.group = f"sampled_grad c{channels} {pixels}px {case}"
    benchmark.extra_info.update(op="sampled_grad", impl=impl, case=case, input=list(x.shape),
                                grad_output=list(grad_output.shape), coords=list(coords.shape),
                                kernel=3, stride=1, padding=1, dtype="float32", memory_format="channels_last")
    out = benchmark(fn, *args)
    assert out.shape == (BATCH, coords.shape[0])


def _factor_case(num_classes):
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(BATCH, num_classes, generator=g, dtype=torch.float64)
    if num_classes <= 10:
        basis, plan = torch.eye(num_classes, dtype=torch.float64).expand(BATCH, -1, -1), "rows"
    else:
        weight = torch.randn(num_classes, 64, generator=g, dtype=torch.float64) / 8
        basis, plan = weight.expand(BATCH, -1, -1), "features"
    return logits, basis, plan


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("num_classes", [10, 100, 1000])
@pytest.mark.parametrize("variant", ["paper", "cholesky", "sqrt"])
def test_multinomial_factor(benchmark, variant, num_classes, impl):
    logits, basis, plan = _factor_case(num_classes)
    if impl == "compiled":
        fn = _impl(impl, lambda: ops.multinomial_factor(logits, basis, variant), None)
    else:
        scale, offset = ops.probability_constants(num_classes, 0.0, False)
        fn = lambda: twins.multinomial_factor(logits, basis, variant, scale, offset)  # noqa: E731
    benchmark.group = f"multinomial_factor {variant} C={num_classes}"
    benchmark.extra_info.update(op="multinomial_factor", impl=impl, variant=variant, logits=list(logits.shape),
                                basis=list(basis.shape), basis_kind=f"{plan} plan (expanded)", dtype="float64",
                                smoothing=0.0)
    out = benchmark(fn)
    assert out.shape == (BATCH, ops.factor_rows(variant, num_classes), basis.shape[2])


GRAM_CASES = [(16, 32), (32, 16), (64, 8), (64, 64)]  # (channels, pixels) of one ReLU input


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("channels,pixels", GRAM_CASES, ids=[f"c{c}-{p}px" for c, p in GRAM_CASES])
def test_binary_gram(benchmark, channels, pixels, impl):
    fn = _impl(impl, ops.binary_gram, twins.binary_gram)
    codes = torch.rand(128, channels * pixels * pixels, generator=torch.Generator().manual_seed(0)) < 0.5
    benchmark.group = f"binary_gram c{channels} {pixels}px"
    benchmark.extra_info.update(op="binary_gram", impl=impl, codes=list(codes.shape), dtype="bool")
    out = benchmark(fn, codes)
    assert out.shape == (128, 128)

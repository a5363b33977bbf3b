"""The compiled CUDA kernels against the twins (run on the GPU) and against the CPU kernels."""
from __future__ import annotations

import pytest
import torch

import vkdnw_fast.ops as ops
from vkdnw_fast.ops import twins
from test_ops import (DTYPE_IDS, DTYPES, _ProbedConv, assert_factor_close, assert_sampled_grad_close,
                      compiled_factor, compiled_sampled_grad, factor_args, factor_case, poison_allocator,
                      random_conv_case, sampled_grad_args, unwritten_output_cases)

DEVICE = "cuda"


def _skip_reason() -> str | None:
    if not torch.cuda.is_available():
        return "no CUDA device"
    if not ops.extension_loaded():
        return f"vkdnw_fast._C is not built ({ops._extension_error}); run `python setup.py build_ext --inplace`"
    if ops.backend(DEVICE) != "cuda":
        return "vkdnw_fast._C was built without CUDA kernels (torch without CUDA, or no CUDA toolkit)"
    return None


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def on_cpu(case: dict) -> dict:
    return {k: v.cpu() if isinstance(v, torch.Tensor) else v for k, v in case.items()}


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("seed", range(40))
def test_sampled_grad_matches_twin_and_cpu(seed, dtype):
    case = random_conv_case(seed, dtype, device=DEVICE)
    got = compiled_sampled_grad(case)
    assert got.device.type == DEVICE
    assert_sampled_grad_close(got, case)
    cpu_case = on_cpu(case)
    assert_sampled_grad_close(got.cpu(), cpu_case, expected=compiled_sampled_grad(cpu_case))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape", [(1, 64, 16, 32, 32), (10, 64, 64, 8, 8), (3, 2, 5, 1, 1)])
def test_sampled_grad_network_shapes(shape, dtype):
    """Block sizes from 32 to 256 threads; coords given on the CPU (no device-to-host copy)."""
    gen = torch.Generator().manual_seed(2)
    k, n, c, h, w = shape
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype).contiguous(memory_format=torch.channels_last)
    g = torch.randn(k, n, c, h, w, generator=gen, dtype=dtype)
    coords = torch.tensor([[0, 0, 1, 1], [c - 1, c - 1, 0, 2], [c // 2, -1, 0, 0]])
    case = dict(input=x.to(DEVICE), grad_output=g.to(DEVICE), coords=coords, stride=[1, 1], padding=[1, 1],
                dilation=[1, 1], groups=1, desc=str(shape))
    got = compiled_sampled_grad(case)
    assert_sampled_grad_close(got, case)
    cpu_case = on_cpu(case)
    assert_sampled_grad_close(got.cpu(), cpu_case, expected=compiled_sampled_grad(cpu_case))


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sampled_grad_output_is_always_written(dtype):
    for case in unwritten_output_cases(dtype, DEVICE):
        for _ in range(3):
            poison_allocator(DEVICE, twins.sampled_grad(*sampled_grad_args(case)).numel(), dtype)
            got = compiled_sampled_grad(case)
            assert bool(got.isfinite().all()), case["desc"]
            assert_sampled_grad_close(got, case)


def test_sampled_grad_device_mismatch():
    x = torch.randn(2, 3, 5, device=DEVICE)
    with pytest.raises(ValueError, match="same dtype and device"):
        torch.ops.vkdnw_fast.sampled_grad(x, torch.randn(2, 4, 5), torch.tensor([[0, 0, 0]]), [1], [0], [1], 1)
    # Checked although coords live on the GPU; the numbers in full (a build with a second libstdc++ lost them).
    with pytest.raises(ValueError, match=r"coords out of range for C_out=4, C_in/groups=3: row 0 is \[4, 0, 0\]"):
        torch.ops.vkdnw_fast.sampled_grad(x, torch.randn(2, 4, 5, device=DEVICE),
                                          torch.tensor([[4, 0, 0]], device=DEVICE), [1], [0], [1], 1)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_vmap_rule_with_batched_grads(dtype):
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(3, 4, 6, 5, generator=gen, dtype=dtype).to(DEVICE).requires_grad_()
    weight = torch.randn(5, 4, 3, 3, generator=gen, dtype=dtype).to(DEVICE)
    coords = torch.tensor([[0, 1, 1, 1], [4, 3, 0, 2], [2, -1, 0, 0]], device=DEVICE)
    probe = torch.zeros(3, 3, dtype=dtype, device=DEVICE, requires_grad=True)
    cotangents = torch.randn(7, 3, 5, 6, 5, generator=gen, dtype=dtype).to(DEVICE)
    y = _ProbedConv.apply(x, weight, probe, coords, torch.ops.vkdnw_fast.sampled_grad)
    (got,) = torch.autograd.grad(y, probe, cotangents, is_grads_batched=True)
    expected = torch.stack([twins.sampled_grad(x.detach(), c, coords, [1, 1], [1, 1], [1, 1], 1) for c in cotangents])
    tol = 64 * torch.finfo(dtype).eps * twins.sampled_grad(x.detach().abs(), cotangents.abs().sum(0), coords,
                                                           [1, 1], [1, 1], [1, 1], 1)
    assert bool(((got - expected).abs() <= tol).all())


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("logit_scale", [1.0, 30.0, 1e8])
@pytest.mark.parametrize("classes", [2, 10, 100, 1000])
@pytest.mark.parametrize("variant", ["cholesky", "sqrt"])
def test_stable_factor_matches_twin_and_cpu(variant, classes, logit_scale, dtype):
    case = factor_case(variant, classes, logit_scale, True, dtype, seed=classes, identity=classes <= 100,
                       device=DEVICE)
    got = compiled_factor(case)
    assert got.device.type == DEVICE
    assert_factor_close(got, twins.multinomial_factor(*factor_args(case)), case)
    cpu_case = on_cpu(case)
    assert_factor_close(got.cpu(), compiled_factor(cpu_case), cpu_case)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("classes,logit_scale,smoothing", [
    (2, 1.0, False), (10, 2.0, True), (100, 1.0, True), (1000, 1.0, False), (10, 1e8, True)])
def test_paper_factor_matches_twin_and_cpu(classes, logit_scale, smoothing, dtype):
    case = factor_case("paper", classes, logit_scale, smoothing, dtype, seed=classes, device=DEVICE)
    got = compiled_factor(case)
    assert_factor_close(got, twins.multinomial_factor(*factor_args(case)), case)
    cpu_case = on_cpu(case)
    assert_factor_close(got.cpu(), compiled_factor(cpu_case), cpu_case)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_factor_output_is_always_written(dtype):
    for variant, classes, cols in (("cholesky", 2, 501), ("sqrt", 5, 67), ("paper", 4, 93)):
        case = factor_case(variant, classes, 1.0, True, dtype, seed=cols, n=7, cols=cols, device=DEVICE)
        expected = twins.multinomial_factor(*factor_args(case))
        for _ in range(3):
            poison_allocator(DEVICE, expected.numel(), dtype)
            assert_factor_close(compiled_factor(case), expected, case)


def test_factor_device_mismatch():
    with pytest.raises(ValueError, match="one device"):
        torch.ops.vkdnw_fast.multinomial_factor(torch.randn(2, 3, device=DEVICE), torch.randn(2, 3, 4), "sqrt", 1.0, 0.0)


def test_binary_gram_on_the_gpu_is_the_twin_and_equals_the_cpu_kernel():
    """binary_gram has no CUDA kernel: on the GPU the twin's float32 product runs, exact like the CPU popcount."""
    codes = torch.rand(128, 64 * 300 + 5, generator=torch.Generator().manual_seed(5)) < 0.5
    got = ops.binary_gram(codes.to(DEVICE))
    assert got.device.type == DEVICE and got.dtype == torch.int64
    assert torch.equal(got.cpu(), torch.ops.vkdnw_fast.binary_gram(codes))

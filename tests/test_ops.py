"""The compiled CPU kernels (vkdnw_fast._C) against their pure-PyTorch twins and brute-force oracles.

The helpers at the top are shared with test_cuda_ops.py.
"""
from __future__ import annotations

import gc
import math
import random

import numpy as np
import pytest
import torch

import vkdnw_fast.ops as ops
from vkdnw_fast.ops import twins

DTYPES = (torch.float32, torch.float64)
DTYPE_IDS = ("float32", "float64")

requires_extension = pytest.mark.skipif(
    not ops.extension_loaded(),
    reason=f"vkdnw_fast._C is not built ({ops._extension_error}); run `python setup.py build_ext --inplace`",
)
pytestmark = requires_extension


# ----------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------

def with_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as ``t`` in another memory layout (never a copy of the original strides)."""
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last":  # dim 1 innermost, as torch.channels_last for 4-d
        return t.movedim(1, -1).contiguous().movedim(-1, 1)
    if layout == "transposed":  # every dimension reversed in memory
        order = list(reversed(range(t.dim())))
        return t.permute(order).contiguous().permute(order)
    if layout == "gapped":  # a gap after every element of every dimension, NaN-filled (True for bool codes)
        big = t.new_full([2 * s for s in t.shape], float("nan") if t.is_floating_point() else True)
        view = big[tuple(slice(None, None, 2) for _ in t.shape)]
        view.copy_(t)
        return view
    raise ValueError(layout)


LAYOUTS = ("contiguous", "channels_last", "transposed", "gapped")


def conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def random_conv_case(seed: int, dtype: torch.dtype, device: str = "cpu") -> dict:
    """A random valid convolution (1-d or 2-d, groups, stride, padding, dilation) with random
    weight and bias coordinates and inputs in random memory layouts."""
    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    d = rng.choice((1, 2))
    groups = rng.choice((1, 1, 2, 3))
    depthwise = rng.random() < 0.25
    c_in = groups * (1 if depthwise else rng.randint(1, 4))
    c_out = groups * rng.randint(1, 3)
    n = rng.randint(1, 5)
    while True:
        kernel = [rng.randint(1, 4) for _ in range(d)]
        stride = [rng.randint(1, 3) for _ in range(d)]
        padding = [rng.randint(0, 2) for _ in range(d)]
        dilation = [rng.randint(1, 2) for _ in range(d)]
        size = [rng.randint(1, 13) for _ in range(d)]
        out = [conv_out_size(*args) for args in zip(size, kernel, stride, padding, dilation)]
        if all(o >= 1 for o in out):
            break
    k_batch = rng.choice((None, 1, 3))
    x = torch.randn(n, c_in, *size, generator=gen, dtype=torch.float64)
    g = torch.randn(*((k_batch,) if k_batch else ()), n, c_out, *out, generator=gen, dtype=torch.float64)
    rows = []
    for _ in range(rng.randint(1, 6)):
        i = -1 if rng.random() < 0.2 else rng.randrange(c_in // groups)
        rows.append([rng.randrange(c_out), i] + [rng.randrange(k) for k in kernel])
    coords = torch.tensor(rows, dtype=torch.int64)
    x_layout, g_layout = rng.choice(LAYOUTS), rng.choice(LAYOUTS)
    x = with_layout(x.to(device=device, dtype=dtype), x_layout)
    g = with_layout(g.to(device=device, dtype=dtype), g_layout)
    if k_batch and rng.random() < 0.3:  # K identical cotangents as a stride-0 view
        g = g[:1].expand_as(g)
    return dict(input=x, grad_output=g, coords=coords.to(device), stride=stride, padding=padding,
                dilation=dilation, groups=groups,
                desc=f"d={d} groups={groups} k={kernel} s={stride} p={padding} dil={dilation} size={size} "
                     f"K={k_batch} layouts={x_layout}/{g_layout}")


def sampled_grad_args(case: dict) -> tuple:
    return (case["input"], case["grad_output"], case["coords"], case["stride"], case["padding"],
            case["dilation"], case["groups"])


def compiled_sampled_grad(case: dict) -> torch.Tensor:
    return torch.ops.vkdnw_fast.sampled_grad(*sampled_grad_args(case))


def assert_sampled_grad_close(actual: torch.Tensor, case: dict, expected: torch.Tensor | None = None) -> None:
    """``actual`` equals the twin up to the rounding of a sum of products: the tolerance is a
    multiple of eps times the sum of the terms' magnitudes (the twin on |input|, |grad_output|)."""
    args = sampled_grad_args(case)
    if expected is None:
        expected = twins.sampled_grad(*args)
    magnitude = twins.sampled_grad(args[0].abs(), args[1].abs(), *args[2:])
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, case["desc"]
    assert actual.is_contiguous()
    tol = 64 * torch.finfo(actual.dtype).eps * magnitude + torch.finfo(actual.dtype).tiny
    err = (actual - expected).abs()
    assert bool((err <= tol).all()), f"{case['desc']}: max error {err.max().item():.3g}"


def factor_case(variant: str, classes: int, logit_scale: float, smoothing: bool, dtype: torch.dtype,
                seed: int = 0, n: int = 4, cols: int = 7, identity: bool = False, device: str = "cpu") -> dict:
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, classes, generator=gen, dtype=torch.float64) * logit_scale
    if identity:  # the identity as an expanded view: strides (0, C, 1)
        basis = torch.eye(classes, dtype=torch.float64).expand(n, classes, classes)
    else:  # classes innermost-but-one in memory: (P, N, C) storage
        basis = torch.randn(cols, n, classes, generator=gen, dtype=torch.float64).permute(1, 2, 0)
    scale, offset = twins.probability_constants(classes, 0.05 if smoothing else 0.0, variant == "paper")
    return dict(logits=logits.to(device=device, dtype=dtype), basis=basis.to(device=device, dtype=dtype),
                variant=variant, prob_scale=scale, prob_offset=offset,
                desc=f"{variant} C={classes} scale={logit_scale:g} smoothing={smoothing} {dtype}")


def factor_args(case: dict) -> tuple:
    return case["logits"], case["basis"], case["variant"], case["prob_scale"], case["prob_offset"]


def compiled_factor(case: dict) -> torch.Tensor:
    return torch.ops.vkdnw_fast.multinomial_factor(*factor_args(case))


def factor_tolerance(case: dict) -> float:
    """Absolute tolerance for a factor output. cholesky and sqrt are stable (a few eps times the
    basis' size); the paper variant forms q = 1 - cumsum(p), whose rounding (C eps) is amplified
    by 1/q, so its tolerance grows with C / min q."""
    logits, basis = case["logits"].double(), case["basis"].double()
    eps = torch.finfo(case["logits"].dtype).eps
    scale = basis.abs().max().item()
    if case["variant"] != "paper":
        return 64 * eps * scale
    p = case["prob_scale"] * torch.softmax(logits, -1) + case["prob_offset"]
    q_min = (1 - p.cumsum(-1))[:, :-1].abs().min().item()
    return 16 * eps * logits.shape[1] * scale / q_min


def assert_factor_close(actual: torch.Tensor, expected: torch.Tensor, case: dict) -> None:
    assert actual.shape == expected.shape and actual.dtype == expected.dtype, case["desc"]
    assert actual.is_contiguous()
    assert bool(actual.isfinite().all()), f"{case['desc']}: non-finite output"
    err = (actual - expected).abs().max().item()
    assert err <= factor_tolerance(case), f"{case['desc']}: max error {err:.3g}"


def poison_allocator(device: str, numel: int, dtype: torch.dtype) -> None:
    """Free NaN-filled blocks of the output's size just before the op allocates its output, so that
    an element the kernel forgot to write shows up as NaN (the CUDA caching allocator hands the
    block out again; glibc does for blocks of a few KiB and up)."""
    poison = [torch.full((numel,), float("nan"), dtype=dtype, device=device) for _ in range(4)]
    del poison
    gc.collect()


# ----------------------------------------------------------------------------------------------
# sampled_grad
# ----------------------------------------------------------------------------------------------

def test_backend_is_compiled():
    assert ops.backend("cpu") == "cpp"


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("seed", range(60))
def test_sampled_grad_matches_twin(seed, dtype):
    case = random_conv_case(seed, dtype)
    assert_sampled_grad_close(compiled_sampled_grad(case), case)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("shape,coords", [
    ((1, 64, 16, 32, 32), [[3, 5, 1, 2], [15, -1, 0, 0]]),  # K = 1, early NB201 layer
    ((10, 64, 64, 8, 8), [[0, 0, 0, 0], [63, 63, 2, 2], [7, 12, 1, 0], [40, -1, 0, 0]]),  # late layer, K = C
])
def test_sampled_grad_network_shapes(shape, coords, dtype):
    """The shapes the engine calls it with: 3x3 conv, padding 1, channels_last input."""
    gen = torch.Generator().manual_seed(1)
    k, n, c, h, w = shape
    x = torch.randn(n, c, h, w, generator=gen, dtype=dtype).contiguous(memory_format=torch.channels_last)
    g = torch.randn(k, n, c, h, w, generator=gen, dtype=dtype)
    case = dict(input=x, grad_output=g, coords=torch.tensor(coords), stride=[1, 1], padding=[1, 1],
                dilation=[1, 1], groups=1, desc=str(shape))
    assert_sampled_grad_close(compiled_sampled_grad(case), case)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("d,groups,stride,padding,dilation", [
    (2, 1, 1, 1, 1), (2, 2, 2, 1, 1), (2, 6, 1, 2, 2), (1, 3, 2, 0, 1), (1, 1, 1, 3, 2)])
def test_sampled_grad_is_per_sample_weight_gradient(d, groups, stride, padding, dilation, dtype):
    """Brute-force oracle: per-sample gradients of conv weight and bias by torch.func."""
    gen = torch.Generator().manual_seed(groups)
    conv_cls = torch.nn.Conv2d if d == 2 else torch.nn.Conv1d
    conv = conv_cls(6, 12, 3, stride=stride, padding=padding, dilation=dilation, groups=groups).to(dtype)
    x = torch.randn(4, 6, *([9, 7] if d == 2 else [11]), generator=gen, dtype=dtype)
    out_shape = conv(x).shape
    g = torch.randn(out_shape, generator=gen, dtype=dtype)
    params = {name: p.detach() for name, p in conv.named_parameters()}

    def loss(params, xn, gn):
        return (torch.func.functional_call(conv, params, (xn[None],)) * gn[None]).sum()

    per_sample = torch.func.vmap(torch.func.grad(loss), in_dims=(None, 0, 0))(params, x, g)
    weight_coords = [[o, i] + list(k) for o in range(12) for i in range(6 // groups)
                     for k in ([(0, 0), (2, 1), (1, 2)] if d == 2 else [(0,), (2,)])]
    coords = torch.tensor(weight_coords + [[o, -1] + [0] * d for o in (0, 11)])
    expected = torch.stack([per_sample["weight"][(slice(None),) + tuple(row)] for row in weight_coords]
                           + [per_sample["bias"][:, o] for o in (0, 11)], dim=-1)
    case = dict(input=x, grad_output=g, coords=coords, stride=[stride] * d, padding=[padding] * d,
                dilation=[dilation] * d, groups=groups, desc=f"conv{d}d groups={groups}")
    assert_sampled_grad_close(compiled_sampled_grad(case), case, expected=expected)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sampled_grad_linear_layer(dtype):
    """A Linear layer is the 1-d case with length 1: out[k, n, (o, i)] = g[k, n, o] x[n, i]."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(5, 8, generator=gen, dtype=dtype)
    g = torch.randn(3, 5, 4, generator=gen, dtype=dtype)
    coords = torch.tensor([[0, 0, 0], [3, 7, 0], [2, 5, 0], [1, -1, 0]])
    got = torch.ops.vkdnw_fast.sampled_grad(x[..., None], g[..., None], coords, [1], [0], [1], 1)
    expected = torch.stack([g[:, :, 0] * x[:, 0], g[:, :, 3] * x[:, 7], g[:, :, 2] * x[:, 5], g[:, :, 1]], -1)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sampled_grad_expanded_input(dtype):
    """One input image broadcast over the batch (stride 0 in N), transposed grad_output."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(1, 3, 6, 5, generator=gen, dtype=dtype).expand(4, 3, 6, 5)
    g = torch.randn(4, 2, 4, 5, generator=gen, dtype=dtype).transpose(2, 3)  # 2x2 kernel
    case = dict(input=x, grad_output=g, coords=torch.tensor([[1, 2, 1, 0], [0, 0, 0, 1]]), stride=[1, 1],
                padding=[0, 0], dilation=[1, 1], groups=1, desc="expanded")
    assert_sampled_grad_close(compiled_sampled_grad(case), case)


def unwritten_output_cases(dtype: torch.dtype, device: str = "cpu") -> list[dict]:
    """Outputs whose value comes from no term at all, which must be 0 rather than leftover memory:
    an empty spatial output, coordinates whose window lies wholly in the padding; and odd sizes.
    Each output has over a thousand elements, so that the allocators reuse poisoned blocks."""
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(50, 3, 4, 4, generator=gen, dtype=dtype)
    cases = [
        # grad_output with no positions: every sum is empty.
        dict(input=x, grad_output=torch.randn(7, 50, 2, 0, 4, dtype=dtype),
             coords=torch.tensor([[0, 1, 0, 0], [1, -1, 0, 0], [1, 2, 0, 0]]), stride=[1, 1], padding=[0, 0],
             dilation=[1, 1], groups=1, desc="empty"),
        # A 10x2 kernel with padding 3 on a 4x4 input gives a 1x9 output; kernel rows 0-2 and 9 see
        # input rows -3..-1 and 6, which lie wholly in the padding.
        dict(input=x, grad_output=torch.randn(7, 50, 2, 1, 9, generator=gen, dtype=dtype),
             coords=torch.tensor([[0, 2, 0, 1], [1, 0, 9, 0], [1, 1, 2, 1]]), stride=[1, 1], padding=[3, 3],
             dilation=[1, 1], groups=1, desc="window in padding"),
        # odd sizes: K=3, N=50, P=7.
        dict(input=x, grad_output=torch.randn(3, 50, 7, 3, 2, generator=gen, dtype=dtype),
             coords=torch.tensor([[o, o % 3, o % 2, 1] for o in range(7)]), stride=[1, 2], padding=[0, 1],
             dilation=[1, 1], groups=1, desc="odd sizes"),
    ]
    for case in cases:
        for key in ("input", "grad_output", "coords"):
            case[key] = case[key].to(device)
    return cases


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_sampled_grad_output_is_always_written(dtype):
    for case in unwritten_output_cases(dtype):
        for _ in range(3):
            poison_allocator("cpu", twins.sampled_grad(*sampled_grad_args(case)).numel(), dtype)
            got = compiled_sampled_grad(case)
            assert bool(got.isfinite().all()), case["desc"]
            assert_sampled_grad_close(got, case)
            if case["desc"] != "odd sizes":
                assert bool((got == 0).all()), case["desc"]


def test_sampled_grad_empty_batch_and_coords():
    x = torch.randn(2, 3, 5)
    g = torch.randn(4, 2, 3, 5)
    assert torch.ops.vkdnw_fast.sampled_grad(x, g, torch.zeros(0, 3, dtype=torch.int64), [1], [1], [1], 1).shape == (4, 2, 0)
    assert torch.ops.vkdnw_fast.sampled_grad(x[:0], g[:, :0], torch.tensor([[0, 0, 0]]), [1], [1], [1], 1).shape == (4, 0, 1)


def _valid_sampled_grad_args():
    return dict(input=torch.randn(2, 4, 6, 6), grad_output=torch.randn(2, 6, 4, 4),
                coords=torch.tensor([[0, 1, 2, 2], [5, -1, 0, 0]]), stride=[1, 1], padding=[0, 0], dilation=[1, 1],
                groups=2)


@pytest.mark.parametrize("change,message", [
    (dict(input=torch.randn(2, 4)), r"input must be \(N, C_in, L\) or \(N, C_in, H, W\)"),
    (dict(grad_output=torch.randn(6, 4, 4)), r"grad_output must have 4 or 5 dims"),
    (dict(grad_output=torch.randn(3, 6, 4, 4)), r"batch of grad_output \(3\) differs from input \(2\)"),
    (dict(grad_output=torch.randn(2, 6, 4, 4, dtype=torch.float64)), r"same dtype and device"),
    (dict(coords=torch.tensor([[0, 1, 2, 2]], dtype=torch.int32)), r"coords must be int64 of shape \(P, 4\)"),
    (dict(coords=torch.tensor([[0, 1, 2]])), r"coords must be int64 of shape \(P, 4\)"),
    (dict(stride=[1]), r"stride must have 2 entries"),
    (dict(padding=[0, 0, 0]), r"padding must have 2 entries"),
    (dict(dilation=[1]), r"dilation must have 2 entries"),
    (dict(stride=[0, 1]), r"invalid stride"),
    (dict(padding=[-1, 0]), r"invalid stride .* padding"),
    (dict(dilation=[1, 0]), r"invalid stride .* dilation"),
    (dict(groups=3), r"groups=3 must divide C_in=4 and C_out=6"),
    (dict(groups=0), r"groups=0 must divide"),
    (dict(coords=torch.tensor([[6, 0, 0, 0]])), r"coords out of range for C_out=6, C_in/groups=2"),
    (dict(coords=torch.tensor([[-1, 0, 0, 0]])), r"coords out of range"),
    (dict(coords=torch.tensor([[0, 2, 0, 0]])), r"coords out of range"),
    (dict(coords=torch.tensor([[0, -2, 0, 0]])), r"coords out of range"),
    (dict(coords=torch.tensor([[0, 1, 0, -1]])), r"negative kernel index"),
])
def test_sampled_grad_argument_errors(change, message):
    args = {**_valid_sampled_grad_args(), **change}
    order = ("input", "grad_output", "coords", "stride", "padding", "dilation", "groups")
    with pytest.raises(ValueError, match=message):
        torch.ops.vkdnw_fast.sampled_grad(*(args[k] for k in order))
    with pytest.raises(ValueError):  # the twin refuses the same arguments
        twins.sampled_grad(*(args[k] for k in order))


def test_sampled_grad_refuses_other_dtypes_and_accepts_bias_with_any_kernel_index():
    args = _valid_sampled_grad_args()
    with pytest.raises(ValueError, match="sampled_grad: .*float32 or float64, got Half"):
        torch.ops.vkdnw_fast.sampled_grad(args["input"].half(), args["grad_output"].half(), args["coords"],
                                          [1, 1], [0, 0], [1, 1], 2)
    coords = torch.tensor([[1, -1, -5, 7]])  # bias: kernel indices are ignored, as in the twin
    got = torch.ops.vkdnw_fast.sampled_grad(args["input"], args["grad_output"], coords, [1, 1], [0, 0], [1, 1], 2)
    torch.testing.assert_close(got[:, 0], args["grad_output"][:, 1].sum((1, 2)))


def test_sampled_grad_meta_shapes():
    case = random_conv_case(7, torch.float32)
    meta = torch.ops.vkdnw_fast.sampled_grad(case["input"].to("meta"), case["grad_output"].to("meta"),
                                             case["coords"].to("meta"), *sampled_grad_args(case)[3:])
    assert meta.device.type == "meta" and meta.shape == compiled_sampled_grad(case).shape
    with pytest.raises(ValueError, match="batch of grad_output"):
        torch.ops.vkdnw_fast.sampled_grad(case["input"][:0].to("meta"), case["grad_output"].to("meta"),
                                          case["coords"].to("meta"), *sampled_grad_args(case)[3:])


def test_opcheck():
    case = random_conv_case(11, torch.float64)
    torch.library.opcheck(torch.ops.vkdnw_fast.sampled_grad.default, sampled_grad_args(case))
    fcase = factor_case("cholesky", 5, 1.0, True, torch.float64)
    torch.library.opcheck(torch.ops.vkdnw_fast.multinomial_factor.default, factor_args(fcase))


# ----------------------------------------------------------------------------------------------
# vmap rule (per-sample gradients of vmapped cotangents)
# ----------------------------------------------------------------------------------------------

class _ProbedConv(torch.autograd.Function):
    """conv2d whose backward also returns sampled_grad as the gradient of a probe input, the way
    the engine reduces (input, grad_output) to sampled coordinates during a backward pass."""

    @staticmethod
    def forward(x, weight, probe, coords, sampled_grad):
        return torch.nn.functional.conv2d(x, weight, padding=1)

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, weight, probe, coords, sampled_grad = inputs
        ctx.save_for_backward(x, weight, coords)
        ctx.sampled_grad = sampled_grad

    @staticmethod
    def backward(ctx, grad_output):
        x, weight, coords = ctx.saved_tensors
        grad_x = torch.nn.grad.conv2d_input(x.shape, weight, grad_output, padding=1)
        return grad_x, None, ctx.sampled_grad(x, grad_output, coords, [1, 1], [1, 1], [1, 1], 1), None, None


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_vmap_rule_with_batched_grads(dtype):
    gen = torch.Generator().manual_seed(8)
    x = torch.randn(3, 4, 6, 5, generator=gen, dtype=dtype, requires_grad=True)
    weight = torch.randn(5, 4, 3, 3, generator=gen, dtype=dtype)
    coords = torch.tensor([[0, 1, 1, 1], [4, 3, 0, 2], [2, -1, 0, 0]])
    probe = torch.zeros(3, 3, dtype=dtype, requires_grad=True)
    cotangents = torch.randn(7, 3, 5, 6, 5, generator=gen, dtype=dtype)  # 7 batched grad_outputs

    def per_sample(op):
        # As the engine's chunked backward does: functorch's vmap over autograd.grad, which
        # dispatches the compiled op to its registered vmap rule.
        y = _ProbedConv.apply(x, weight, probe, coords, op)
        return torch.func.vmap(lambda c: torch.autograd.grad(y, (probe, x), c, retain_graph=True))(cotangents)

    got_probe, got_x = per_sample(torch.ops.vkdnw_fast.sampled_grad)
    assert got_probe.shape == (7, 3, 3)
    expected = torch.stack([twins.sampled_grad(x.detach(), c, coords, [1, 1], [1, 1], [1, 1], 1)
                            for c in cotangents])
    tol = 64 * torch.finfo(dtype).eps * twins.sampled_grad(x.detach().abs(), cotangents.abs().sum(0), coords,
                                                           [1, 1], [1, 1], [1, 1], 1)
    assert bool(((got_probe - expected).abs() <= tol).all())
    twin_probe, twin_x = per_sample(twins.sampled_grad)  # the twin runs under vmap as well
    assert bool(((got_probe - twin_probe).abs() <= tol).all())
    torch.testing.assert_close(got_x, twin_x)


@pytest.mark.parametrize("grad_dim", [0, 2])
def test_vmap_rule_with_k_batched_grad_output(grad_dim):
    """vmap over a K-batched grad_output folds both batch dims into the op's K dimension."""
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(2, 3, 7, generator=gen, dtype=torch.float64)
    g = torch.randn(4, 5, 2, 6, 7, generator=gen, dtype=torch.float64)  # (B, K, N, C_out, L)
    coords = torch.tensor([[5, 2, 1], [0, -1, 0], [3, 0, 2]])
    args = ([1], [1], [1], 1)
    batched = g.movedim(0, grad_dim)
    got = torch.vmap(lambda gb: torch.ops.vkdnw_fast.sampled_grad(x, gb, coords, *args), in_dims=grad_dim)(batched)
    expected = torch.stack([twins.sampled_grad(x, gb, coords, *args) for gb in g])
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(NotImplementedError, match="vmap over input"):
        torch.vmap(lambda xb: torch.ops.vkdnw_fast.sampled_grad(xb, g[0], coords, *args))(x[None].expand(2, -1, -1, -1))


# ----------------------------------------------------------------------------------------------
# multinomial_factor
# ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("smoothing", [False, True])
@pytest.mark.parametrize("logit_scale", [1.0, 30.0, 1e8])
@pytest.mark.parametrize("classes", [2, 3, 10, 100, 1000])
@pytest.mark.parametrize("variant", ["cholesky", "sqrt"])
def test_stable_factor_matches_twin(variant, classes, logit_scale, smoothing, dtype):
    """Finite and equal to the twin for logits up to 1e8 in magnitude and C up to 1000."""
    case = factor_case(variant, classes, logit_scale, smoothing, dtype, seed=classes, identity=classes <= 10)
    assert_factor_close(compiled_factor(case), twins.multinomial_factor(*factor_args(case)), case)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
@pytest.mark.parametrize("classes,logit_scale,smoothing", [
    (2, 1.0, False), (3, 1.0, True), (10, 1.0, False), (10, 2.0, True), (100, 1.0, True), (1000, 1.0, False),
    (10, 1e8, True), (100, 1e8, True)])
def test_paper_factor_matches_twin(classes, logit_scale, smoothing, dtype):
    """The authors' factor (fp16 constants when smoothing) where it is finite: see twins' docstring;
    with plain probabilities and peaked logits q = 1 - cumsum(p) reaches 0 early and it is NaN."""
    case = factor_case("paper", classes, logit_scale, smoothing, dtype, seed=classes, identity=classes == 10)
    assert_factor_close(compiled_factor(case), twins.multinomial_factor(*factor_args(case)), case)


@pytest.mark.parametrize("variant", ["cholesky", "sqrt"])
def test_factor_reproduces_sigma(variant):
    """M^T M = Sigma = diag(p) - p p^T to 1e-12 with the expanded identity as the basis."""
    for classes, scale in ((2, 1.0), (7, 5.0), (50, 3.0), (20, 1e8)):
        case = factor_case(variant, classes, scale, True, torch.float64, seed=classes, identity=True)
        m = compiled_factor(case)
        p = case["prob_scale"] * torch.softmax(case["logits"], -1) + case["prob_offset"]
        sigma = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]
        torch.testing.assert_close(m.transpose(1, 2) @ m, sigma, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES, ids=DTYPE_IDS)
def test_factor_output_is_always_written(dtype):
    """Odd shapes (P not a multiple of the CPU's 16-column blocks) into NaN-poisoned memory."""
    for variant, classes, cols in (("cholesky", 2, 501), ("sqrt", 5, 67), ("cholesky", 9, 35), ("paper", 4, 93)):
        case = factor_case(variant, classes, 1.0, True, dtype, seed=cols, n=7, cols=cols)
        expected = twins.multinomial_factor(*factor_args(case))
        for _ in range(3):
            poison_allocator("cpu", expected.numel(), dtype)
            assert_factor_close(compiled_factor(case), expected, case)
    empty = factor_case("sqrt", 4, 1.0, False, dtype, cols=0)
    assert compiled_factor(empty).shape == (4, 4, 0)


def test_factor_meta_shapes():
    case = factor_case("cholesky", 6, 1.0, False, torch.float32, cols=5)
    out = torch.ops.vkdnw_fast.multinomial_factor(case["logits"].to("meta"), case["basis"].to("meta"),
                                                  "cholesky", 1.0, 0.0)
    assert out.device.type == "meta" and out.shape == (4, 5, 5)


def _valid_factor_args():
    return dict(logits=torch.randn(3, 5), basis=torch.randn(3, 5, 2), variant="cholesky", prob_scale=1.0,
                prob_offset=0.0)


@pytest.mark.parametrize("change,message", [
    (dict(variant="cholesky2"), r"unknown multinomial factor variant 'cholesky2'"),
    (dict(logits=torch.randn(3, 5, 1)), r"logits must be \(N, C\) and basis \(N, C, P\)"),
    (dict(basis=torch.randn(3, 4, 2)), r"logits must be \(N, C\) and basis \(N, C, P\)"),
    (dict(basis=torch.randn(2, 5, 2)), r"logits must be \(N, C\) and basis \(N, C, P\)"),
    (dict(logits=torch.randn(3, 1), basis=torch.randn(3, 1, 2)), r"needs at least 2 classes, got C=1"),
    (dict(basis=torch.randn(3, 5, 2, dtype=torch.float64)), r"must both be float32 or float64"),
    (dict(logits=torch.randn(3, 5).half(), basis=torch.randn(3, 5, 2).half()),
     r"multinomial_factor: .*must both be float32 or float64, got Half and Half"),
    (dict(prob_scale=0.0), r"need prob_scale > 0 and prob_offset >= 0"),
    (dict(prob_offset=-0.1), r"need prob_scale > 0 and prob_offset >= 0"),
    (dict(prob_scale=0.9), r"variant 'cholesky' needs probabilities summing to 1, these sum to 0.9"),
    (dict(variant="sqrt", prob_scale=0.95, prob_offset=0.02), r"variant 'sqrt' needs probabilities summing to 1"),
])
def test_factor_argument_errors(change, message):
    args = {**_valid_factor_args(), **change}
    order = ("logits", "basis", "variant", "prob_scale", "prob_offset")
    with pytest.raises(ValueError, match=message):
        torch.ops.vkdnw_fast.multinomial_factor(*(args[k] for k in order))
    with pytest.raises(ValueError):  # the twin refuses the same arguments
        twins.multinomial_factor(*(args[k] for k in order))


def test_paper_accepts_probabilities_not_summing_to_one():
    case = factor_case("paper", 10, 1.0, True, torch.float64)
    assert not math.isclose(case["prob_scale"] + 10 * case["prob_offset"], 1.0, abs_tol=1e-9)
    assert_factor_close(compiled_factor(case), twins.multinomial_factor(*factor_args(case)), case)


# ----------------------------------------------------------------------------------------------
# binary_gram
# ----------------------------------------------------------------------------------------------

def brute_force_gram(codes: torch.Tensor) -> torch.Tensor:
    c = codes.numpy().astype(np.int64)
    return torch.from_numpy((c[:, None, :] & c[None, :, :]).sum(-1))


@pytest.mark.parametrize("layout", ("contiguous", "transposed", "gapped"))
@pytest.mark.parametrize("rows,units,density", [(1, 1, 0.5), (2, 63, 0.5), (3, 64, 0.5), (5, 65, 0.9),
                                                (7, 1000, 0.1), (16, 64 * 256 + 5, 0.5), (33, 64 * 300, 0.3)])
def test_binary_gram_matches_twin_and_brute_force(rows, units, density, layout):
    """Row and word boundaries, more words than one cache block (256), any strides."""
    codes = torch.rand(rows, units, generator=torch.Generator().manual_seed(rows * units)) < density
    expected = brute_force_gram(codes)
    got = torch.ops.vkdnw_fast.binary_gram(with_layout(codes, layout))
    assert got.dtype == torch.int64 and torch.equal(got, expected)
    assert torch.equal(twins.binary_gram(with_layout(codes, layout)), expected)


def test_binary_gram_of_no_rows_or_no_units_is_zero():
    assert torch.ops.vkdnw_fast.binary_gram(torch.zeros(0, 5, dtype=torch.bool)).shape == (0, 0)
    assert torch.equal(torch.ops.vkdnw_fast.binary_gram(torch.ones(3, 0, dtype=torch.bool)),
                       torch.zeros(3, 3, dtype=torch.int64))


@pytest.mark.parametrize("codes", [torch.rand(3, 4), torch.zeros(3, 4, 2, dtype=torch.bool),
                                   torch.zeros(3, dtype=torch.bool)], ids=["float", "3-d", "1-d"])
def test_binary_gram_argument_errors(codes):
    for op in (torch.ops.vkdnw_fast.binary_gram, twins.binary_gram):
        with pytest.raises(ValueError, match=r"binary_gram: codes must be a 2-d bool tensor \(N, U\), got"):
            op(codes)


def test_binary_gram_meta_shape_and_opcheck():
    codes = torch.rand(6, 130, generator=torch.Generator().manual_seed(3)) < 0.5
    meta = torch.ops.vkdnw_fast.binary_gram(codes.to("meta"))
    assert meta.device.type == "meta" and meta.shape == (6, 6) and meta.dtype == torch.int64
    torch.library.opcheck(torch.ops.vkdnw_fast.binary_gram.default, (codes,))

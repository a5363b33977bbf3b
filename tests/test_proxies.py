"""The zero-cost proxies against independent computations.

The oracles re-implement the small test network functionally (F.conv2d, F.batch_norm with batch
statistics, ...) and compute each definition directly: Hamming distances for NASWOT,
torch.func.jacrev for Jacov, numpy eigen/singular value decompositions for AZ-NAS,
torch.func.grad/hessian for the loss-based proxies, closed forms for SynFlow, hand counts for
FLOPs and parameters.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from vkdnw_fast import ops
from vkdnw_fast.ops import twins
from vkdnw_fast.proxies import (ProxyError, available_proxies, build_context, compute_on, compute_proxies,
                                get_proxy, register_proxy)
from vkdnw_fast.proxies import forward as forward_module
from vkdnw_fast.proxies import naswot as naswot_module
from vkdnw_fast.proxies import registry

WIDTH, CLASSES, RES, BATCH = 4, 5, 8, 16
SHAPE = (3, RES, RES)
ALL_MINE = ["naswot", "naswot_128", "jacov", "expressivity", "progressivity", "trainability",
            "synflow", "grad_norm", "snip", "grasp", "flops", "params", "plain", "fisher", "l2_norm", "epe_nas",
            "zen", "swap", "swap_reg", "meco", "meco_opt", "zico", "te_nas_ntk", "te_nas_lr"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These networks are tiny: thread start-up and contention would dominate the run time.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


class TinyNet(nn.Module):
    """stem conv-BN | ReLU-conv-BN | ReLU-conv(stride 2)-BN | ReLU-pool-linear."""

    def __init__(self, w=WIDTH):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, padding=1, bias=False), nn.BatchNorm2d(w))
        self.block1 = nn.Sequential(nn.ReLU(), nn.Conv2d(w, w, 3, padding=1, bias=False), nn.BatchNorm2d(w))
        self.block2 = nn.Sequential(nn.ReLU(), nn.Conv2d(w, 2 * w, 3, stride=2, padding=1, bias=False),
                                    nn.BatchNorm2d(2 * w))
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * w, CLASSES))

    def forward(self, x):
        return self.head(self.block2(self.block1(self.stem(x))))

    def feature_blocks(self):
        return [self.stem, self.block1, self.block2]


def functional_blocks(p, bn=True):
    """TinyNet's three blocks as functions of the previous feature map (BN with batch stats)."""
    def norm(h, name):
        return F.batch_norm(h, None, None, p[name + ".weight"], p[name + ".bias"], training=True) if bn else h
    return [
        lambda x: norm(F.conv2d(x, p["stem.0.weight"], padding=1), "stem.1"),
        lambda h: norm(F.conv2d(F.relu(h), p["block1.1.weight"], padding=1), "block1.2"),
        lambda h: norm(F.conv2d(F.relu(h), p["block2.1.weight"], stride=2, padding=1), "block2.2"),
    ]


def functional_forward(p, x, bn=True):
    """(feature maps, logits) of TinyNet with parameters ``p``."""
    maps = []
    for block in functional_blocks(p, bn):
        x = block(x)
        maps.append(x)
    logits = F.linear(F.relu(x).mean((2, 3)), p["head.3.weight"], p["head.3.bias"])
    return maps, logits


def params_of(ctx):
    return {k: v.detach().clone() for k, v in ctx.model.named_parameters()}


@pytest.fixture(scope="module")
def ctx():
    return build_context(TinyNet(), input_shape=SHAPE, batch_size=BATCH, seed=3)


def value(ctx, name):
    return compute_on(ctx, [name])[name]


def labels_of(ctx):
    # The documented label draw of the loss-based proxies.
    return torch.randint(0, CLASSES, (BATCH,), generator=ctx.generator())


# ----------------------------------------------------------------------------- NASWOT

def naswot_oracle(p, x):
    maps, _ = functional_forward(p, x)  # TinyNet's ReLU inputs are exactly its feature maps
    codes = torch.cat([(m > 0).flatten(1) for m in maps], 1).numpy()
    hamming = (codes[:, None, :] != codes[None, :, :]).sum(-1)
    return np.linalg.slogdet(codes.shape[1] - hamming)[1]


def test_naswot_matches_hamming_count(ctx):
    assert value(ctx, "naswot") == pytest.approx(naswot_oracle(params_of(ctx), ctx.inputs), rel=1e-12)


def test_naswot_128_uses_a_batch_of_128_from_the_same_stream(ctx):
    batch = ctx.gaussian_inputs(128)
    assert batch.shape == (128, *SHAPE)
    assert torch.equal(ctx.gaussian_inputs(BATCH), ctx.inputs)  # same seed, same draws
    assert value(ctx, "naswot_128") == pytest.approx(naswot_oracle(params_of(ctx), batch), rel=1e-12)


@pytest.mark.parametrize("backend", ["compiled", "twin in blocks"])
def test_hamming_kernel_equals_the_hamming_count(backend, monkeypatch):
    if backend == "twin in blocks":
        monkeypatch.setattr(ops, "_has_kernel", lambda op, device: False)
        monkeypatch.setattr(twins, "_GRAM_BLOCK", 7)  # 40 units: float32 blocks of 7, the last one short
    elif not ops.extension_loaded():
        pytest.skip("vkdnw_fast._C is not built")
    codes = torch.rand(5, 40, generator=torch.Generator().manual_seed(0)) > 0.3
    kernel = forward_module.HammingKernel(5, torch.device("cpu"))
    kernel.update(codes)
    kernel.update(codes[:, :9])  # a second ReLU adds its own count
    c, d = codes.numpy(), codes[:, :9].numpy()
    hamming = (c[:, None] != c[None]).sum(-1) + (d[:, None] != d[None]).sum(-1)
    assert torch.equal(kernel.kernel, torch.as_tensor(49 - hamming, dtype=torch.float64))


def test_sign_codes_read_a_channels_last_map_in_place_with_the_same_gram():
    x = torch.randn(6, 5, 4, 3, generator=torch.Generator().manual_seed(0))
    nchw = forward_module._sign_codes(x, 6)
    assert torch.equal(nchw, (x > 0).flatten(1))  # contiguous maps keep NCHW order
    last = x.contiguous(memory_format=torch.channels_last)
    codes = forward_module._sign_codes(last, 6)
    assert torch.equal(codes, (x > 0).permute(0, 2, 3, 1).flatten(1))  # read as (N, H, W, C) ...
    assert codes.is_contiguous()  # ... without a copy: a view of the (N, H, W, C)-ordered bools
    gram = lambda c: c.double() @ c.double().T  # noqa: E731
    assert torch.equal(gram(codes), gram(nchw))


def test_check_finite_finds_nan_and_infinity_but_not_an_overflowing_sum():
    big = torch.full((4,), 3e38)  # finite values whose float32 sum is +inf
    assert forward_module.check_finite(big, "x") is big
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="the ReLU input has non-finite values"):
            forward_module.check_finite(torch.tensor([1.0, bad, -1.0]), "the ReLU input")
    with pytest.raises(ValueError, match="non-finite"):
        forward_module.check_finite(torch.tensor([float("inf"), -float("inf")]), "x")  # a NaN sum


def test_naswot_is_minus_inf_for_a_singular_kernel():
    # One ReLU unit: K_H has rank <= 2, so a batch of 16 gives a singular kernel.
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 1), nn.ReLU(), nn.Linear(1, 2))
    assert compute_proxies(model, "naswot", input_shape=(4,), batch_size=16)["naswot"] == -math.inf


def test_naswot_needs_relu_modules():
    class FunctionalRelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3)

        def forward(self, x):
            return self.fc(F.relu(x))

    with pytest.raises(ProxyError, match="naswot.*FunctionalRelu has no nn.ReLU modules"):
        compute_proxies(FunctionalRelu(), "naswot", input_shape=(4,), batch_size=8)
    # The shared forward keeps that error for the proxies reading ReLU codes; the others run.
    c = build_context(FunctionalRelu(), input_shape=(4,), batch_size=8)
    assert math.isfinite(value(c, "jacov"))
    with pytest.raises(ProxyError, match="naswot"):
        value(c, "naswot")


def test_a_failing_proxy_can_be_collected_while_the_others_go_on():
    # Reduced to one position before a BatchNorm: MeCo's one training-mode sample is undefined there, and
    # the proxies run after it must give what they give without it.
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                          nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 10))
    others = ["naswot", "jacov", "synflow", "zen", "swap", "vkdnw"]
    asked = ["meco", *others[:3], "meco_opt", *others[3:]]
    failures: dict = {}
    values = compute_proxies(model, asked, input_shape=(3, 8, 8), batch_size=16, failures=failures)
    assert list(values) == others and sorted(failures) == ["meco", "meco_opt"]
    assert all(f"proxy {name!r} failed on a Sequential: ValueError: MeCo runs one sample in training mode"
               in failures[name] for name in failures)
    assert values == compute_proxies(model, others, input_shape=(3, 8, 8), batch_size=16)
    with pytest.raises(ProxyError, match="proxy 'meco' failed"):  # without a dict to collect them, it raises
        compute_proxies(model, asked, input_shape=(3, 8, 8), batch_size=16)


def test_a_failed_proxy_leaves_no_network_in_reference_cycles():
    """Zen-NAS fails on a network without global average pooling while SWAP reads the same shared forward and
    Jacov the training one; what they used must be freed when the call returns, not left in cycles for the
    cyclic collector (a TransNAS worker held 18.5 GiB so: the recorded error's traceback held the context)."""
    import gc

    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 5))
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()  # what the collector would free later stays found below
    gc.set_debug(gc.DEBUG_SAVEALL)  # the collected objects are kept in gc.garbage to be looked at
    try:
        failures: dict = {}
        values = compute_proxies(model, ["zen", "swap", "jacov"], input_shape=(3, 8, 8), batch_size=16,
                                 failures=failures)
        assert sorted(values) == ["jacov", "swap"] and list(failures) == ["zen"]
        del values, failures
        gc.collect()
        cycled = [o for o in gc.garbage if isinstance(o, (nn.Module, torch.Tensor))]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        if enabled:
            gc.enable()
    assert cycled == []


# ----------------------------------------------------------------------------- Jacov

def jacov_formula(g):
    v = np.linalg.eigvalsh(np.corrcoef(g))
    return -np.sum(np.log(v + 1e-5) + 1 / (v + 1e-5))


def test_jacov_matches_jacrev_in_training_mode(ctx):
    p = params_of(ctx)
    jac = torch.func.jacrev(lambda x: functional_forward(p, x)[1])(ctx.inputs)  # (B, C, B, 3, R, R)
    g = jac.sum((0, 1)).reshape(BATCH, -1).double().numpy()
    assert value(ctx, "jacov") == pytest.approx(jacov_formula(g), rel=1e-6)


def test_jacov_is_per_sample_input_gradient_without_batchnorm():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 3))
    c = build_context(model, input_shape=(12,), batch_size=8, seed=1)
    p = {k: v.detach() for k, v in c.model.named_parameters()}

    def sample_logit_sum(x):
        return torch.func.functional_call(c.model, p, (x[None],)).sum()

    g = torch.func.vmap(torch.func.jacrev(sample_logit_sum))(c.inputs).double().numpy()
    assert value(c, "jacov") == pytest.approx(jacov_formula(g), rel=1e-9)


# ----------------------------------------------------------------------------- AZ-NAS

def entropy_oracle(m):
    f = m.detach().permute(0, 2, 3, 1).reshape(-1, m.shape[1]).double().numpy()
    s = np.linalg.eigvalsh(np.cov(f, rowvar=False, bias=True))
    q = s / s.sum()
    return -np.sum(q * np.log(q + 1e-8))


def test_expressivity_and_progressivity_match_numpy(ctx):
    maps, _ = functional_forward(params_of(ctx), ctx.inputs)
    e = [entropy_oracle(m) for m in maps]
    assert value(ctx, "expressivity") == pytest.approx(sum(e), rel=1e-10)
    assert value(ctx, "progressivity") == pytest.approx(min(e[1] - e[0], e[2] - e[1]), rel=1e-8)


def rademacher(shape, generator):
    """The documented draw of AZ-NAS's output cotangents."""
    return (torch.randint(0, 2, shape, generator=generator) * 2 - 1).float()


def rows(g, stride=1):
    """(B, C, H, W) -> (B*H'*W', C*stride^2), pixel-unshuffled by ``stride``; the channel order
    produced is irrelevant to the singular values of g_in^T g_out."""
    b, c, h, w = g.shape
    g = g.double().numpy().reshape(b, c, h // stride, stride, w // stride, stride).transpose(0, 2, 4, 1, 3, 5)
    return g.reshape(b * (h // stride) * (w // stride), c * stride * stride)


def block_score(g_in, g_out, stride=1):
    gi, go = rows(g_in, stride), rows(g_out)
    s = np.linalg.svd(gi.T @ go / go.shape[0], compute_uv=False).max()
    return -s - 1 / (s + 1e-6) + 2


def test_trainability_matches_vjp_and_svd(ctx):
    blocks = functional_blocks(params_of(ctx))
    maps, _ = functional_forward(params_of(ctx), ctx.inputs)
    generator = ctx.generator()
    scores = []
    for i, stride in ((2, 2), (1, 1)):  # drawn from the last block to the first
        g_out = rademacher(maps[i].shape, generator)
        _, vjp = torch.func.vjp(blocks[i], maps[i - 1])
        scores.append(block_score(vjp(g_out)[0], g_out, stride))
    assert value(ctx, "trainability") == pytest.approx(np.mean(scores), rel=1e-6)


class WithBlocks(TinyNet):
    """TinyNet whose feature blocks are [stem, extra, block1]; ``extra`` runs after the stem."""

    def __init__(self, extra):
        super().__init__()
        self.extra = extra

    def forward(self, x):
        return self.head(self.block2(self.block1(self.extra(self.stem(x)))))

    def feature_blocks(self):
        return [self.stem, self.extra, self.block1]


class Times(nn.Module):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_trainability_is_minus_inf_for_an_identity_block():
    r = compute_proxies(WithBlocks(nn.Identity()), ["trainability", "expressivity"], input_shape=SHAPE,
                        batch_size=BATCH)
    assert r["trainability"] == -math.inf and math.isfinite(r["expressivity"])


class Zeros(nn.Module):
    """Output not connected to the input in the autograd graph at all."""

    def forward(self, x):
        return torch.zeros_like(x)


@pytest.mark.parametrize("extra, factor", [(Times(2.0), 2.0), (Times(0.0), 0.0), (Zeros(), 0.0)])
def test_trainability_of_a_scaling_block(extra, factor):
    # g_in = a g_out, so g_in^T g_out / n = a G^T G / n (PSD): s = a * its largest eigenvalue;
    # a = 0 (also a block whose output ignores its input) gives s = 0, score -1/(0 + 1e-6) + 2.
    c = build_context(WithBlocks(extra), input_shape=SHAPE, batch_size=BATCH)
    blocks = functional_blocks(params_of(c))
    f1 = factor * blocks[0](c.inputs)
    generator = c.generator()
    g2 = rademacher(f1.shape, generator)  # block1's output, drawn first
    g1 = rows(rademacher(f1.shape, generator))
    _, vjp = torch.func.vjp(blocks[1], f1)
    s = factor * np.linalg.eigvalsh(g1.T @ g1 / g1.shape[0]).max()
    expected = (block_score(vjp(g2)[0], g2) + (-s - 1 / (s + 1e-6) + 2)) / 2
    assert value(c, "trainability") == pytest.approx(expected, rel=1e-9)


def test_expressivity_of_a_zero_feature_map_is_minus_inf():
    # Zero covariance: 0/0 in the normalised eigenvalues, NaN, reported as -inf as the authors do.
    r = compute_proxies(WithBlocks(Times(0.0)), ["expressivity", "progressivity"], input_shape=SHAPE,
                        batch_size=BATCH)
    assert r == {"expressivity": -math.inf, "progressivity": -math.inf}


def test_aznas_needs_feature_blocks():
    model = nn.Sequential(nn.Flatten(), nn.ReLU(), nn.Linear(3 * RES * RES, 2))
    with pytest.raises(ProxyError, match=r"'expressivity' failed on arch 'a-b'.*Sequential must define "
                                         r"feature_blocks\(\)"):
        compute_proxies(model, ["expressivity"], input_shape=SHAPE, batch_size=4, arch="a-b")


def test_aznas_rejects_blocks_out_of_order():
    class Swapped(TinyNet):
        def feature_blocks(self):
            return [self.block1, self.stem, self.block2]

    with pytest.raises(ProxyError, match="forward order"):
        compute_proxies(Swapped(), "trainability", input_shape=SHAPE, batch_size=4)


# ----------------------------------------------------------------------------- SynFlow, GradNorm, SNIP, GraSP

def test_synflow_two_layer_linear_net_closed_form():
    # Weights |W|, all-ones input: R = 1^T |W2| |W1| 1, and each layer's sum of
    # |theta * dR/dtheta| equals R (synaptic flow is conserved), so synflow = 2 R.
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    c = build_context(model, input_shape=(6,), batch_size=4, seed=7)
    w1, w2 = (c.model[i].weight.detach().double().abs() for i in (0, 2))
    assert value(c, "synflow") == pytest.approx(2 * float(w2.sum(0) @ w1.sum(1)), rel=1e-12)


def test_synflow_bypasses_batchnorm(ctx):
    # TinyNet without BN is positively homogeneous with 4 layers: synflow = 4 R.
    p = {k: v.double().abs() for k, v in params_of(ctx).items()}
    _, logits = functional_forward(p, torch.ones(1, *SHAPE, dtype=torch.float64), bn=False)
    assert value(ctx, "synflow") == pytest.approx(4 * float(logits.sum()), rel=1e-12)


def loss_fn(ctx):
    labels = labels_of(ctx)
    return lambda p: F.cross_entropy(functional_forward(p, ctx.inputs)[1], labels)


LAYER_WEIGHTS = ["stem.0.weight", "block1.1.weight", "block2.1.weight", "head.3.weight"]


def test_grad_norm_matches_func_grad(ctx):
    grads = torch.func.grad(loss_fn(ctx))(params_of(ctx))
    expected = math.sqrt(sum(float(g.double().square().sum()) for g in grads.values()))
    assert value(ctx, "grad_norm") == pytest.approx(expected, rel=1e-6)


def test_snip_matches_func_grad(ctx):
    p = params_of(ctx)
    grads = torch.func.grad(loss_fn(ctx))(p)
    expected = sum(float((p[k] * grads[k]).abs().sum()) for k in LAYER_WEIGHTS)
    assert value(ctx, "snip") == pytest.approx(expected, rel=1e-6)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated")  # torch.func.hessian internals
def test_grasp_matches_full_hessian(ctx):
    p = params_of(ctx)
    sizes = [p[k].numel() for k in LAYER_WEIGHTS]
    loss = loss_fn(ctx)

    def flat_loss(v):
        q = dict(p)
        q.update({k: t.reshape(p[k].shape) for k, t in zip(LAYER_WEIGHTS, v.split(sizes))})
        return loss(q)

    theta = torch.cat([p[k].flatten() for k in LAYER_WEIGHTS]).double()
    f64 = lambda v: flat_loss(v.float()).double()  # noqa: E731
    hessian = torch.func.hessian(flat_loss)(theta.float()).double()
    g = torch.func.grad(f64)(theta)
    assert value(ctx, "grasp") == pytest.approx(float(-(theta * (hessian @ g)).sum()), rel=1e-5)


# ----------------------------------------------------------------------------- size

def test_flops_and_params_hand_counts(ctx):
    # 8x8 outputs of 3->4 and 4->4 3x3 convs, 4x4 outputs of a 4->8 conv, an 8->5 linear layer.
    assert value(ctx, "flops") == 64 * 4 * 3 * 9 + 64 * 4 * 4 * 9 + 16 * 8 * 4 * 9 + 8 * 5
    assert value(ctx, "params") == 3 * 4 * 9 + 8 + 4 * 4 * 9 + 8 + 4 * 8 * 9 + 16 + 8 * 5 + 5


def test_flops_counts_groups_1d_3d_and_linear_on_extra_dims():
    class Mixed(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1d = nn.Conv1d(2, 4, 3, groups=2)           # (2, 6) -> (4, 4): 16 * 1 * 3 = 48
            self.conv3d = nn.Conv3d(1, 2, (1, 2, 2))             # (1, 1, 2, 6) -> (2, 1, 1, 5): 10 * 4 = 40
            self.fc = nn.Linear(4, 3)                            # (4, 4) -> (4, 3): 12 * 4 = 48
            self.conv2d = nn.Conv2d(4, 6, 3, groups=2, stride=2)  # (4, 5, 5) -> (6, 2, 2): 24 * 2 * 9 = 432

        def forward(self, x):
            y = self.fc(self.conv1d(x))
            z = self.conv3d(x[:, None, None]).flatten(1)
            w = self.conv2d(torch.ones(x.shape[0], 4, 5, 5))
            return torch.cat([y.flatten(1), z, w.flatten(1)], 1)

    assert compute_proxies(Mixed(), "flops", input_shape=(2, 6), batch_size=4)["flops"] == 48 + 40 + 48 + 432


# ----------------------------------------------------------------------------- compute_proxies

def test_compute_proxies_agrees_with_the_context_it_builds():
    r = compute_proxies(TinyNet(), ALL_MINE, input_shape=SHAPE, batch_size=BATCH, seed=3)
    assert r == compute_on(build_context(TinyNet(), input_shape=SHAPE, batch_size=BATCH, seed=3), ALL_MINE)
    assert list(r) == ALL_MINE


def test_compute_proxies_leaves_model_and_global_rng_alone():
    model = TinyNet().train()
    model.block1[1].weight.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    compute_proxies(model, ALL_MINE, input_shape=SHAPE, batch_size=BATCH)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert model.training and not model.block1[1].weight.requires_grad
    assert all(p.grad is None for p in model.parameters())


def test_proxies_leave_the_shared_context_model_alone():
    c = build_context(TinyNet().eval(), input_shape=SHAPE, batch_size=BATCH)
    before = {k: v.clone() for k, v in c.model.state_dict().items()}
    compute_on(c, ALL_MINE)
    assert not any(m.training for m in c.model.modules())
    assert all(torch.equal(before[k], v) for k, v in c.model.state_dict().items())


def test_seed_determines_everything_that_is_random():
    r0 = compute_proxies(TinyNet(), ALL_MINE, input_shape=SHAPE, batch_size=BATCH, seed=0)
    again = compute_proxies(TinyNet(), ALL_MINE, input_shape=SHAPE, batch_size=BATCH, seed=0)
    r1 = compute_proxies(TinyNet(), ALL_MINE, input_shape=SHAPE, batch_size=BATCH, seed=1)
    assert r0 == again
    # Counts may coincide: 16 distinct activation patterns of 16 samples (te_nas_lr), about 630 of the
    # 640 ReLU units' patterns distinct (swap).
    assert {"flops", "params"} <= {k for k in ALL_MINE if r0[k] == r1[k]} <= {"flops", "params", "te_nas_lr",
                                                                          "swap", "swap_reg"}


def test_init_none_keeps_the_weights_and_inputs_can_be_given():
    model = TinyNet()
    with torch.no_grad():
        for p in model.parameters():
            p.uniform_(-1, 1, generator=torch.Generator().manual_seed(5))
    x = torch.randn(BATCH, *SHAPE, generator=torch.Generator().manual_seed(6))
    c = build_context(model, inputs=x, init=None)
    assert torch.equal(c.inputs, x) and c.num_classes == CLASSES
    assert all(torch.equal(a, b) for a, b in zip(c.model.parameters(), model.parameters()))
    assert compute_proxies(model, "naswot", inputs=x, init=None)["naswot"] == pytest.approx(
        naswot_oracle({k: v.detach() for k, v in model.named_parameters()}, x), rel=1e-12)


def test_default_batch_is_64_gaussian_samples():
    c = build_context(TinyNet(), input_shape=SHAPE)
    assert c.inputs.shape == (64, *SHAPE)
    assert abs(float(c.inputs.mean())) < 0.05 and float(c.inputs.std()) == pytest.approx(1, abs=0.05)


# ----------------------------------------------------------------------------- registry and errors

def test_registry_lists_and_rejects_unknown_names():
    assert set(ALL_MINE) <= set(available_proxies())
    assert get_proxy("naswot") is naswot_module.naswot
    with pytest.raises(ValueError, match=r"unknown proxy 'nope'; known proxies are \[.*'naswot'"):
        compute_proxies(TinyNet(), ["naswot", "nope"], input_shape=SHAPE)
    with pytest.raises(ValueError, match="unknown proxy"):
        get_proxy("nope")


def test_registering_a_second_function_under_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):
        register_proxy("naswot")(lambda ctx: 0.0)


def test_nonfinite_values_are_rejected_unless_the_definition_allows_minus_inf(monkeypatch):
    monkeypatch.setitem(registry._REGISTRY, "inf", registry._Entry(lambda ctx: math.inf, True))
    monkeypatch.setitem(registry._REGISTRY, "ninf", registry._Entry(lambda ctx: -math.inf, False))
    monkeypatch.setitem(registry._REGISTRY, "ninf_ok", registry._Entry(lambda ctx: -math.inf, True))
    for name in ("inf", "ninf"):
        with pytest.raises(ProxyError, match=f"'{name}' failed on a TinyNet: returned"):
            compute_proxies(TinyNet(), name, input_shape=SHAPE, batch_size=4)
    assert compute_proxies(TinyNet(), "ninf_ok", input_shape=SHAPE, batch_size=4) == {"ninf_ok": -math.inf}


def test_input_shape_is_required_without_inputs_or_space():
    with pytest.raises(ValueError, match="input_shape"):
        compute_proxies(TinyNet(), "params")

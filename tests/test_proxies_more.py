"""The proxies added for NAS-Bench-Suite-Zero and the later papers (plain, Fisher, l2_norm, EPE-NAS,
Zen-NAS, ZiCo, MeCo, SWAP, TE-NAS), the forwards they share, and their failure modes, against
independent computations on the small network of test_proxies: functional re-implementations
(F.conv2d, F.batch_norm with batch statistics), torch.func for gradients and Jacobians, numpy for
correlations, eigenvalues and distinct patterns.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from test_proxies import (BATCH, CLASSES, LAYER_WEIGHTS, SHAPE, WIDTH, Times, TinyNet, WithBlocks, ctx,  # noqa: F401
                          functional_forward, labels_of, loss_fn, one_thread, params_of, value)
import vkdnw_fast as vf
from vkdnw_fast import metrics
from vkdnw_fast.proxies import ProxyError, available_proxies, build_context, compute_on, compute_proxies
from vkdnw_fast.proxies import forward as shared
from vkdnw_fast.proxies import swap as swap_module
from vkdnw_fast.proxies.tenas import TE_NAS_TERMS

FAN_IN = {"stem.0.weight": 3 * 9, "block1.1.weight": WIDTH * 9, "block2.1.weight": WIDTH * 9,
          "head.3.weight": 2 * WIDTH}


def bn(h, p, name):
    return F.batch_norm(h, None, None, p[name + ".weight"], p[name + ".bias"], training=True)


def layer_outputs(p, x, deltas):
    """TinyNet's four layer outputs (each plus its ``delta``, so dL/d(delta) = dL/d(output))."""
    a0 = F.conv2d(x, p["stem.0.weight"], padding=1) + deltas[0]
    a1 = F.conv2d(F.relu(bn(a0, p, "stem.1")), p["block1.1.weight"], padding=1) + deltas[1]
    a2 = F.conv2d(F.relu(bn(a1, p, "block1.2")), p["block2.1.weight"], stride=2, padding=1) + deltas[2]
    a3 = F.linear(F.relu(bn(a2, p, "block2.2")).mean((2, 3)), p["head.3.weight"], p["head.3.bias"]) + deltas[3]
    return [a0, a1, a2, a3]


# ----------------------------------------------------------------------------- plain, Fisher, l2_norm

def test_plain_matches_func_grad(ctx):
    p = params_of(ctx)
    grads = torch.func.grad(loss_fn(ctx))(p)
    assert value(ctx, "plain") == pytest.approx(sum(float((p[k] * grads[k]).sum()) for k in LAYER_WEIGHTS),
                                                rel=1e-5)


def test_fisher_is_the_channel_saliency_weighted_by_fan_in(ctx):
    p, labels = params_of(ctx), labels_of(ctx)
    zeros = [torch.zeros_like(a) for a in layer_outputs(p, ctx.inputs, [0, 0, 0, 0])]
    acts = layer_outputs(p, ctx.inputs, zeros)
    grads = torch.func.grad(lambda d: F.cross_entropy(layer_outputs(p, ctx.inputs, d)[3], labels))(zeros)
    expected = 0.0
    for name, a, g in zip(FAN_IN, acts, grads):
        per_channel = (a * g).sum((2, 3)) if a.dim() == 4 else a * g
        expected += FAN_IN[name] * float(0.5 * per_channel.double().square().mean(0).sum())
    assert value(ctx, "fisher") == pytest.approx(expected, rel=1e-5)


def test_l2_norm_sums_the_layer_weight_norms(ctx):
    p = params_of(ctx)
    assert value(ctx, "l2_norm") == pytest.approx(sum(np.linalg.norm(p[k].numpy()) for k in LAYER_WEIGHTS),
                                                  rel=1e-6)


# ----------------------------------------------------------------------------- EPE-NAS

def naslib_epe(jacobians, labels, n_classes):
    """NAS-Bench-Suite-Zero's eval_score_perclass, written out (dict of stacked rows, try/except)."""
    per_class = {}
    for i, label in enumerate(labels):
        per_class[label] = np.vstack((per_class[label], jacobians[i])) if label in per_class else jacobians[i]
    scores = {}
    for c, rows in per_class.items():
        try:
            corrs = np.array(np.corrcoef(rows))
            s = np.sum(np.log(abs(corrs) + 1e-5))
            if n_classes > 100:
                s /= len(corrs)
        except TypeError:  # len() of the scalar corrcoef of a one-sample class
            continue
        scores[c] = s
    if n_classes <= 100:
        return sum(abs(s) for s in scores.values())
    return sum(abs(a - b) for a in scores.values() for b in scores.values()) / len(scores)


def input_jacobian_rows(fn, x):
    return torch.func.jacrev(lambda v: fn(v).sum())(x).reshape(x.shape[0], -1).double().numpy()


def test_epe_nas_matches_the_naslib_formula_with_few_classes(ctx):
    p = params_of(ctx)
    g = input_jacobian_rows(lambda x: functional_forward(p, x)[1], ctx.inputs)
    labels = labels_of(ctx).numpy()
    assert len(set(labels)) < BATCH  # some class has several samples
    assert value(ctx, "epe_nas") == pytest.approx(naslib_epe(g, labels, CLASSES), rel=1e-6)


def test_epe_nas_normalises_and_compares_classes_above_100():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 10), nn.ReLU(), nn.Linear(10, 120))
    c = build_context(model, input_shape=(12,), batch_size=40, seed=2)
    p = {k: v.detach() for k, v in c.model.named_parameters()}
    g = input_jacobian_rows(lambda x: torch.func.functional_call(c.model, p, (x,)), c.inputs)
    labels = torch.randint(0, 120, (40,), generator=c.generator()).numpy()
    counts = np.bincount(labels)
    assert (counts >= 2).sum() >= 2 and (counts == 1).any()  # both kinds of class occur
    assert value(c, "epe_nas") == pytest.approx(naslib_epe(g, labels, 120), rel=1e-9)


def test_jacov_and_epe_nas_are_minus_inf_when_the_output_ignores_the_input():
    r = compute_proxies(WithBlocks(Times(0.0)), ["jacov", "epe_nas"], input_shape=SHAPE, batch_size=BATCH)
    assert r == {"jacov": -math.inf, "epe_nas": -math.inf}


# ----------------------------------------------------------------------------- Zen-NAS and SWAP

def gaussian_params(c):
    """The N(0, 1) re-initialisation Zen and SWAP score (its statistics are tested below)."""
    return {k: v.detach().clone() for k, v in shared.gaussian_forward(c).model.named_parameters()}


def forward_with_bn_variances(p, x):
    """(pre-pool features, block feature maps, unbiased per-channel variance of each BN input)."""
    maps, variances, h = [], [], x
    for conv, norm, stride, relu in (("stem.0", "stem.1", 1, False), ("block1.1", "block1.2", 1, True),
                                     ("block2.1", "block2.2", 2, True)):
        a = F.conv2d(F.relu(h) if relu else h, p[conv + ".weight"], stride=stride, padding=1)
        variances.append(a.transpose(0, 1).flatten(1).double().var(1, correction=1))
        h = bn(a, p, norm)
        maps.append(h)
    return F.relu(h), maps, variances


def test_zen_matches_two_forwards_and_the_running_variances(ctx):
    p = gaussian_params(ctx)
    x, e = ctx.gaussian_inputs(2 * BATCH).split(BATCH)
    assert torch.equal(x, ctx.inputs)
    f1, _, v1 = forward_with_bn_variances(p, x)
    f2, _, v2 = forward_with_bn_variances(p, x + 1e-2 * e)
    delta = (f1 - f2).double().abs().sum((1, 2, 3)).mean()
    # Running variance from 1 after two updates with momentum 0.1.
    bn_term = sum(0.5 * math.log(float((0.81 + 0.09 * a + 0.1 * b).mean())) for a, b in zip(v1, v2))
    assert value(ctx, "zen") == pytest.approx(math.log(delta) + bn_term, rel=1e-5)


def test_the_gaussian_reinitialisation_is_standard_normal():
    model = nn.Sequential(nn.Linear(100, 100), nn.BatchNorm1d(100), nn.ReLU(), nn.Linear(100, 3))
    c = build_context(model, input_shape=(100,), batch_size=8, seed=4)
    gm = shared.gaussian_forward(c).model
    w = gm[0].weight.detach()
    assert abs(float(w.mean())) < 0.03 and float(w.std()) == pytest.approx(1, abs=0.03)
    assert not gm[0].bias.any() and bool((gm[1].weight == 1).all()) and not gm[1].bias.any()
    assert not torch.equal(w, c.model[0].weight)  # the context's own init is left alone


def distinct_columns(codes):
    return np.unique(codes, axis=1).shape[1]


@pytest.mark.parametrize("batch", [BATCH, 24])
def test_swap_counts_distinct_patterns_of_the_first_16_samples(batch):
    c = build_context(TinyNet(), input_shape=SHAPE, batch_size=batch, seed=5)
    _, maps, _ = forward_with_bn_variances(gaussian_params(c), c.inputs)  # the ReLU inputs of TinyNet
    codes = np.concatenate([(m[:16] > 0).flatten(1).numpy() for m in maps], 1)
    expected = distinct_columns(codes)
    assert value(c, "swap") == expected
    thousands = sum(t.numel() for t in c.model.parameters()) / 1e3
    factor = math.exp(-(thousands - swap_module.SWAP_REG_MU) ** 2 / swap_module.SWAP_REG_SIGMA)
    assert value(c, "swap_reg") == pytest.approx(expected * factor, rel=1e-12)


# ----------------------------------------------------------------------------- MeCo

def one_sample_outputs(p, x):
    """Every module output of TinyNet for one sample, in hook order, as (C, positions) rows."""
    a0 = F.conv2d(x, p["stem.0.weight"], padding=1)
    h0 = bn(a0, p, "stem.1")
    a1 = F.conv2d(F.relu(h0), p["block1.1.weight"], padding=1)
    h1 = bn(a1, p, "block1.2")
    a2 = F.conv2d(F.relu(h1), p["block2.1.weight"], stride=2, padding=1)
    h2 = bn(a2, p, "block2.2")
    pooled = F.relu(h2).mean((2, 3), keepdim=True)
    logits = F.linear(pooled.flatten(1), p["head.3.weight"], p["head.3.bias"])
    outputs = [a0, h0, h0, F.relu(h0), a1, h1, h1, F.relu(h1), a2, h2, h2,   # stem, block1, block2
               F.relu(h2), pooled, pooled.flatten(1), logits, logits, logits]  # head's four, head, model
    return [o[0].reshape(o.shape[1], -1).double().numpy() for o in outputs]


def min_eig_of_correlation(rows):
    with np.errstate(divide="ignore", invalid="ignore"):
        corr = np.nan_to_num(np.corrcoef(rows), nan=0.0) if rows.shape[1] > 1 else np.zeros((len(rows),) * 2)
    return np.linalg.eigvalsh(corr)[0]


def test_meco_sums_minimum_eigenvalues_over_every_module_output(ctx):
    outputs = one_sample_outputs(params_of(ctx), ctx.inputs[:1])
    assert value(ctx, "meco") == pytest.approx(sum(min_eig_of_correlation(o) for o in outputs), rel=1e-9)


def test_meco_opt_uses_8_random_channels_scaled_by_c_over_8():
    c = build_context(TinyNet(w=6), input_shape=SHAPE, batch_size=BATCH, seed=6)  # 6 and 12 channels
    generator, expected = c.generator(), 0.0
    for rows in one_sample_outputs(params_of(c), c.inputs[:1]):
        k = min(8, rows.shape[0])
        chosen = torch.randperm(rows.shape[0], generator=generator)[:k].numpy()
        expected += min_eig_of_correlation(rows[chosen]) * rows.shape[0] / k
    assert value(c, "meco_opt") == pytest.approx(expected, rel=1e-9)
    assert value(c, "meco_opt") != pytest.approx(value(c, "meco"), rel=1e-3)  # the sampling matters


def test_meco_says_why_it_is_undefined_where_a_batchnorm_sees_one_value_per_channel():
    # One sample, pooled to 1x1 before a BatchNorm: training-mode statistics of a single value.
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 3))
    for name in ("meco", "meco_opt"):
        with pytest.raises(ProxyError, match=f"'{name}' failed on arch 'pooled'.*BatchNorm '2' gets one value per "
                                             "channel.*MeCo, are undefined"):
            compute_proxies(model, [name], input_shape=SHAPE, batch_size=4, arch="pooled")


# ----------------------------------------------------------------------------- ZiCo

def test_zico_matches_two_half_batches(ctx):
    p, labels = params_of(ctx), labels_of(ctx)
    halves = zip(ctx.inputs.chunk(2), labels.chunk(2))
    grads = [torch.func.grad(lambda q: F.cross_entropy(functional_forward(q, x)[1], y))(p) for x, y in halves]
    expected = 0.0
    for k in LAYER_WEIGHTS:
        g = np.stack([gr[k].double().numpy().ravel() for gr in grads])
        std, mean_abs = g.std(0), np.abs(g).mean(0)
        expected += np.log(np.sum(mean_abs[std > 0] / std[std > 0]))
    assert value(ctx, "zico") == pytest.approx(expected, rel=1e-5)


# ----------------------------------------------------------------------------- TE-NAS

def test_te_nas_ntk_is_minus_the_condition_number_of_the_jacobian_kernel(ctx):
    p = params_of(ctx)
    names = [k for k in p if "weight" in k]  # conv, BN gamma and linear weights

    def summed_logits(w):
        return functional_forward({**p, **w}, ctx.inputs)[1].sum(1)

    jac = torch.func.jacrev(summed_logits)({k: p[k] for k in names})
    j = torch.cat([jac[k].reshape(BATCH, -1) for k in names], 1).double().numpy()
    v = np.linalg.eigvalsh(j @ j.T)
    assert value(ctx, "te_nas_ntk") == pytest.approx(-v[-1] / v[0], rel=1e-4)


def test_te_nas_ntk_is_minus_inf_for_a_singular_kernel():
    # 2 x 4 weights: the 16 x 16 NTK has rank <= 8.
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    assert compute_proxies(model, "te_nas_ntk", input_shape=(4,), batch_size=16)["te_nas_ntk"] == -math.inf


def test_te_nas_lr_counts_distinct_activation_patterns():
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))  # at most 8 patterns
    c = build_context(model, input_shape=(4,), batch_size=32, seed=8)
    h = F.linear(c.inputs, c.model[1].weight, c.model[1].bias).detach()
    patterns = (h > 0).numpy()
    _, counts = np.unique(patterns, axis=0, return_counts=True)
    assert 1 < len(counts) < 32
    # TE-NAS's formula: sum over samples of 1 / (samples sharing its pattern).
    shared_count = (patterns[:, None, :] == patterns[None, :, :]).all(-1).sum(1)
    assert value(c, "te_nas_lr") == len(counts) == pytest.approx((1 / shared_count).sum())


def test_te_nas_is_the_dense_rank_sum_of_its_two_terms():
    table = {"te_nas_ntk": [-3.0, -1.0, -2.0, -math.inf], "te_nas_lr": [64.0, 64.0, 60.0, 1.0]}
    # dense ranks: ntk [2, 4, 3, 1], lr [3, 3, 2, 1]
    np.testing.assert_array_equal(metrics.rank_sum(table, TE_NAS_TERMS), [5, 7, 5, 2])


# ----------------------------------------------------------------------------- shared forwards and failures

def count_forwards(c):
    """Counts calls of the context model's forward in every copy (deep copies keep the hook)."""
    calls = []
    c.model.register_forward_hook(lambda m, args, out: calls.append(1))
    return calls


TRAINING_FORWARD = ["naswot", "te_nas_lr", "jacov", "epe_nas", "expressivity", "progressivity", "trainability",
                    "grad_norm", "snip", "plain", "fisher", "grasp", "te_nas_ntk"]


@pytest.mark.parametrize("names, forwards", [(TRAINING_FORWARD, 1), (["swap", "zen", "swap_reg"], 2),
                                             (["meco", "meco_opt"], 1), (["zico"], 2)])
def test_proxies_share_their_forwards(names, forwards):
    c = build_context(TinyNet(), input_shape=SHAPE, batch_size=BATCH, seed=9)
    calls = count_forwards(c)
    together = compute_on(c, names)
    assert len(calls) == forwards
    for name in names:  # and each alone gives the same value
        assert compute_on(build_context(TinyNet(), input_shape=SHAPE, batch_size=BATCH, seed=9), [name]) == \
            {name: together[name]}


@pytest.mark.parametrize("name", available_proxies())
def test_a_proxy_says_whether_it_reads_the_shared_training_forward(name):
    """The registry's flag, by which compute_on runs these proxies last, is what the proxy does."""
    from vkdnw_fast.proxies.registry import entry

    c = build_context(TinyNet(), input_shape=SHAPE, batch_size=BATCH, seed=9)
    compute_on(c, [name])
    assert ("training_forward" in c.cache) == entry(name).uses_training_forward


def test_compute_on_runs_the_training_forward_proxies_last_and_answers_in_the_order_asked(monkeypatch):
    """So that a proxy with a forward of its own (naswot_128's batch of 128) does not run beside the kept
    graph of the training forward."""
    from vkdnw_fast.proxies import registry

    seen = []

    def probe(c):
        seen.append("training_forward" in c.cache)
        return 1.0
    monkeypatch.setitem(registry._REGISTRY, "probe", registry._Entry(probe, False))
    c = build_context(TinyNet(), input_shape=SHAPE, batch_size=BATCH, seed=9)
    names = ["naswot", "jacov", "probe", "naswot_128"]
    values = compute_on(c, names)
    assert seen == [False] and list(values) == names
    fresh = build_context(TinyNet(), input_shape=SHAPE, batch_size=BATCH, seed=9)
    assert values == {name: compute_on(fresh, [name])[name] for name in names}


class Overflow(nn.Module):
    def forward(self, x):
        return x * math.inf  # inf, and NaN where x is 0


# They read no activation: the number of weights and of multiply-accumulates, the initial weights' norm.
DATA_FREE = {"flops", "params", "l2_norm"}


@pytest.mark.parametrize("name", sorted(set(available_proxies()) - DATA_FREE))
def test_a_network_giving_nan_or_inf_is_an_error_naming_proxy_and_architecture(name):
    with pytest.raises(ProxyError, match=rf"proxy '{name}' failed on arch 'broken'"):
        compute_proxies(WithBlocks(Overflow()), name, input_shape=SHAPE, batch_size=BATCH, arch="broken")


@pytest.mark.parametrize("name", sorted(DATA_FREE))
def test_proxies_reading_no_activation_stay_finite_on_such_a_network(name):
    assert math.isfinite(compute_proxies(WithBlocks(Overflow()), name, input_shape=SHAPE, batch_size=BATCH)[name])


# ----------------------------------------------------------------------------- the published scores

def test_the_naslib_table_maps_to_nb201_cells_and_their_parameter_counts():
    from vkdnw_fast.data import naslib_zc_table, nb201_table
    from vkdnw_fast.spaces import nb201

    table, truth = naslib_zc_table(), nb201_table()
    assert {d: int((table["dataset"] == d).sum()) for d in ("cifar10", "cifar100", "imagenet16")} == \
        {"cifar10": 724, "cifar100": 725, "imagenet16": 724}
    np.testing.assert_array_equal(table["arch"], truth["arch"][table["index"]])
    datasets = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16": "ImageNet16-120"}
    ours = [nb201.params(a, datasets[d]) / 1e6 for a, d in zip(table["arch"], table["dataset"])]
    np.testing.assert_allclose(table["params"], ours, rtol=1e-9)


class TextIds(nn.Module):
    """Embedding + nn.TransformerEncoder on token ids (N, L)."""

    def __init__(self, classes=CLASSES, vocab=11, dim=8):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, 2, dim_feedforward=12, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 1, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, ids):
        return self.head(self.encoder(self.embed(ids)).mean(1))


def test_token_ids_reach_the_proxies_and_those_needing_real_valued_inputs_say_why():
    ids = torch.randint(0, 11, (8, 7), generator=torch.Generator().manual_seed(0))
    model = TextIds()
    scores = compute_proxies(model, ["vkdnw", "grad_norm", "snip", "zico", "te_nas_ntk"], inputs=ids)
    assert all(math.isfinite(v) for v in scores.values())
    assert scores["vkdnw"] == pytest.approx(vf.score(model, ids).vkdnw, rel=1e-9)
    for names, reason in [
        (["jacov", "epe_nas"], r"it differentiates the logits with respect to the input, and the scoring batch is "
                               r"integer token ids \(8, 7\) \(torch.int64\), which have no gradient"),
        (["synflow"], r"its input is one all-ones sample, which is undefined for integer token ids"),
        (["zen", "swap", "naswot_128"], r"the scoring batch is integer ids \(8, 7\) \(torch.int64\): a batch of "
                                        r"Gaussian noise shaped like it is undefined"),
    ]:
        for name in names:
            with pytest.raises(ProxyError, match=rf"proxy '{name}' failed on a TextIds: ValueError: {reason}"):
                compute_proxies(TextIds(), name, inputs=ids)


class SelfAttention(nn.Module):
    """One self-attention block on (N, L, D) features, through F.scaled_dot_product_attention (whose
    fused CPU kernel has no second derivative) or written out as softmax(QK^T / sqrt(d)) V."""

    def __init__(self, fused, dim=32, heads=2, classes=CLASSES):
        super().__init__()
        self.fused, self.heads = fused, heads
        self.embed, self.qkv = nn.Linear(8, dim), nn.Linear(dim, 3 * dim)
        self.act, self.head = nn.ReLU(), nn.Linear(dim, classes)

    def forward(self, x):
        n, length, _ = x.shape
        q, k, v = self.qkv(self.embed(x)).view(n, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
        if self.fused:
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            out = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), -1) @ v
        return self.head(self.act(out.transpose(1, 2).reshape(n, length, -1)).mean(1))


def test_every_proxy_and_the_grasp_double_backward_work_through_fused_attention():
    needs_feature_maps = {"expressivity", "progressivity", "trainability", "zen"}  # AZ-NAS's blocks, a CNN's pool
    names = sorted(set(available_proxies()) - needs_feature_maps)
    fused, written_out = (compute_proxies(SelfAttention(f), names, input_shape=(6, 8), batch_size=BATCH, seed=3)
                          for f in (True, False))
    assert fused == pytest.approx(written_out, rel=1e-4)


@pytest.mark.parametrize("name", sorted(available_proxies()))
def test_a_proxy_is_flagged_label_free_exactly_when_it_reads_no_labels(name, monkeypatch):
    """``label_free`` (what a label-free ensemble may choose from) against what the proxy does: every
    read of the batch's labels goes through ``batches.random_labels`` when no real data is given."""
    from vkdnw_fast.proxies import batches, label_free

    reads = []
    original = batches.random_labels
    monkeypatch.setattr(batches, "random_labels", lambda ctx, classes: reads.append(classes) or original(ctx, classes))
    compute_proxies(TinyNet(), name, input_shape=SHAPE, batch_size=BATCH, seed=3)
    assert label_free(name) == (not reads), f"{name}: label_free says {label_free(name)}, it read labels {len(reads)}x"

"""The zero-cost baselines of Abdelfattah et al. (ICLR 2021, github.com/SamsungLabs/zero-cost-nas),
as NAS-Bench-Suite-Zero (Krishnakumar et al., NeurIPS 2022 Datasets and Benchmarks; automl/NASLib,
naslib/predictors/utils/pruners/measures/) and, for the first four, the VKDNW/AZ-NAS authors'
NB201 code (VKDNW repo, NB201/ZeroShotProxy/compute_{synflow,gradnorm,snip,grasp}_score.py)
compute them.

"Layer weights" are the weights of the layers of ``vkdnw_fast.layers`` (every convolution and
Linear; the authors list Conv2d and Linear, the others are the same kind of layer). Where a loss is
needed it is the mean cross-entropy of the logits of the context's batch against its labels
(``batches.labelled_batch``: random, one uniform class per sample, seeded, unless the caller gives
real data, ``data=``/``--data``, whose labels are then used), from the training-mode
forward the proxies share (``forward.training_forward``: a copy of the initialised network,
BatchNorm with batch statistics). The authors use random labels for GradNorm; for SNIP and GraSP,
and NASLib for all of these, a batch of real images and labels, which a training-free, data-free
comparison (docs/method.md §6) does not have. GradNorm, SNIP, plain and Fisher read one backward of that
loss (``forward.loss_gradients``).

* synflow: BatchNorm bypassed, every parameter and buffer replaced by its absolute value, in
  float64, one all-ones input sample; R = sum of the logits;
  score = sum over layer weights of |theta * dR/dtheta| (NASLib reports its logarithm).
* grad_norm: sqrt(sum over *all* parameters of ||dL/dtheta||^2), as the VKDNW authors' file has it
  (zero-cost-nas and NASLib instead sum the per-layer norms of the layer weights' gradients).
* snip: sum over layer weights of |theta * dL/dtheta| (= |dL/dmask| at mask 1, their masks).
* grasp: sum over layer weights of -theta * (H g), g = dL/dtheta over the layer weights, H the
  Hessian of L over them (temperature 1, one iteration). The authors run two identical forward
  passes for g and for the Hessian-vector product; in training mode they give the same values,
  so one forward serves both here.
* plain (zero-cost-nas/NASLib ``plain``): sum over layer weights of theta * dL/dtheta (signed).
* fisher (Turner et al., "BlockSwap", ICLR 2020, the channel saliency as zero-cost-nas and NASLib
  compute it): for every call of a layer with output a (N, K, *S) and g = dL/da,
  Delta_k = 1/2 mean_n (sum_S a_nk g_nk)^2, the channel's saliency; the score sums, over layers,
  fan_in x sum_k Delta_k, fan_in = the number of weights per output channel (their per-channel
  values are broadcast over the weight tensor before the sum). The activations are the layers'
  outputs, before any BatchNorm or ReLU that follows.
* l2_norm (zero-cost-nas/NASLib ``l2_norm``): sum over layer weights of ||theta||_2 (Frobenius),
  at initialisation; no data.

All are finite by definition; non-finite logits or gradients are an error, as is a non-finite
value (e.g. SynFlow overflowing float64 on a very deep network), which ``compute_proxies`` rejects.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from .. import layers
from .context import ProxyContext, as_output
from .forward import check_finite, loss_gradients, training_forward, training_loss
from .registry import register_proxy


def layer_weights(model: nn.Module) -> list[torch.Tensor]:
    weights = layers.layer_weights(model)
    if not weights:
        raise ValueError(f"{type(model).__name__} has no convolution or Linear layers to score")
    return weights


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@register_proxy("synflow")
def synflow(ctx: ProxyContext) -> float:
    if not ctx.inputs.is_floating_point():
        raise ValueError(f"its input is one all-ones sample, which is undefined for integer token ids "
                         f"({ctx.inputs.dtype} scoring batch)")
    model = ctx.copy_model()
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.forward = _identity
    model.double().train().requires_grad_(True)
    with torch.no_grad():
        for tensor in [*model.parameters(), *model.buffers()]:
            if tensor.is_floating_point():
                tensor.abs_()
    ones = torch.ones((1, *ctx.inputs.shape[1:]), dtype=torch.float64, device=ctx.device)
    weights = layer_weights(model)
    grads = torch.autograd.grad(as_output(model(ones), model, ctx.prepared.logits).sum(), weights, allow_unused=True)
    return sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None)


def _weights_and_gradients(ctx: ProxyContext) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(layer weight, dL/dweight) of the shared forward, for the weights the loss depends on."""
    grads = loss_gradients(ctx).parameters
    return [(w.detach(), grads[w]) for w in layer_weights(training_forward(ctx).model) if grads[w] is not None]


@register_proxy("grad_norm", uses_labels=True, uses_training_forward=True)
def grad_norm(ctx: ProxyContext) -> float:
    grads = loss_gradients(ctx).parameters.values()
    return float(sum(g.double().square().sum() for g in grads if g is not None)) ** 0.5


@register_proxy("snip", uses_labels=True, uses_training_forward=True)
def snip(ctx: ProxyContext) -> float:
    return sum(float((w * g).abs().sum()) for w, g in _weights_and_gradients(ctx))


@register_proxy("plain", uses_labels=True, uses_training_forward=True)
def plain(ctx: ProxyContext) -> float:
    return sum(float((w * g).double().sum()) for w, g in _weights_and_gradients(ctx))


@register_proxy("grasp", uses_labels=True, uses_training_forward=True)
def grasp(ctx: ProxyContext) -> float:
    weights = layer_weights(training_forward(ctx).model)
    grads = torch.autograd.grad(training_loss(ctx), weights, create_graph=True, allow_unused=True)
    used = [(w, g) for w, g in zip(weights, grads) if g is not None]
    # z = g . grad(L) with g held constant, so dz/dtheta = H g.
    z = sum((g.detach() * g).sum() for _, g in used)
    # retain_graph: this backward runs through the shared forward's graph, which later proxies need.
    hessian_grads = torch.autograd.grad(z, [w for w, _ in used], retain_graph=True, allow_unused=True)
    return sum(float((-w.detach() * check_finite(hg, "a Hessian-vector product")).sum())
               for (w, _), hg in zip(used, hessian_grads) if hg is not None)


@register_proxy("fisher", uses_labels=True, uses_training_forward=True)
def fisher(ctx: ProxyContext) -> float:
    outputs = training_forward(ctx).layer_outputs
    if not outputs:
        raise ValueError(f"{type(ctx.model).__name__} has no convolution or Linear layers to score")
    total = 0.0
    for (layer, a), g in zip(outputs, loss_gradients(ctx).layer_outputs):
        if g is None:
            continue
        a, g = a.detach().double(), g.double()
        per_channel = (a * g).sum(tuple(range(2, a.dim()))) if a.dim() > 2 else a * g  # (N, K)
        saliency = 0.5 * per_channel.square().mean(0)
        total += math.prod(layer.weight.shape[1:]) * float(saliency.sum())
    return total


@register_proxy("l2_norm")
def l2_norm(ctx: ProxyContext) -> float:
    return sum(float(w.detach().double().norm()) for w in layer_weights(ctx.model))

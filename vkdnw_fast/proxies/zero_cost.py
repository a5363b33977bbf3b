"""SynFlow, GradNorm, SNIP and GraSP, the zero-cost baselines of Abdelfattah et al. (ICLR 2021,
github.com/SamsungLabs/zero-cost-nas), as the VKDNW/AZ-NAS authors' NB201 code computes them
(VKDNW repo, NB201/ZeroShotProxy/compute_{synflow,gradnorm,snip,grasp}_score.py).

Common to all four: a copy of the initialised network in training mode (BatchNorm with batch
statistics). "Layer weights" are the weights of the layers of ``vkdnw_fast.layers`` (every
convolution and Linear; the authors list Conv2d and Linear, the others are the same kind of layer). Where a loss is
needed it is the mean cross-entropy of the logits of the context's Gaussian batch against random
labels, uniform over the classes, drawn as ``randint(0, C, (N,), generator=ctx.generator())``.
The authors use those random labels for GradNorm; for SNIP and GraSP they use a batch of real
images and labels, which a training-free, data-free comparison (SPEC §6) does not have.

* synflow: BatchNorm bypassed, every parameter and buffer replaced by its absolute value, in
  float64, one all-ones input sample; R = sum of the logits;
  score = sum over layer weights of |theta * dR/dtheta|.
* grad_norm: sqrt(sum over *all* parameters of ||dL/dtheta||^2), as the authors' file has it
  (zero-cost-nas instead sums the per-layer norms of the layer weights' gradients).
* snip: sum over layer weights of |theta * dL/dtheta| (= |dL/dmask| at mask 1, their masks).
* grasp: sum over layer weights of -theta * (H g), g = dL/dtheta over the layer weights, H the
  Hessian of L over them (temperature 1, one iteration). The authors run two identical forward
  passes for g and for the Hessian-vector product; in training mode they give the same values,
  so one forward serves both here.

All four are finite by definition; a non-finite value (e.g. SynFlow overflowing float64 on a
very deep network) is reported as an error by ``compute_proxies``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import layers
from .context import ProxyContext, as_logits
from .registry import register_proxy

def layer_weights(model: nn.Module) -> list[torch.Tensor]:
    weights = layers.layer_weights(model)
    if not weights:
        raise ValueError(f"{type(model).__name__} has no convolution or Linear layers to score")
    return weights


def random_labels(ctx: ProxyContext, num_classes: int) -> torch.Tensor:
    """The labels the loss-based proxies use: one uniform class per sample of ``ctx.inputs``."""
    labels = torch.randint(0, num_classes, (ctx.inputs.shape[0],), generator=ctx.generator())
    return labels.to(ctx.device)


def _training_loss(ctx: ProxyContext) -> tuple[nn.Module, torch.Tensor]:
    """A training-mode copy of the model and its loss on the context's batch."""
    model = ctx.copy_model().train().requires_grad_(True)
    logits = as_logits(model(ctx.inputs), model)
    if ctx.num_classes is not None and logits.shape[1] != ctx.num_classes:
        raise ValueError(f"the model returns {logits.shape[1]} logits, the context says {ctx.num_classes} classes")
    return model, F.cross_entropy(logits, random_labels(ctx, logits.shape[1]))


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


@register_proxy("synflow")
def synflow(ctx: ProxyContext) -> float:
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
    grads = torch.autograd.grad(as_logits(model(ones), model).sum(), weights, allow_unused=True)
    return sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None)


@register_proxy("grad_norm")
def grad_norm(ctx: ProxyContext) -> float:
    model, loss = _training_loss(ctx)
    grads = torch.autograd.grad(loss, list(model.parameters()), allow_unused=True)
    return float(sum(g.double().square().sum() for g in grads if g is not None)) ** 0.5


@register_proxy("snip")
def snip(ctx: ProxyContext) -> float:
    model, loss = _training_loss(ctx)
    weights = layer_weights(model)
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return sum(float((w.detach() * g).abs().sum()) for w, g in zip(weights, grads) if g is not None)


@register_proxy("grasp")
def grasp(ctx: ProxyContext) -> float:
    model, loss = _training_loss(ctx)
    weights = layer_weights(model)
    grads = torch.autograd.grad(loss, weights, create_graph=True, allow_unused=True)
    used = [(w, g) for w, g in zip(weights, grads) if g is not None]
    # z = g . grad(L) with g held constant, so dz/dtheta = H g.
    z = sum((g.detach() * g).sum() for _, g in used)
    hessian_grads = torch.autograd.grad(z, [w for w, _ in used], allow_unused=True)
    return sum(float((-w.detach() * hg).sum()) for (w, _), hg in zip(used, hessian_grads) if hg is not None)

"""The forwards several proxies share, each run at most once per context and cached in
``ctx.cache``, and the statistics recorded along them.

``training_forward(ctx)``: a copy of the context's network in training mode (BatchNorm with the
batch's statistics), parameters and input requiring grad, one forward of the context's batch with
its autograd graph kept for the context's lifetime. It serves NASWOT and TE-NAS's linear regions
(the sign codes of every ``nn.ReLU`` input), AZ-NAS (the feature maps of
``model.feature_blocks()``), Jacov and EPE-NAS (the input gradient of the summed logits), GradNorm,
SNIP, plain and Fisher (one backward of the loss to every parameter and layer output), GraSP (a
double backward) and TE-NAS's NTK (per-sample gradients).

``gaussian_forward(ctx)``: a copy re-initialised with N(0, 1) layer weights (``init.initialise``,
``standard_normal``, drawn from ``ctx.generator()``), training mode, one forward of a Gaussian
batch without a graph. It serves Zen-NAS (the input of the global average pooling) and SWAP (the
sign codes of every ``nn.ReLU`` input).

A statistic that cannot be recorded on some network (no ``nn.ReLU``, no ``feature_blocks``,
non-finite activations) is kept as an error and raised only by the proxies that need it, so one
proxy's requirement does not fail the others.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from .. import layers, ops
from ..hooks import removing
from ..init import initialise
from ..memory import forget_tracebacks
from .batches import labelled_batch
from .context import ProxyContext, as_logits, as_output

# SWAP's batch: the first 16 samples (the authors' default ``--input_samples``).
SWAP_SAMPLES = 16


@dataclass
class Recorded:
    """A statistic recorded during a shared forward, or the error that prevented it."""

    value: Any = None
    error: Exception | None = None

    def fail(self, error: Exception) -> None:
        # Without its tracebacks (nor those of the exceptions it chains): their frames (the context, its
        # networks and batches) would otherwise form a reference cycle with this record.
        forget_tracebacks(error)
        self.error = error

    def get(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.value


def check_finite(tensor: torch.Tensor, what: str) -> torch.Tensor:
    # A NaN or an infinity reaches the sum, which one read pass gives (about 50 times faster than
    # isfinite().all() on CPU); only a sum that is not finite is checked element by element, as an
    # overflowing sum of finite values would also give one.
    if not bool(torch.isfinite(tensor.sum())) and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{what} has non-finite values (NaN or ±inf)")
    return tensor


def relu_modules(model: nn.Module) -> list[nn.Module]:
    relus = [m for m in model.modules() if isinstance(m, nn.ReLU)]
    if not relus:
        raise ValueError(f"{type(model).__name__} has no nn.ReLU modules (functional relu calls cannot be hooked)")
    return relus


def _sign_codes(x: torch.Tensor, batch: int) -> torch.Tensor:
    """(batch, units) bool codes of x > 0, the units in x's memory order: a channels-last map (the
    engine's format on CPU) is read as (N, H, W, C) without a copy. What the proxies read of the codes,
    NASWOT's Gram matrix and SWAP's count of distinct unit patterns, does not depend on the units' order."""
    codes = x > 0
    if codes.dim() == 4 and not codes.is_contiguous() and codes.is_contiguous(memory_format=torch.channels_last):
        codes = codes.permute(0, 2, 3, 1)
    return codes.reshape(batch, -1)


def relu_input_hooks(model: nn.Module, batch: int, record: Recorded,
                     update: Callable[[torch.Tensor], None]) -> list:
    """Forward pre-hooks calling ``update(codes)`` with the (batch, units) bool sign codes of every
    ``nn.ReLU`` input (relu(x) > 0 exactly when x > 0, also for in-place ReLUs; the units in memory
    order, ``_sign_codes``); a failure is kept
    in ``record.error`` and stops the updates."""
    try:
        relus = relu_modules(model)
    except ValueError as exc:
        record.fail(exc)
        return []

    def hook(module: nn.Module, args: tuple) -> None:
        if record.error is not None:
            return
        try:
            x = args[0].detach()
            if x.shape[0] != batch:
                raise ValueError(f"an nn.ReLU of {type(model).__name__} got input of shape {tuple(x.shape)}; "
                                 f"the sign codes need the batch ({batch}) as its first dimension")
            check_finite(x, f"the input of an nn.ReLU of {type(model).__name__}")
            update(_sign_codes(x, batch))
        except Exception as exc:  # noqa: BLE001 - kept for the proxies that read this record
            record.fail(exc)

    return [m.register_forward_pre_hook(hook) for m in relus]


class HammingKernel:
    """NASWOT's K_H = sum over ReLU inputs of C C^T + (1 - C)(1 - C)^T (float64, batch x batch).

    With G = C C^T over U units, whose diagonal holds each sample's count of ones r_i, the second
    term is U - r_i - r_j + G_ij: K_H = 2G + U - r_i - r_j, one Gram matrix and no complement of the
    codes. G is ``ops.binary_gram``'s: exact integer counts, by popcount of bit-packed codes in the
    compiled CPU kernel (3.2 s -> 0.33 s of one core on a TransNAS-Bench micro cell, batch 128)."""

    def __init__(self, batch: int, device: torch.device):
        self.kernel = torch.zeros(batch, batch, dtype=torch.float64, device=device)

    def update(self, codes: torch.Tensor) -> None:
        gram = ops.binary_gram(codes).double()
        ones = gram.diagonal()
        self.kernel.add_(2 * gram + codes.shape[1] - ones[:, None] - ones[None, :])


def hamming_kernel(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """K_H of ``model`` (used as is: the caller sets its mode) on ``inputs``, from its own forward."""
    record = Recorded()
    kernel = HammingKernel(inputs.shape[0], inputs.device)
    with removing(relu_input_hooks(model, inputs.shape[0], record, kernel.update)), torch.no_grad():
        model(inputs)
    record.get()
    return kernel.kernel


# ----------------------------------------------------------------------------- training forward


class _FeatureMaps:
    """Forward hooks keeping the outputs of ``model.feature_blocks()`` (AZ-NAS's F_0..F_L)."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.record = Recorded(value=[])
        self.blocks: list[nn.Module] = []
        try:
            self.blocks = feature_blocks(model)
        except (TypeError, ValueError) as exc:
            self.record.fail(exc)

    def hooks(self) -> list:
        return [block.register_forward_hook(self._hook_for(i)) for i, block in enumerate(self.blocks)]

    def _hook_for(self, index: int):
        maps = self.record.value

        def hook(module: nn.Module, args: tuple, output):
            if self.record.error is not None:
                return None
            if len(maps) != index:
                # A block running again (a siamese network's encoder, once per part of its input) has no
                # single F_l: AZ-NAS's stages are not defined there.
                again = len(maps) > index
                self.record.fail(RuntimeError(
                    f"{type(self.model).__name__}.feature_blocks() must list blocks in forward order, each run "
                    f"once: block {index} ({type(module).__name__}) ran after {len(maps)} feature maps"
                    + (" (it ran again: a network applying its blocks to several parts of its input, as a "
                       "siamese network does, has no single feature map per block for AZ-NAS)" if again else "")))
                return None
            if not isinstance(output, torch.Tensor) or output.dim() < 2:
                self.record.fail(TypeError(f"feature block {index} ({type(module).__name__}) must return a "
                                           "(B, C, ...) tensor"))
                return None
            maps.append(output)
            # Later modules get a copy, so an in-place op there cannot alter the stored map.
            return output.clone()
        return hook

    def finish(self) -> None:
        if self.record.error is None and len(self.record.value) != len(self.blocks):
            self.record.fail(RuntimeError(f"only {len(self.record.value)} of the {len(self.blocks)} feature "
                                          f"blocks of {type(self.model).__name__} ran in its forward"))


def feature_blocks(model: nn.Module) -> list[nn.Module]:
    """``model.feature_blocks()``: the modules whose outputs are the feature maps F_0 (after the
    stem), F_1, ..., F_L (after every cell/block), in forward order."""
    method = getattr(model, "feature_blocks", None)
    if not callable(method):
        raise TypeError(f"AZ-NAS needs the feature maps after the stem and every cell/block: "
                        f"{type(model).__name__} must define feature_blocks() -> list[nn.Module]")
    blocks = list(method())
    if len(blocks) < 2:
        raise ValueError(f"AZ-NAS needs at least 2 feature blocks, {type(model).__name__}.feature_blocks() "
                         f"gave {len(blocks)}")
    return blocks


@dataclass
class TrainingForward:
    """The shared training-mode forward of the context's batch (see the module docstring).

    inputs: the batch, a leaf requiring grad. output: the model's output ((N, C) logits or a dense map), with its graph.
    feature_maps: the outputs of ``feature_blocks()`` (with their graph). hamming: NASWOT's K_H.
    layer_outputs: (layer, output) of every call of a layer (``vkdnw_fast.layers``), in order.
    cache: quantities derived from this forward (gradients), shared by the proxies using them.
    """

    model: nn.Module
    inputs: torch.Tensor
    output: torch.Tensor
    feature_maps: Recorded
    hamming: Recorded
    layer_outputs: list[tuple[nn.Module, torch.Tensor]]
    cache: dict[str, Any] = field(default_factory=dict)

    def finite_output(self) -> torch.Tensor:
        return check_finite(self.output, "the network's output")


def training_forward(ctx: ProxyContext) -> TrainingForward:
    if "training_forward" in ctx.cache:
        return ctx.cache["training_forward"]
    model = ctx.copy_model().train().requires_grad_(True)  # train-mode BN updates buffers: a copy
    inputs = ctx.inputs.detach().clone().requires_grad_(ctx.inputs.is_floating_point())  # not token ids
    hamming, kernel = Recorded(), HammingKernel(inputs.shape[0], inputs.device)
    maps = _FeatureMaps(model)
    outputs: list[tuple[nn.Module, torch.Tensor]] = []
    layer_hooks = [module.register_forward_hook(lambda m, args, out: outputs.append((m, out)))
                   for _, module in layers.named_layers(model)]
    # The math attention kernel: GraSP differentiates this graph twice, and the fused kernels
    # (flash attention on CPU) have no second derivative.
    with removing([*relu_input_hooks(model, inputs.shape[0], hamming, kernel.update), *maps.hooks(), *layer_hooks]), \
            sdpa_kernel(SDPBackend.MATH):
        output = as_output(model(inputs), model, ctx.prepared.logits)
    maps.finish()
    hamming.value = kernel.kernel
    forward = TrainingForward(model, inputs, output, maps.record, hamming, outputs)
    ctx.cache["training_forward"] = forward
    return forward


def class_logits(ctx: ProxyContext, model: nn.Module, output: Any) -> torch.Tensor:
    """The (N, C) logits of a model's ``output``, finite and with the context's number of classes
    (the range of the random labels)."""
    return checked_classes(ctx, as_logits(output, model, ctx.prepared.logits))


def checked_classes(ctx: ProxyContext, logits: torch.Tensor) -> torch.Tensor:
    classes = ctx.classes()
    if logits.dim() != 2:
        raise ValueError(f"it needs (N, C) logits; the network returned {tuple(logits.shape)}")
    logits = check_finite(logits, "the network's logits")
    if logits.shape[1] != classes:
        raise ValueError(f"the model returns {logits.shape[1]} logits, the context says {classes} classes")
    return logits


def training_loss(ctx: ProxyContext) -> torch.Tensor:
    """Mean cross-entropy of the shared forward's logits against the context's random labels."""
    forward = training_forward(ctx)
    return F.cross_entropy(checked_classes(ctx, forward.output), labelled_batch(ctx)[1])


@dataclass
class LossGradients:
    """dL/dtheta for every parameter (None where L does not depend on it) and dL/dy for every
    layer output y of ``TrainingForward.layer_outputs`` (same order), from one backward."""

    parameters: dict[torch.Tensor, torch.Tensor | None]
    layer_outputs: list[torch.Tensor | None]


def loss_gradients(ctx: ProxyContext) -> LossGradients:
    forward = training_forward(ctx)
    if "loss_gradients" not in forward.cache:
        parameters = list(forward.model.parameters())
        outputs = [out for _, out in forward.layer_outputs]
        grads = torch.autograd.grad(training_loss(ctx), parameters + outputs, retain_graph=True, allow_unused=True)
        for g in grads:
            if g is not None:
                check_finite(g, "a gradient of the loss")
        forward.cache["loss_gradients"] = LossGradients(dict(zip(parameters, grads[:len(parameters)])),
                                                        list(grads[len(parameters):]))
    return forward.cache["loss_gradients"]


def input_gradients(ctx: ProxyContext) -> torch.Tensor:
    """d(sum of all outputs: the logits, or a dense map)/d(inputs), flattened per sample: (B, D), float64, on the CPU. With
    batch statistics a sample's logits depend on the other samples, so row n also carries those
    cross-sample terms (Jacov's and EPE-NAS's ``logits.backward(ones)``)."""
    forward = training_forward(ctx)
    if not forward.inputs.is_floating_point():
        raise ValueError(f"it differentiates the logits with respect to the input, and the scoring batch is integer "
                         f"token ids {tuple(forward.inputs.shape)} ({forward.inputs.dtype}), which have no gradient")
    if "input_gradients" not in forward.cache:
        (grad,) = torch.autograd.grad(forward.finite_output().sum(), forward.inputs, retain_graph=True,
                                      allow_unused=True)
        grad = torch.zeros_like(forward.inputs) if grad is None else check_finite(grad, "the input gradient")
        forward.cache["input_gradients"] = grad.reshape(grad.shape[0], -1).double().cpu()
    return forward.cache["input_gradients"]


# ----------------------------------------------------------------------------- Gaussian forward


class _PoolInput:
    """Forward pre-hooks keeping the input of the last ``nn.AdaptiveAvgPool2d`` called."""

    def __init__(self, model: nn.Module):
        self.pools = [m for m in model.modules() if isinstance(m, nn.AdaptiveAvgPool2d)]
        self.value: torch.Tensor | None = None

    def hooks(self) -> list:
        return [m.register_forward_pre_hook(self._hook) for m in self.pools]

    def _hook(self, module: nn.Module, args: tuple) -> None:
        self.value = args[0].detach()

    def get(self, model: nn.Module) -> torch.Tensor:
        if self.value is None:
            raise ValueError(f"Zen-NAS needs the feature map before the global average pooling: "
                             f"{type(model).__name__} calls no nn.AdaptiveAvgPool2d")
        return check_finite(self.value, "the feature map before the global average pooling")


def pre_pool_features(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The input of ``model``'s last global average pooling for ``inputs`` (a no-grad forward)."""
    pool = _PoolInput(model)
    with removing(pool.hooks()), torch.no_grad():
        model(inputs)
    return pool.get(model)


@dataclass
class GaussianForward:
    """The shared forward of the N(0, 1)-initialised copy (see the module docstring).

    model: the copy, in training mode, its BatchNorm running statistics updated once by the
        forward of ``inputs`` (from a fresh mean 0, var 1).
    inputs, perturbation: the first and second halves of ``ctx.gaussian_inputs(2 B)`` (``inputs``
        is the context's batch unless the caller gave one).
    pre_pool: the input of the last ``nn.AdaptiveAvgPool2d`` (Zen-NAS's pre-GAP feature map).
    swap_codes: every ReLU unit's sign pattern over the first ``SWAP_SAMPLES`` samples, packed
        into one int64 per unit (bit s = sample s).
    """

    model: nn.Module
    inputs: torch.Tensor
    perturbation: torch.Tensor
    pre_pool: Recorded
    swap_codes: Recorded
    cache: dict[str, Any] = field(default_factory=dict)


def gaussian_forward(ctx: ProxyContext) -> GaussianForward:
    if "gaussian_forward" in ctx.cache:
        return ctx.cache["gaussian_forward"]
    model = ctx.copy_model().cpu()  # initialise draws on the CPU
    initialise(model, "standard_normal", ctx.generator())
    model.to(ctx.device).train()
    batch = ctx.inputs.shape[0]
    inputs, perturbation = ctx.gaussian_inputs(2 * batch).split(batch)
    samples = min(batch, SWAP_SAMPLES)
    bits = torch.arange(samples, device=ctx.device)[:, None]
    packed: list[torch.Tensor] = []
    codes = Recorded(value=packed)
    pool = _PoolInput(model)
    pack = lambda c: packed.append((c[:samples].long() << bits).sum(0))  # noqa: E731
    with removing([*relu_input_hooks(model, batch, codes, pack), *pool.hooks()]), torch.no_grad():
        model(inputs)
    pre_pool = Recorded()
    try:
        pre_pool.value = pool.get(model)
    except ValueError as exc:
        pre_pool.fail(exc)
    forward = GaussianForward(model, inputs, perturbation, pre_pool, codes)
    ctx.cache["gaussian_forward"] = forward
    return forward

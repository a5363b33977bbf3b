"""MeCo (Jiang, Wang & Bie, NeurIPS 2023, "MeCo: Zero-Shot NAS with One Data and Single Forward
Pass via Minimum Eigenvalue of Correlation"): the minimum eigenvalues of the channel correlation
matrices of the feature maps of one input.

For one input sample, the output of every module (all of ``model.modules()``: the model itself and
containers included, once per call) is read as a C x positions matrix (the sample's output,
channels as rows, the other dimensions flattened); R = the correlation matrix of its C rows, with
the NaN entries of constant rows set to 0.
* meco = sum over module outputs of lambda_min(R);
* meco_opt (their optimised variant): R of k = min(8, C) channels drawn without replacement,
  sum of lambda_min(R_k) * C / k.

As in the authors' code (github.com/HamsterMimi/MeCo, correlation/NAS_Bench_201.py ``get_score``):
training mode (BatchNorm normalises with the one sample's statistics over its positions), one
forward of one sample: here the first sample of the context's Gaussian batch (theirs: one real
image), with the context's initialisation (theirs: PyTorch's default). It runs its own forward
(one sample: the batch forwards of the other proxies would normalise differently). meco_opt's
channels are ``torch.randperm(C, generator=ctx.generator())[:k]``, drawn output by output in
forward order (theirs: Python's ``random.sample``); with C < 8 channels theirs fails, here all C
are used. Correlations and eigenvalues in float64 (theirs: float32, ``torch.linalg.eig``).
Outputs that are not tensors of at least 2 dimensions are skipped (theirs would take their first
element, or fail).

Finite by definition (correlations are bounded); a non-finite module output is an error (theirs
turns NaN entries of R into 0 and drops non-finite eigenvalues, so a network overflowing to inf
would get a score).
"""
from __future__ import annotations

import torch
from torch import nn

from ..hooks import removing
from .context import ProxyContext
from .forward import check_finite
from .registry import register_proxy

OPT_CHANNELS = 8


def sample_features(model: nn.Module, sample: torch.Tensor) -> list[torch.Tensor]:
    """(C, positions) float64 matrices of every module output for the one-sample batch ``sample``,
    in call order (the model is run as it is)."""
    features: list[torch.Tensor] = []

    def hook(module: nn.Module, args: tuple, output) -> None:
        if isinstance(output, torch.Tensor) and output.dim() >= 2:
            f = check_finite(output[0].detach(), f"the output of a {type(module).__name__}")
            features.append(f.reshape(f.shape[0], -1).double())

    hooks = [m.register_forward_hook(hook) for m in model.modules()]
    hooks += [m.register_forward_pre_hook(_one_value_check(name)) for name, m in model.named_modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    with removing(hooks), torch.no_grad():
        model(sample)
    return features


def _one_value_check(name: str):
    def check(module: nn.Module, args: tuple) -> None:
        x = args[0]
        if x.dim() >= 2 and x.numel() == x.shape[1]:
            # One sample through a network that reduces it to a single position before this BatchNorm.
            raise ValueError(f"MeCo runs one sample in training mode, and BatchNorm {name!r} gets one value per "
                             "channel (the network reduces the input to a single position before it): its batch "
                             "statistics, and MeCo, are undefined for this network at this input size")
    return check


def min_correlation_eigenvalue(rows: torch.Tensor) -> float:
    if rows.shape[1] < 2:  # one position: every row is constant, so R is all NaN, set to 0
        return 0.0
    c = rows.shape[0]
    corr = torch.corrcoef(rows).reshape(c, c).nan_to_num(nan=0.0)
    return float(torch.linalg.eigvalsh(corr)[0])


def meco_features(ctx: ProxyContext) -> list[torch.Tensor]:
    if "meco" not in ctx.cache:
        model = ctx.copy_model().train()  # train-mode BN updates buffers: a copy
        ctx.cache["meco"] = sample_features(model, ctx.inputs[:1])
    return ctx.cache["meco"]


@register_proxy("meco")
def meco(ctx: ProxyContext) -> float:
    return sum(min_correlation_eigenvalue(f) for f in meco_features(ctx))


@register_proxy("meco_opt")
def meco_opt(ctx: ProxyContext) -> float:
    generator = ctx.generator()
    total = 0.0
    for f in meco_features(ctx):
        channels = f.shape[0]
        k = min(OPT_CHANNELS, channels)
        chosen = torch.randperm(channels, generator=generator)[:k].to(f.device)
        total += min_correlation_eigenvalue(f[chosen]) * channels / k
    return total

"""Zen-NAS (Lin et al., ICCV 2021, "Zen-NAS: A Zero-Shot NAS for High-Performance Image
Recognition"): the Zen-score, the expected change of the pre-GAP feature map under a small
Gaussian perturbation of the input, corrected by the BatchNorm scales.

With f the input of the global average pooling (the network's last ``nn.AdaptiveAvgPool2d``; for
NB201 the output of the final BN-ReLU), x and e two Gaussian N(0, 1) batches and gamma = 1e-2:
Delta = mean_n sum_{c,h,w} |f(x)_n - f(x + gamma e)_n|, and
score = log Delta + sum over BatchNorm layers of log sqrt(mean_c running_var_c).

As in the authors' code (github.com/idstcv/ZenNAS, ZeroShotProxy/compute_zen_score.py) and its
NB201 and NAS-Bench-Suite-Zero copies (VKDNW repo NB201/ZeroShotProxy/compute_zen_score.py,
automl/NASLib naslib/predictors/utils/pruners/measures/zen.py): layer weights re-initialised
N(0, 1), biases 0, BN gamma 1 and beta 0 (``forward.gaussian_forward``: a copy, drawn from
``ctx.generator()``), training mode; the forward of x, then that of x + gamma e, each updating the
BN running statistics (from a fresh mean 0, var 1, with the layers' momentum: 0.1 by default), and
the running variances read after both, so for one BN layer with unbiased batch variances v1, v2
running_var = (1 - m)^2 + m (1 - m) v1 + m v2 (the paper writes the BN term with the batch
variance itself). gamma = 1e-2 and one repeat (the NB201 and NASLib settings; the ZenNAS command
line averages 32 repeats on batches of 16). x is the first half and e the second half of
``ctx.gaussian_inputs(2 B)``, B the context's batch size (64 by default): x is the context's
Gaussian batch, which the forward shares with SWAP. BatchNorm layers without running statistics
are left out of the BN term (theirs would fail on them).

Non-finite values: -inf when Delta = 0 (the feature map does not depend on the input). A
non-finite feature map is an error.
"""
from __future__ import annotations

import math

from torch import nn

from .context import ProxyContext
from .forward import check_finite, gaussian_forward, pre_pool_features
from .registry import register_proxy

MIXUP_GAMMA = 1e-2


def bn_log_scale(model: nn.Module) -> float:
    """sum over BatchNorm layers with running statistics of log sqrt(mean running_var)."""
    total = 0.0
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_var is not None:
            var = check_finite(m.running_var, f"the running variance of a {type(m).__name__}")
            total += 0.5 * math.log(float(var.double().mean()))
    return total


@register_proxy("zen", may_be_neg_inf=True)
def zen(ctx: ProxyContext) -> float:
    forward = gaussian_forward(ctx)
    if "zen" not in forward.cache:  # the second forward updates the BN statistics: run it once
        features = forward.pre_pool.get()
        perturbed = pre_pool_features(forward.model, forward.inputs + MIXUP_GAMMA * forward.perturbation)
        delta = float((features.double() - perturbed.double()).abs().flatten(1).sum(1).mean())
        forward.cache["zen"] = (math.log(delta) if delta > 0 else -math.inf) + bn_log_scale(forward.model)
    return forward.cache["zen"]

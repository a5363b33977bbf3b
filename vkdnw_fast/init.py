"""Network initialisation at scoring time (docs/method.md §3), seeded and independent of the global RNG."""
from __future__ import annotations

import torch
from torch import nn

from .layers import NORM_TYPES, is_layer

# How a layer's weight is drawn, by method: Kaiming normal (fan-in, ReLU gain) is the scoring
# init; standard normal N(0, 1) is the one Zen-NAS and SWAP re-initialise with.
_WEIGHT_INITS = {
    "kaiming_normal_fan_in": lambda w, g: nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu", generator=g),
    "standard_normal": lambda w, g: nn.init.normal_(w, generator=g),
}
INIT_METHODS = tuple(_WEIGHT_INITS)


def initialise(model: nn.Module, method: str | None, generator: torch.Generator) -> nn.Module:
    """Re-initialise ``model`` in place as the authors do, drawing from ``generator`` (CPU).

    Layer weights (``vkdnw_fast.layers``: every convolution and Linear): Kaiming normal, fan-in,
    ReLU gain (``kaiming_normal_fan_in``) or N(0, 1) (``standard_normal``); their biases zero;
    norm layers (BatchNorm, GroupNorm, LayerNorm) gamma 1, beta 0; BatchNorm statistics reset to a
    fresh network's (mean 0, var 1). Other parameters keep their values. Parameters must be on the
    CPU so that a seed gives the same network on every device. Modules are visited in
    ``model.apply`` order, which fixes the order the random draws are
    consumed in.
    """
    if method is None:
        return model
    if method not in INIT_METHODS:
        raise ValueError(f"unknown init method {method!r}; methods are {INIT_METHODS} or None")
    draw = _WEIGHT_INITS[method]

    def init_module(module: nn.Module) -> None:
        if is_layer(module) and module.weight is not None:
            if module.weight.device.type != "cpu":
                raise ValueError("initialise() draws on the CPU; move the model there first")
            draw(module.weight, generator)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, NORM_TYPES):
            if module.weight is not None:  # affine
                nn.init.ones_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
                module.reset_running_stats()

    with torch.no_grad():
        model.apply(init_module)
    return model


def gaussian_inputs(batch_size: int, input_shape: tuple[int, ...], generator: torch.Generator,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The scoring batch: standard normal noise drawn on the CPU from ``generator``."""
    if batch_size < 1 or not input_shape or any(int(s) < 1 for s in input_shape):
        raise ValueError(f"invalid batch_size={batch_size} or input_shape={tuple(input_shape)}")
    return torch.randn((batch_size, *input_shape), generator=generator, dtype=dtype)

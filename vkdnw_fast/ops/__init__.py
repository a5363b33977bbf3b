"""The custom ops, dispatched to the compiled extension when it is built, else to the twins.

``VKDNW_FAST_BACKEND=twin`` forces the pure-PyTorch twins; ``=extension`` insists on the
compiled kernels (an error if they are not built). ``backend()`` says what is in use.
"""
from __future__ import annotations

import functools
import os
from typing import Sequence

import torch

from . import twins
from .twins import VARIANTS, factor_rows, probability_constants

_OPS = "vkdnw_fast"
_REQUEST = os.environ.get("VKDNW_FAST_BACKEND", "auto")
if _REQUEST not in ("auto", "twin", "extension"):
    raise ValueError(f"VKDNW_FAST_BACKEND must be auto, twin or extension, got {_REQUEST!r}")

_extension_error: str | None = None
if _REQUEST == "twin":
    _extension_error = "disabled by VKDNW_FAST_BACKEND=twin"
else:
    try:
        from vkdnw_fast import _C  # noqa: F401  (registers torch.ops.vkdnw_fast.*)
    except ImportError as exc:
        _extension_error = str(exc)
        if _REQUEST == "extension":
            raise ImportError(f"VKDNW_FAST_BACKEND=extension but the extension is not built: {exc}") from exc


def extension_loaded() -> bool:
    return _extension_error is None


def _has_kernel(op: str, device: torch.device) -> bool:
    return _kernel_registered(op, device.type)


@functools.lru_cache(maxsize=None)
def _kernel_registered(op: str, device_type: str) -> bool:
    """Whether the extension has a kernel for ``op`` on this device type (fixed once loaded)."""
    if _extension_error is not None:
        return False
    key = {"cuda": "CUDA", "cpu": "CPU"}.get(device_type)
    return key is not None and torch._C._dispatch_has_kernel_for_dispatch_key(f"{_OPS}::{op}", key)


def backend(device: torch.device | str = "cpu") -> str:
    """Which implementation serves ``device``: 'cpp', 'cuda' or 'twin'."""
    device = torch.device(device)
    if _has_kernel("sampled_grad", device) and _has_kernel("multinomial_factor", device):
        return "cuda" if device.type == "cuda" else "cpp"
    return "twin"


def sampled_grad(input: torch.Tensor, grad_output: torch.Tensor, coords: torch.Tensor,
                 stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int],
                 groups: int = 1) -> torch.Tensor:
    """Per-sample gradients of selected conv/linear weight coordinates (see ``twins``)."""
    if _has_kernel("sampled_grad", input.device):
        return torch.ops.vkdnw_fast.sampled_grad(input, grad_output, coords, list(stride),
                                                 list(padding), list(dilation), groups)
    return twins.sampled_grad(input, grad_output, coords, stride, padding, dilation, groups)


def multinomial_factor(logits: torch.Tensor, basis: torch.Tensor, variant: str,
                       smoothing: float = 0.0, fp16_constants: bool = False) -> torch.Tensor:
    """Apply the multinomial covariance factor to ``basis`` per sample: (N, K, P) (see ``twins``)."""
    scale, offset = probability_constants(logits.shape[-1], smoothing, fp16_constants)
    if _has_kernel("multinomial_factor", logits.device):
        return torch.ops.vkdnw_fast.multinomial_factor(logits, basis, variant, scale, offset)
    return twins.multinomial_factor(logits, basis, variant, scale, offset)


def binary_gram(codes: torch.Tensor) -> torch.Tensor:
    """(N, N) int64 counts of the units two rows of bool ``codes`` (N, U) both have set (see ``twins``)."""
    if _has_kernel("binary_gram", codes.device):
        return torch.ops.vkdnw_fast.binary_gram(codes)
    return twins.binary_gram(codes)


def _sampled_grad_vmap(info, in_dims, input, grad_output, coords, stride, padding, dilation, groups):
    """Cotangents batched by vmap (the engine's chunked backward) fold into the op's own K dimension."""
    input_dim, grad_dim = in_dims[0], in_dims[1]
    if input_dim is not None or in_dims[2] is not None:
        raise NotImplementedError("sampled_grad: vmap over input or coords is not supported")
    g = grad_output.movedim(grad_dim, 0)
    d = input.dim() - 2
    if g.dim() == d + 3:
        return torch.ops.vkdnw_fast.sampled_grad(input, g, coords, stride, padding, dilation, groups), 0
    batch, k = g.shape[0], g.shape[1]
    out = torch.ops.vkdnw_fast.sampled_grad(input, g.flatten(0, 1), coords, stride, padding, dilation, groups)
    return out.unflatten(0, (batch, k)), 0


if _extension_error is None:
    torch.library.register_vmap(f"{_OPS}::sampled_grad", _sampled_grad_vmap)

__all__ = ["sampled_grad", "multinomial_factor", "binary_gram", "backend", "extension_loaded", "factor_rows",
           "probability_constants", "VARIANTS", "twins"]

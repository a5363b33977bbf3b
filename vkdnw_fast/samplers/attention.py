"""nn.MultiheadAttention: the in-projection (packed ``in_proj_weight``, or ``q/k/v_proj_weight`` when key
and value sizes differ, and ``in_proj_bias``) and ``out_proj``'s weight and bias, which
``F.multi_head_attention_forward`` applies itself with ``F.linear`` on the whole packed weight or on row
blocks of it (one per input when query, key and value differ).

No hook sees those products, and no torch-function mode either: F.multi_head_attention_forward goes to a
mode as one call and runs its body with the mode off. So while the module's forward runs, the
``linear`` that torch.nn.functional's code calls is wrapped (for this thread; restored afterwards) and
each call whose weight is one of these parameters, or a block of whole rows of it, is tapped as a Linear
on (L, N, D) tokens: F.multi_head_attention_forward keeps the samples along dimension 1 (batch_first
inputs are transposed first; out_proj runs on (L * N, D) rows, l-major), so the kept input and the output
gradient are viewed as (N, D, L). ``bias_k`` / ``bias_v`` (``add_bias_kv``), appended as one more key and
value for every sample, are left to the engine's general path.

Coordinates: (row, input channel or -1 for a bias, space): space 0 the in-projection's rows (query
0..E-1, key E..2E-1, value 2E..3E-1, as in ``in_proj_weight``), space 1 ``out_proj``'s.
"""
from __future__ import annotations

import contextlib
import threading

import torch
from torch import nn
from torch.nn import functional as F

from .. import ops
from .base import WeightSampler
from .registry import register_sampler

_IN, _OUT = 0, 1


class _LinearCalls(threading.local):
    handlers: list | None = None


_calls = _LinearCalls()
_patch_lock = threading.Lock()
_patch = {"depth": 0, "original": None}


def _linear(input, weight, bias=None):
    output = _patch["original"](input, weight, bias)
    return _calls.handlers[-1](input, weight, bias, output) if _calls.handlers else output


@contextlib.contextmanager
def linear_calls(handler):
    """``handler(input, weight, bias, output)`` sees (and may replace) the output of every call of
    ``torch.nn.functional.linear`` made in this thread within the block; other threads' calls pass
    through."""
    with _patch_lock:
        if _patch["depth"] == 0:
            _patch["original"], F.linear = F.linear, _linear
        _patch["depth"] += 1
    if _calls.handlers is None:
        _calls.handlers = []
    _calls.handlers.append(handler)
    try:
        yield
    finally:
        _calls.handlers.pop()
        with _patch_lock:
            _patch["depth"] -= 1
            if _patch["depth"] == 0:
                F.linear = _patch["original"]


def _first_row(view: torch.Tensor, param: torch.Tensor | None) -> int | None:
    """The row of ``param`` where ``view`` starts when it is a block of whole rows of it, else None."""
    if param is None or view.dim() != param.dim() or view.shape[1:] != param.shape[1:] or \
            view.stride() != param.stride() or view.dtype != param.dtype or \
            view.untyped_storage().data_ptr() != param.untyped_storage().data_ptr():
        return None
    row, rest = divmod(view.storage_offset() - param.storage_offset(), param.stride(0))
    return row if rest == 0 and 0 <= row <= param.shape[0] - view.shape[0] else None


@register_sampler(nn.MultiheadAttention)
class MultiheadAttentionSampler(WeightSampler):
    sampled_params = ("in_proj_weight", "in_proj_bias", "q_proj_weight", "k_proj_weight", "v_proj_weight",
                      "out_proj.weight", "out_proj.bias")
    taps_calls = True

    def coordinate(self, module, param_name, flat_index):
        e = module.embed_dim
        if param_name in ("in_proj_bias", "out_proj.bias"):
            return (flat_index, -1, _OUT if param_name == "out_proj.bias" else _IN)
        row, column = divmod(flat_index, module.get_parameter(param_name).shape[1])
        offset = {"k_proj_weight": e, "v_proj_weight": 2 * e}.get(param_name, 0)
        return (offset + row, column, _OUT if param_name == "out_proj.weight" else _IN)

    def _blocks(self, module):
        """(weight parameter, its bias parameter, space, the space's row of the weight's row 0) per projection."""
        e, bias = module.embed_dim, module.in_proj_bias
        return [(module.in_proj_weight, bias, _IN, 0), (module.q_proj_weight, bias, _IN, 0),
                (module.k_proj_weight, bias, _IN, e), (module.v_proj_weight, bias, _IN, 2 * e),
                (module.out_proj.weight, module.out_proj.bias, _OUT, 0)]

    def tapped_forward(self, module, plan, samples, forward, args, kwargs, tap, refuse):
        query = args[0] if args else kwargs["query"]
        batch = query.shape[0 if module.batch_first else 1] if query.dim() == 3 else None
        if batch != samples:
            refuse(f"it is called on a query of shape {tuple(query.shape)} (batch_first={module.batch_first}) for a "
                   f"batch of {samples}, so its sampler cannot find the samples")
            return forward(*args, **kwargs)
        blocks = self._blocks(module)

        def on_linear(x, weight, bias, output):
            for weight_param, bias_param, space, offset in blocks:
                row = _first_row(weight, weight_param)
                if row is None:
                    continue
                first = offset + row
                # The plan's bias coordinates in these rows must be applied by this very call.
                if (bias is None) != (bias_param is None) or \
                        (bias is not None and _first_row(bias, bias_param) != first):
                    refuse(f"F.linear applies a block of its weight {tuple(weight.shape)} with another bias than "
                           "the matching block of its own")
                    return output
                saved = self._capture(plan, space, first, weight.shape[0], x, samples)
                return output if saved is None else tap(output, saved)
            return output

        with linear_calls(on_linear):
            return forward(*args, **kwargs)

    def _capture(self, plan, space, first, rows, x, samples):
        """The kept input channels (N, k, L), the call's op coordinates and the (P', P_m) placement of its
        columns among the plan's, for the plan's coordinates in rows first..first+rows-1 of ``space``."""
        coords = plan.op_coords
        chosen = ((coords[:, 2] == space) & (coords[:, 0] >= first) & (coords[:, 0] < first + rows)).nonzero()[:, 0]
        if not len(chosen):
            return None
        mine = coords[chosen]
        weight = mine[:, 1] >= 0
        channels, position = torch.unique(plan.input_channels[mine[weight, 1]], return_inverse=True)
        op_coords = torch.stack([mine[:, 0] - first, torch.full_like(mine[:, 0], -1), torch.zeros_like(mine[:, 0])], 1)
        op_coords[weight, 1] = position
        kept = x.index_select(-1, channels).reshape(-1, samples, len(channels)).permute(1, 2, 0)
        placement = x.new_zeros(len(chosen), len(plan.columns))
        placement[torch.arange(len(chosen)), chosen] = 1.0
        return kept, op_coords, placement

    def grads(self, module, plan, saved, grad_output):
        kept, op_coords, placement = saved
        g = grad_output.reshape(-1, kept.shape[0], grad_output.shape[-1]).permute(1, 2, 0)
        # A product with the 0/1 placement (exact) rather than an indexed write, which vmap cannot batch.
        return ops.sampled_grad(kept, g, op_coords, (1,), (0,), (1,), 1) @ placement

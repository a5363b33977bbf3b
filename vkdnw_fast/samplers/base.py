"""What a weight sampler provides; the conv, linear and batchnorm modules implement it."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn


@dataclass
class ModulePlan:
    """The sampled coordinates of one module, fixed before the forward pass.

    ``input_channels``: the input channels the coordinates read (only these are kept);
    ``op_coords``: (P, 2 + d) coordinates for ``sampled_grad`` relative to those channels;
    ``columns``: where each coordinate's gradient goes in the engine's column order.
    """

    module_name: str
    input_channels: torch.Tensor
    op_coords: torch.Tensor
    columns: list[int]
    channel_run: tuple[int, int] | None = None  # (start, length) when the kept channels are contiguous

    def keep(self, t: torch.Tensor, dim: int) -> torch.Tensor:
        """A compact copy of the kept channels of ``t`` along ``dim`` (a slice when they are a
        run: ten times faster than a gather on channels-last tensors)."""
        if self.channel_run is not None:
            return t.narrow(dim, *self.channel_run).clone(memory_format=torch.contiguous_format)
        return t.index_select(dim, self.input_channels)


class WeightSampler:
    """Interface of a per-layer sampler. ``sampled_params``: the parameters it can sample; the
    ``layers`` weight selection samples ``weight`` of every layer (``vkdnw_fast.layers``)."""

    sampled_params: tuple[str, ...] = ("weight", "bias")
    # False: the engine taps the module's output (``capture``, ``grads``). True: the module applies its
    # parameters inside functional calls of its forward that no hook sees; ``tapped_forward`` runs that
    # forward and taps those calls (``grads`` then reduces one call's output gradient). A name with a dot
    # in ``sampled_params`` (``out_proj.weight``) is a child module's parameter that the forward applies.
    taps_calls: bool = False

    def check(self, module: nn.Module, module_name: str) -> None:
        """Raise if per-sample gradients of this module are undefined in its current state."""

    def coordinate(self, module: nn.Module, param_name: str, flat_index: int) -> tuple[int, ...]:
        """The op coordinate (o, absolute input channel or -1 for a bias, kernel offsets)."""
        raise NotImplementedError

    def capture(self, module: nn.Module, plan: ModulePlan, args: tuple) -> tuple[torch.Tensor, ...]:
        """What the backward needs from the forward (called inside a forward hook)."""
        raise NotImplementedError

    def tapped_forward(self, module: nn.Module, plan: ModulePlan, samples: int, forward: Callable, args: tuple,
                       kwargs: dict, tap: Callable, refuse: Callable[[str], None]) -> Any:
        """(``taps_calls`` samplers) ``forward(*args, **kwargs)``, the module's own, with
        ``tap(output, saved)`` spliced onto every call output that applies sampled coordinates (``saved``:
        what ``grads`` needs, the samples first); ``refuse(reason)`` when a call cannot be tapped (the
        general path then takes the module). ``samples``: the batch size."""
        raise NotImplementedError

    def grads(self, module: nn.Module, plan: ModulePlan, saved: tuple[torch.Tensor, ...],
              grad_output: torch.Tensor) -> torch.Tensor:
        """Per-sample gradients (N, P) of the plan's coordinates from the output gradient."""
        raise NotImplementedError


def plan_coords(module_name: str, coords: list[tuple[int, ...]], columns: list[int],
                device: torch.device) -> ModulePlan:
    """Re-index absolute input channels to positions among the kept channels."""
    kept = sorted({c[1] for c in coords if c[1] >= 0})
    position = {channel: j for j, channel in enumerate(kept)}
    op_coords = [(c[0], position[c[1]] if c[1] >= 0 else -1, *c[2:]) for c in coords]
    run = (kept[0], len(kept)) if kept and kept[-1] - kept[0] + 1 == len(kept) else None
    return ModulePlan(
        module_name=module_name,
        input_channels=torch.tensor(kept, dtype=torch.int64, device=device),
        op_coords=torch.tensor(op_coords, dtype=torch.int64, device=device),
        columns=columns,
        channel_run=run,
    )

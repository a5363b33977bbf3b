"""Preparing a network for scoring, the same way on every path (``vf.score``, ``compute_proxies``,
the reference implementation, the search and the evaluation).

``prepare`` copies the caller's model (which is never touched), initialises the copy from ``seed``
on the CPU, moves it to the device, draws the Gaussian scoring batch from the same seeded stream
(as the authors' scripts do: init, then ``torch.randn``) unless inputs or real data
(``vkdnw_fast.datasets``: the images and labels of a seeded shuffle) are given, and picks the
memory format. All proxies of one architecture share the result; a proxy that changes the model
works on ``copy_model()``, and the engine changes only mode and flags, restoring them
(``scoring_mode``).

The checks every scorer needs live here too: logits of shape (N, C) with C >= 2, finite where the
caller needs it, and samples that do not interact through BatchNorm.
"""
from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from .config import MEMORY_FORMATS
from .datasets import DataSource, Dataset
from .datasets import load as load_data
from .init import gaussian_inputs as draw_gaussian
from .init import initialise


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    return int(seed)


def resolve_device(model: nn.Module, inputs: torch.Tensor | None = None,
                   device: torch.device | str | None = None) -> torch.device:
    """``device``, else where the model's parameters (or buffers) live, else the inputs', else CPU;
    a bare ``cuda`` becomes the current CUDA device."""
    if device is None:
        first = next(model.parameters(), None)
        if first is None:
            first = next(model.buffers(), None)
        device = first.device if first is not None else inputs.device if inputs is not None else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    return device


def use_channels_last(model: nn.Module, inputs: torch.Tensor, memory_format: str = "auto") -> bool:
    """Whether to run ``model`` channels-last: ``auto`` does for 4-d convolutional models on the CPU
    (2-3x faster convolutions there) and not on GPUs."""
    if memory_format not in MEMORY_FORMATS:
        raise ValueError(f"memory_format={memory_format!r} is not one of {MEMORY_FORMATS}")
    if memory_format != "auto":
        return memory_format == "channels_last"
    return (inputs.device.type == "cpu" and inputs.dim() == 4
            and any(isinstance(m, nn.Conv2d) for m in model.modules()))


def parameter_dtype(model: nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


@dataclass
class PreparedModel:
    """An initialised copy of a network and its scoring batch.

    model: the copy, on ``device``, in the memory format chosen, in the mode the caller's model was
        in, its parameters requiring grad as the caller's did.
    inputs: the scoring batch (N, ...) on ``device``, in the model's dtype and memory format.
    seed: what the initialisation and the batch were drawn from.
    input_rng_state: the CPU generator's state right after the initialisation (None when no
        initialisation drew from it), from which ``gaussian_inputs`` replays the batch stream.
    labels: the real labels of ``inputs`` (N,) on ``device`` when they come from a dataset, else None
        (proxies needing labels then draw random ones, ``proxies.batches``).
    data: that dataset, from which ``batch_inputs`` takes batches of other sizes.
    """

    model: nn.Module
    inputs: torch.Tensor
    seed: int
    device: torch.device
    input_rng_state: torch.Tensor | None = field(default=None, repr=False)
    labels: torch.Tensor | None = field(default=None, repr=False)
    data: Dataset | None = field(default=None, repr=False)

    def copy_model(self) -> nn.Module:
        """A deep copy of ``model``, free to be changed."""
        return copy.deepcopy(self.model)

    def gaussian_inputs(self, batch_size: int) -> torch.Tensor:
        """A Gaussian batch of ``batch_size`` samples shaped like ``inputs``, drawn from the same stream
        as the default batch (so its first samples are the default batch's), on ``device``."""
        generator = torch.Generator()
        if self.input_rng_state is None:
            generator.manual_seed(self.seed)
        else:
            generator.set_state(self.input_rng_state)
        batch = draw_gaussian(batch_size, tuple(self.inputs.shape[1:]), generator, dtype=self.inputs.dtype)
        return batch.to(self.device)

    def batch_inputs(self, batch_size: int) -> torch.Tensor:
        """A batch of ``batch_size`` samples from where ``inputs`` came from: the dataset's first
        ``batch_size`` images after the seeded shuffle (so its first samples are ``inputs``) when
        real data was given, else ``gaussian_inputs``."""
        if self.data is None:
            return self.gaussian_inputs(batch_size)
        images, _ = self.data.batch(batch_size, self.seed)
        return torch.from_numpy(images).to(device=self.device, dtype=self.inputs.dtype)


def prepare(model: nn.Module, *, inputs: torch.Tensor | None = None, input_shape: tuple[int, ...] | None = None,
            batch_size: int = 64, seed: int = 0, device: torch.device | str | None = None,
            init: str | None = "kaiming_normal_fan_in", memory_format: str = "auto",
            data: DataSource | str | None = None) -> PreparedModel:
    """A ``PreparedModel`` of ``model`` (see the module docstring).

    inputs: the scoring batch; default ``batch_size`` samples of N(0, 1) of shape ``input_shape``,
        drawn after the initialisation from ``torch.Generator().manual_seed(seed)``.
    data: real images instead (a ``datasets.DataSource`` or a path): the first ``batch_size`` images
        and their labels after the shuffle seeded by ``seed``, normalised (``vkdnw_fast.datasets``);
        their size must be ``input_shape`` where it is given.
    init: ``kaiming_normal_fan_in`` (``vkdnw_fast.init``) or None to keep the model's weights.
    device: default where the model lives (else the inputs', else the CPU).
    """
    seed = check_seed(seed)
    device = resolve_device(model, inputs, device)
    generator = torch.Generator().manual_seed(seed)
    work = copy.deepcopy(model)
    state = None
    if init is not None:
        initialise(work.cpu(), init, generator)  # on the CPU: a seed gives the same network everywhere
        state = generator.get_state()
    work.to(device)
    dtype = parameter_dtype(work)
    dataset = labels = None
    if data is not None:
        if inputs is not None:
            raise ValueError("give inputs or data, not both")
        dataset = load_data(data)
        dataset.check(input_shape=input_shape, batch_size=batch_size)
        images, targets = dataset.batch(batch_size, seed)
        inputs, labels = torch.from_numpy(images), torch.from_numpy(targets).to(device)
    elif inputs is None:
        if input_shape is None:
            raise ValueError("give either inputs or input_shape (e.g. input_shape=(3, 32, 32))")
        inputs = draw_gaussian(batch_size, tuple(input_shape), generator, dtype=dtype)
    else:
        if not isinstance(inputs, torch.Tensor) or not inputs.is_floating_point() or inputs.dim() < 2:
            raise ValueError("inputs must be a floating-point tensor (N, ...) with a batch dimension")
        if input_shape is not None and tuple(inputs.shape[1:]) != tuple(input_shape):
            raise ValueError(f"inputs have sample shape {tuple(inputs.shape[1:])}, input_shape says "
                             f"{tuple(input_shape)}")
    inputs = inputs.detach().to(device=device, dtype=dtype)
    if use_channels_last(work, inputs, memory_format):
        work = work.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return PreparedModel(model=work, inputs=inputs, seed=seed, device=device, input_rng_state=state, labels=labels,
                         data=dataset)


@contextlib.contextmanager
def scoring_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode with no parameter requiring grad for the block; modes, flags and
    buffers (the engine may freeze batch statistics into BatchNorm's) as they were afterwards, so
    that a shared prepared model can be scored in place."""
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    saved = [(b, b.clone()) for b in model.buffers()]
    model.eval()
    for param, _ in flags:
        param.requires_grad_(False)
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
        for param, requires_grad in flags:
            param.requires_grad_(requires_grad)
        with torch.no_grad():
            for buffer, value in saved:
                buffer.copy_(value)


def check_batchnorm(module: nn.Module, name: str) -> None:
    """BatchNorm couples the samples unless it normalises with fixed (running) statistics."""
    if module.training:
        raise ValueError(f"{type(module).__name__} '{name}' is in training mode: batch "
                         "statistics couple the samples, so per-sample gradients are undefined")
    if module.running_mean is None:
        raise ValueError(f"{type(module).__name__} '{name}' has track_running_stats=False "
                         "and normalises with batch statistics even in eval mode; samples interact")


def check_sample_independence(model: nn.Module) -> None:
    """Per-sample gradients need samples that do not interact; BatchNorm is the usual culprit."""
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            check_batchnorm(module, name)


def check_logits(output: Any, model: nn.Module, *, min_classes: int = 2, finite: bool = True) -> torch.Tensor:
    """The (N, C) logits ``model`` returned, C >= ``min_classes`` (the Fisher information needs 2) and
    all finite with ``finite``; a clear error naming the model otherwise."""
    name = type(model).__name__
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"{name} returned {type(output).__name__}; scoring needs the logits as one (N, C) "
                        "tensor: wrap the model so that forward returns them")
    if output.dim() != 2:
        raise ValueError(f"{name} returned logits of shape {tuple(output.shape)}; expected (N, C)")
    if output.shape[1] < min_classes:
        raise ValueError(f"{name} returned C={output.shape[1]} logits; at least {min_classes} classes are "
                         "needed (the Fisher information of a classifier needs 2)")
    if finite:
        bad = ~torch.isfinite(output.detach())
        if bad.any():
            raise ValueError(f"{name} produced {int(bad.sum())} non-finite logits out of {output.numel()} "
                             f"(first at sample {int(bad.nonzero()[0, 0])}); the Fisher information is undefined")
    return output


__all__ = ["PreparedModel", "prepare", "scoring_mode", "check_batchnorm", "check_sample_independence", "check_logits",
           "check_seed", "resolve_device", "use_channels_last", "parameter_dtype", "MEMORY_FORMATS"]

"""What every proxy receives: one prepared network and batch (``vkdnw_fast.prepare``), shared by
all proxies of one evaluation, plus the seeded randomness a proxy may need.

Randomness. Everything is drawn from local ``torch.Generator``s derived from ``seed``:

* the initialisation draws from ``Generator().manual_seed(seed)`` (on the CPU), and the Gaussian
  batch continues that same stream (as the authors' scripts do: init, then ``torch.randn``).
  ``ctx.gaussian_inputs(b)`` replays the stream from that point, so a batch of another size starts
  with the same draws;
* ``ctx.generator()`` (Rademacher vectors, random labels) is seeded from ``(seed, stream)``
  through ``numpy.random.SeedSequence``, so its draws are not a copy of the init's stream.

Real data (``data=``, ``vkdnw_fast.datasets``) replaces the Gaussian batch by real images and the
random labels by theirs (``ctx.labels``); ``ctx.batch_inputs(b)`` then takes b real images.
"""
from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from ..config import FisherConfig, resolve_config
from ..datasets import DataSource
from ..prepare import PreparedModel, check_logits, pick_logits, prepare

# ``init`` of build_context/compute_proxies when not given: the Fisher config's.
FROM_CONFIG = "from_config"
# Stream tags mixed with the seed by SeedSequence; arbitrary but fixed.
PROXY_STREAM = 0x50524F58  # ctx.generator()
GLOBAL_STREAM = 0x474C4F42  # torch's global generator inside compute_proxies


def as_logits(output: Any, model: nn.Module, logits: Any = None) -> torch.Tensor:
    """The (N, C) logits in a model's output (``logits``: where, as ``prepare.pick_logits`` takes it;
    a proxy passes ``ctx.prepared.logits``), whatever their values (a proxy decides what to make of
    non-finite ones); a clear error for anything else."""
    return check_logits(output, model, logits=logits, min_classes=1, finite=False)


def as_output(output: Any, model: nn.Module, logits: Any = None) -> torch.Tensor:
    """The batch-first output tensor of a model (``logits`` picks it as in ``as_logits``), of any
    shape: what the proxies that sum or differentiate the whole output take (SynFlow, Jacov, the
    NTK), so that networks with dense outputs (segmentation, images) are scored as well."""
    output = pick_logits(output, logits, model)
    if not isinstance(output, torch.Tensor) or output.dim() < 2:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"{type(model).__name__} returned {shape}; expected a batch-first tensor (N, ...)")
    return output


def derived_seed(seed: int, stream: int) -> int:
    return int(np.random.SeedSequence([seed, stream]).generate_state(1, dtype=np.uint64)[0])


class ArchitectureSpace(Protocol):
    """What a context uses of a search space: the task, and the analytic size of an architecture."""

    input_shape: tuple[int, ...]
    num_classes: int

    def cost(self, arch: str) -> dict[str, float]: ...


@dataclass
class ProxyContext:
    """What a proxy gets. ``prepared`` (model and batch) is shared by all proxies of one evaluation:
    a proxy must not change ``model``'s weights, buffers or mode (work on ``copy_model()``).

    num_classes: the number of logits; None for a network without class logits (a dense output,
        e.g. a segmentation decoder's), which only the label-free proxies score.
    arch, space: the architecture and its search space, when the network is one (``space.cost``
        gives its analytic FLOPs).
    fisher_config: the Fisher proxies' configuration (a FisherConfig; None gives the default
        preset, a string names a preset); its ``init`` and ``memory_format`` are the preparation's.
    cache: results shared between proxies of one evaluation (the Fisher result, AZ-NAS's forward).
    """

    prepared: PreparedModel
    num_classes: int | None = None
    arch: str | None = None
    space: ArchitectureSpace | None = None
    fisher_config: FisherConfig | str | None = None
    cache: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fisher_config = resolve_config(self.fisher_config)
        if self.prepared.data is not None and self.num_classes is not None:
            self.prepared.data.check(num_classes=self.num_classes, what=self.describe())

    @property
    def model(self) -> nn.Module:
        """The initialised network, on ``device``, in the mode the caller's model was in."""
        return self.prepared.model

    @property
    def inputs(self) -> torch.Tensor:
        """The scoring batch, (64, 3, R, R) by default, on ``device``."""
        return self.prepared.inputs

    @property
    def seed(self) -> int:
        return self.prepared.seed

    @property
    def device(self) -> torch.device:
        return self.prepared.device

    def classes(self) -> int:
        """``num_classes``, or a clear error for a network without class logits."""
        if self.num_classes is None:
            raise ValueError(f"it needs class logits (a loss against labels), and {self.describe()} has none "
                             f"(a dense output: the label-free proxies score it)")
        return self.num_classes

    def copy_model(self) -> nn.Module:
        """A deep copy of ``model``, free to be changed."""
        return copy.deepcopy(self.model)

    @property
    def labels(self) -> torch.Tensor | None:
        """The real labels of ``inputs`` when they come from a dataset, else None."""
        return self.prepared.labels

    def gaussian_inputs(self, batch_size: int) -> torch.Tensor:
        """A Gaussian batch of ``batch_size`` samples shaped like ``inputs``, from the same stream."""
        return self.prepared.gaussian_inputs(batch_size)

    def batch_inputs(self, batch_size: int) -> torch.Tensor:
        """A batch of ``batch_size`` samples from the source of ``inputs``: real images where
        they are real, else ``gaussian_inputs``."""
        return self.prepared.batch_inputs(batch_size)

    def generator(self) -> torch.Generator:
        """A fresh CPU generator, seeded from ``seed``; every call gives the same stream."""
        return torch.Generator().manual_seed(derived_seed(self.seed, PROXY_STREAM))

    def describe(self) -> str:
        """How error messages name the network."""
        return f"arch {self.arch!r}" if self.arch is not None else f"a {type(self.model).__name__}"


def build_context(model: nn.Module, *, inputs: torch.Tensor | None = None,
                  input_shape: tuple[int, ...] | None = None, batch_size: int = 64,
                  num_classes: int | None = None, seed: int = 0,
                  device: torch.device | str | None = None, arch: str | None = None,
                  space: ArchitectureSpace | None = None, fisher_config: FisherConfig | str | None = None,
                  init: str | None = FROM_CONFIG, logits: Any = None,
                  data: DataSource | str | None = None) -> ProxyContext:
    """The context ``compute_proxies`` evaluates proxies on (see there for the arguments).

    Prepares ``model`` once (``vkdnw_fast.prepare``: a copy initialised from ``seed``, the batch,
    the memory format of ``fisher_config``: channels-last for convolutional models on CPU, which
    changes values only by rounding). ``init`` (a method, or None to keep the weights) overrides
    ``fisher_config.init``, which is then replaced by it, so that every proxy, the Fisher ones
    included, sees one initialisation.
    """
    config = resolve_config(fisher_config)
    if init != FROM_CONFIG:
        config = dataclasses.replace(config, init=init)
    if inputs is None and input_shape is None:
        if space is None and data is None:
            raise ValueError("give inputs, input_shape, space or data, so the input batch's shape is known")
        input_shape = space.input_shape if space is not None else None
    prepared = prepare(model, inputs=inputs, input_shape=input_shape, batch_size=batch_size, seed=seed,
                       device=device, init=config.init, memory_format=config.memory_format, logits=logits,
                       data=data)
    if num_classes is None:
        num_classes = space.num_classes if space is not None else _count_classes(prepared)
    return ProxyContext(prepared=prepared, num_classes=None if num_classes is None else int(num_classes),
                        arch=arch, space=space,
                        fisher_config=config)


def _count_classes(prepared: PreparedModel) -> int | None:
    """The number of logits, from one sample in eval mode (which leaves BatchNorm's buffers alone);
    None for an output of more than two dimensions (a dense map, for the label-free proxies)."""
    model = prepared.model
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            output = as_output(model(prepared.inputs[:1]), model, prepared.logits)
            return as_logits(output, model).shape[1] if output.dim() == 2 else None
    finally:
        for module, training in modes:
            module.training = training

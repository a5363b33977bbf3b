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
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

from .config import MEMORY_FORMATS
from .datasets import DataSource, Dataset
from .datasets import load as load_data
from .hooks import removing
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


def float_dtype(model: nn.Module, inputs: torch.Tensor) -> torch.dtype:
    """The dtype of gradients and tangents: the inputs', or the model's when they are integer ids."""
    return inputs.dtype if inputs.is_floating_point() else parameter_dtype(model)


def is_token_ids(inputs: torch.Tensor) -> bool:
    """Integer inputs (token ids for an nn.Embedding), kept integer: never cast to the float dtype."""
    return not inputs.is_floating_point() and not inputs.is_complex() and inputs.dtype != torch.bool


@dataclass
class PreparedModel:
    """An initialised copy of a network and its scoring batch.

    model: the copy, on ``device``, in the memory format chosen, in the mode the caller's model was
        in, its parameters requiring grad as the caller's did.
    inputs: the scoring batch (N, ...) on ``device``, in the model's dtype and memory format; or
        integer token ids (N, L), kept integer.
    seed: what the initialisation and the batch were drawn from.
    input_rng_state: the CPU generator's state right after the initialisation (None when no
        initialisation drew from it), from which ``gaussian_inputs`` replays the batch stream.
    logits: where the logits are in the model's output (``pick_logits``); None for a bare tensor
        or an unambiguous structure.
    labels: the real labels of ``inputs`` (N,) on ``device`` when they come from a dataset, else None
        (proxies needing labels then draw random ones, ``proxies.batches``).
    data: that dataset, from which ``batch_inputs`` takes batches of other sizes.
    """

    model: nn.Module
    inputs: torch.Tensor
    seed: int
    device: torch.device
    input_rng_state: torch.Tensor | None = field(default=None, repr=False)
    logits: Any = None
    labels: torch.Tensor | None = field(default=None, repr=False)
    data: Dataset | None = field(default=None, repr=False)

    def copy_model(self) -> nn.Module:
        """A deep copy of ``model``, free to be changed."""
        return copy.deepcopy(self.model)

    def gaussian_inputs(self, batch_size: int) -> torch.Tensor:
        """A Gaussian batch of ``batch_size`` samples shaped like ``inputs``, drawn from the same stream
        as the default batch (so its first samples are the default batch's), on ``device``."""
        if is_token_ids(self.inputs):
            raise ValueError(f"the scoring batch is integer ids {tuple(self.inputs.shape)} ({self.inputs.dtype}): "
                             "a batch of Gaussian noise shaped like it is undefined")
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
            logits: Any = None, data: DataSource | str | None = None, copy_model: bool = True) -> PreparedModel:
    """A ``PreparedModel`` of ``model`` (see the module docstring).

    inputs: the scoring batch; default ``batch_size`` samples of N(0, 1) of shape ``input_shape``,
        drawn after the initialisation from ``torch.Generator().manual_seed(seed)``. Integer inputs
        (token ids (N, L) for a model that starts with an nn.Embedding) stay integer.
    data: real images instead (a ``datasets.DataSource`` or a path): the first ``batch_size`` images
        and their labels after the shuffle seeded by ``seed``, normalised (``vkdnw_fast.datasets``);
        their size must be ``input_shape`` where it is given.
    init: ``kaiming_normal_fan_in`` (``vkdnw_fast.init``) or None to keep the model's weights.
    device: default where the model lives (else the inputs', else the CPU).
    logits: where the logits are in the model's output (``pick_logits``), kept for every scorer.
    copy_model: False prepares ``model`` itself (initialised, moved and converted in place), for a
        caller that built it for this one use; a deep copy of a cell network costs about 5% of its score.
    """
    seed = check_seed(seed)
    device = resolve_device(model, inputs, device)
    generator = torch.Generator().manual_seed(seed)
    work = copy.deepcopy(model) if copy_model else model
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
        check_takes_floats(work, inputs.to(device))
    else:
        if not isinstance(inputs, torch.Tensor) or inputs.dim() < 2 or \
                not (inputs.is_floating_point() or is_token_ids(inputs)):
            raise ValueError("inputs must be a floating-point tensor (N, ...) or integer token ids (N, L), with a "
                             "batch dimension")
        if input_shape is not None and tuple(inputs.shape[1:]) != tuple(input_shape):
            raise ValueError(f"inputs have sample shape {tuple(inputs.shape[1:])}, input_shape says "
                             f"{tuple(input_shape)}")
    inputs = inputs.detach().to(device=device, dtype=inputs.dtype if is_token_ids(inputs) else dtype)
    if use_channels_last(work, inputs, memory_format):
        work = work.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    return PreparedModel(model=work, inputs=inputs, seed=seed, device=device, input_rng_state=state, logits=logits,
                         labels=labels, data=dataset)


class _FirstLookUp(Exception):
    def __init__(self, module: nn.Module, floats: bool):
        super().__init__()
        self.module, self.floats = module, floats


def check_takes_floats(model: nn.Module, inputs: torch.Tensor) -> None:
    """Refuse Gaussian noise for a model whose first nn.Embedding it would reach (a text model takes
    token ids). Only for models with an nn.Embedding: one no-grad forward of one sample, in eval mode
    and with buffers restored, stopped at the first look-up; any other failure is left to the scorers,
    which report it."""
    embeddings = {m: name for name, m in model.named_modules() if isinstance(m, nn.Embedding)}
    if not embeddings:
        return

    def stop(module, args):
        raise _FirstLookUp(module, args[0].is_floating_point())
    try:
        with scoring_mode(model), removing([m.register_forward_pre_hook(stop) for m in embeddings]), torch.no_grad():
            model(inputs[:1])
    except _FirstLookUp as first:
        if first.floats:
            raise ValueError(f"{type(model).__name__}'s nn.Embedding '{embeddings[first.module]}' would look up the "
                             f"Gaussian noise that input_shape= draws; pass its token ids as inputs= (an integer "
                             f"tensor (N, L))") from None
    except Exception:  # noqa: BLE001 - the model's own failure, reported by the scorers with context
        pass


def _tf32_switches() -> list[tuple[Any, str, Any]]:
    """(owner, attribute, full-precision value) of the switches that let CUDA round float32 to TF32."""
    conv = getattr(torch.backends.cudnn, "conv", None)
    if hasattr(conv, "fp32_precision"):  # torch >= 2.9; mixing in the legacy flags would make torch raise
        return [(conv, "fp32_precision", "ieee"), (torch.backends.cuda.matmul, "fp32_precision", "ieee")]
    return [(torch.backends.cudnn, "allow_tf32", False), (torch.backends.cuda.matmul, "allow_tf32", False)]


@contextlib.contextmanager
def ieee_float32() -> Iterator[None]:
    """Float32 convolutions and matrix products at full precision for the block, the caller's settings
    restored afterwards. PyTorch lets cuDNN convolve float32 in TF32 (a 10-bit mantissa) by default: on an H200
    that put eight NB201 VKDNW scores 4.5e-4 to 3.6e-3 (relative) off the CPU's, where two CPU memory formats
    agree to 1e-8 to 1.5e-4 (docs/method.md, "Precision"). A score must not depend on the device."""
    switches = _tf32_switches()
    saved = [getattr(owner, name) for owner, name, _ in switches]
    try:
        for owner, name, value in switches:
            setattr(owner, name, value)
        yield
    finally:
        for (owner, name, _), value in zip(switches, saved):
            setattr(owner, name, value)


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


def _leaves(value: Any) -> list[torch.Tensor]:
    """The tensors in a module's arguments or output (nested tuples, lists, dicts, dataclasses)."""
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, (tuple, list)):
        return [leaf for item in value for leaf in _leaves(item)]
    return []


def _others(value: Any, n: int) -> list[torch.Tensor]:
    """Copies of the samples 1.. of every batched tensor in ``value``."""
    return [t[1:].detach().clone() for t in _leaves(value) if t.dim() > 0 and t.shape[0] == n]


def same_up_to(dtype: torch.dtype) -> float:
    """Relative difference (to the largest magnitude) below which two computations of one value are
    the same: float64 is bitwise reproducible in practice; lower precisions allow for a kernel
    choosing another algorithm (TF32 on GPUs rounds to 10 mantissa bits). A real dependence (a mixed
    batch of two, another stride or padding) moves values by far more."""
    return 1e-9 if dtype == torch.float64 else 1e-3


def _changed(before: list[torch.Tensor], after: list[torch.Tensor]) -> bool:
    for a, b in zip(before, after):
        if a.shape != b.shape:
            return True
        if a.numel() == 0:
            continue
        if a.is_floating_point():
            if float((a - b).abs().max()) > same_up_to(a.dtype) * float(a.abs().max()):
                return True
        elif not torch.equal(a, b):
            return True
    return False


@contextlib.contextmanager
def no_attention_fastpath() -> Iterator[None]:
    """The inference fast path of nn.MultiheadAttention and the Transformer layers off (one fused
    kernel, taken when nothing requires grad, as on token ids or before the engine's first tap): their
    submodules and F.linear calls then run, where the probe and the engine's taps see them."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def _forward_with_grad(model: nn.Module, batch: torch.Tensor, hooks: list) -> Any:
    """One forward with grad, as the engine's: no attention fast path, so the submodules the engine
    will see are called."""
    with removing(hooks), torch.enable_grad(), no_attention_fastpath():
        return model(batch.detach().clone().requires_grad_(batch.is_floating_point()))


class _Locator:
    """Hooks recording, per module call in order, samples 1.. of its inputs and outputs (first run),
    then comparing the second run's against them, raising at the first that moved."""

    def __init__(self, model: nn.Module, n: int):
        self.model, self.n = model, n
        self.names = {module: name for name, module in reversed(list(model.named_modules()))}
        self.reference: list[list[torch.Tensor]] | None = None
        self.events: list[list[torch.Tensor]] = []
        self.stack: list[nn.Module] = []

    def run(self, batch: torch.Tensor) -> None:
        self.events, self.stack = [], []
        hooks = [m.register_forward_pre_hook(self.before, with_kwargs=True) for m in self.names]
        hooks += [m.register_forward_hook(self.after, with_kwargs=True) for m in self.names]
        _forward_with_grad(self.model, batch, hooks)
        self.reference = self.events

    def describe(self, module: nn.Module) -> str:
        name = self.names[module]
        return f"{type(module).__name__} '{name}'" if name else f"the model's own forward ({type(module).__name__})"

    def step(self, value: Any, where) -> None:
        seen = _others(value, self.n)
        i = len(self.events)
        self.events.append(seen)
        if self.reference is not None and i < len(self.reference) and _changed(self.reference[i], seen):
            raise _interaction(where())

    def before(self, module, args, kwargs):
        parent = self.stack[-1] if self.stack else None
        self.step((args, kwargs), lambda: f"input of {self.describe(module)}: "
                  f"{self.describe(parent) if parent is not None else 'the code calling the model'} "
                  "mixes the samples before calling it")
        self.stack.append(module)

    def after(self, module, args, kwargs, output):
        self.stack.pop()
        self.step(output, lambda: f"output of {self.describe(module)}, the first module where it happens")


def _interaction(where: str) -> ValueError:
    return ValueError(f"samples interact: replacing sample 0 of the batch changes sample 1's {where}; "
                      "per-sample gradients (the Fisher information of each sample) need every sample's "
                      "output to depend on that sample alone (no batch statistics, no mixing along the "
                      "batch dimension)")


class ModulesCalled(set):
    """The modules a forward calls. ``not_batch_first``: those among them whose first tensor argument
    does not hold the samples along its first dimension (a sequence-first layer, a batch folded with
    patches), with that argument's shape and the batch size; a sampler's per-sample reduction, which
    reads the samples along the first dimension, does not apply to them."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n
        self.not_batch_first: dict[nn.Module, str] = {}

    def record(self, module: nn.Module, args: tuple) -> None:
        self.add(module)
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if first is not None and (first.dim() == 0 or first.shape[0] != self.n):
            self.not_batch_first[module] = f"an input of shape {tuple(first.shape)} for a batch of {self.n}"


def probe_forward(model: nn.Module, inputs: torch.Tensor, *, seed: int = 0) -> ModulesCalled:
    """Check that the samples of a batch do not interact, and return the modules the forward calls
    (``ModulesCalled``, which also names those not called on batch-first tensors).

    Per-sample gradients need sample n's output to depend on sample n alone. BatchNorm in
    training mode or without running statistics is named at once; anything else (a layer mixing
    the batch dimension, ``x - x.mean(0)``) is found by one probe: two forwards of two samples, the
    first sample replaced by seeded noise (token ids: seeded ids drawn from those of ``inputs``) in
    the second, comparing the second sample's output. Only when it moved, two more forwards record
    every module's inputs and outputs for that sample to name the first module whose output moves,
    or, when a module's input already moved, the module whose own forward passed it on. Costs two forwards of two samples: 0.12-0.18 of one forward of
    64 on NB201 networks (CPU, 1 thread), about 1% of a ``paper`` score.
    """
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            check_batchnorm(module, name)
    n = min(2, inputs.shape[0])
    called = ModulesCalled(n)
    x = inputs[:n]
    first = _others(_forward_with_grad(model, x, [m.register_forward_pre_hook(called.record)
                                                  for m in model.modules()]), n)
    if n == 2:
        perturbed = x.detach().clone()
        generator = torch.Generator().manual_seed(seed)
        if x.is_floating_point():
            noise = torch.randn(x[0].shape, generator=generator, dtype=torch.float64)
            perturbed[0] = noise.to(device=x.device, dtype=x.dtype)
        else:
            # Other ids, drawn from those of the whole batch: each is known to be an input the model takes,
            # whatever it does with them (offsets, several tables, a padding id), which a range such as
            # [0, the smallest num_embeddings) is not.
            values = inputs.unique()
            perturbed[0] = values[torch.randint(len(values), x[0].shape, generator=generator).to(values.device)]
        if _changed(first, _others(_forward_with_grad(model, perturbed, []), n)):
            locator = _Locator(model, n)
            locator.run(x)
            locator.run(perturbed)
            raise _interaction(f"output of {type(model).__name__} (no single module to blame)")
    return called


def describe_output(value: Any, depth: int = 0) -> str:
    """A model output's structure for error messages: ``tuple(Tensor(6, 8), Tensor(6, 10))``."""
    if isinstance(value, torch.Tensor):
        return f"Tensor{tuple(value.shape)}"
    if depth == 3:
        return "..."
    if isinstance(value, dict):
        return f"{type(value).__name__}(" + ", ".join(f"{k!r}: {describe_output(v, depth + 1)}"
                                                      for k, v in value.items()) + ")"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return f"{type(value).__name__}(" + ", ".join(f"{f.name}={describe_output(getattr(value, f.name), depth + 1)}"
                                                      for f in dataclasses.fields(value)) + ")"
    if isinstance(value, (tuple, list)):
        return f"{type(value).__name__}(" + ", ".join(describe_output(v, depth + 1) for v in value) + ")"
    return type(value).__name__


class OutputError(TypeError):
    """A model's output does not say where its logits are (a user's error, not a bug: the CLI reports it)."""


def pick_logits(output: Any, logits: Any = None, model: nn.Module | None = None) -> Any:
    """The logits in a model's ``output``.

    ``logits``: None for a bare tensor, else the output's ``logits`` key or attribute (a dict, a
    dataclass, Hugging Face's ModelOutput, torchvision's InceptionOutputs) or its only tensor; a
    key (str, or an int index into a tuple), an attribute name, or a callable taking the output.
    Anything ambiguous or missing is an error naming the output's structure.
    """
    name = type(model).__name__ if model is not None else "the model"

    def fail(problem: str) -> OutputError:
        return OutputError(f"{name} returned {describe_output(output)}: {problem}; pass logits= (a key, an index, "
                         "an attribute name, or a callable taking the output) to say where the (N, C) logits are")

    if callable(logits):
        return logits(output)
    if logits is not None:
        try:
            if isinstance(output, dict) or (isinstance(logits, int) and isinstance(output, (tuple, list))):
                return output[logits]
            if isinstance(logits, str):
                return getattr(output, logits)
        except (KeyError, IndexError, AttributeError):
            raise fail(f"it has no {logits!r}") from None
        raise fail(f"logits={logits!r} does not apply to a {type(output).__name__}")
    if isinstance(output, torch.Tensor):
        return output
    named = output.get("logits") if isinstance(output, dict) else getattr(output, "logits", None)
    if isinstance(named, torch.Tensor):
        return named
    tensors = _leaves(output) if isinstance(output, (tuple, list, dict)) or dataclasses.is_dataclass(output) else []
    if len(tensors) == 1:
        return tensors[0]
    raise fail("which part is the logits is ambiguous" if tensors else "it holds no tensor")


def check_logits(output: Any, model: nn.Module, *, logits: Any = None, min_classes: int = 2,
                 finite: bool = True) -> torch.Tensor:
    """The (N, C) logits in ``model``'s output (``pick_logits``), C >= ``min_classes`` (the Fisher
    information needs 2) and all finite with ``finite``; a clear error naming the model otherwise."""
    name = type(model).__name__
    output = pick_logits(output, logits, model)
    if not isinstance(output, torch.Tensor):
        raise TypeError(f"the logits of {name} are a {type(output).__name__}; scoring needs one (N, C) tensor "
                        "(logits= picks it out of a structured output)")
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


__all__ = ["PreparedModel", "prepare", "scoring_mode", "ieee_float32", "check_batchnorm", "probe_forward",
           "ModulesCalled", "check_logits", "pick_logits", "OutputError", "describe_output", "same_up_to", "check_seed",
           "resolve_device", "use_channels_last", "parameter_dtype", "float_dtype", "is_token_ids", "check_takes_floats",
           "no_attention_fastpath",
           "MEMORY_FORMATS"]

"""The Fisher engine (docs/method.md §4): A_n = M_n J_n for a whole batch in a handful of data-only passes.

1. One forward. A hook at every module owning a sampled weight keeps the input channels that
   the sampled coordinates read and splices a *tap* into the graph: an identity on the module's
   output whose backward reduces (kept input, output gradient) to the per-sample gradients of the
   sampled coordinates, with the ``sampled_grad`` op, into a small per-module sink (N, P_m).
2. Data-only backward passes (no parameter requires grad): with the factor rows of every sample
   as cotangents (``rows``), what reaches the sinks is A_n itself. Or, when the logits come from a
   final ``nn.Linear`` z = W h + b with fewer features D than factor rows, D unit cotangents on h
   give H_n = dh_n/dtheta (``features``) and A_n = (M_n W) H_n, the final layer's own sampled
   entries being analytic. Or forward mode with one tangent per sampled weight (``forward``): on CPU
   through the network's tangent map traced once (``linearise``: the primal computed once, each tangent
   run from its own layer on), on GPU by ``jvp`` over blocks of tangents.
3. The general path, for sampled weights no tap can take (no sampler for their module, a module the
   forward never calls or calls on tensors that are not batch-first): forward mode through
   ``functional_call`` with one tangent per such weight gives their columns of J_n, then M_n J_n; or,
   for many such weights, reverse mode per sample (vmap over samples of one vjp with the K factor
   rows), which then takes every column (``per_sample``) when its memory bound allows.
4. Eigenvalues of F = (1/N) sum A_n^T A_n from the singular values of the stacked A (float64).

Memory: the forward keeps what a data-only backward needs (much less than training: no
activations are saved for weight gradients) plus, per sampled module, its input restricted to
the channels the sampled coordinates read (N x |channels| x spatial). Each backward call with c
cotangent rows (vmapped into one backward) needs about c times the activation-gradient memory of
one backward of the batch;
c is ``FisherConfig.pass_chunk`` (1 on CPU, 64 on GPU by default). Forward mode by jvp holds c tangent
copies of the activations (c = 64 on GPU by default); linearised, the primal's intermediates its tangent
ops read (about what a backward's graph keeps) and one tangent's activations. A call that runs out of memory is
retried with half as many rows or tangents, and so on down to one.
"""
from __future__ import annotations

import contextlib
import contextvars
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch
from torch import nn
from torch.func import functional_call, jvp, vjp, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.overrides import TorchFunctionMode

from . import ops
from .config import STRATEGIES, FisherConfig, resolve_config
from .hooks import removing
from .journal import active as active_journal, digest
from .layers import layer_macs, named_layers
from .linearise import Linearised
from .memory import retained_heap
from .prepare import (PreparedModel, check_logits, describe_output, float_dtype, ieee_float32, no_attention_fastpath,
                      pick_logits, prepare, probe_forward, same_up_to, scoring_mode)
from .samplers import ModulePlan, WeightSampler, sampler_for
from .samplers.registry import overridden_methods, registered_base
from .samplers.base import plan_coords
from .selection import SampledWeight, Selection, aleph as count_aleph, select_weights
from .spectrum import fisher_eigenvalues, vkdnw_entropy
from .timing import stage

# Relative cost of one forward-mode tangent by jvp to one data-only backward cotangent on CPU: 0.60-1.11 on NB201
# cells and TransNAS-Bench-101 encoders (bench/results/plan_costs_cpu.json), 0.59-1.33 on an NB201 cell at batch 8
# (plan_costs_b8_cpu.json); the GPU's forward mode, and the CPU's where the linearised map counts more.
_FORWARD_TANGENT_COST = 1.2
# On CPU the linearised map (vkdnw_fast.linearise) is counted by the forward's layer calls L and their
# multiply-accumulates M over the batch (_share_hooks), with the Python each layer call costs in the time of so many
# multiply-accumulates: a cotangent M + 8e6 L; the trace (make_fx over the forward under forward-mode AD, then the
# primal once for the constants: ~4 forwards' work and ~2 ms for each of the 50-75 graph nodes a layer call makes)
# 4 M + 3.2e9 L; a weight's tangent, which runs the network from its layer on through fx's interpreter, the
# multiply-accumulates and 3.9e7 per layer call from that layer's first call on. Measured
# (bench/results/trace_cost_cpu.json, plan_costs_*): the trace 6.4-13.7 cotangents on TransNAS encoders at batch
# 8-16, 24-30 on an NB201 cell at batch 64 and 99-154 at 8, where jvp's blocks took 0.22-0.52 of the linearised
# map's time; at the TransNAS runs' batch of 64 the trace counts 4-10 (it was counted 30 at every size, which made
# forward mode lose to 63 rows on most class_scene macro layouts).
_COTANGENT_PER_CALL = 8e6
_TRACE_FORWARDS = 4.0
_TRACE_PER_CALL = 3.2e9
_TANGENT_PER_CALL = 3.9e7
# Per-sample reverse mode, per factor row, in the same unit: 1.5-1.8 on CPU on a ViT (dim 64, depth 4, 66
# tokens, batch 64; K = 9-10 rows). Its memory, the gradients of the shifted parameter tensors for each
# sample and row of a chunk of samples, is bounded (elements; 0.5 GB in float32).
_PER_SAMPLE_ROW_COST = 1.7
_PER_SAMPLE_GRADIENTS_LIMIT = 2 ** 27
_LEAST_MEMORY: contextvars.ContextVar[bool] = contextvars.ContextVar("vkdnw_least_memory", default=False)
_SAMPLES_AT_MOST: contextvars.ContextVar[int | None] = contextvars.ContextVar("vkdnw_samples_at_most", default=None)
# The most samples per forward under least_memory_plans.
LEAST_MEMORY_SAMPLES = 16


@contextlib.contextmanager
def samples_at_most(samples: int):
    """Inside the block every scoring takes its batch at most ``samples`` samples at a time, as
    ``FisherConfig.sample_chunk`` does (a config's smaller chunk stays), with the plan it would choose anyway:
    what the forward's graph holds shrinks with the chunk, the results agree to rounding. On a TransNAS macro
    layout at batch 64 on CPU, half the batch a chunk peaked at 0.59-0.61 of the whole batch's memory in
    0.97-1.15 of its time, a quarter at 0.36-0.41 in 1.06-1.23 (``bench/results/plan_memory_chunks_tnb64_cpu.json``).
    The local worker pool so fits a large network beside others (``backends.PoolBackend``)."""
    if samples < 1:
        raise ValueError(f"samples_at_most needs at least one sample a chunk, got {samples}")
    token = _SAMPLES_AT_MOST.set(min(samples, _SAMPLES_AT_MOST.get() or samples))
    try:
        yield
    finally:
        _SAMPLES_AT_MOST.reset(token)


@contextlib.contextmanager
def least_memory_plans():
    """Inside the block, ``auto`` takes ``rows`` wherever the model has taps, the plan that holds least, and the batch
    is scored in chunks of at most 16 samples (``samples_at_most``), at whatever cost in time; the results
    agree with the others' to rounding. A TransNAS macro layout at batch 64 peaked at 0.96 GiB so, 1.10x the time of
    rows on the whole batch (2.26 GiB; linearised forward mode 3.15, jvp's blocks 4.65;
    ``bench/results/plan_memory_tnb64_cpu.json``). The worker pools score a candidate that killed its worker so
    (``backends``)."""
    token = _LEAST_MEMORY.set(True)
    try:
        with samples_at_most(LEAST_MEMORY_SAMPLES):
            yield
    finally:
        _LEAST_MEMORY.reset(token)


@dataclass
class FisherResult:
    """What ``score`` returns. ``single`` = aleph + vkdnw (docs/method.md §2). ``weights`` names the sampled
    scalars; ``skipped`` what was left out with the reason: {layer: reason} under weights='layers' (so that
    aleph = num_weights + len(skipped) there), {parameter: reason} under 'parameter_tensors'. ``general``:
    the sampled weights that no sampler's tap could take, computed by the general path, with the reason.
    ``strategy`` describes how the factors were computed; ``plan`` names the engine's pass plan (rows, features,
    forward or per_sample; None where a ``factors_fn`` computed them)."""

    vkdnw: float
    aleph: int
    eigenvalues: torch.Tensor
    quantile_levels: torch.Tensor
    num_weights: int
    strategy: str
    passes: int
    weights: list[str] = field(repr=False)
    config: FisherConfig = field(repr=False)
    skipped: dict[str, str] = field(default_factory=dict, repr=False)
    general: dict[str, str] = field(default_factory=dict, repr=False)
    plan: str | None = None

    @property
    def single(self) -> float:
        return self.aleph + self.vkdnw


@dataclass
class Factors:
    """A (N, K, P) and how it was obtained; ``general``: {weight name: reason} of the columns the
    general path computed; ``plan``: the engine's pass plan (``_choose``), None for other computations."""

    a: torch.Tensor
    strategy: str
    passes: int
    general: dict[str, str] = field(default_factory=dict)
    plan: str | None = None


class _Tap(torch.autograd.Function):
    """Identity on a module output whose backward reduces the output gradient to per-sample
    gradients of the module's sampled coordinates, returned as the gradient of ``sink``."""

    @staticmethod
    def forward(ctx, output, sink, site, *saved):
        ctx.site = site
        ctx.save_for_backward(*saved)
        ctx.mark_dirty(output)  # an identity without a copy; later in-place ops stay legal
        return output

    @staticmethod
    def backward(ctx, grad_output):
        site = ctx.site
        grads = site.sampler.grads(site.module, site.plan, ctx.saved_tensors, grad_output)
        return (grad_output, grads, None) + (None,) * len(ctx.saved_tensors)


@dataclass
class _Site:
    module: nn.Module
    sampler: WeightSampler
    plan: ModulePlan
    sink: torch.Tensor
    calls: int = 0  # taps spliced in this forward (a module called twice is tapped twice; the sink sums)
    misfit: str | None = None  # why a call could not be tapped (then the general path takes the module)

    def tap(self, output: torch.Tensor, args: tuple) -> torch.Tensor:
        self.calls += 1
        n, x = self.sink.shape[0], args[0] if args else None
        if not (isinstance(x, torch.Tensor) and x.dim() and x.shape[0] == n
                and isinstance(output, torch.Tensor) and output.dim() and output.shape[0] == n):
            # The sampler reduces over everything but dimension 0; the general path takes this module.
            self.misfit = (f"it is called on {describe_output(x)} giving {describe_output(output)} for a batch of "
                           f"{n} (samples not along the first dimension), which its sampler cannot reduce")
            return output
        return _Tap.apply(output, self.sink, self, *self.sampler.capture(self.module, self.plan, args))

    def tap_call(self, output: torch.Tensor, saved: tuple) -> torch.Tensor:
        """The tap on the output of a call inside the module's forward (``WeightSampler.taps_calls``)."""
        self.calls += 1
        return _Tap.apply(output, self.sink, self, *saved)

    def refuse(self, reason: str) -> None:
        self.calls += 1
        self.misfit = reason

    def describe(self) -> str:
        return f"{type(self.module).__name__} '{self.plan.module_name}'"


class _OpTap(TorchFunctionMode):
    """Active during the forward of a module whose class overrides methods of its registered base
    class (e.g. a BatchNorm2d subclass applying an activation inside ``forward``). The module's
    output is then not the base's, but the op that applies the module's own parameters to an input
    (``batch_norm(x, ..., self.weight, self.bias)``) still is the base's forward on that input: the
    tap sits on that op's output, with that op's input, once this is verified on the values (when
    it fails, the general path takes the module)."""

    def __init__(self, site: _Site):
        super().__init__()
        self.site = site
        self.params = [p for p in site.module._parameters.values() if p is not None]
        self.base = registered_base(site.module)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        output = func(*args, **kwargs)
        operands = (*args[1:], *kwargs.values())
        if not (args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor)
                and any(a is p for a in operands for p in self.params)):
            return output
        module = self.site.module
        with torch.no_grad():
            expected = self.base.forward(module, args[0])  # this mode is off inside its own handler
        scale = float(expected.abs().max()) if expected.numel() else 0.0
        if expected.shape != output.shape or \
                float((output.detach() - expected).abs().max()) > same_up_to(output.dtype) * scale:
            # The sampler's per-sample gradients would be wrong here: the general path takes the module.
            self.site.calls += 1
            self.site.misfit = (
                f"{type(module).__name__} overrides {self.base.__name__}.{'/'.join(overridden_methods(module))} and "
                f"applies its parameters with {getattr(func, '__name__', func)} differently from "
                f"{self.base.__name__}.forward (another output for the same input), so the {self.base.__name__} "
                "sampler does not apply")
            return output
        return self.site.tap(output, (args[0],))


class _Patched:
    """``module.forward`` replaced by ``forward`` until ``remove()`` (a handle for ``removing``)."""

    def __init__(self, module: nn.Module, forward):
        self.module, self.saved = module, module.__dict__.get("forward")
        module.forward = forward

    def remove(self) -> None:
        if self.saved is None:
            del self.module.forward
        else:
            self.module.forward = self.saved


def _tap_sampled_module(site: _Site):
    """Splice the site's tap into every call of its module: on the calls inside its forward that apply
    its parameters when its sampler says so, on the module's output when its class computes what the
    registered base class does, else on the op applying its parameters."""
    if site.sampler.taps_calls:
        original = site.module.forward

        def forward(*args, **kwargs):
            return site.sampler.tapped_forward(site.module, site.plan, site.sink.shape[0], original, args, kwargs,
                                               site.tap_call, site.refuse)
        return _Patched(site.module, forward)
    if not overridden_methods(site.module):
        return site.module.register_forward_hook(lambda mod, args, output: site.tap(output, args))
    original = site.module.forward

    def forward(*args, **kwargs):
        with _OpTap(site):
            return original(*args, **kwargs)
    return _Patched(site.module, forward)


def _freeze_batch_statistics(module, args):
    """Forward pre-hook: the BatchNorm's statistics of the scoring batch (biased variance) go into
    its buffers just before it runs, so the eval-mode output equals the train-mode output while no
    gradient flows between samples."""
    x = args[0].detach()
    dims = [0] + list(range(2, x.dim()))
    with torch.no_grad():
        mean = x.mean(dims, keepdim=True)
        module.running_mean.copy_(mean.flatten())
        # Two passes: as accurate as Tensor.var here and 5x faster on channels-last CPU tensors.
        module.running_var.copy_((x - mean).square().mean(dims))


def batch_statistics_hooks(model: nn.Module, config: FisherConfig) -> list:
    """The pre-hooks that freeze batch statistics when ``config.batchnorm == 'batch'``."""
    if config.batchnorm != "batch":
        return []
    return [m.register_forward_pre_hook(_freeze_batch_statistics) for m in model.modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _group_by_module(model: nn.Module, weights: list[SampledWeight], device) -> list[tuple[nn.Module, ModulePlan]]:
    """The tap plans of the weights a sampler takes (not those marked for the general path)."""
    modules = dict(model.named_modules())
    coords: dict[str, list] = {}
    for column, weight in enumerate(weights):
        if weight.general is None:
            coords.setdefault(weight.module_name, []).append((weight.coord, column))
    plans = []
    for module_name, entries in coords.items():
        module = modules[module_name]
        sampler_for(module).check(module, module_name)
        plans.append((module, plan_coords(module_name, [c for c, _ in entries], [col for _, col in entries], device)))
    return plans


def _choose(config: FisherConfig, rows: int, features: int | None, forward_cost: float, general_cost: float,
            per_sample_fits: bool) -> str:
    """The cheapest plan; the general path's cost adds to the backward plans (forward mode takes all
    columns itself, and so does per-sample reverse mode, ``per_sample``, when its memory bound allows)."""
    if config.strategy != "auto":
        return config.strategy
    if _LEAST_MEMORY.get():
        return "rows"
    costs = {"rows": rows + general_cost, "forward": forward_cost}
    if features is not None:
        costs["features"] = features + general_cost
    if per_sample_fits:
        costs["per_sample"] = _PER_SAMPLE_ROW_COST * rows
    return min(costs, key=costs.get)  # ties keep the first: rows


def _out_of_memory(error: BaseException) -> bool:
    """A device's out-of-memory error, or the CPU allocator's, which torch raises as a plain RuntimeError
    (under an address-space limit, ``ulimit -v``, as batch schedulers set)."""
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and "DefaultCPUAllocator: can't allocate memory" in str(error))


def _in_blocks(total: int, chunk: int, run: Callable[[int, int], torch.Tensor],
               keep: Callable[[int, int, torch.Tensor], None], fingerprint: Callable[[], str],
               device: torch.device) -> None:
    """``keep(start, size, run(start, size))`` over [0, total) in blocks of at most ``chunk``. A block that
    runs out of memory is retried at half its size, and the smaller size kept for the rest: a model at a high
    resolution, or with hundreds of classes, fits the GPU it is scored on (or a CPU process's memory limit)
    without a chosen chunk. Under a journal (``journal.journaled``) each finished block is saved, and the
    blocks saved for the same computation (``fingerprint()``, which the chunk joins) are taken instead of run,
    the rest run at the size the last of them had (after an out-of-memory error, a smaller one: the size of a
    vmapped block can change its bits)."""
    journal = active_journal()
    log = None if journal is None else journal.next_log(digest(fingerprint(), f"chunk {chunk}"))
    start = 0
    if log is not None:
        finished = log.finished(device)
        journal.taken += len(finished)
        for begin, size, block in finished:
            keep(begin, size, block)
            start, chunk = begin + size, size
    while start < total:
        size = min(chunk, total - start)
        try:
            block = run(start, size)
        except (RuntimeError, MemoryError) as error:
            if size == 1 or not _out_of_memory(error):
                raise
            chunk = size // 2
        else:
            keep(start, size, block)
            if log is not None:
                log.save(start, size, block)
            start += size
            continue
        # Outside the handler, whose traceback holds the failed block's tensors.
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _stacked_blocks(total: int, chunk: int, run: Callable[[int, int], torch.Tensor], fingerprint: Callable[[], str],
                    device: torch.device) -> torch.Tensor:
    """``_in_blocks`` keeping every block (they come in order): their concatenation along the first dimension."""
    blocks: list[torch.Tensor] = []
    _in_blocks(total, chunk, run, lambda start, size, block: blocks.append(block), fingerprint, device)
    return torch.cat(blocks)


def _backward_passes(outputs: torch.Tensor, sites: list[_Site], cotangents: torch.Tensor,
                     chunk: int, num_weights: int) -> torch.Tensor:
    """Per-sample gradients of the sampled weights for each cotangent row.

    cotangents: (R, N, *outputs.shape[1:]); returns (N, R, P) with zeros for sites that the
    output does not depend on. Blocks of up to ``chunk`` rows (fewer after an out-of-memory
    error, ``_in_blocks``) run as one backward under ``torch.func.vmap`` (not
    ``is_grads_batched``, whose legacy vmap cannot batch view ops like ``flatten`` and ignores the
    ops' registered vmap rules).
    """
    rows, n = cotangents.shape[0], cotangents.shape[1]
    result = outputs.new_zeros(n, rows, num_weights)
    sinks = [site.sink for site in sites]

    def run(start: int, size: int) -> None:
        block = cotangents[start:start + size]
        # A block of several rows may fail part-way and be retried smaller: keep the graph for it.
        retain = start + size < rows or size > 1

        def pull(cotangent):
            grads = torch.autograd.grad(outputs, sinks, cotangent, retain_graph=retain, allow_unused=True)
            return tuple(torch.zeros_like(s) if g is None else g for s, g in zip(sinks, grads))

        if size == 1:
            grads = [g.unsqueeze(0) for g in pull(block[0])]
        else:
            with warnings.catch_warnings():
                # Backward kernels without a batching rule (flash attention's on CPU) loop over the block's
                # rows, each as fast as an unchunked pass: correct, and the note is noise.
                warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet")
                grads = vmap(pull)(block)
        columns = outputs.new_zeros(size, n, num_weights)
        for site, grad in zip(sites, grads):
            columns[:, :, site.plan.columns] = grad
        return columns

    def keep(start: int, size: int, columns: torch.Tensor) -> None:
        result[:, start:start + size] = columns.transpose(0, 1)

    sampled = ";".join(f"{type(site.module).__name__}{site.plan.columns}" for site in sites)
    _in_blocks(rows, chunk, run, keep, lambda: digest("backward", outputs, cotangents, sampled), outputs.device)
    return result


def _analytic_linear_columns(logits, features, linear_plan_weights, config):
    """Factor-applied Jacobian columns of the final Linear's own sampled entries: dz/dW[c, d] =
    e_c h_d and dz/db[c] = e_c, so each column of the basis is a scaled unit vector."""
    n, num_classes = logits.shape
    basis = logits.new_zeros(n, num_classes, len(linear_plan_weights))
    for j, weight in enumerate(linear_plan_weights):
        c = weight.coord[0]
        basis[:, c, j] = 1.0 if weight.param_name == "bias" else features[:, weight.coord[1]]
    return ops.multinomial_factor(logits, basis, config.factor, config.smoothing, config.fp16_smoothing_constants)


@contextlib.contextmanager
def _differentiable_attention():
    """The fused attention kernels (flash scaled-dot-product attention; the inference fast path of
    nn.MultiheadAttention and the Transformer layers) have no forward-mode derivative; the math kernels
    are composite and do."""
    with no_attention_fastpath(), sdpa_kernel(SDPBackend.MATH):
        yield


def _shifted_parameters(model, weights, device):
    """shifted(shifts): the model's parameters with ``shifts[i]`` added to the sampled entries of the i-th
    parameter tensor named in ``keys`` (through ``functional_call``, the model untouched), and for each key
    the columns of its weights."""
    params = dict(model.named_parameters())
    keys = list(dict.fromkeys(w.param_key for w in weights))
    columns = {key: [j for j, w in enumerate(weights) if w.param_key == key] for key in keys}
    indices = {key: torch.tensor([weights[j].flat_index for j in columns[key]], device=device) for key in keys}

    def shifted(shifts):
        values = dict(params)
        for key, shift in zip(keys, shifts):
            base = params[key]
            values[key] = base.reshape(-1).index_add(0, indices[key], shift).reshape(base.shape)
        return values
    return shifted, keys, columns


def _shifted_logits(model, weights, logits_at, device):
    """logits(shift, x): the model's logits on x with ``shift[j]`` added to sampled weight j, and the
    names of the parameters shifted."""
    shifted, keys, columns = _shifted_parameters(model, weights, device)
    buffers = dict(model.named_buffers())
    columns_t = [torch.tensor(columns[key], device=device) for key in keys]

    def logits_of(shift, x):
        values = shifted([shift[c] for c in columns_t])
        return pick_logits(functional_call(model, (values, buffers), (x,)), logits_at, model)
    return logits_of, keys


def _cannot_differentiate(path: str, how: str, model: nn.Module, names: list[str], error: Exception) -> ValueError:
    return ValueError(
        f"{path} ({how} through torch.func.functional_call) cannot differentiate {type(model).__name__} for the "
        f"sampled weights {', '.join(names)}: {error}. Give the failing op a {how.split(' AD')[0]} derivative "
        "(and vmap for a custom autograd.Function), or register a sampler for the module owning those weights "
        "with vkdnw_fast.samplers.register_sampler")


@dataclass(frozen=True)
class LayerCensus:
    """What one forward of the network computes (``_share_hooks``): for each sampled weight the share of the
    layer multiply-accumulates and the layer calls from its module's first call on (what its linearised tangent
    runs), and the layer calls and their multiply-accumulates over the batch."""

    shares: list[float]
    calls_from: list[int]
    layer_calls: int
    macs: int

    def of(self, columns: list[int]) -> "LayerCensus":
        """The census of the sampled weights ``columns`` alone."""
        return replace(self, shares=[self.shares[j] for j in columns], calls_from=[self.calls_from[j] for j in columns])


def _cotangent_cost(census: LayerCensus) -> float:
    """What one data-only backward pass costs, in multiply-accumulates' time: the unit of the counts below."""
    return census.macs + _COTANGENT_PER_CALL * census.layer_calls


def _trace_cost(census: LayerCensus) -> float:
    """What tracing the linearised tangent map costs, in cotangents."""
    return (_TRACE_FORWARDS * census.macs + _TRACE_PER_CALL * census.layer_calls) / _cotangent_cost(census)


def _linearised_cost(census: LayerCensus) -> float:
    """What forward mode through the linearised map costs, in cotangents: the trace and each weight's tangent."""
    tangents = sum(share * census.macs + _TANGENT_PER_CALL * calls
                   for share, calls in zip(census.shares, census.calls_from))
    return _trace_cost(census) + tangents / _cotangent_cost(census)


def _linearise(config: FisherConfig, device: torch.device, census: LayerCensus) -> bool:
    """Whether forward mode for the census' weights runs through the linearised map: as ``config.tangents``
    says, or under ``auto`` on CPU where that counts less than jvp's blocks."""
    if config.tangents != "auto":
        return config.tangents == "linearised"
    return (device.type == "cpu" and census.layer_calls > 0
            and _linearised_cost(census) < _FORWARD_TANGENT_COST * len(census.shares))


def _forward_cost(config: FisherConfig, device: torch.device, census: LayerCensus) -> float:
    """What forward mode costs in cotangents, given the forward's census (``_share_hooks``)."""
    if _linearise(config, device, census) and census.layer_calls:
        return _linearised_cost(census)
    return _FORWARD_TANGENT_COST * len(census.shares)


def _share_hooks(model: nn.Module, weights: list[SampledWeight]) -> tuple[list, Callable[[], LayerCensus]]:
    """Forward hooks that find, in one forward, the share of the network's layer multiply-accumulates
    (``layers.layer_macs``, in call order) from each sampled weight's module's first call on: what a linearised
    tangent of that weight computes, and the layer calls from there. Returns (handles, census); a module the forward
    does not call counts the whole network."""
    modules = dict(model.named_modules())
    done, calls, first = [0], [0], {}

    def enter(name: str):
        def hook(module, args) -> None:  # a pre-hook's return value would replace the module's inputs
            first.setdefault(name, (done[0], calls[0]))
        return hook

    def count(layer, args, output):
        if isinstance(output, torch.Tensor):
            done[0] += layer_macs(layer, args, output)
            calls[0] += 1
    handles = [modules[name].register_forward_pre_hook(enter(name)) for name in {w.module_name for w in weights}]
    handles += [layer.register_forward_hook(count) for _, layer in named_layers(model)]

    def census() -> LayerCensus:
        total = done[0]
        before = [first.get(w.module_name, (0, 0)) for w in weights]
        shares = [(total - macs) / total if total else 1.0 for macs, _ in before]
        return LayerCensus(shares, [calls[0] - called for _, called in before], calls[0], total)
    return handles, census


def _layer_census(model: nn.Module, weights: list[SampledWeight], inputs: torch.Tensor) -> tuple[LayerCensus, Any]:
    """The census (``_share_hooks``) of one no-grad forward of ``model`` on ``inputs``, and its output."""
    handles, census = _share_hooks(model, weights)
    with removing(handles), torch.no_grad():
        output = model(inputs)
    return census(), output


def _traced_tangent_map(model, inputs, shifted, sizes: list[int], logits_at) -> Linearised:
    """The logits' tangent map in the shifts of the sampled parameter tensors (``_shifted_parameters``, ``sizes``
    their sampled entries), traced once (``linearise.Linearised``)."""
    buffers = dict(model.named_buffers())
    with stage("trace"):
        def logits(*shifts):
            return pick_logits(functional_call(model, (shifted(shifts), buffers), (inputs,)), logits_at, model)
        return Linearised(logits, sizes, float_dtype(model, inputs), inputs.device)


def _linearised_tangents(model, inputs, weights, logits_at, chunk, fingerprint):
    """The logits' tangent for each sampled weight (P, N, C), from the network's tangent map traced once
    (``_traced_tangent_map``, built only when a block is to be computed: a resumed scoring whose journal holds
    every block traces nothing)."""
    shifted, keys, columns = _shifted_parameters(model, weights, inputs.device)
    place = {j: (i, position) for i, key in enumerate(keys) for position, j in enumerate(columns[key])}
    dtype = float_dtype(model, inputs)
    traced: list[Linearised] = []

    def tangent_map() -> Linearised:
        if not traced:
            traced.append(_traced_tangent_map(model, inputs, shifted, [len(columns[key]) for key in keys], logits_at))
        return traced[0]

    def run(start: int, size: int) -> torch.Tensor:
        linearised = tangent_map()
        out = []
        for j in range(start, start + size):
            i, position = place[j]
            one_hot = torch.zeros(linearised.sizes[i], dtype=dtype, device=inputs.device)
            one_hot[position] = 1
            out.append(linearised.column(i, one_hot))
        return torch.stack(out)

    return _stacked_blocks(len(weights), chunk, run, lambda: digest("linearised tangents", fingerprint()),
                           inputs.device)


def _forward_mode(model, inputs, weights, config, logits64, chunk, logits_at, path, linearise: bool):
    """J_n by forward-mode AD, one tangent per sampled weight, then A_n = M_n J_n; ``path`` names
    the plan in the error raised when an op has no forward-mode derivative. Linearised where ``linearise``
    (``_linearise``: the tangent map traced once); where it cannot be traced, or else, ``torch.func.jvp`` over
    blocks of ``chunk`` tangents."""
    p, dtype = len(weights), float_dtype(model, inputs)
    names = list(dict.fromkeys(w.param_key for w in weights))
    sampled = ";".join(f"{w.param_key}[{w.flat_index}]" for w in weights)
    fingerprint = lambda: digest("tangents", logits64, inputs, sampled)  # noqa: E731
    tangents, untraced = None, None
    with warnings.catch_warnings(), _differentiable_attention():
        # Ops without a batching rule (adaptive_avg_pool2d's as_strided_) fall back to a loop and say so;
        # the strategy choice already weighs forward mode by its measured cost, so the note is noise.
        warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented")
        if linearise:
            try:
                tangents = _linearised_tangents(model, inputs, weights, logits_at, chunk, fingerprint)
            except Exception as error:  # noqa: BLE001 -- whatever make_fx cannot trace, jvp is tried on
                if _out_of_memory(error):
                    raise
                untraced = error
        if tangents is None:
            def run(start: int, size: int) -> torch.Tensor:
                # Only the block's weights carry tangents: the forward runs without them up to the block's
                # first sampled layer (the weights come in module order), not from the network's first.
                logits_of, _ = _shifted_logits(model, weights[start:start + size], logits_at, inputs.device)
                origin = torch.zeros(size, dtype=dtype, device=inputs.device)
                basis = torch.eye(size, dtype=dtype, device=inputs.device)
                return vmap(lambda t: jvp(lambda s: logits_of(s, inputs), (origin,), (t,))[1])(basis)

            try:
                tangents = _stacked_blocks(p, chunk, run, fingerprint, inputs.device)
            except (RuntimeError, NotImplementedError) as error:
                if _out_of_memory(error):
                    raise
                raise _cannot_differentiate(path, "forward-mode AD", model, names, error) from error
    if untraced is not None:
        warnings.warn(f"{path}: the tangent map of {type(model).__name__} could not be traced ({untraced}); forward "
                      "mode ran the primal again for each block of tangents (FisherConfig.tangents='jvp' does so "
                      "without trying)", RuntimeWarning, stacklevel=2)
    basis = tangents.permute(1, 2, 0).to(torch.float64)
    return ops.multinomial_factor(logits64, basis, config.factor, config.smoothing, config.fp16_smoothing_constants)


def _per_sample_reverse(model, inputs, weights, config, logits64, logits_at, path, chunk):
    """A_n's columns of ``weights`` by reverse mode per sample: ``vmap`` over the samples (``chunk``
    at a time) of one ``vjp`` with the K factor rows of M_n as cotangents (vmapped too). Its cost
    hardly depends on the number of weights; its memory holds the whole gradient of every shifted
    parameter tensor for each sample and row of a chunk (``_sample_chunk``)."""
    logits_of, names = _shifted_logits(model, weights, logits_at, inputs.device)
    n, num_classes = logits64.shape
    identity = torch.eye(num_classes, dtype=torch.float64, device=inputs.device).expand(n, -1, -1)
    factor = ops.multinomial_factor(logits64, identity, config.factor, config.smoothing,
                                    config.fp16_smoothing_constants).to(float_dtype(model, inputs))  # (N, K, C)
    origin = factor.new_zeros(len(weights))

    def one_sample(x, rows):
        _, pullback = vjp(lambda s: logits_of(s, x.unsqueeze(0)).squeeze(0), origin)
        return vmap(pullback)(rows)[0]  # (K, G)

    with warnings.catch_warnings(), _differentiable_attention():
        warnings.filterwarnings("ignore", message="There is a performance drop because we have not yet implemented")
        try:
            return vmap(one_sample, chunk_size=chunk)(inputs, factor).to(torch.float64)
        except (RuntimeError, NotImplementedError) as error:
            if _out_of_memory(error):
                raise
            raise _cannot_differentiate(path, "reverse-mode AD per sample", model, names, error) from error


UNTAPPED = ("the forward never applied them through the module (its weight is used by another module's functional "
            "call, or its overriding forward transforms the weight first)")


def compute_factors(model: nn.Module, inputs: torch.Tensor, config: FisherConfig,
                    weights: list[SampledWeight], *, logits_at: Any = None) -> tuple[Factors, torch.Tensor]:
    """A = M J for the prepared ``model`` (eval, no parameter requiring grad) on ``inputs``.

    Returns the factors and the (detached) logits. BatchNorm statistics are frozen first when
    ``config.batchnorm == 'batch'``. The samples are assumed independent (``prepare.probe_forward``), so
    that chunks of them (``config.sample_chunk``, or fewer under ``samples_at_most``) may be scored one after
    another, all by the plan the first chose, each with the whole batch's statistics; where a chunk's forward
    or passes run out of memory (at one row or tangent a block, ``_in_blocks``), the factors are computed
    again with half as many samples a chunk, down to one.
    ``logits_at`` says where the logits are in the model's output (``prepare.pick_logits``). The
    weights that no sampler's tap takes (``SampledWeight.general``, or a module the forward turns
    out not to apply as its sampler assumes) get their columns from the general path, after the
    taps' graph is freed.
    """
    n = inputs.shape[0]
    chunk = min(n, config.sample_chunk or n, _SAMPLES_AT_MOST.get() or n)
    while True:
        try:
            return _factors_in_chunks(model, inputs, config, weights, logits_at, chunk)
        except (RuntimeError, MemoryError) as error:
            if chunk == 1 or not _out_of_memory(error):
                raise
        # Outside the handler, whose traceback holds the failed chunk's tensors: half as many samples at a time.
        chunk = (chunk + 1) // 2
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _factors_in_chunks(model, inputs, config, weights, logits_at, chunk: int) -> tuple[Factors, torch.Tensor]:
    """``compute_factors`` with ``chunk`` samples at a time."""
    n = inputs.shape[0]
    if chunk == n:
        return _factors_of_samples(model, inputs, config, weights, logits_at, freeze_statistics=True)
    if config.batchnorm == "batch":  # the whole batch's statistics, which every chunk's forward then uses
        with removing(batch_statistics_hooks(model, config)), torch.no_grad(), no_attention_fastpath():
            model(inputs)
    parts: list[tuple[Factors, torch.Tensor]] = []
    for start in range(0, n, chunk):
        plan = parts[0][0].plan if parts else None
        same_plan = replace(config, strategy=plan) if plan in STRATEGIES else config
        parts.append(_factors_of_samples(model, inputs[start:start + chunk], same_plan, weights, logits_at,
                                         freeze_statistics=False))
    first = parts[0][0]
    return (Factors(torch.cat([f.a for f, _ in parts]), f"{first.strategy}, in {len(parts)} chunks of {chunk} samples",
                    first.passes, first.general, first.plan), torch.cat([logits for _, logits in parts]))


def _factors_of_samples(model, inputs, config, weights, logits_at, freeze_statistics: bool):
    """``compute_factors`` on one chunk of samples (the whole batch, or with its statistics frozen already)."""
    a, strategy, label, passes, logits, general, counted = _tapped_factors(model, inputs, config, weights,
                                                                           logits_at, freeze_statistics)
    if general and strategy not in ("forward", "per_sample"):
        columns = sorted(general)
        chosen = [weights[j] for j in columns]
        logits64 = logits.to(torch.float64)
        rows = a.shape[1]
        with stage("general"):
            # The general path: exact for any differentiable use of a parameter.
            tangents = counted.of(columns)
            samples, _ = _general_by_reverse(model, chosen, rows, inputs.shape[0],
                                             _forward_cost(config, inputs.device, tangents))
            if samples:
                a[:, :, columns] = _per_sample_reverse(model, inputs, chosen, config, logits64, logits_at,
                                                       "the general path", samples).to(a.dtype)
                label += f" + general ({len(columns)} weights by per-sample reverse mode, {rows} rows)"
                passes += rows
            else:
                chunk = config.pass_chunk or (64 if inputs.device.type == "cuda" else 4)
                a[:, :, columns] = _forward_mode(model, inputs, chosen, config, logits64, chunk, logits_at,
                                                 "the general path", _linearise(config, inputs.device, tangents)
                                                 ).to(a.dtype)
                label += f" + general ({len(columns)} forward-mode tangents)"
                passes += len(columns)
    return Factors(a, label, passes, {weights[j].name: general[j] for j in sorted(general)}, strategy), logits


def _sample_chunk(model: nn.Module, weights: list[SampledWeight], rows: int, n: int) -> int:
    """How many samples per-sample reverse mode for ``weights`` takes at once within its memory bound
    (K gradients of each parameter tensor they shift per sample); 0 when fewer than 8 (or N) fit, as
    its cost estimate assumes a vectorised batch of samples."""
    params = dict(model.named_parameters())
    per_sample = rows * sum(params[key].numel() for key in {w.param_key for w in weights})
    chunk = min(n, _PER_SAMPLE_GRADIENTS_LIMIT // per_sample)
    return chunk if chunk >= min(n, 8) else 0


def _general_by_reverse(model: nn.Module, weights: list[SampledWeight], rows: int, n: int,
                        forward: float) -> tuple[int, float]:
    """The sample chunk with which the general path takes per-sample reverse mode (cost ~
    _PER_SAMPLE_ROW_COST x K, when it fits), 0 for forward mode (one tangent per weight, ``forward`` in all:
    ``_forward_cost``); and its cost."""
    chunk = _sample_chunk(model, weights, rows, n)
    if _PER_SAMPLE_ROW_COST * rows < forward and chunk:
        return chunk, _PER_SAMPLE_ROW_COST * rows
    return 0, forward


def _tapped_factors(model, inputs, config, weights, logits_at, freeze_statistics):
    """One forward with taps (freezing ``batch`` statistics where ``freeze_statistics``), then the chosen plan
    for the columns the taps take (or forward mode for all); the general path's columns left at zero. Returns
    (A, plan, its description, passes, detached logits, {general column: reason}, the forward's census)."""
    device = inputs.device
    n, num_weights = inputs.shape[0], len(weights)
    chunk = config.pass_chunk or (64 if device.type == "cuda" else 1)
    tangent_chunk = config.pass_chunk or (64 if device.type == "cuda" else 4)
    general = {j: w.general for j, w in enumerate(weights) if w.general is not None}
    sites, handles = [], []
    for module, plan in _group_by_module(model, weights, device):
        sink = torch.zeros(n, len(plan.columns), dtype=float_dtype(model, inputs), device=device, requires_grad=True)
        site = _Site(module, sampler_for(module), plan, sink)
        sites.append(site)
        handles.append(_tap_sampled_module(site))
    last_linear: dict[str, tuple] = {}

    def record(mod, args, output):
        last_linear["call"] = (mod, args[0], output)
    # A Linear subclass overriding forward (2 W h + 1) does not give logits = W h + b: no 'features' plan.
    handles += [m.register_forward_hook(record) for m in model.modules()
                if isinstance(m, nn.Linear) and type(m).forward is nn.Linear.forward]
    if freeze_statistics:
        handles += batch_statistics_hooks(model, config)
    share_handles, census = _share_hooks(model, weights)
    handles += share_handles
    with removing(handles), stage("forward"), no_attention_fastpath():
        logits = check_logits(model(inputs), model, logits=logits_at)
    counted = census()
    for site in [s for s in sites if s.calls == 0 or s.misfit is not None]:
        general.update(dict.fromkeys(site.plan.columns, UNTAPPED if site.calls == 0 else site.misfit))
        sites.remove(site)

    logits64 = logits.detach().to(torch.float64)
    num_classes = logits.shape[1]
    rows = ops.factor_rows(config.factor, num_classes)
    final = last_linear.get("call")
    final_linear = final if final is not None and final[2] is logits and final[1].dim() == 2 else None
    features = final_linear[0].in_features if final_linear is not None else None
    if general:
        _, general_cost = _general_by_reverse(model, [weights[j] for j in general], rows, n,
                                              _forward_cost(config, device, counted.of(sorted(general))))
        samples = _sample_chunk(model, weights, rows, n)
    else:  # the plans of models without general weights, as before the general path
        general_cost, samples = 0.0, 0
    strategy = _choose(config, rows, features, _forward_cost(config, device, counted), general_cost, samples > 0)
    if not sites and strategy in ("rows", "features"):  # no tap to take a cotangent: forced plans only
        strategy = "forward"
    if strategy == "features" and final_linear is None:
        raise ValueError(f"strategy 'features' needs logits produced by a final nn.Linear on (N, D) features; "
                         f"{type(model).__name__}'s logits are not")

    if strategy == "rows":
        with stage("factor"):
            identity = torch.eye(num_classes, dtype=torch.float64, device=device).expand(n, -1, -1)
            factor = ops.multinomial_factor(logits64, identity, config.factor, config.smoothing,
                                            config.fp16_smoothing_constants)  # (N, K, C)
            cotangents = factor.transpose(0, 1).to(logits.dtype)
        with stage("backward"):
            a = _backward_passes(logits, sites, cotangents, chunk, num_weights)
        return a, strategy, f"rows (K={rows} factor rows)", rows, logits.detach(), general, counted

    if strategy == "features":
        linear, h, _ = final_linear
        linear_name = next(name for name, m in model.named_modules() if m is linear)
        linear_cols = [j for j, w in enumerate(weights) if w.module_name == linear_name and j not in general]
        other_cols = sorted(set(range(num_weights)) - set(linear_cols) - set(general))
        a = logits64.new_zeros(n, rows, num_weights)
        if other_cols and h.requires_grad:
            unit = torch.eye(features, dtype=h.dtype, device=device).unsqueeze(1).expand(-1, n, -1)
            with stage("backward"):
                h_jac = _backward_passes(h, sites, unit, chunk, num_weights)[:, :, other_cols]  # (N, D, P')
            with stage("factor"):
                weight = linear.weight.detach().to(torch.float64).expand(n, -1, -1)  # (N, C, D)
                mw = ops.multinomial_factor(logits64, weight, config.factor, config.smoothing,
                                            config.fp16_smoothing_constants)
                a[:, :, other_cols] = mw @ h_jac.to(torch.float64)
        if linear_cols:
            with stage("factor"):
                a[:, :, linear_cols] = _analytic_linear_columns(
                    logits64, h.detach().to(torch.float64), [weights[j] for j in linear_cols], config)
        return (a, strategy, f"features (D={features} unit cotangents on the final Linear's input)", features,
                logits.detach(), general, counted)

    # Drop the reverse-mode graph, and the activations it saved, before the forward-mode passes: the logits and the
    # final Linear's call hold it as much as the taps do.
    del sites, final, final_linear, last_linear
    logits = logits.detach()
    if strategy == "per_sample":
        with stage("per_sample"):
            a = _per_sample_reverse(model, inputs, weights, config, logits64, logits_at, "the 'per_sample' plan",
                                    samples)
        return (a, strategy, f"per-sample reverse mode (K={rows} rows, P={num_weights} weights)", rows, logits, general,
                counted)
    with stage("forward_mode"):
        a = _forward_mode(model, inputs, weights, config, logits64, tangent_chunk, logits_at, "the 'forward' plan",
                          _linearise(config, device, counted))
    return a, strategy, f"forward (P={num_weights} tangents)", num_weights, logits, general, counted


FactorsFn = Callable[..., tuple[Factors, torch.Tensor]]  # (model, inputs, config, weights, *, logits_at)


def _factors_of(prepared: PreparedModel, config: FisherConfig,
                factors_fn: FactorsFn | None) -> tuple[Selection, Factors, int]:
    """Select the weights of the prepared model and compute A = M J (with the engine's
    ``compute_factors`` unless the reference's is given); the model is scored in place in eval
    mode and left as it was. Also returns aleph."""
    with scoring_mode(prepared.model) as model, ieee_float32():
        with stage("probe"):
            try:
                called = probe_forward(model, prepared.inputs)
            except RuntimeError as error:  # the model's own forward, before any tap or transform
                if _out_of_memory(error):
                    raise
                ids = "" if prepared.inputs.is_floating_point() else (
                    f" of integer token ids ({prepared.inputs.dtype}, kept integer for a model that looks them up; "
                    "pass real-valued inputs as a floating-point tensor)")
                raise ValueError(f"{type(prepared.model).__name__} fails on a batch shaped like the scoring batch "
                                 f"{tuple(prepared.inputs.shape)}{ids} (its forward alone, before the engine does "
                                 f"anything): {error}") from error
        with stage("select"):
            selection = select_weights(model, config, called)
        factors, _ = (factors_fn or compute_factors)(model, prepared.inputs, config, selection.weights,
                                                     logits_at=prepared.logits)
    if not torch.isfinite(factors.a).all():
        raise ValueError(
            f"the {config.factor!r} factor produced non-finite values for {type(prepared.model).__name__}. With "
            "factor='paper' this is the authors' construction failing: d_j = sqrt(p_j q_j / q_(j-1)) with "
            "q = 1 - cumsum(p) is NaN once q turns negative (or 0/0) before the last class, which the fp16 "
            "smoothing constants (sum(p) > 1) cause whenever the tail probabilities are at the smoothing "
            "floor, typically for C of a few hundred or more; the authors' SVD then fails. Use the 'exact' "
            "preset (a stable factor) or fp16_smoothing_constants=False")
    return selection, factors, count_aleph(prepared.model, config)


@retained_heap()
def score_prepared(prepared: PreparedModel, config: FisherConfig | str | None = None, *,
                   factors_fn: FactorsFn | None = None) -> FisherResult:
    """VKDNW of an already prepared model (``vkdnw_fast.prepare``) on its scoring batch; the
    config's ``init`` and ``memory_format`` were the preparation's business."""
    config = resolve_config(config)
    selection, factors, aleph = _factors_of(prepared, config, factors_fn)
    with stage("spectrum"):
        eigenvalues = fisher_eigenvalues(factors.a, getattr(torch, config.spectrum_dtype))
        entropy, levels = vkdnw_entropy(eigenvalues, config.quantiles)
    return FisherResult(
        vkdnw=entropy, aleph=aleph, eigenvalues=eigenvalues, quantile_levels=levels,
        num_weights=len(selection.weights), strategy=factors.strategy, passes=factors.passes,
        weights=[w.name for w in selection.weights], config=config, skipped=selection.skipped,
        general=factors.general, plan=factors.plan)


@retained_heap()
def fisher_matrix_prepared(prepared: PreparedModel, config: FisherConfig | str | None = None, *,
                           factors_fn: FactorsFn | None = None) -> torch.Tensor:
    """The P x P Fisher matrix (1/N) sum_n A_n^T A_n of a prepared model, in float64."""
    _, factors, _ = _factors_of(prepared, resolve_config(config), factors_fn)
    a = factors.a.to(torch.float64)
    return torch.einsum("nkp,nkq->pq", a, a) / a.shape[0]


def prepare_for(model: nn.Module, inputs, input_shape, batch_size: int, config: FisherConfig, device,
                seed: int, logits: Any = None, data=None) -> PreparedModel:
    """``prepare`` with the config's initialisation and memory format."""
    with stage("prepare"):
        return prepare(model, inputs=inputs, input_shape=input_shape, batch_size=batch_size, seed=seed,
                       device=device, init=config.init, memory_format=config.memory_format, logits=logits,
                       data=data)


@retained_heap()
def score(model: nn.Module, inputs: torch.Tensor | None = None, *, input_shape=None, batch_size: int = 64,
          config: FisherConfig | str | None = None, device=None, seed: int = 0, logits: Any = None,
          data=None) -> FisherResult:
    """VKDNW of ``model`` (docs/method.md §2) with the Fisher engine.

    Initialises a copy of the model as ``config.init`` says (from ``seed``), draws a Gaussian
    batch (``batch_size`` x ``input_shape``) from the same seed unless ``inputs`` is given, and
    leaves the caller's model and the global RNG untouched. With ``init=None`` and given inputs
    the result is a function of (weights, inputs, config) alone. ``logits``: where the logits are
    when the model does not return them as one tensor: a key (``"logits"``, or an index into a
    tuple), an attribute name, or a callable taking the output (``vkdnw_fast.prepare.pick_logits``);
    a ``logits`` key or attribute, or a structure holding a single tensor, needs none. ``data``:
    real images instead (a ``datasets.DataSource`` or a path; ``vkdnw_fast.datasets``),
    ``batch_size`` of them after a shuffle seeded by ``seed``.
    """
    config = resolve_config(config)
    return score_prepared(prepare_for(model, inputs, input_shape, batch_size, config, device, seed, logits,
                                      data), config)


@retained_heap()
def fisher_matrix(model: nn.Module, inputs: torch.Tensor | None = None, *, input_shape=None,
                  batch_size: int = 64, config: FisherConfig | str | None = None, device=None,
                  seed: int = 0, logits: Any = None, data=None) -> torch.Tensor:
    """The P x P Fisher matrix (1/N) sum_n A_n^T A_n in float64, same arguments as ``score``."""
    config = resolve_config(config)
    prepared = prepare_for(model, inputs, input_shape, batch_size, config, device, seed, logits, data)
    return fisher_matrix_prepared(prepared, config)


__all__ = ["score", "fisher_matrix", "score_prepared", "fisher_matrix_prepared", "FisherResult", "Factors",
           "compute_factors"]

"""The straightforward implementation: ``torch.func.vmap(jacrev)`` over single samples, as the
authors' code does, then A_n = M_n J_n with a dense factor.

It costs N x C single-sample backward passes that also form full weight gradients, and it is
kept as the benchmark baseline and as a slow path that shares nothing with the engine but the
model preparation (``vkdnw_fast.prepare``) and weight selection: ``reference.score`` has the
signature of ``vkdnw_fast.score``.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap

from .config import FisherConfig, resolve_config
from .engine import Factors, FisherResult, batch_statistics_hooks, fisher_matrix_prepared, prepare_for, score_prepared
from .hooks import removing
from .memory import retained_heap
from .prepare import check_logits, pick_logits
from .ops import twins
from .selection import SampledWeight
from .timing import stage


def dense_factor(logits: torch.Tensor, config: FisherConfig) -> torch.Tensor:
    """M_n as a dense (N, K, C) matrix, from the probabilities directly."""
    scale, offset = twins.probability_constants(logits.shape[1], config.smoothing, config.fp16_smoothing_constants)
    identity = torch.eye(logits.shape[1], dtype=logits.dtype).expand(logits.shape[0], -1, -1)
    if config.factor == "paper":
        return twins.multinomial_factor(logits, identity, "paper", scale, offset)
    p = scale * torch.softmax(logits, dim=-1) + offset
    if config.factor == "sqrt":
        root = p.sqrt()
        return torch.diag_embed(root) - root.unsqueeze(-1) * p.unsqueeze(-2)
    # cholesky: the dense Tanabe-Sagae factor L~ = U D^(1/2), transposed (rows 0..C-2).
    tail = p.flip(-1).cumsum(-1).flip(-1)                      # q_{j-1} = sum_{k>=j} p_k
    q = torch.cat([tail[:, 1:], torch.zeros_like(tail[:, :1])], dim=-1)
    d = p * q / tail
    upper = torch.where(torch.arange(p.shape[1]).unsqueeze(0) > torch.arange(p.shape[1]).unsqueeze(1),
                        -p.unsqueeze(1) / q.clamp_min(torch.finfo(p.dtype).tiny).unsqueeze(-1), 0.0)
    lt = (torch.eye(p.shape[1], dtype=p.dtype) + upper) * d.sqrt().unsqueeze(-1)   # row j of L~^T
    return lt[:, :-1]


@retained_heap()
def reference_factors(model: nn.Module, inputs: torch.Tensor, config: FisherConfig,
                      weights: list[SampledWeight], *, logits_at=None) -> tuple[Factors, torch.Tensor]:
    with removing(batch_statistics_hooks(model, config)), torch.no_grad():
        logits = check_logits(model(inputs), model, logits=logits_at)
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    keys = [w.param_key for w in weights]
    values = torch.stack([params[k].reshape(-1)[w.flat_index] for k, w in zip(keys, weights)])

    def logits_of_one(sampled, sample):
        replaced = dict(params)
        for key in dict.fromkeys(keys):
            columns = [j for j, k in enumerate(keys) if k == key]
            index = torch.tensor([weights[j].flat_index for j in columns], device=sample.device)
            replaced[key] = params[key].reshape(-1).index_put((index,), sampled[columns]).reshape(params[key].shape)
        output = functional_call(model, (replaced, buffers), (sample.unsqueeze(0),))
        return pick_logits(output, logits_at, model).squeeze(0)

    with stage("reference_jacobian"):
        jacobian = vmap(jacrev(logits_of_one), in_dims=(None, 0))(values, inputs)   # (N, C, P)
    logits64 = logits.to(torch.float64).cpu()
    a = dense_factor(logits64, config).to(inputs.device) @ jacobian.to(torch.float64)
    return Factors(a, f"reference (vmap(jacrev): {inputs.shape[0]}x{logits.shape[1]} single-sample backward passes)",
                   inputs.shape[0] * logits.shape[1]), logits


@retained_heap()
def score(model: nn.Module, inputs: torch.Tensor | None = None, *, input_shape=None, batch_size: int = 64,
          config: FisherConfig | str | None = None, device=None, seed: int = 0, logits=None) -> FisherResult:
    """``vkdnw_fast.score`` computed the slow, straightforward way."""
    config = resolve_config(config)
    prepared = prepare_for(model, inputs, input_shape, batch_size, config, device, seed, logits)
    return score_prepared(prepared, config, factors_fn=reference_factors)


@retained_heap()
def fisher_matrix(model: nn.Module, inputs: torch.Tensor | None = None, *, input_shape=None,
                  batch_size: int = 64, config: FisherConfig | str | None = None, device=None,
                  seed: int = 0, logits=None) -> torch.Tensor:
    config = resolve_config(config)
    prepared = prepare_for(model, inputs, input_shape, batch_size, config, device, seed, logits)
    return fisher_matrix_prepared(prepared, config, factors_fn=reference_factors)

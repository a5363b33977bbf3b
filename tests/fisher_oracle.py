"""An independent float64 oracle of the Fisher matrix: vmap over single samples of jacrev on the
sampled coordinates, then J^T Sigma J (or the authors' (L~ J)^T (L~ J) for the paper factor),
written from the formulas in docs/method.md §1 and §3 without using the engine's code."""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, jacrev, vmap


def freeze_batch_statistics(model: nn.Module, inputs: torch.Tensor) -> None:
    """Running stats := batch mean and biased variance of each BN input (one train-mode pass)."""
    stats = {}

    def keep(module, args, _output):
        x = args[0].detach()
        dims = [0] + list(range(2, x.dim()))
        stats[module] = (x.mean(dims), x.var(dims, unbiased=False))

    batchnorms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    handles = [m.register_forward_hook(keep) for m in batchnorms]
    model.train()
    with torch.no_grad():
        model(inputs)
    for handle in handles:
        handle.remove()
    model.eval()
    for module, (mean, var) in stats.items():
        module.running_mean.copy_(mean)
        module.running_var.copy_(var)


def sampled_jacobian(model: nn.Module, inputs: torch.Tensor, coords: list[tuple[str, int]],
                     vectorize: bool = True) -> torch.Tensor:
    """J_n = d logits(x_n) / d theta_S, (N, C, P), for theta_S = [param[name].flatten()[i]].
    ``vectorize=False``: a loop over samples and logits of plain backward passes, for ops whose
    batching rules torch gets wrong (PReLU's backward under vmap)."""
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    theta = torch.stack([params[name].reshape(-1)[i] for name, i in coords])

    def logits(values, sample):
        replaced = dict(params)
        for j, (name, i) in enumerate(coords):
            flat = replaced[name].reshape(-1)
            replaced[name] = torch.cat([flat[:i], values[j:j + 1], flat[i + 1:]]).reshape(params[name].shape)
        return functional_call(model, (replaced, buffers), (sample.unsqueeze(0),)).squeeze(0)

    if not vectorize:
        return torch.stack([torch.autograd.functional.jacobian(lambda v: logits(v, sample), theta)
                            for sample in inputs])
    return vmap(jacrev(logits), in_dims=(None, 0))(theta, inputs)


def authors_ltilde(logits: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The authors' L~ (docs/method.md §3, 'paper' rows), densely, from their float16 constants."""
    alpha = torch.tensor(0.05, dtype=torch.float16)
    scale = float(torch.tensor(1.0, dtype=torch.float16) - alpha)
    offset = float(alpha / num_classes)
    p = torch.softmax(logits, dim=1) * scale + offset
    q = 1.0 - torch.cumsum(p, dim=1)
    q[:, -1] = 0.0
    q_prev = torch.roll(q, 1, dims=1)
    q_prev[:, 0] = 1.0
    d = torch.sqrt(p * q / q_prev)
    lower = torch.nan_to_num(-p.unsqueeze(2) / q.unsqueeze(1), neginf=0.0)
    eye = torch.eye(num_classes, dtype=p.dtype)
    lower = lower * (1 - eye) + eye
    lower = lower * (1 - torch.triu(torch.ones(num_classes, num_classes, dtype=p.dtype), diagonal=1))
    return lower @ torch.diag_embed(d)


def oracle_fisher(model: nn.Module, inputs: torch.Tensor, coords: list[tuple[str, int]],
                  preset: str, vectorize: bool = True) -> torch.Tensor:
    """F = (1/N) sum_n J_n^T Sigma_n J_n ('exact') or (1/N) sum_n (L~_n J_n)^T (L~_n J_n) ('paper')."""
    model = model.double().eval()
    inputs = inputs.double() if inputs.is_floating_point() else inputs  # token ids stay integer
    if preset == "exact":
        freeze_batch_statistics(model, inputs)
    jac = sampled_jacobian(model, inputs, coords, vectorize)
    with torch.no_grad():
        z = model(inputs)
    if preset == "paper":
        a = authors_ltilde(z, z.shape[1]) @ jac
        return torch.einsum("nkp,nkq->pq", a, a) / inputs.shape[0]
    p = torch.softmax(z, dim=1)
    sigma = torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)
    return torch.einsum("ncp,ncd,ndq->pq", jac, sigma, jac) / inputs.shape[0]


def entropy_of(fisher: torch.Tensor, quantiles=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)) -> float:
    eig = torch.linalg.eigvalsh(fisher).clamp_min(0.0)
    levels = torch.quantile(eig, torch.tensor(quantiles, dtype=eig.dtype))
    t = levels / (levels.sum() + 1e-10)
    return float(-(t * torch.log(t + 1e-10)).sum())


def randomised_float64(model: nn.Module, seed: int = 0) -> nn.Module:
    """``model`` in float64 with every parameter drawn from a seeded generator, scaled by its fan-in
    (tokens, tables, norm gains and biases away from their 0 / 1 defaults, so that no formula can
    lean on them)."""
    model = model.double()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in model.parameters():
            fan_in = param[0].numel() if param.dim() > 1 else 1
            param.copy_(torch.randn(param.shape, generator=generator, dtype=param.dtype) / fan_in ** 0.5)
    return model

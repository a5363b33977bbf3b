"""The one place where proxies get labelled data.

Proxies that need a loss (GradNorm, SNIP, GraSP, plain, Fisher, EPE-NAS, ZiCo) take the context's
batch (Gaussian noise unless the caller gave ``inputs`` or real ``data``) with its labels: the real
ones where the batch comes from a dataset (``data=``, ``--data``; ``ctx.labels``), else random
ones, one uniform class per sample, ``randint(0, C, (N,), generator=ctx.generator())``, seeded; the
same labels for every proxy of a context. A proxy needing several batches (ZiCo) splits the context's batch into equal parts,
each with its own part of the labels, so that a batch of real data given by the caller serves
it as well.
"""
from __future__ import annotations

import torch

from .context import ProxyContext


def random_labels(ctx: ProxyContext, num_classes: int) -> torch.Tensor:
    """One uniform class in [0, num_classes) per sample of ``ctx.inputs``, on the context's device."""
    labels = torch.randint(0, num_classes, (ctx.inputs.shape[0],), generator=ctx.generator())
    return labels.to(ctx.device)


def labelled_batch(ctx: ProxyContext) -> tuple[torch.Tensor, torch.Tensor]:
    """The context's batch and its labels: the real ones, else random over ``ctx.num_classes`` (an
    error naming the network when it has no class logits)."""
    return ctx.inputs, ctx.labels if ctx.labels is not None else random_labels(ctx, ctx.classes())


def split_batches(ctx: ProxyContext, count: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``labelled_batch`` cut into ``count`` equal consecutive parts."""
    inputs, labels = labelled_batch(ctx)
    if count < 1 or inputs.shape[0] % count or inputs.shape[0] // count < 2:
        raise ValueError(f"cannot split a batch of {inputs.shape[0]} samples into {count} equal batches of "
                         f"at least 2 samples")
    return list(zip(inputs.chunk(count), labels.chunk(count)))

"""The three pass plans through the public ``vkdnw_fast.score``, each against its floor.

One NB201 network (the light cell, CIFAR-10 shapes: 10 classes, 3x32x32) and one Gaussian batch;
preset ``exact`` with ``init=None`` (the weights as built) and ``max_weights=16`` so that forward
mode (one tangent per sampled weight) stays affordable. K, the plan's number of passes, comes from
the result: ``rows`` K = C - 1 = 9 factor rows, ``features`` K = D = 64 features of the final
Linear, ``forward`` K = P = 16 tangents.

floor[plan]: one forward of the same model (prepared as the CPU engine prepares it: eval mode, no
parameter requiring grad, channels-last) with only the input requiring grad, then K data-only
backward passes (``torch.autograd.grad`` to the input, one cotangent row each): the least any
reverse-mode plan with K passes could cost. Groups: ``plan <name>``, plan and floor side by side.
The batch is 32 (not the 64 of scoring) to keep the whole run under three minutes on two cores; fixed
costs per call (the model copy, the weight selection, the spectrum) weigh a little more than at 64.
The floor also computes the stem's input gradient, which the plans skip, so a plan can come close to it.
"""
from __future__ import annotations

import copy

import pytest
import torch

import vkdnw_fast as vf
from vkdnw_fast.spaces.nb201 import NB201Network

ARCH = "|nor_conv_1x1~0|+|skip_connect~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|avg_pool_3x3~2|"
NUM_CLASSES = 10
BATCH = 32
INPUT = (3, 32, 32)
MAX_WEIGHTS = 16
PLANS = ["rows", "features", "forward"]
SETTINGS = {"arch": ARCH, "num_classes": NUM_CLASSES, "inputs": [BATCH, *INPUT], "preset": "exact",
            "init": None, "max_weights": MAX_WEIGHTS, "device": "cpu"}

_passes: dict[str, int] = {}  # K of each plan, from its benchmark's result (or a call of its own)


@pytest.fixture(scope="module")
def model():
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return NB201Network(ARCH, NUM_CLASSES)


@pytest.fixture(scope="module")
def inputs():
    return torch.randn(BATCH, *INPUT, generator=torch.Generator().manual_seed(1))


def _config(plan):
    return vf.FisherConfig.preset("exact", strategy=plan, init=None, max_weights=MAX_WEIGHTS)


@pytest.mark.parametrize("plan", PLANS)
def test_plan(benchmark, model, inputs, plan):
    config = _config(plan)
    benchmark.group = f"plan {plan}"
    result = benchmark(vf.score, model, inputs, config=config)
    _passes[plan] = result.passes
    benchmark.extra_info.update(SETTINGS, kind="plan", plan=plan, passes=result.passes,
                                num_weights=result.num_weights, strategy=result.strategy)


@pytest.mark.parametrize("plan", PLANS)
def test_floor(benchmark, model, inputs, plan):
    if plan not in _passes:  # run on its own (-k floor): ask the plan for its K once
        _passes[plan] = vf.score(model, inputs, config=_config(plan)).passes
    passes = _passes[plan]
    prepared = copy.deepcopy(model).eval().to(memory_format=torch.channels_last)
    for param in prepared.parameters():
        param.requires_grad_(False)
    x = inputs.contiguous(memory_format=torch.channels_last)
    cotangents = torch.randn(passes, BATCH, NUM_CLASSES, generator=torch.Generator().manual_seed(2))

    def floor():
        logits = prepared(x.requires_grad_())
        for row in cotangents:
            torch.autograd.grad(logits, x, row, retain_graph=True)

    benchmark.group = f"plan {plan}"
    benchmark(floor)
    benchmark.extra_info.update(SETTINGS, kind="floor", plan=plan, passes=passes)

"""The linearised tangent map (vkdnw_fast.linearise) against torch.func.jvp in float64, the ops it skips,
and the engine's forward mode through it."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn
from torch.func import functional_call, jvp

import vkdnw_fast as vf
from vkdnw_fast import engine
from vkdnw_fast.linearise import Linearised, _Pruned

from test_engine import batch, config, expected_coords, initialised, oracle_fisher, relative_error


class Chain(nn.Module):
    """Convolutions in a row, with what forward AD's trace has to get right: an in-place ReLU, eval-mode
    BatchNorm, a concatenation, a residual sum and a branch that does not reach the output."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.left = nn.Conv2d(4, 2, 1)
        self.right = nn.Conv2d(4, 2, 3, padding=1)
        self.dead = nn.Conv2d(4, 4, 1)
        self.last = nn.Conv2d(4, 4, 3, padding=1)
        self.head = nn.Linear(4, 5)

    def forward(self, x):
        h = nn.functional.relu(self.bn(self.stem(x)), inplace=True)
        self.dead(h)  # computed, never used
        h = torch.cat([self.left(h), self.right(h)], dim=1) + h
        return self.head(self.last(h).relu().mean((2, 3)))


def _chain_and_shifts():
    torch.manual_seed(0)
    model = Chain().double().eval()
    with torch.no_grad():
        model.bn.running_mean.normal_()
        model.bn.running_var.uniform_(0.5, 2.0)
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.randn(3, 3, 6, 6, dtype=torch.float64)
    params = dict(model.named_parameters())
    keys = ["stem.weight", "bn.weight", "right.weight", "dead.weight", "last.weight", "head.bias"]
    indices = {key: torch.tensor([0, 3]) for key in keys}

    def logits(*shifts):
        values = dict(params)
        for key, shift in zip(keys, shifts):
            values[key] = params[key].reshape(-1).index_add(0, indices[key], shift).reshape(params[key].shape)
        return functional_call(model, values, (x,))
    return logits, [2] * len(keys)


def test_every_column_is_jvps_in_float64():
    logits, sizes = _chain_and_shifts()
    linearised = Linearised(logits, sizes, torch.float64, torch.device("cpu"))
    origin = tuple(torch.zeros(n, dtype=torch.float64) for n in sizes)
    for i, n in enumerate(sizes):
        for position in range(n):
            tangent = torch.zeros(n, dtype=torch.float64)
            tangent[position] = 1
            tangents = tuple(tangent if j == i else torch.zeros_like(o) for j, o in enumerate(origin))
            expected = jvp(logits, origin, tangents)[1]
            got = linearised.column(i, tangent)
            assert torch.allclose(got, expected, rtol=1e-12, atol=1e-14), (i, position)
    # The branch that never reaches the logits has a zero column, materialised in the output's shape.
    dead = linearised.column(3, torch.tensor([1.0, 0.0], dtype=torch.float64))
    assert dead.shape == (3, 5) and not dead.any()


def test_a_column_runs_only_the_ops_after_its_layer(monkeypatch):
    """Counted convolutions of the tangent graph: the stem's column runs its own weight's term and the
    three live convolutions after it (the dead branch's is gone, and each weight's own term of the other
    layers is zero for it); the last layer's only its own term; the head's none."""
    logits, sizes = _chain_and_shifts()
    linearised = Linearised(logits, sizes, torch.float64, torch.device("cpu"))
    ran = []
    real = _Pruned.call_function

    def call_function(self, target, args, kwargs):
        ran.append(target)
        return real(self, target, args, kwargs)
    monkeypatch.setattr(_Pruned, "call_function", call_function)

    def convolutions(i):
        ran.clear()
        linearised.column(i, torch.tensor([1.0, 0.0], dtype=torch.float64))
        return sum(target is torch.ops.aten.convolution.default for target in ran)
    assert convolutions(0) == 4
    assert convolutions(4) == 1
    assert convolutions(5) == 0


@pytest.mark.parametrize("tangents", ["linearised", "jvp"])
@pytest.mark.parametrize("preset", ["paper", "exact"])
def test_the_forward_plan_is_the_oracles_matrix_either_way(preset, tangents):
    model, x = initialised("residual_bn"), batch()
    truth = oracle_fisher(initialised("residual_bn"), x, expected_coords(model, preset), preset)
    result = vf.fisher_matrix(model, x, config=config(preset, strategy="forward", tangents=tangents))
    assert relative_error(result, truth) < 1e-9


def test_a_tangent_map_that_cannot_be_traced_falls_back_to_jvp_and_says_so(monkeypatch):
    model, x = initialised("residual_bn"), batch()
    expected = vf.fisher_matrix(model, x, config=config("paper", strategy="forward", tangents="jvp"))

    def untraceable(*args, **kwargs):
        raise RuntimeError("simulated: make_fx cannot trace this forward")
    monkeypatch.setattr(engine, "Linearised", untraceable)
    with pytest.warns(RuntimeWarning, match="could not be traced .simulated: make_fx cannot trace"):
        got = vf.fisher_matrix(model, x, config=config("paper", strategy="forward", tangents="linearised"))
    assert torch.equal(got, expected)


def _deep(layers):
    torch.manual_seed(0)
    convs = [m for _ in range(layers) for m in (nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())]
    return nn.Sequential(*convs, nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).double()


@pytest.mark.parametrize("work, traced", [(1, False), (10**6, True)])
def test_auto_linearises_where_the_map_counts_less_than_jvps_blocks(work, traced, monkeypatch):
    """16 sampled layers (15 convolutions and the head): at this batch's few multiply-accumulates a layer call the
    trace's Python outweighs the primals jvp's blocks run again, and auto takes jvp; counted at a million times
    the work a layer call (the census scaled, as a large batch's), it traces. Both ways give jvp's matrix."""
    built = []
    real_map, real_hooks = engine.Linearised, engine._share_hooks

    def counted(*args, **kwargs):
        built.append(1)
        return real_map(*args, **kwargs)

    def scaled_hooks(model, weights):
        handles, census = real_hooks(model, weights)
        return handles, lambda: dataclasses.replace(census(), macs=census().macs * work)
    monkeypatch.setattr(engine, "Linearised", counted)
    monkeypatch.setattr(engine, "_share_hooks", scaled_hooks)
    x = batch()
    auto = vf.fisher_matrix(_deep(15), x, config=config("exact", strategy="forward"))
    assert bool(built) == traced
    jvp_matrix = vf.fisher_matrix(_deep(15), x, config=config("exact", strategy="forward", tangents="jvp"))
    assert relative_error(auto, jvp_matrix) < 1e-12


def test_the_tangents_field_takes_only_its_choices():
    with pytest.raises(ValueError, match="FisherConfig.tangents='vjp' is not one of"):
        vf.FisherConfig.preset("exact", tangents="vjp")

"""What a user's own model meets: samplers found along the class hierarchy (subclasses that keep
or override their base's forward), the layers left out and why, outputs that are not a bare
tensor (``logits=``), and samples that interact. Each checked against the float64 oracle."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import vkdnw_fast as vf
from vkdnw_fast.init import initialise

from fisher_oracle import entropy_of, oracle_fisher


def initialised(model, seed=0):
    initialise(model, "kaiming_normal_fan_in", torch.Generator().manual_seed(seed))
    return model.double()


def batch(seed=1, n=6, shape=(3, 6, 6)):
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def config(preset, **fields):
    return vf.FisherConfig.preset(preset, init=None, **fields)


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


def coords_of(result):
    return [(w.split("[")[0], int(w.split("[")[1][:-1])) for w in result.weights]


def assert_matches_oracle(make, preset, x, expected_weights=None):
    """Engine's Fisher matrix and entropy against the oracle on the same sampled coordinates;
    ``expected_weights`` (names) pins which coordinates those are."""
    result = vf.score(make(), x, config=config(preset))
    if expected_weights is not None:
        assert result.weights == expected_weights
    truth = oracle_fisher(make(), x, coords_of(result), preset)
    assert relative_error(vf.fisher_matrix(make(), x, config=config(preset)), truth) < 1e-9
    assert result.vkdnw == pytest.approx(entropy_of(truth), abs=1e-9)
    return result


# --- 1. Samplers along the class hierarchy -------------------------------------------------------

class PlainConvSub(nn.Conv2d):
    """Inherits everything: the Conv2d sampler serves it as it is."""


class PlainLinearSub(nn.Linear):
    pass


class BatchNormAct2d(nn.BatchNorm2d):
    """As timm's: batch_norm applied directly, then an activation inside forward. The module's
    output is act(bn(x)), so a tap on it would see the wrong gradient."""

    def forward(self, x):
        x = F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                         self.momentum or 0.0, self.eps)
        return torch.relu(x) * 1.5


class SuperAct(nn.BatchNorm2d):
    def forward(self, x):
        return torch.tanh(super().forward(x))


class SameConv(nn.Conv2d):
    """As timm's Conv2dSame: pads in forward, then the convolution without padding."""

    def forward(self, x):
        return F.conv2d(F.pad(x, (0, 1, 0, 1)), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class ScaledLinear(nn.Linear):
    def forward(self, x):
        return 2.0 * super().forward(x) + 1.0


class SubclassNet(nn.Module):
    def __init__(self, classes=5):
        super().__init__()
        self.conv1 = PlainConvSub(3, 6, 3, padding=1, bias=False)
        self.bn1 = BatchNormAct2d(6)
        self.conv2 = SameConv(6, 8, 2, stride=2)
        self.bn2 = SuperAct(8)
        self.fc1 = ScaledLinear(8, 8)
        self.fc2 = PlainLinearSub(8, classes)

    def forward(self, x):
        x = self.bn2(self.conv2(self.bn1(self.conv1(x))))
        return self.fc2(torch.relu(self.fc1(x.mean((2, 3)))))


@pytest.mark.parametrize("preset", ["paper", "exact"])
def test_subclasses_of_sampled_layers_match_the_oracle(preset):
    x = batch()
    make = lambda: initialised(SubclassNet())  # noqa: E731
    names = [n for n, _ in make().named_parameters()] if preset == "paper" else \
        ["conv1.weight", "conv2.weight", "fc1.weight", "fc2.weight"]
    result = assert_matches_oracle(make, preset, x, [f"{n}[0]" for n in names])
    assert result.skipped == {}
    assert result.aleph == (len(names) if preset == "paper" else 4)


class StandardisedConv(nn.Conv2d):
    """Transforms its weight before the convolution (timm's StdConv2d): no Conv2d formula applies."""

    def forward(self, x):
        w = (self.weight - self.weight.mean((1, 2, 3), keepdim=True))
        return F.conv2d(x, w, self.bias, self.stride, self.padding)


class StridedConv(nn.Conv2d):
    """Applies its own weight but with another stride than its attribute says."""

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, 2, self.padding)


@pytest.mark.parametrize("conv, message", [
    (StandardisedConv, r"StandardisedConv 'conv1' own\(s\) sampled parameters but the forward never applied them"),
    (StridedConv, r"StridedConv 'conv1' overrides Conv2d.forward and applies its parameters with conv2d "
                  r"differently from Conv2d.forward"),
])
def test_subclass_whose_forward_breaks_the_formula_is_refused(conv, message):
    model = SubclassNet()
    model.conv1 = conv(3, 6, 3, padding=1, bias=False)
    with pytest.raises(ValueError, match=message):
        vf.score(initialised(model), batch(), config=config("exact"))

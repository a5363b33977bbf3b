"""The NATS-Bench size space: strings, indices, the DynamicShapeTinyNet network, sizes, sampling."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from vkdnw_fast.layers import count_layers
from vkdnw_fast.proxies.size import count_macs
from vkdnw_fast.spaces import nats_sss
from vkdnw_fast.spaces.nats_sss import NATSSSSpace

ARCHS = ["8:8:8:8:8", "8:8:8:16:32", "8:8:40:32:40", "64:64:64:64:64", "16:64:24:56:8"]


def test_strings_and_indices():
    assert nats_sss.canonical("08:16:32:48:64") == "8:16:32:48:64"
    assert nats_sss.SIZE == 32768
    assert [nats_sss.index_of(a) for a in ARCHS[:4]] == [0, 11, 284, 32767]
    archs = nats_sss.archs()
    assert len(archs) == len(set(archs)) == 32768
    assert all(nats_sss.index_of(archs[i]) == i for i in range(0, 32768, 97))
    assert list(NATSSSSpace().enumerate()) == archs
    with pytest.raises(ValueError, match="indices are 0..32767"):
        nats_sss.arch_of(32768)


@pytest.mark.parametrize("arch, message", [
    ("8:16:32:48", "expected 5 channel counts joined by ':', found 4"),
    ("8:16:32:48:64:8", "found 6"),
    ("8:16:30:48:64", "position 2 is '30'; channels are one of (8, 16, 24, 32, 40, 48, 56, 64)"),
    ("8:16:x:48:64", "position 2 is 'x'"),
    ("8:16::48:64", "position 2 is ''"),
    ("8:16:32:48:-8", "position 4 is '-8'"),
])
def test_malformed_strings_say_what_is_wrong(arch, message):
    with pytest.raises(ValueError) as error:
        nats_sss.parse(arch)
    assert message in str(error.value)
    with pytest.raises(TypeError, match="a string such as"):
        nats_sss.parse([8, 8, 8, 8, 8])


def xautodl_parameter_names(arch: str) -> list[str]:
    """DynamicShapeTinyNet's parameter names, written out from xautodl's modules: ReLUConvBN is
    op.{0 relu, 1 conv, 2 bn}; a stride-1 FactorizedReduce has conv and bn; a ResNet block has
    conv_a, conv_b and downsample.{0 pool, 1 conv}."""
    c = nats_sss.parse(arch)
    relu_conv_bn = lambda p: [f"{p}.op.1.weight", f"{p}.op.2.weight", f"{p}.op.2.bias"]  # noqa: E731
    names = ["stem.0.weight", "stem.1.weight", "stem.1.bias"]
    for i, c_in, c_out in [(0, c[0], c[0]), (2, c[1], c[2]), (4, c[3], c[4])]:
        for edge in range(6):
            if edge == 3:  # skip_connect~0
                if c_in != c_out:
                    names += [f"cells.{i}.layers.3.conv.weight", f"cells.{i}.layers.3.bn.weight", f"cells.{i}.layers.3.bn.bias"]
            else:
                names += relu_conv_bn(f"cells.{i}.layers.{edge}")
        if i < 4:
            names += relu_conv_bn(f"cells.{i + 1}.conv_a") + relu_conv_bn(f"cells.{i + 1}.conv_b")
            names += [f"cells.{i + 1}.downsample.1.weight"]
    return names + ["lastact.0.weight", "lastact.0.bias", "classifier.weight", "classifier.bias"]


@pytest.mark.parametrize("arch", ARCHS)
def test_parameters_are_named_and_ordered_as_in_nats(arch):
    model = nats_sss.SSSNetwork(arch)
    assert [name for name, _ in model.named_parameters()] == xautodl_parameter_names(arch)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dataset, side, classes", [("cifar10", 32, 10), ("cifar100", 32, 100), ("ImageNet16-120", 16, 120)])
def test_sizes_against_the_built_network(arch, dataset, side, classes):
    model = nats_sss.SSSNetwork(arch, classes)
    assert nats_sss.params(arch, dataset) == sum(p.numel() for p in model.parameters())
    assert nats_sss.flops(arch, dataset) == count_macs(model.eval(), torch.randn(1, 3, side, side))
    assert NATSSSSpace(dataset).cost(arch) == {
        "flops": nats_sss.flops(arch, dataset), "params": float(nats_sss.params(arch, dataset)),
        "layers": float(count_layers(model))}


def test_layer_count_depends_only_on_width_changes_into_cells():
    """ℵ (conv + linear layers) is 23, plus one FactorizedReduce per cell whose input width differs
    from its own (positions 1->2 and 3->4): three values over the whole space (66, 69, 72 tensors)."""
    for arch, layers, tensors in [("8:16:16:32:32", 23, 66), ("8:16:24:32:32", 24, 69), ("8:16:24:32:40", 25, 72)]:
        assert nats_sss.num_layers(arch) == layers
        assert len(list(nats_sss.SSSNetwork(arch).parameters())) == tensors
    assert {nats_sss.num_layers(a) for a in nats_sss.archs()[::61]} == {23, 24, 25}


def test_cell_with_a_width_change_maps_its_input():
    cell = nats_sss.SSSCell(8, 16)
    x = torch.randn(2, 8, 6, 6)
    assert cell(x).shape == (2, 16, 6, 6)
    assert isinstance(cell.layers[3], nats_sss.FactorizedReduce)
    assert isinstance(nats_sss.SSSCell(16, 16).layers[3], torch.nn.Identity)


def test_network_returns_logits_and_feature_blocks_follow_the_forward():
    model = NATSSSSpace("ImageNet16-120").build_model("8:16:24:32:40")
    shapes = []
    hooks = [b.register_forward_hook(lambda m, i, o: shapes.append(tuple(o.shape))) for b in model.feature_blocks()]
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 120)
    for hook in hooks:
        hook.remove()
    assert shapes == [(2, 8, 16, 16), (2, 8, 16, 16), (2, 16, 8, 8), (2, 24, 8, 8), (2, 32, 4, 4), (2, 40, 4, 4)]


def test_sampling_is_uniform_and_mutation_changes_one_position():
    space, rng = NATSSSSpace(), np.random.default_rng(0)
    draws = [nats_sss.parse(space.sample(rng)) for _ in range(4000)]
    counts = np.bincount([nats_sss.CHANNELS.index(c) for draw in draws for c in draw], minlength=8)
    assert counts.min() > 0.8 * counts.mean() and counts.max() < 1.2 * counts.mean()
    assert space.initial(np.random.default_rng(3)) == space.sample(np.random.default_rng(3))
    parent = "8:16:32:48:64"
    positions = []
    for _ in range(1000):
        child = space.validate(space.mutate(parent, rng))
        changed = [i for i, (a, b) in enumerate(zip(nats_sss.parse(parent), nats_sss.parse(child))) if a != b]
        assert len(changed) == 1
        positions += changed
    assert np.bincount(positions, minlength=5).min() > 150

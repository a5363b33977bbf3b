"""The MobileNetV2-like (IDW) space: strings, model, sizes, mutation, constraints.

Oracles: MACs counted by forward hooks on the built model, the model's own parameters, values
hand-derived from the authors' block definitions, and numbers obtained by running the authors'
``MasterNet`` (VKDNW repo, ImageNet_MBV2) on these strings (marked "authors' code").
"""
from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import chisquare
from torch import nn

from vkdnw_fast.spaces import mbv2
from vkdnw_fast.spaces.mbv2 import (IDW_TYPES, MBV2Space, authors_flops, build_model,
                                    channel_choices, flops, initial_arch, mutate, num_layers,
                                    params, parse)

INITIAL = ("SuperConvK3BNRELU(3,8,2,1)SuperResIDWE6K3(8,32,2,8,1)SuperResIDWE6K3(32,48,2,32,1)"
           "SuperResIDWE6K3(48,96,2,48,1)SuperResIDWE6K3(96,128,2,96,1)SuperConvK1BNRELU(128,2048,1,1)")
# Stride-1 block, identity shortcuts (bottleneck == out), E1/E2, K5/K7, several sub-layers.
SMALL = ("SuperConvK3BNRELU(3,16,2,1)SuperResIDWE1K7(16,16,1,16,3)SuperResIDWE2K5(16,24,2,24,2)"
         "SuperConvK1BNRELU(24,64,1,1)")
# Widths off the multiples of 8: expanded widths round half to even (12 -> 16, 20 -> 16).
ODD = ("SuperConvK3BNRELU(3,8,2,1)SuperResIDWE1K3(8,20,1,12,1)SuperResIDWE2K5(20,16,2,24,1)"
       "SuperConvK1BNRELU(16,32,1,1)")


def mutants(n: int, seed: int) -> list[str]:
    """A seeded chain of n mutations from the initial net."""
    rng = np.random.default_rng(seed)
    arch, out = INITIAL, []
    for _ in range(n):
        arch = mutate(arch, rng)
        out.append(arch)
    return out


def hook_macs(model: nn.Module, resolution: int) -> int:
    """Conv/linear multiply-accumulates at batch 1, read off the output shapes PyTorch produces
    (on the meta device, shapes only, for a model built there)."""
    total = 0

    def count(module, args, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * (module.in_channels // module.groups) * k
        else:
            total += output[0].numel() * module.in_features

    handles = [m.register_forward_hook(count) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    device = next(model.parameters()).device
    with torch.no_grad():
        model.eval()(torch.randn(1, 3, resolution, resolution, device=device))
    for h in handles:
        h.remove()
    return total


# ----------------------------------------------------------------------------- strings

def test_search_starts_at_the_initial_net_and_steps_as_the_authors():
    space = MBV2Space()
    assert space.initial(np.random.default_rng(0)) == INITIAL
    # 1 block replaced while the population has at most 10 members, 2 afterwards
    for population, replaces in [(0, 1), (10, 1), (11, 2), (500, 2)]:
        expected = mutate(INITIAL, np.random.default_rng(5), num_replaces=replaces)
        assert space.evolve(INITIAL, np.random.default_rng(5), population) == expected
    assert mutate(INITIAL, np.random.default_rng(5), num_replaces=1) != mutate(INITIAL, np.random.default_rng(5))


def test_initial_arch_is_the_authors_string():
    # scripts/search_AZ-NAS_flops450M-bs64.sh, init_plainnet.txt
    assert initial_arch() == INITIAL
    blocks = parse(INITIAL)
    assert [(b.in_channels, b.out_channels, b.stride, b.bottleneck, b.sub_layers) for b in blocks[1:-1]] == [
        (8, 32, 2, 8, 1), (32, 48, 2, 32, 1), (48, 96, 2, 48, 1), (96, 128, 2, 96, 1)]
    assert [(b.expansion, b.kernel_size) for b in blocks[1:-1]] == [(6, 3)] * 4


def test_parse_format_round_trip():
    archs = [INITIAL, SMALL, ODD] + mutants(200, seed=0)
    assert len(set(archs)) > 150  # the chain really moves
    for arch in archs:
        blocks = parse(arch)
        assert mbv2.format(blocks) == arch
        assert parse(mbv2.format(blocks)) == blocks


def test_whitespace_is_dropped_by_the_canonical_form():
    spaced = "  " + INITIAL.replace(",", ", ").replace(")", ") \n")
    assert MBV2Space().validate(spaced) == INITIAL


B1 = "SuperResIDWE6K3(8,32,2,8,1)"
REST = "SuperResIDWE6K3(32,48,2,32,1)SuperResIDWE6K3(48,96,2,48,1)SuperResIDWE6K3(96,128,2,96,1)"
STEM, HEAD = "SuperConvK3BNRELU(3,8,2,1)", "SuperConvK1BNRELU(128,2048,1,1)"


@pytest.mark.parametrize("arch, expected", [
    pytest.param(INITIAL.replace("SuperResIDWE6K3(32", "SuperResIDWE3K3(32"),
                 ["block 2 'SuperResIDWE3K3(32,48,2,32,1)'", "unknown block type 'SuperResIDWE3K3'"],
                 id="unknown-type"),
    pytest.param(STEM + "SuperResIDWE6K3(8,32,2,8)" + REST + HEAD,
                 ["block 1", "takes 5 integers", "got 4"], id="arity-idw"),
    pytest.param(STEM + B1 + REST + "SuperConvK1BNRELU(128,2048,1,1,1)",
                 ["block 5", "takes 4 integers", "got 5"], id="arity-head"),
    pytest.param(STEM + "SuperResIDWE6K3(8,32,2,x,1)" + REST + HEAD,
                 ["block 1", "bottleneck 'x' is not an integer"], id="not-int"),
    pytest.param(STEM + "SuperResIDWE6K3(8,0,2,8,1)" + REST + HEAD,
                 ["block 1", "out_channels must be positive, got 0"], id="out-zero"),
    pytest.param(STEM + "SuperResIDWE6K3(8,32,2,-8,1)" + REST + HEAD,
                 ["block 1", "bottleneck must be positive, got -8"], id="btl-negative"),
    pytest.param(STEM + "SuperResIDWE6K3(8,32,3,8,1)" + REST + HEAD,
                 ["block 1", "stride must be 1 or 2, got 3"], id="stride"),
    pytest.param(STEM + "SuperResIDWE6K3(8,32,2,8,0)" + REST + HEAD,
                 ["block 1", "sub_layers must be at least 1, got 0"], id="sub-layers"),
    pytest.param("SuperConvK3BNRELU(3,8,2,2)" + B1 + REST + HEAD,
                 ["block 0", "stem has exactly 1 sub-layer in this space, got 2"], id="stem-sub-layers"),
    pytest.param(STEM + B1 + "SuperResIDWE6K3(40,48,2,32,1)" + REST[29:] + HEAD,
                 ["block 2 'SuperResIDWE6K3(40,48,2,32,1)'", "in_channels 40 != out_channels 32 of block 1"],
                 id="channel-mismatch"),
    pytest.param("SuperConvK3BNRELU(4,8,2,1)" + B1 + REST + HEAD,
                 ["block 0", "stem's in_channels must be 3 (the image channels), got 4"], id="stem-in"),
    pytest.param(B1 + REST + HEAD, ["block 0", "the first block must be the stem"], id="no-stem"),
    pytest.param(STEM + B1 + "SuperConvK3BNRELU(32,32,1,1)" + HEAD.replace("128", "32"),
                 ["block 2", "may only be the first block (the stem)"], id="stem-inside"),
    pytest.param(STEM + B1 + REST, ["block 4", "the last block must be the head"], id="no-head"),
    pytest.param(STEM + "SuperConvK1BNRELU(8,8,1,1)" + B1 + REST + HEAD,
                 ["block 1", "may only be the last block (the head)"], id="head-inside"),
    pytest.param(STEM + "SuperResIDWE6K3(8,32,2,8,1" + REST + HEAD,
                 ["cannot read block 1 at character 26"], id="unbalanced"),
    pytest.param(INITIAL + "xyz", ["cannot read block 6 at character", "'xyz'"], id="trailing"),
    pytest.param("", ["at least a stem", "got 0 block(s)"], id="empty"),
    pytest.param(STEM, ["at least a stem", "got 1 block(s)"], id="stem-only"),
])
def test_malformed_strings_name_the_block_and_the_fault(arch, expected):
    with pytest.raises(ValueError) as err:
        parse(arch)
    for text in expected:
        assert text in str(err.value)


# ----------------------------------------------------------------------------- model and sizes

SIZE_ARCHS = [INITIAL, SMALL, ODD] + mutants(40, seed=1)[::8]


@pytest.mark.parametrize("arch", SIZE_ARCHS, ids=["initial", "small", "odd"] + [f"mutant{i}" for i in range(5)])
def test_flops_params_layers_match_the_built_model(arch):
    with torch.device("meta"):
        model = build_model(arch, num_classes=10)
    for resolution in (32, 37, 64):  # 37: odd sizes, ceil(r / 2) after each stride
        assert flops(arch, resolution, num_classes=10) == hook_macs(model, resolution)
    assert params(arch, num_classes=10) == sum(p.numel() for p in model.parameters())
    # Authors' count: one per sub-layer, stem and head included; an IDW sub-layer has 2 depthwise convs.
    depthwise = sum(1 for m in model.modules() if isinstance(m, nn.Conv2d) and m.groups > 1)
    assert num_layers(arch) == depthwise // 2 + 2


def test_initial_net_sizes_at_224():
    model = build_model(INITIAL)
    assert hook_macs(model, 224) == flops(INITIAL) == 159_334_080
    assert sum(p.numel() for p in model.parameters()) == params(INITIAL) == 2_824_264  # = the authors' net
    assert num_layers(INITIAL) == 6


@pytest.mark.parametrize("arch, classes, resolution, expected", [
    (INITIAL, 1000, 224, 162_396_776), (INITIAL, 1000, 100, 32_499_122), (INITIAL, 10, 37, 3_643_544),
    (SMALL, 1000, 224, 167_520_128), (SMALL, 1000, 100, 33_437_750), (ODD, 10, 37, 1_374_620),
])
def test_authors_flops_reproduce_their_get_flops(arch, classes, resolution, expected):
    # Values from the authors' code: MasterNet(num_classes=classes, plainnet_struct=arch).get_FLOPs(resolution)
    assert authors_flops(arch, resolution, classes) == expected


def test_parameter_layout_is_the_authors():
    # Shapes of MasterNet(num_classes=10, plainnet_struct=ODD).parameters(), in order (authors' code).
    stem = [(8, 3, 3, 3), (8,), (8,)]

    def unit(c_in, mid, c_out, k, project):
        shapes = [(mid, c_in, 1, 1), (mid,), (mid,), (mid, 1, k, k), (mid,), (mid,),
                  (c_out, mid, 1, 1), (c_out,), (c_out,)]
        return shapes + ([(c_out, c_in, 1, 1), (c_out,), (c_out,), (c_out,)] if project else [])

    expected = (stem + unit(8, 16, 12, 3, True) + unit(12, 16, 20, 3, True)
                + unit(20, 48, 24, 5, True) + unit(24, 32, 16, 5, True)
                + [(32, 16, 1, 1), (32,), (32,), (10, 32), (10,)])
    model = build_model(ODD, num_classes=10)
    assert [tuple(p.shape) for p in model.parameters()] == expected
    # The 'paper' aleph counts parameter tensors: 112 for the initial net in the authors' code.
    assert len(list(build_model(INITIAL).parameters())) == 112
    assert all(m.eps == 1e-3 for m in model.modules() if isinstance(m, nn.BatchNorm2d))


def test_shortcuts_follow_resblock_and_resblockproj():
    units = build_model(SMALL, num_classes=10).feature_blocks()[1:-1]
    # SuperResIDWE1K7(16,16,1,16,3): the first unit always projects, the other five are identities;
    # SuperResIDWE2K5(16,24,2,24,2): the strided first unit projects, the rest (24 -> 24) do not.
    assert [u.shortcut is not None for u in units] == [True] + [False] * 5 + [True, False, False, False]
    x = torch.randn(2, 16, 8, 8)
    unit = units[1].eval()
    with torch.no_grad():
        branch = unit.bn3(unit.project(F.relu(unit.bn2(unit.depthwise(F.relu(unit.bn1(unit.expand(x))))))))
        torch.testing.assert_close(unit(x), F.relu(branch + x))


@pytest.mark.parametrize("arch", [INITIAL, SMALL], ids=["initial", "small"])
def test_forward_and_feature_blocks(arch):
    torch.manual_seed(0)
    model = build_model(arch, num_classes=7).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        logits = model(x)
        assert logits.shape == (3, 7) and torch.isfinite(logits).all()
        blocks = model.feature_blocks()
        sub_layers = sum(b.sub_layers for b in parse(arch)[1:-1])
        assert len(blocks) == 2 + 2 * sub_layers
        y = x
        for block in blocks:  # each block's input is the previous one's output
            y = block(y)
        torch.testing.assert_close(model.classifier(y.mean((2, 3))), logits)
    covered = {id(p) for b in blocks for p in b.parameters()} | {id(p) for p in model.classifier.parameters()}
    assert covered == {id(p) for p in model.parameters()}


# ----------------------------------------------------------------------------- mutation

def test_channel_choices_known_values():
    # round8(c * f), f in 2.5, 2, 1.5, 1.25, 1 and c / f; half to even: 20 -> 16, 12 -> 16, 60 -> 64.
    assert channel_choices(8) == [8, 16]
    assert channel_choices(16) == [8, 16, 24, 32, 40]
    assert channel_choices(48) == [16, 24, 32, 40, 48, 64, 72, 96, 120]
    assert channel_choices(96) == [40, 48, 64, 80, 96, 120, 144, 192, 240]


def changed_blocks(old: list, new: list) -> list[int]:
    """Indices whose own choices (type, widths, sub-layers) differ; ``in`` follows the previous block."""
    key = lambda b: (b.kind, b.out_channels, b.bottleneck, b.sub_layers, b.stride)  # noqa: E731
    return [i for i, (a, b) in enumerate(zip(old, new)) if key(a) != key(b)]


def test_mutation_is_valid_deterministic_and_local():
    space = MBV2Space()
    old = parse(INITIAL)
    n_changed = Counter()
    for seed in range(60):
        child = mutate(INITIAL, np.random.default_rng(seed))
        assert child == mutate(INITIAL, np.random.default_rng(seed))
        assert space.validate(child) == child
        new = parse(child)
        assert len(new) == len(old)  # sub-layers stay <= 3 from the initial net: no split
        assert new[0].kind == old[0].kind and [b.stride for b in new] == [b.stride for b in old]
        changed = changed_blocks(old, new)
        assert len(old) - 1 not in changed  # the head never changes
        n_changed[len(changed)] += 1
        single = parse(mutate(INITIAL, np.random.default_rng(seed), num_replaces=1))
        assert len(changed_blocks(old, single)) <= 1
    assert set(n_changed) <= {0, 1, 2} and n_changed[1] > 0 and n_changed[2] > 0
    assert len({mutate(INITIAL, np.random.default_rng(s)) for s in range(60)}) > 50
    with pytest.raises(ValueError, match="num_replaces must be at least 1"):
        mutate(INITIAL, np.random.default_rng(0), num_replaces=0)


def test_mutation_explores_every_choice_uniformly():
    arch = "SuperConvK3BNRELU(3,16,2,1)SuperResIDWE6K3(16,96,2,48,3)SuperConvK1BNRELU(96,2048,1,1)"
    rng = np.random.default_rng(123)
    n = 3000
    stems, kinds, outs, btls, subs = Counter(), Counter(), Counter(), Counter(), Counter()
    for _ in range(n):
        stem, idw, head = parse(mutate(arch, rng, num_replaces=1))
        assert (head.kind, head.out_channels, head.stride) == ("SuperConvK1BNRELU", 2048, 1)
        assert (stem.stride, idw.stride) == (2, 2)
        stems[stem.out_channels] += 1
        kinds[idw.kind] += 1
        outs[idw.out_channels] += 1
        btls[idw.bottleneck] += 1
        subs[idw.sub_layers] += 1
    # One of the three blocks is drawn uniformly; the drawn block's fields are uniform over their
    # choices, the others keep their value. So a choice v has n/3/len(choices) draws, plus 2n/3
    # for the current value.
    for counter, current, choices in ((stems, 16, channel_choices(16)),
                                      (kinds, "SuperResIDWE6K3", sorted(IDW_TYPES)),
                                      (outs, 96, channel_choices(96)), (btls, 48, channel_choices(48)),
                                      (subs, 3, [1, 2, 3, 4, 5])):
        assert sorted(counter) == sorted(choices)  # every type / factor / delta appears, nothing else
        expected = [n / 3 / len(choices) + (2 * n / 3 if v == current else 0) for v in choices]
        assert chisquare([counter[v] for v in choices], expected).pvalue > 1e-3


def test_blocks_of_six_or_more_sub_layers_are_split():
    arch = "SuperConvK3BNRELU(3,16,2,1)SuperResIDWE6K3(16,32,2,24,5)SuperConvK1BNRELU(32,64,1,1)"
    rng = np.random.default_rng(7)
    splits = set()
    for _ in range(400):
        blocks = parse(mutate(arch, rng, num_replaces=1))
        assert all(b.sub_layers <= 5 for b in blocks[1:-1])
        if len(blocks) == 4:
            first, second = blocks[1], blocks[2]
            assert (first.sub_layers, first.stride) == (3, 2)
            assert (second.kind, second.bottleneck, second.stride) == (first.kind, first.bottleneck, 1)
            assert second.in_channels == second.out_channels == first.out_channels
            splits.add(first.sub_layers + second.sub_layers)
    assert splits == {6, 7}


# ----------------------------------------------------------------------------- the space

def test_space_costs_and_feasibility():
    space = MBV2Space()
    assert space.input_shape == (3, 224, 224) and space.num_classes == 1000 and space.name == "mbv2"
    assert space.cost(INITIAL) == {"flops": 159_334_080.0, "authors_flops": 162_396_776.0,
                                   "params": 2_824_264.0, "layers": 6.0}
    assert space.is_feasible(INITIAL) == (True, "")
    assert MBV2Space(flops_budget=1e8).is_feasible(INITIAL) == (False, "flops 159334080 > budget 100000000")
    assert MBV2Space(max_layers=5).is_feasible(INITIAL) == (False, "layers 6 > max_layers 5")
    assert MBV2Space(flops_budget=1e8, max_layers=5).is_feasible(INITIAL) == (
        False, "flops 159334080 > budget 100000000; layers 6 > max_layers 5")
    # The authors' count is 1.9% higher here: feasible in MACs, not in theirs.
    assert MBV2Space(flops_budget=1.6e8).is_feasible(INITIAL)[0]
    assert MBV2Space(flops_budget=1.6e8, flops_count="authors").is_feasible(INITIAL) == (
        False, "authors_flops 162396776 > budget 160000000")
    small = MBV2Space(resolution=32, num_classes=10)
    assert small.input_shape == (3, 32, 32)
    assert small.cost(SMALL)["flops"] == hook_macs(small.build_model(SMALL), 32)
    with pytest.raises(ValueError, match="flops_count"):
        MBV2Space(flops_count="zen")


def test_sample_is_feasible_seeded_and_explores():
    space = MBV2Space(flops_budget=300e6, max_layers=10)
    samples = [space.sample(np.random.default_rng(seed)) for seed in range(4)]
    assert samples[0] == space.sample(np.random.default_rng(0))
    assert len(set(samples)) == 4 and INITIAL not in samples
    for arch in samples:
        assert space.is_feasible(arch) == (True, "")
    with pytest.raises(RuntimeError, match="no feasible mutant"):
        MBV2Space(flops_budget=1e6).sample(np.random.default_rng(0))

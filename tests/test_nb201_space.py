"""The NAS-Bench-201 space: strings, the "unique" set, the NATS-Bench network, sizes, the registry."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import vkdnw_fast as vf
from vkdnw_fast import spaces
from vkdnw_fast.data import nb201_table
from vkdnw_fast.spaces import nb201
from vkdnw_fast.spaces.nb201 import NB201Space

CONV = {"nor_conv_1x1", "nor_conv_3x3"}
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_CONV3 = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
MIXED = "|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
# Node 1 feeds only `none` edges, node 2 has only `none` inputs.
DANGLING = "|nor_conv_3x3~0|+|none~0|none~1|+|skip_connect~0|none~1|nor_conv_1x1~2|"
# The cell input feeds only `none` edges, so the output is zero but built from the input.
INPUT_UNUSED = "|none~0|+|none~0|skip_connect~1|+|none~0|nor_conv_3x3~1|avg_pool_3x3~2|"
DISCONNECTED = "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
SIZE_ARCHS = [ALL_NONE, ALL_CONV3, MIXED, "|nor_conv_1x1~0|+|avg_pool_3x3~0|nor_conv_1x1~1|+|none~0|skip_connect~1|nor_conv_3x3~2|"]
DATASET_CLASSES = {"cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}

# The four input-to-output paths of a cell, as edge lists.
CELL_PATHS = [[(0, 3)], [(0, 1), (1, 3)], [(0, 2), (2, 3)], [(0, 1), (1, 2), (2, 3)]]


def edge_ops(arch: str) -> dict[tuple[int, int], str]:
    """Independent parse: {(source, target): op}."""
    ops = {}
    for target, node in enumerate(arch.strip("|").split("|+|"), start=1):
        for token in node.split("|"):
            op, source = token.split("~")
            ops[(int(source), target)] = op
    return ops


def live_by_paths(arch: str) -> tuple[bool, bool]:
    """(some path is all non-`none`, every non-`none` edge is on such a path), by path enumeration."""
    ops = edge_ops(arch)
    open_paths = [path for path in CELL_PATHS if all(ops[edge] != "none" for edge in path)]
    covered = {edge for path in open_paths for edge in path}
    return bool(open_paths), all(op == "none" or edge in covered for edge, op in ops.items())


def test_subsets_are_in_nats_order_and_indexed():
    table = nb201_table()
    everything = nb201.archs()
    assert len(everything) == 15625 and everything == list(table["arch"])
    assert all(nb201.index_of(arch) == index for index, arch in enumerate(everything))
    unique_indices = nb201.subset_indices("unique")
    assert nb201.archs("unique") == [everything[i] for i in unique_indices]
    assert np.all(np.diff(unique_indices) > 0)


def test_unique_set_equals_path_enumeration():
    connected_and_covered = 0
    vacuous = 0
    for arch in nb201.archs():
        has_path, covered = live_by_paths(arch)
        assert nb201.is_live(arch) == (has_path and covered), arch
        connected_and_covered += has_path and covered
        vacuous += covered and not has_path
    assert connected_and_covered == len(nb201.archs("unique")) == 9444
    assert vacuous == 1  # the all-`none` cell: with it, the paper's 9,445


@pytest.mark.parametrize(
    "arch, live",
    [
        (ALL_NONE, False),
        ("|none~0|+|none~0|none~1|+|skip_connect~0|none~1|none~2|", True),
        (DISCONNECTED, False),
        (DANGLING, False),  # the conv on edge 0→1 reaches no output
        ("|none~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|skip_connect~2|", False),  # node 1 unreachable
        ("|nor_conv_3x3~0|+|none~0|skip_connect~1|+|none~0|none~1|avg_pool_3x3~2|", True),
        (ALL_CONV3, True),
    ],
)
def test_is_live_hand_cases(arch, live):
    assert nb201.is_live(arch) is live


def test_strings_are_canonical_and_round_trip():
    assert all(nb201.canonical(arch) == arch for arch in nb201.archs())
    permuted = "|nor_conv_3x3~0|+|avg_pool_3x3~1|none~0|+|nor_conv_1x1~2|skip_connect~0|none~1|"
    assert nb201.canonical(permuted) == MIXED
    assert nb201.parse(MIXED) == ("nor_conv_3x3", "none", "avg_pool_3x3", "skip_connect", "none", "nor_conv_1x1")
    assert nb201.format_arch(nb201.parse(MIXED)) == MIXED


@pytest.mark.parametrize(
    "arch, message",
    [
        ("", r"expected 3 nodes joined by '\+', found 1"),
        ("|nor_conv_3x3~0|+|none~0|none~1|", "found 2"),
        (ALL_NONE + "+|none~0|", "found 4"),
        ("nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", r"node 1 .*must be written '\|op~input\|"),
        ("|conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 .*unknown op 'conv_3x3'"),
        ("|nor_conv_3x3~1|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 .*input '1'; node 1 takes inputs 0"),
        ("|none~0|+|none~0|+|none~0|none~1|none~2|", "node 2 .*takes 2 input.*found 1"),
        ("|none~0|+|none~0|none~0|+|none~0|none~1|none~2|", "node 2 .*input 0 appears more than once"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none|", "node 3 .*token 'none' is not of the form 'op~input'"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~3|", "node 3 .*input '3'; node 3 takes inputs 0, 1, 2"),
        ("|none~0|+|none~0|none~1|+|none~0|none~1|none~ 2|", "node 3 .*input ' 2'"),
    ],
)
def test_malformed_strings_say_what_is_wrong(arch, message):
    with pytest.raises(ValueError, match=message):
        nb201.parse(arch)


def test_other_bad_inputs():
    with pytest.raises(TypeError, match="cell string"):
        nb201.parse(None)
    with pytest.raises(ValueError, match="6 edges, got 5"):
        nb201.format_arch(["none"] * 5)
    with pytest.raises(ValueError, match="unknown op"):
        nb201.format_arch(["none"] * 5 + ["max_pool_3x3"])
    with pytest.raises(ValueError, match="unknown subset"):
        nb201.archs("live")
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        nb201.dataset_info("imagenet")
    with pytest.raises(ValueError, match="unknown aleph kind"):
        nb201.aleph(MIXED, "convs")


def test_dataset_info_and_aliases():
    assert nb201.dataset_info("cifar10") == ((3, 32, 32), 10)
    assert nb201.dataset_info("cifar100") == ((3, 32, 32), 100)
    assert nb201.dataset_info("ImageNet16-120") == ((3, 16, 16), 120)
    assert nb201.dataset_info("imagenet16") == nb201.dataset_info("imagenet16-120") == ((3, 16, 16), 120)


def test_params_match_the_naslib_derived_columns_for_every_arch():
    table = nb201_table()
    columns = {"cifar10": "params_mb_cifar10", "cifar100": "params_mb_cifar100", "ImageNet16-120": "params_mb_imagenet16"}
    for dataset, column in columns.items():
        counted = np.array([nb201.params(arch, dataset) for arch in nb201.archs()])
        np.testing.assert_array_equal(counted, np.round(table[column] * 1e6))


def count_macs(model: nn.Module, input_shape: tuple[int, ...]) -> int:
    """Conv and linear multiply-accumulates of one forward at batch 1, counted with hooks."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            total += output[0].numel() * kernel * module.in_channels // module.groups
        else:
            total += module.in_features * module.out_features

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    for handle in handles:
        handle.remove()
    return total


@pytest.mark.parametrize("arch", SIZE_ARCHS)
def test_sizes_against_the_built_model(arch):
    n_conv = sum(op in CONV for op in edge_ops(arch).values())
    for dataset, classes in DATASET_CLASSES.items():
        model = nb201.build_model(arch, classes)
        input_shape, _ = nb201.dataset_info(dataset)
        assert nb201.flops(arch, dataset) == count_macs(model, input_shape)
        assert nb201.params(arch, dataset) == sum(p.numel() for p in model.parameters())
    layers = sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())
    assert nb201.aleph(arch, "layers") == layers == 8 + 15 * n_conv
    assert nb201.aleph(arch, "parameter_tensors") == len(list(model.parameters())) == 21 + 45 * n_conv


def nats_parameter_names(arch: str) -> list[str]:
    """Parameter names of xautodl's TinyNetwork(C=16, N=5) for ``arch``."""

    def relu_conv_bn(prefix):
        return [f"{prefix}.op.1.weight", f"{prefix}.op.2.weight", f"{prefix}.op.2.bias"]

    ops = list(edge_ops(arch).values())  # dict order = string order
    names = ["stem.0.weight", "stem.1.weight", "stem.1.bias"]
    for cell in range(17):
        if cell in (5, 11):
            names += relu_conv_bn(f"cells.{cell}.conv_a") + relu_conv_bn(f"cells.{cell}.conv_b")
            names.append(f"cells.{cell}.downsample.1.weight")
        else:
            for layer, op in enumerate(ops):
                if op in CONV:
                    names += relu_conv_bn(f"cells.{cell}.layers.{layer}")
    return names + ["lastact.0.weight", "lastact.0.bias", "classifier.weight", "classifier.bias"]


NATS_INDEX_0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


@pytest.mark.parametrize("arch", [MIXED, ALL_NONE, NATS_INDEX_0])
def test_parameters_are_registered_as_in_nats(arch):
    model = nb201.build_model(arch, 10)
    assert [name for name, _ in model.named_parameters()] == nats_parameter_names(arch)
    shapes = dict((name, tuple(p.shape)) for name, p in model.named_parameters())
    assert shapes["stem.0.weight"] == (16, 3, 3, 3)
    assert shapes["cells.5.conv_a.op.1.weight"] == (32, 16, 3, 3)
    assert shapes["cells.11.downsample.1.weight"] == (64, 32, 1, 1)
    assert shapes["classifier.weight"] == (10, 64)
    buffers = [name for name, _ in model.named_buffers()]
    assert buffers[:3] == ["stem.1.running_mean", "stem.1.running_var", "stem.1.num_batches_tracked"]


def test_conv_kernels_follow_the_ops():
    model = nb201.build_model(MIXED, 10)
    cell = model.cells[12]
    assert cell.layers[0].op[1].weight.shape == (64, 64, 3, 3)
    assert cell.layers[5].op[1].weight.shape == (64, 64, 1, 1)
    pool = cell.layers[2]
    assert isinstance(pool, nn.AvgPool2d) and pool.kernel_size == 3 and pool.stride == 1
    assert pool.padding == 1 and pool.count_include_pad is False


def nats_forward(model: nb201.NB201Network, x: torch.Tensor) -> torch.Tensor:
    """NATS-Bench's forward, literally: every cell node sums all its edges, `none` giving x·0."""
    feature = model.stem(x)
    for block in model.cells:
        if isinstance(block, nb201.NB201Cell):
            nodes = [feature]
            for target in (1, 2, 3):
                edges = [(layer, s) for layer, (s, t) in enumerate(nb201.EDGES) if t == target]
                nodes.append(sum(block.layers[layer](nodes[source]) for layer, source in edges))
            feature = nodes[-1]
        else:
            feature = block(feature)
    return model.classifier(torch.flatten(model.global_pooling(model.lastact(feature)), 1))


@pytest.mark.parametrize("arch", [MIXED, DANGLING, INPUT_UNUSED, DISCONNECTED, ALL_NONE])
def test_skipping_none_edges_keeps_outputs_and_gradients(arch):
    torch.manual_seed(0)
    model = nb201.build_model(arch, 10).double()
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64, requires_grad=True)
    results = []
    for forward in (model, lambda inputs: nats_forward(model, inputs)):
        logits = forward(x)
        loss = (logits * torch.arange(10, dtype=torch.float64)).sum()
        # allow_unused=False: every parameter must be in the graph in both, as in NATS-Bench
        results.append((logits, torch.autograd.grad(loss, [x, *model.parameters()])))
    (fast_logits, fast_grads), (nats_logits, nats_grads) = results
    assert torch.equal(fast_logits, nats_logits)
    assert all(torch.equal(a, b) for a, b in zip(fast_grads, nats_grads))


def test_feature_blocks_compose_to_the_forward():
    model = nb201.build_model(MIXED, 100).eval()
    blocks = model.feature_blocks()
    assert len(blocks) == 18 and blocks[0] is model.stem
    assert [isinstance(b, nb201.ResNetBasicBlock) for b in blocks].count(True) == 2
    assert isinstance(blocks[6], nb201.ResNetBasicBlock) and isinstance(blocks[12], nb201.ResNetBasicBlock)
    x = torch.randn(2, 3, 16, 16)
    feature = x
    for block in blocks:
        feature = block(feature)
    assert feature.shape == (2, 64, 4, 4)
    logits = model.classifier(torch.flatten(model.global_pooling(model.lastact(feature)), 1))
    torch.testing.assert_close(model(x), logits, rtol=0, atol=0)


@pytest.mark.parametrize("dataset", list(DATASET_CLASSES))
def test_space_builds_models_returning_logits(dataset):
    space = NB201Space(dataset)
    assert (space.input_shape, space.num_classes) == nb201.dataset_info(dataset)
    logits = space.build_model(MIXED)(torch.randn(2, *space.input_shape))
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, space.num_classes)


def test_space_cost_and_validation():
    space = NB201Space("imagenet16", subset="unique")
    assert space.dataset == "ImageNet16-120"
    assert space.cost(MIXED) == {
        "flops": nb201.flops(MIXED, "ImageNet16-120"),
        "params": float(nb201.params(MIXED, "ImageNet16-120")),
        "layers": 8.0 + 15 * 2,
    }
    assert space.validate("|nor_conv_3x3~0|+|avg_pool_3x3~1|none~0|+|nor_conv_1x1~2|skip_connect~0|none~1|") == MIXED
    assert space.is_feasible(ALL_CONV3) == (True, "")
    feasible, reason = space.is_feasible(DANGLING)
    assert not feasible and "outside the 'unique' subset" in reason
    assert NB201Space(subset="all").is_feasible(DANGLING) == (True, "")
    assert sum(1 for _ in space.enumerate()) == 9444


def test_sampling_is_uniform_over_the_subset():
    unique = NB201Space(subset="unique")
    draws = [unique.sample(np.random.default_rng(7)) for _ in range(3)]
    assert len(set(draws)) == 1  # a seed reproduces
    rng = np.random.default_rng(0)
    assert all(nb201.is_live(unique.sample(rng)) for _ in range(300))
    everything = NB201Space(subset="all")
    live_fraction = np.mean([nb201.is_live(everything.sample(rng)) for _ in range(4000)])
    # 9444 / 15625 = 0.604; the binomial standard deviation at n=4000 is 0.0077
    assert abs(live_fraction - 9444 / 15625) < 0.03


def test_mutation_changes_one_uniform_edge_to_another_op():
    space = NB201Space()
    rng = np.random.default_rng(0)
    parent = edge_ops(MIXED)
    counts: dict[tuple[tuple[int, int], str], int] = {}
    draws = 6000
    for _ in range(draws):
        child = edge_ops(space.mutate(MIXED, rng))
        changed = [edge for edge in parent if child[edge] != parent[edge]]
        assert len(changed) == 1
        key = (changed[0], child[changed[0]])
        counts[key] = counts.get(key, 0) + 1
    # 6 edges × 4 new ops, each with probability 1/24 (expected 250, standard deviation ≈ 15.5)
    assert len(counts) == 24
    assert all(abs(count - draws / 24) < 80 for count in counts.values())


def test_spaces_by_name():
    assert spaces.available() == ["mbv2", "nats_sss", "nb101", "nb201", "tnb_macro", "tnb_micro"]
    space = spaces.get("nb201", dataset="imagenet16", subset="unique")
    assert isinstance(space, NB201Space) and space.name == "nb201" and space.dataset == "ImageNet16-120"
    assert spaces.from_spec({"name": "nb201", "dataset": "cifar100"}).num_classes == 100
    with pytest.raises(ValueError, match=r"unknown search space 'nb301'; search spaces are \['mbv2', 'nats_sss', 'nb101', 'nb201', 'tnb_macro', 'tnb_micro'\]"):
        spaces.get("nb301")
    with pytest.raises(ValueError, match="bad arguments for the nb201 search space: .*'resolution'"):
        spaces.from_spec({"name": "nb201", "resolution": 32})
    with pytest.raises(ValueError, match="described by {'name': ..., \\*\\*arguments}"):
        spaces.from_spec({"dataset": "cifar10"})
    with pytest.raises(ValueError, match="unknown subset"):  # the constructor's own check
        spaces.get("nb201", subset="live")
    with pytest.raises(ValueError, match="the search space name 'nb201' is taken by NB201Space"):
        spaces.register_space("nb201")(type("Other", (NB201Space,), {}))


def test_initial_and_evolve_are_sample_and_mutate():
    space = NB201Space()
    assert space.initial(np.random.default_rng(3)) == space.sample(np.random.default_rng(3))
    assert space.evolve(MIXED, np.random.default_rng(4), 50) == space.mutate(MIXED, np.random.default_rng(4))


def test_the_papers_subset_is_the_unique_set_and_the_all_none_cell():
    paper, unique = nb201.archs("paper"), set(nb201.archs("unique"))
    assert len(paper) == 9445 and set(paper) - unique == {nb201.ALL_NONE}
    space = NB201Space("cifar10", subset="paper")
    assert space.is_feasible(nb201.ALL_NONE) == (True, "")
    assert not space.is_feasible("|none~0|+|skip_connect~0|none~1|+|none~0|none~1|none~2|")[0]


def test_the_all_none_network_has_a_zero_fisher_matrix_and_vkdnw_0():
    """docs/method.md §5: its logits do not depend on the input; exact samples only layer weights, whose
    gradients are all 0; paper's sampled classifier bias gives one non-zero eigenvalue of 21."""
    model = nb201.NB201Network(nb201.ALL_NONE, 10)
    exact = vf.score(model, input_shape=(3, 8, 8), batch_size=4, config="exact")
    paper = vf.score(model, input_shape=(3, 8, 8), batch_size=4, config="paper")
    assert exact.vkdnw == 0 and exact.single == exact.aleph == 8 and float(exact.eigenvalues.abs().max()) == 0
    assert paper.vkdnw == 0 and paper.aleph == 21 and int((paper.eigenvalues > 0).sum()) == 1

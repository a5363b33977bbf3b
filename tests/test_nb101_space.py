"""The NAS-Bench-101 space: strings, pruning, the benchmark's hash, channels, the network, sampling."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from vkdnw_fast.layers import count_layers
from vkdnw_fast.proxies.size import count_macs
from vkdnw_fast.spaces import nb101
from vkdnw_fast.spaces.nb101 import CONV1X1, CONV3X3, INPUT, MAXPOOL3X3, OUTPUT, NB101Space

FIXTURE = Path(__file__).parent / "data" / "nb101_30cells_108epochs.pkl"


@pytest.fixture(scope="module")
def records() -> dict:
    """30 real NAS-Bench-101 records, NASLib's pickle format: hash -> (fixed statistics, runs)."""
    with open(FIXTURE, "rb") as handle:
        return pickle.load(handle)


def fixture_arch(fixed: dict) -> str:
    return nb101.from_matrix(fixed["module_adjacency"], fixed["module_operations"])


def meta_network(arch: str) -> nb101.NB101Network:
    """The network without allocating its weights (shapes are all a count needs)."""
    with torch.device("meta"):
        return nb101.NB101Network(arch)


def test_fixture_cells_hash_to_their_keys_and_have_the_stored_parameter_counts(records):
    assert len(records) == 30
    for key, (fixed, _) in records.items():
        arch = fixture_arch(fixed)
        assert nb101.spec_hash(arch) == key
        assert nb101.params(arch) == fixed["trainable_parameters"]
        assert sum(p.numel() for p in meta_network(arch).parameters()) == fixed["trainable_parameters"]


def test_fixture_cells_are_stored_pruned(records):
    for fixed, _ in records.values():
        cell = nb101.parse(fixture_arch(fixed))
        assert np.array_equal(cell.matrix, fixed["module_adjacency"])
        assert list(cell.ops) == fixed["module_operations"]


def permuted(arch: str, order: list[int]) -> str:
    """The same cell with its inner vertices renumbered: new vertex i is old vertex order[i]."""
    cell = nb101.parse(arch)
    return nb101.from_matrix(cell.matrix[np.ix_(order, order)], [cell.ops[v] for v in order])


def test_isomorphic_cells_share_the_hash_and_other_cells_do_not(records):
    fixed = next(fixed for fixed, _ in records.values() if len(fixed["module_operations"]) == 7)
    arch = fixture_arch(fixed)
    matrix = nb101.parse(arch).matrix
    # Any order keeping every edge forward is a valid renumbering; take the first that changes the string.
    for order in ([0, 2, 1, 3, 4, 5, 6], [0, 1, 3, 2, 4, 5, 6], [0, 1, 2, 4, 3, 5, 6], [0, 1, 2, 3, 5, 4, 6]):
        if not np.tril(matrix[np.ix_(order, order)]).any() and permuted(arch, order) != arch:
            break
    else:
        pytest.fail("no forward-preserving swap of two neighbouring vertices changes this cell's string")
    other = permuted(arch, order)
    assert other != arch and nb101.spec_hash(other) == nb101.spec_hash(arch)
    cell = nb101.parse(arch)
    ops = list(cell.ops)
    ops[1] = CONV1X1 if ops[1] != CONV1X1 else CONV3X3
    assert nb101.spec_hash(nb101.from_matrix(cell.matrix, ops)) != nb101.spec_hash(arch)
    assert len({nb101.spec_hash(fixture_arch(f)) for f, _ in records.values()}) == 30


# nasbench tests/model_spec_test.py, with op labels for its integer labels 1..5.
LABELS = {1: INPUT, 2: CONV3X3, 3: CONV1X1, 4: MAXPOOL3X3, 5: OUTPUT}


@pytest.mark.parametrize("matrix, labels, pruned, pruned_labels", [
    ([[0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0], [0, 0, 0, 0]], [1, 2, 3, 5], [[0, 1, 0], [0, 0, 1], [0, 0, 0]], [1, 2, 5]),
    ([[0, 1, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 0], [0, 0, 0, 0, 0]], [1, 2, 3, 4, 5],
     [[0, 1, 0], [0, 0, 1], [0, 0, 0]], [1, 2, 5]),
    ([[0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 0]], [1, 2, 3, 5], [[0, 1, 0], [0, 0, 1], [0, 0, 0]], [1, 3, 5]),
    ([[0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [1, 2, 3, 5], [[0, 1, 0], [0, 0, 1], [0, 0, 0]], [1, 3, 5]),
    ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [1, 2, 3, 5], [[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], [1, 2, 3, 5]),
])
def test_pruning_as_nasbench(matrix, labels, pruned, pruned_labels):
    cell = nb101.make_cell(matrix, [LABELS[label] for label in labels])
    assert np.array_equal(cell.matrix, pruned)
    assert list(cell.ops) == [LABELS[label] for label in pruned_labels]


def test_strings_are_canonical_and_round_trip():
    # Vertex 2 (a max-pool) reaches nothing: it is pruned from the canonical string.
    arch = "0110.0001.0000.0000|conv3x3-bn-relu,maxpool3x3"
    assert nb101.canonical(arch) == "010.001.000|conv3x3-bn-relu"
    assert NB101Space().validate(arch) == "010.001.000|conv3x3-bn-relu"
    assert nb101.canonical("01.00|") == "01.00|"
    full = "0110100.0001000.0001000.0000100.0000010.0000001.0000000|" + ",".join([CONV3X3, CONV1X1, MAXPOOL3X3, CONV3X3, CONV1X1])
    assert nb101.canonical(full) == full


@pytest.mark.parametrize("arch, message", [
    ("010.001.000", "expected '<matrix rows joined by .>|<inner ops joined by ,>'"),
    ("010.01.000|conv3x3-bn-relu", "row 1 is '01'"),
    ("010.0a1.000|conv3x3-bn-relu", "row 1 is '0a1'"),
    ("011.101.000|conv3x3-bn-relu", "must be upper-triangular (edges go from a vertex to a later one): entry (1, 0)"),
    ("010.001.000|conv5x5", "vertex 1 has op 'conv5x5'"),
    ("010.001.000|", "3 vertices need 3 ops"),
    ("0100.0000.0001.0000|conv3x3-bn-relu,conv3x3-bn-relu", "disconnected: no path from the input (vertex 0) to the output (vertex 3)"),
    ("00.00|", "disconnected"),
    ("0111111.0011111.0001111.0000111.0000011.0000001.0000000|" + ",".join([CONV3X3] * 5),
     "21 edges after pruning; NAS-Bench-101 allows at most 9"),
    ("01000000.00100000.00010000.00001000.00000100.00000010.00000001.00000000|" + ",".join([CONV3X3] * 6),
     "2 to 7 vertices, got 8"),
])
def test_malformed_strings_say_what_is_wrong(arch, message):
    with pytest.raises(ValueError) as error:
        nb101.parse(arch)
    assert message in str(error.value)


def test_other_bad_inputs():
    with pytest.raises(TypeError, match="string"):
        nb101.parse(123)
    with pytest.raises(ValueError, match="first op must be 'input'"):
        nb101.make_cell([[0, 1], [0, 0]], [CONV3X3, OUTPUT])
    with pytest.raises(ValueError, match="square"):
        nb101.make_cell([[0, 1, 1], [0, 0, 1]], [INPUT, CONV3X3, OUTPUT])
    with pytest.raises(ValueError, match="0 or 1"):
        nb101.make_cell([[0, 2], [0, 0]], [INPUT, OUTPUT])
    with pytest.raises(ValueError, match="56 integers, got 55"):
        nb101.from_naslib([0] * 55)
    with pytest.raises(ValueError, match="op codes must be 0..4"):
        nb101.from_naslib([0] * 49 + [0, 5, 2, 2, 2, 2, 1])


def test_naslib_op_codes():
    matrix = np.zeros((7, 7), dtype=int)
    matrix[0, 1] = matrix[1, 2] = matrix[2, 3] = matrix[3, 6] = 1
    arch = nb101.from_naslib([*matrix.ravel(), 0, 4, 3, 2, 4, 4, 1])
    assert arch == "01000.00100.00010.00001.00000|conv3x3-bn-relu,conv1x1-bn-relu,maxpool3x3"


# nasbench tests/model_builder_test.py: compute_vertex_channels(in, out, matrix) -> expected.
@pytest.mark.parametrize("matrix, c_in, c_out, expected", [
    ([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], 8, 16, [8, 16, 16, 16]),
    ([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], 16, 8, [16, 8, 8, 8]),
    ([[0, 1], [0, 0]], 1, 5, [1, 5]),
    ([[0, 1, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], 8, 16, [8, 16, 16, 16, 16]),
    ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], 8, 8, [8, 4, 4, 8]),
    ([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], 8, 15, [8, 8, 7, 15]),
    ([[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], 8, 8, [8, 3, 3, 2, 8]),
    ([[0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], 8, 15, [8, 5, 5, 5, 15]),
    ([[0, 1, 0, 0, 0], [0, 0, 1, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], 8, 9, [8, 5, 5, 4, 9]),
    ([[0, 1, 0, 1, 0], [0, 0, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], 8, 15, [8, 8, 7, 7, 15]),
])
def test_vertex_channels_as_nasbench(matrix, c_in, c_out, expected):
    assert nb101.vertex_channels(c_in, c_out, np.array(matrix)) == expected


def test_cell_sums_truncates_concatenates_and_adds_the_projection():
    """nasbench build_module written out for one cell: the input is projected into both vertices
    and the output, vertex 1 feeds vertex 2 truncated to its channels, the output concatenates."""
    arch = "0111.0011.0001.0000|conv3x3-bn-relu,conv1x1-bn-relu"
    cell_spec = nb101.parse(arch)
    torch.manual_seed(0)
    cell = nb101.NB101Cell(cell_spec, c_in=6, c_out=9).eval()
    assert cell.channels == [6, 5, 4, 9]  # 9 split over two feeders: 5 + 4, vertex 1 keeps its 5
    x = torch.randn(2, 6, 5, 5)
    v1 = cell.vertices[0].op(cell.vertices[0].projection(x))
    v2 = cell.vertices[1].op(v1[:, :4] + cell.vertices[1].projection(x))
    expected = torch.cat([v1, v2], dim=1) + cell.output_projection(x)
    torch.testing.assert_close(cell(x), expected)


def test_parameters_are_registered_in_nasbench_variable_order():
    """Conv kernels and BN γ, β in the order nasbench creates them: stem, then per cell and vertex
    the input's projection before the vertex op, the output projection last, then the dense layer."""
    arch = "0111.0001.0001.0000|conv3x3-bn-relu,maxpool3x3"
    shapes = [tuple(p.shape) for p in meta_network(arch).parameters()]

    def conv_bn(c_in, c_out, k):
        return [(c_out, c_in, k, k), (c_out,), (c_out,)]

    expected = conv_bn(3, 128, 3)
    for c_in, c_out in [(128, 128)] * 3 + [(128, 256)] + [(256, 256)] * 2 + [(256, 512)] + [(512, 512)] * 2:
        half = c_out // 2
        expected += conv_bn(c_in, half, 1) + conv_bn(half, half, 3) + conv_bn(c_in, half, 1) + conv_bn(c_in, c_out, 1)
    expected += [(10, 512), (10,)]
    assert shapes == expected


def test_sizes_against_the_built_network(records):
    space = NB101Space()
    for fixed, _ in list(records.values())[:6]:
        arch = fixture_arch(fixed)
        model = meta_network(arch)
        assert nb101.flops(arch) == count_macs(model, torch.empty(1, 3, 32, 32, device="meta"))
        cost = space.cost(arch)
        assert cost == {"flops": nb101.flops(arch), "params": float(fixed["trainable_parameters"]),
                        "layers": float(count_layers(model))}


def test_network_returns_logits_and_feature_blocks_follow_the_forward():
    arch = "0110.0001.0001.0000|conv1x1-bn-relu,maxpool3x3"
    torch.manual_seed(0)
    model = NB101Space().build_model(arch)
    x = torch.randn(2, 3, 32, 32)
    assert model(x).shape == (2, 10)
    outputs = []
    hooks = [block.register_forward_hook(lambda m, i, o: outputs.append(o.shape)) for block in model.feature_blocks()]
    model(x)
    for hook in hooks:
        hook.remove()
    assert outputs == [(2, 128, 32, 32)] * 4 + [(2, 256, 16, 16)] * 3 + [(2, 512, 8, 8)] * 3


def test_the_map_before_the_global_pool_is_the_last_cells_output():
    """Zen-NAS reads it through the pool module: the logits are the classifier of its spatial mean."""
    from vkdnw_fast.proxies.forward import pre_pool_features
    torch.manual_seed(0)
    model = NB101Space().build_model("0110.0001.0001.0000|conv1x1-bn-relu,maxpool3x3").eval()
    x = torch.randn(2, 3, 32, 32)
    last = []
    hook = model.cells[-1].register_forward_hook(lambda m, i, o: last.append(o))
    features = pre_pool_features(model, x)
    hook.remove()
    assert torch.equal(features, last[0])
    with torch.no_grad():
        assert torch.allclose(model(x), model.classifier(features.mean(dim=(2, 3))), rtol=0, atol=1e-6)


def test_sampling_gives_valid_cells_reproducibly():
    space = NB101Space()
    draws = [space.sample(np.random.default_rng(seed)) for seed in range(60)]
    assert draws == [space.sample(np.random.default_rng(seed)) for seed in range(60)]
    assert all(space.validate(arch) == arch for arch in draws)
    sizes = {nb101.parse(arch).num_vertices for arch in draws}
    assert len(sizes) >= 3 and max(sizes) <= 7  # random specs prune to cells of many sizes
    assert space.initial(np.random.default_rng(5)) == draws[5]


def test_mutation_keeps_cells_valid_and_revives_pruned_vertices():
    space, rng = NB101Space(), np.random.default_rng(0)
    children = [space.mutate("01.00|", rng) for _ in range(200)]
    assert all(space.validate(child) == child for child in children)
    # The trivial cell is padded with 5 unconnected vertices; flipped edges reconnect some of them.
    assert max(nb101.parse(child).num_vertices for child in children) >= 4
    parent = "0110100.0001000.0001000.0000100.0000010.0000001.0000000|" + ",".join([CONV3X3, CONV1X1, MAXPOOL3X3, CONV3X3, CONV1X1])
    children = [space.mutate(parent, rng) for _ in range(200)]
    changed_ops = [sum(a != b for a, b in zip(nb101.parse(c).ops, nb101.parse(parent).ops)) for c in children
                   if nb101.parse(c).num_vertices == 7]
    assert 0.3 < np.mean([n > 0 for n in changed_ops]) < 0.95  # each op resampled with p = 1/5: 1 - 0.8^5 = 0.67
    assert sum(child != parent for child in children) > 150

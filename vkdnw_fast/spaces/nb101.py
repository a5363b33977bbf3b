"""The NAS-Bench-101 search space (Ying et al. 2019): cells, their graph hash, the network.

A cell is a DAG of at most 7 vertices given by an upper-triangular adjacency matrix: vertex 0 is
the input, the last vertex the output, every other vertex one op (``OPS``). The benchmark holds
every cell with at most 9 edges whose input reaches its output, after *pruning* the vertices that
lie on no input-to-output path (423,624 cells up to isomorphism).

Architecture string: the rows of the pruned adjacency matrix as bit strings joined by ``.``, then
``|``, then the ops of the inner vertices joined by ``,``, e.g.
``0110000.0001000.0001000.0000100.0000010.0000001.0000000|conv3x3-bn-relu,maxpool3x3,
conv1x1-bn-relu,conv3x3-bn-relu,conv1x1-bn-relu`` (without the line break). The canonical string
is that of the pruned cell, the form the benchmark stores (``module_adjacency``,
``module_operations``). Isomorphic cells have different strings but one ``spec_hash``: the
benchmark's key. Their networks are not identical (the output channels are split in vertex
order), which is why the string, not the hash, names an architecture here.

Reproduced from the public code of google-research/nasbench (our own code): pruning and validity
(``lib/model_spec.py``, ``api.py`` ``_check_spec``: edges are counted after pruning), the hash
(``lib/graph_util.py`` ``hash_module`` with the labels of ``ModelSpec.hash_spec``), the network
and its channel split (``lib/model_builder.py``, ``lib/base_ops.py``), sampling and mutation (the
regularised evolution of the repository's ``NASBench.ipynb``, as NASLib's
``nasbench101/graph.py`` ``mutate`` also does).
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vkdnw_fast.spaces.base import SearchSpace
from vkdnw_fast.spaces.registry import register_space

INPUT, OUTPUT = "input", "output"
CONV3X3, CONV1X1, MAXPOOL3X3 = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"
# nasbench's config['available_ops'], in its order: the hash labels a vertex by its index here.
OPS = (CONV3X3, CONV1X1, MAXPOOL3X3)
CONV_KERNELS = {CONV3X3: 3, CONV1X1: 1}
MAX_VERTICES = 7
MAX_EDGES = 9
CELLS = 423_624  # distinct cells (graph hashes), the NAS-Bench-101 paper's count
# NASLib's integer op codes (naslib/search_spaces/nasbench101/conversions.py, ``all_ops``).
NASLIB_OPS = (INPUT, OUTPUT, MAXPOOL3X3, CONV1X1, CONV3X3)

INPUT_SHAPE = (3, 32, 32)
NUM_CLASSES = 10
STEM_CHANNELS = 128
NUM_STACKS = 3
CELLS_PER_STACK = 3
# TensorFlow's batch_normalization(momentum=0.997, epsilon=1e-5); torch's momentum is 1 - TF's.
BN_MOMENTUM = 1 - 0.997
BN_EPSILON = 1e-5


# ---------------------------------------------------------------- cells and their strings


@dataclass(frozen=True, eq=False)
class Cell:
    """A pruned cell: ``matrix`` V×V (0/1, read-only), ``ops`` V labels from ``input`` to ``output``."""

    matrix: np.ndarray
    ops: tuple[str, ...]

    @property
    def num_vertices(self) -> int:
        return len(self.ops)

    @property
    def num_edges(self) -> int:
        return int(self.matrix.sum())


def _prune(matrix: np.ndarray, ops: Sequence[str]) -> tuple[np.ndarray, list[str]] | None:
    """Drop the vertices on no input-to-output path (nasbench ``ModelSpec._prune``); None if the
    output is not reachable from the input."""
    vertices = len(ops)
    from_input, from_output = {0}, {vertices - 1}
    for v in range(1, vertices):
        if any(matrix[u, v] for u in from_input):
            from_input.add(v)
    for v in range(vertices - 2, -1, -1):
        if any(matrix[v, w] for w in from_output):
            from_output.add(v)
    keep = sorted(from_input & from_output)
    if vertices - 1 not in from_input:
        return None
    return matrix[np.ix_(keep, keep)], [ops[v] for v in keep]


def make_cell(matrix, ops: Sequence[str]) -> Cell:
    """The pruned cell of an adjacency ``matrix`` (V×V, V ≤ 7) and its ``ops`` (``input``, V-2 ops
    from ``OPS``, ``output``); ValueError saying what keeps it out of NAS-Bench-101."""
    matrix = np.asarray(matrix)
    ops = list(ops)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"the adjacency matrix must be square, got shape {matrix.shape}")
    vertices = matrix.shape[0]
    if not 2 <= vertices <= MAX_VERTICES:
        raise ValueError(f"a cell has 2 to {MAX_VERTICES} vertices, got {vertices}")
    if not np.isin(matrix, (0, 1)).all():
        raise ValueError(f"adjacency entries must be 0 or 1, got {sorted(set(matrix.ravel().tolist()))}")
    below = np.argwhere(np.tril(matrix))
    if len(below):
        source, target = below[0]
        raise ValueError(f"the adjacency matrix must be upper-triangular (edges go from a vertex to a "
                         f"later one): entry ({source}, {target}) is 1")
    if len(ops) != vertices:
        raise ValueError(f"{vertices} vertices need {vertices} ops (input, inner ops, output), got {len(ops)}")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise ValueError(f"the first op must be {INPUT!r} and the last {OUTPUT!r}, got {ops[0]!r} and {ops[-1]!r}")
    for vertex, op in enumerate(ops[1:-1], start=1):
        if op not in OPS:
            raise ValueError(f"vertex {vertex} has op {op!r}; ops are {OPS}")
    pruned = _prune(matrix.astype(np.int8), ops)
    if pruned is None:
        raise ValueError(f"the cell is disconnected: no path from the input (vertex 0) to the output "
                         f"(vertex {vertices - 1})")
    pruned_matrix, pruned_ops = pruned
    edges = int(pruned_matrix.sum())
    if edges > MAX_EDGES:
        raise ValueError(f"the cell has {edges} edges after pruning; NAS-Bench-101 allows at most {MAX_EDGES}")
    pruned_matrix.flags.writeable = False
    return Cell(pruned_matrix, tuple(pruned_ops))


def format_cell(cell: Cell) -> str:
    """The architecture string of ``cell`` (see the module docstring)."""
    rows = ".".join("".join(str(int(bit)) for bit in row) for row in cell.matrix)
    return f"{rows}|{','.join(cell.ops[1:-1])}"


@functools.lru_cache(maxsize=65536)
def parse(arch: str) -> Cell:
    """The pruned cell of an architecture string; ValueError saying what is malformed."""
    if not isinstance(arch, str):
        raise TypeError(f"an architecture is a string, got {type(arch).__name__}")
    rows_text, bar, ops_text = arch.partition("|")
    if not bar:
        raise ValueError(f"{arch!r}: expected '<matrix rows joined by .>|<inner ops joined by ,>'")
    rows = rows_text.split(".")
    for index, row in enumerate(rows):
        if len(row) != len(rows) or set(row) - {"0", "1"}:
            raise ValueError(f"{arch!r}: row {index} is {row!r}; each of the {len(rows)} rows must be "
                             f"{len(rows)} characters 0 or 1")
    ops = ops_text.split(",") if ops_text else []
    try:
        return make_cell([[int(bit) for bit in row] for row in rows], [INPUT, *ops, OUTPUT])
    except ValueError as error:
        raise ValueError(f"{arch!r}: {error}") from None


def canonical(arch: str) -> str:
    """The string of the pruned cell."""
    return format_cell(parse(arch))


def from_matrix(matrix, ops: Sequence[str]) -> str:
    """The canonical string of an adjacency matrix and its op labels (nasbench's ``ModelSpec``
    arguments)."""
    return format_cell(make_cell(matrix, ops))


def from_naslib(encoding: Sequence[int]) -> str:
    """The canonical string of NASLib's tuple encoding: the 49 entries of the 7×7 adjacency matrix
    row by row, then 7 op codes (``NASLIB_OPS``: 0 input, 1 output, 2 maxpool3x3,
    3 conv1x1-bn-relu, 4 conv3x3-bn-relu)."""
    codes = [int(value) for value in encoding]
    size = MAX_VERTICES * MAX_VERTICES + MAX_VERTICES
    if len(codes) != size:
        raise ValueError(f"NASLib's NAS-Bench-101 encoding has {size} integers, got {len(codes)}")
    bad = [code for code in codes[-MAX_VERTICES:] if not 0 <= code < len(NASLIB_OPS)]
    if bad:
        raise ValueError(f"op codes must be 0..{len(NASLIB_OPS) - 1} ({NASLIB_OPS}), got {bad}")
    matrix = np.array(codes[:-MAX_VERTICES]).reshape(MAX_VERTICES, MAX_VERTICES)
    return from_matrix(matrix, [NASLIB_OPS[code] for code in codes[-MAX_VERTICES:]])


def _md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


@functools.lru_cache(maxsize=65536)
def spec_hash(arch: str) -> str:
    """The benchmark's key of ``arch``: nasbench's ``hash_module`` of the pruned cell, an MD5
    fingerprint refined from each vertex's (out-degree, in-degree, label) by V rounds over its
    sorted in- and out-neighbours' fingerprints, so isomorphic cells share it. Labels: -1 input,
    -2 output, an inner op its index in ``OPS``."""
    cell = parse(arch)
    matrix, vertices = cell.matrix, cell.num_vertices
    labels = [-1, *(OPS.index(op) for op in cell.ops[1:-1]), -2]
    in_degree, out_degree = matrix.sum(axis=0).tolist(), matrix.sum(axis=1).tolist()
    hashes = [_md5(str(key)) for key in zip(out_degree, in_degree, labels)]
    for _ in range(vertices):
        hashes = [
            _md5("".join(sorted(hashes[w] for w in range(vertices) if matrix[w, v])) + "|"
                 + "".join(sorted(hashes[w] for w in range(vertices) if matrix[v, w])) + "|" + hashes[v])
            for v in range(vertices)
        ]
    return _md5(str(sorted(hashes)))


# ---------------------------------------------------------------- channels and size figures


def vertex_channels(in_channels: int, out_channels: int, matrix: np.ndarray) -> list[int]:
    """Output channels of every vertex of a pruned cell (nasbench ``compute_vertex_channels``): the
    output's channels are split evenly among the vertices feeding it (the first ones in vertex
    order get one more when it does not divide), and a vertex not feeding the output gets the
    largest count among its successors."""
    vertices = matrix.shape[0]
    channels = [0] * vertices
    channels[0], channels[-1] = in_channels, out_channels
    if vertices == 2:
        return channels
    feeds_output = [v for v in range(1, vertices - 1) if matrix[v, -1]]
    share, remainder = divmod(out_channels, len(feeds_output))
    for rank, v in enumerate(feeds_output):
        channels[v] = share + (rank < remainder)
    for v in range(vertices - 3, 0, -1):
        if not matrix[v, -1]:
            channels[v] = max(channels[w] for w in range(v + 1, vertices - 1) if matrix[v, w])
    return channels


def _module_channels() -> list[tuple[int, int, int]]:
    """(input channels, output channels, resolution) of the 9 cells: stacks of 128, 256, 512
    channels at 32, 16, 8 pixels, each stack after the first behind a 2×2 max-pool."""
    plan, channels, side = [], STEM_CHANNELS, INPUT_SHAPE[1]
    for stack in range(NUM_STACKS):
        c_in = channels
        if stack > 0:
            channels, side = channels * 2, side // 2
        for _ in range(CELLS_PER_STACK):
            plan.append((c_in, channels, side))
            c_in = channels
    return plan


def _convolutions(cell: Cell) -> list[tuple[int, int, int, int]]:
    """(c_in, c_out, kernel, side) of every convolution of the network, each followed by BN."""
    convs = [(INPUT_SHAPE[0], STEM_CHANNELS, 3, INPUT_SHAPE[1])]
    last = cell.num_vertices - 1
    for c_in, c_out, side in _module_channels():
        channels = vertex_channels(c_in, c_out, cell.matrix)
        for v in range(1, last):
            if cell.matrix[0, v]:
                convs.append((c_in, channels[v], 1, side))
            if cell.ops[v] in CONV_KERNELS:
                convs.append((channels[v], channels[v], CONV_KERNELS[cell.ops[v]], side))
        if cell.matrix[0, last]:
            convs.append((c_in, c_out, 1, side))
    return convs


def flops(arch: str) -> float:
    """Conv + linear multiply-accumulates of one 32×32 image (BN, ReLU, pooling, sums not counted),
    computed from the channel plan (tested against hooks on the built network)."""
    convs = _convolutions(parse(arch))
    final_channels = _module_channels()[-1][1]
    return float(sum(a * b * k * k * side * side for a, b, k, side in convs) + final_channels * NUM_CLASSES)


def params(arch: str) -> int:
    """Trainable parameters: conv kernels, BN γ and β, the dense layer's weights and biases (what
    the benchmark stores as ``trainable_parameters``)."""
    convs = _convolutions(parse(arch))
    final_channels = _module_channels()[-1][1]
    return sum(a * b * k * k + 2 * b for a, b, k, _ in convs) + (final_channels + 1) * NUM_CLASSES


def num_layers(arch: str) -> int:
    """Convolutions and the dense layer (ℵ's ``layers``)."""
    return len(_convolutions(parse(arch))) + 1


# ---------------------------------------------------------------- the network


class ConvBNReLU(nn.Sequential):
    """nasbench's ``conv_bn_relu``: conv (no bias, 'same' padding) → BN → ReLU."""

    def __init__(self, c_in: int, c_out: int, kernel: int):
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False),
            nn.BatchNorm2d(c_out, eps=BN_EPSILON, momentum=BN_MOMENTUM),
            nn.ReLU(inplace=False),
        )


class Vertex(nn.Module):
    """An inner vertex: the 1×1 projection of the cell input when it has that edge, then its op
    (registered in that order, the order nasbench creates their variables)."""

    def __init__(self, op: str, c_in: int, channels: int, projected: bool):
        super().__init__()
        self.projection = ConvBNReLU(c_in, channels, 1) if projected else None
        if op == MAXPOOL3X3:
            self.op = nn.MaxPool2d(3, stride=1, padding=1)
        else:
            self.op = ConvBNReLU(channels, channels, CONV_KERNELS[op])


class NB101Cell(nn.Module):
    """nasbench's ``build_module``: a vertex sums its inputs (earlier vertices truncated to its
    channel count, the cell input through a 1×1 projection); the output concatenates the vertices
    feeding it and adds the projected input when that edge exists."""

    def __init__(self, cell: Cell, c_in: int, c_out: int):
        super().__init__()
        self.matrix = cell.matrix
        self.channels = vertex_channels(c_in, c_out, cell.matrix)
        last = cell.num_vertices - 1
        self.vertices = nn.ModuleList(
            Vertex(cell.ops[v], c_in, self.channels[v], bool(cell.matrix[0, v])) for v in range(1, last)
        )
        self.output_projection = ConvBNReLU(c_in, c_out, 1) if cell.matrix[0, last] else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = [x]
        for v, vertex in enumerate(self.vertices, start=1):
            terms = [values[u][:, : self.channels[v]] for u in range(1, v) if self.matrix[u, v]]
            if vertex.projection is not None:
                terms.append(vertex.projection(x))
            values.append(vertex.op(sum(terms[1:], terms[0])))
        concat = [values[v] for v in range(1, len(values)) if self.matrix[v, -1]]
        if not concat:
            return self.output_projection(x)
        out = torch.cat(concat, dim=1) if len(concat) > 1 else concat[0]
        if self.output_projection is not None:
            out = out + self.output_projection(x)
        return out


class NB101Network(nn.Module):
    """The NAS-Bench-101 network: stem conv3×3(128)+BN+ReLU, 3 stacks of 3 cells (128, 256, 512
    channels) with a 2×2 max-pool before the 2nd and 3rd, global average pool, dense layer.
    Parameters are registered in the order nasbench creates its variables."""

    def __init__(self, arch: str, num_classes: int = NUM_CLASSES):
        super().__init__()
        cell = parse(arch)
        self.arch = format_cell(cell)
        self.stem = ConvBNReLU(INPUT_SHAPE[0], STEM_CHANNELS, 3)
        plan = _module_channels()
        self.cells = nn.ModuleList(NB101Cell(cell, c_in, c_out) for c_in, c_out, _ in plan)
        self._downsample_before = {i for i in range(1, len(plan)) if plan[i][2] != plan[i - 1][2]}
        self.downsample = nn.MaxPool2d(2, stride=2)
        # A module, not x.mean: proxies that read the map before the global pool (Zen) hook it.
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(plan[-1][1], num_classes)

    def feature_blocks(self) -> list[nn.Module]:
        """The stem and the 9 cells, in forward order (AZ-NAS's feature maps)."""
        return [self.stem, *self.cells]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for index, cell in enumerate(self.cells):
            if index in self._downsample_before:
                x = self.downsample(x)
            x = cell(x)
        return self.classifier(self.global_pool(x).flatten(1))


# ---------------------------------------------------------------- the search space


def _random_spec(rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """nasbench's ``random_spec``: every upper-triangular entry 0 or 1, every inner op uniform."""
    matrix = np.triu(rng.integers(0, 2, size=(MAX_VERTICES, MAX_VERTICES)), 1)
    ops = [INPUT, *(OPS[i] for i in rng.integers(len(OPS), size=MAX_VERTICES - 2)), OUTPUT]
    return matrix, ops


def _valid(matrix: np.ndarray, ops: Sequence[str]) -> str | None:
    try:
        return from_matrix(matrix, ops)
    except ValueError:
        return None


def _padded(cell: Cell, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """``cell`` as a 7-vertex spec: the pruned vertices come back unconnected before the output,
    with uniform random ops (the distribution dead vertices have in nasbench's evolution, which
    mutates unpruned specs)."""
    inner = cell.num_vertices - 1
    matrix = np.zeros((MAX_VERTICES, MAX_VERTICES), dtype=np.int64)
    matrix[:inner, :inner] = cell.matrix[:inner, :inner]
    matrix[:inner, -1] = cell.matrix[:inner, -1]
    filler = [OPS[i] for i in rng.integers(len(OPS), size=MAX_VERTICES - cell.num_vertices)]
    return matrix, [*cell.ops[:-1], *filler, OUTPUT]


@register_space("nb101")
class NB101Space(SearchSpace):
    """NAS-Bench-101 on CIFAR-10 (the benchmark's only task)."""

    name = "nb101"
    input_shape = INPUT_SHAPE
    num_classes = NUM_CLASSES

    def validate(self, arch: str) -> str:
        return canonical(arch)

    def sample(self, rng: np.random.Generator) -> str:
        """nasbench's ``random_spec`` redrawn until valid: uniform over valid *labelled* 7-vertex
        specs, not over distinct cells."""
        while (arch := _valid(*_random_spec(rng))) is None:
            pass
        return arch

    def initial(self, rng: np.random.Generator) -> str:
        return self.sample(rng)

    def mutate(self, arch: str, rng: np.random.Generator) -> str:
        """nasbench's ``mutate_spec`` (mutation rate 1): on the cell padded to 7 vertices, flip each
        of the 21 possible edges with probability 1/7 and change each inner op with probability
        1/5 to one of the other two; redrawn until the child is a valid cell (it may equal the
        parent, as there)."""
        matrix, ops = _padded(parse(arch), rng)
        rows, cols = np.triu_indices(MAX_VERTICES, 1)
        while True:
            child, child_ops = matrix.copy(), list(ops)
            flips = rng.random(len(rows)) < 1 / MAX_VERTICES
            child[rows[flips], cols[flips]] ^= 1
            for v in range(1, MAX_VERTICES - 1):
                if rng.random() < 1 / (MAX_VERTICES - 2):
                    others = [op for op in OPS if op != child_ops[v]]
                    child_ops[v] = others[rng.integers(len(others))]
            if (result := _valid(child, child_ops)) is not None:
                return result

    def build_model(self, arch: str) -> NB101Network:
        return NB101Network(arch, self.num_classes)

    def cost(self, arch: str) -> dict[str, float]:
        return {"flops": flops(arch), "params": float(params(arch)), "layers": float(num_layers(arch))}

"""The NAS-Bench-201 / NATS-Bench topology search space (docs/method.md §5).

An architecture is a cell string such as
``|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|``:
node j (1..3) sums one op applied to each earlier node i, written ``op~i``; node 0 is the cell input
and node 3 its output. The network is the NATS-Bench ``TinyNetwork`` (C=16, N=5) with exactly its
parameter names and registration order, because the ``paper`` preset samples "the first 128
parameter tensors". The space enumerates its cells in NATS-Bench index order (``index_of``), the
order of the bundled table (``vkdnw_fast/data``); their trained accuracies are ground truth, a
benchmark's business (``vkdnw_fast.benchmarks.nb201``), not the space's.
"""
from __future__ import annotations

import functools
import operator
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch import nn

from vkdnw_fast.data import NB201_SIZE, nb201_table
from vkdnw_fast.spaces.base import SearchSpace, change_one, relu_conv_bn
from vkdnw_fast.spaces.registry import register_space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
CONV_KERNELS = {"nor_conv_1x1": 1, "nor_conv_3x3": 3}
# (source node, target node) of the six cell edges, in the order the cell string lists them.
EDGES = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
OUTPUT_NODE = 3
# "all": 15,625 cells; "unique": the 9,444 live ones (``is_live``); "paper": those and the all-``none``
# cell, the VKDNW paper's 9,445 (docs/method.md §5).
SUBSETS = ("all", "unique", "paper")
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"

STEM_CHANNELS = 16
STAGE_CHANNELS = (16, 32, 64)  # stages are joined by stride-2 ResNet basic blocks
CELLS_PER_STAGE = 5
CELLS = CELLS_PER_STAGE * len(STAGE_CHANNELS)
REDUCTION_BLOCKS = len(STAGE_CHANNELS) - 1

DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
_DATASET_ALIASES = {
    "cifar10": "cifar10",
    "cifar100": "cifar100",
    "ImageNet16-120": "ImageNet16-120",
    "imagenet16-120": "ImageNet16-120",
    "imagenet16": "ImageNet16-120",
    "ImageNet16": "ImageNet16-120",
}
_DATASET_INFO = {
    "cifar10": ((3, 32, 32), 10),
    "cifar100": ((3, 32, 32), 100),
    "ImageNet16-120": ((3, 16, 16), 120),
}

# Conv/linear layers and parameter tensors of the network outside the cells: stem conv (+BN γ, β),
# per reduction block conv_a and conv_b (+BN γ, β each) and the downsample conv, lastact BN γ, β,
# classifier weight and bias. Every conv op adds one conv (+BN γ, β) to each of the 15 cells.
_BASE_LAYERS = 1 + 3 * REDUCTION_BLOCKS + 1
_BASE_PARAMETER_TENSORS = 3 + 7 * REDUCTION_BLOCKS + 2 + 2
ALEPH_KINDS = ("layers", "parameter_tensors")


# ---------------------------------------------------------------- architecture strings


def canonical_dataset(dataset: str) -> str:
    """The NATS-Bench name of ``dataset`` (``cifar10``, ``cifar100`` or ``ImageNet16-120``)."""
    try:
        return _DATASET_ALIASES[dataset]
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown dataset {dataset!r}; use one of {DATASETS} (or the aliases 'imagenet16', "
            "'imagenet16-120', 'ImageNet16')"
        ) from None


def dataset_info(dataset: str) -> tuple[tuple[int, int, int], int]:
    """(input shape C×H×W, number of classes) of ``dataset``."""
    return _DATASET_INFO[canonical_dataset(dataset)]


@functools.lru_cache(maxsize=None)
def parse(arch: str) -> tuple[str, ...]:
    """The six edge ops of ``arch`` in ``EDGES`` order; ValueError saying what is malformed.

    A node may list its inputs in any order; each earlier node must appear exactly once.
    """
    if not isinstance(arch, str):
        raise TypeError(f"an architecture is a cell string, got {type(arch).__name__}")
    node_texts = arch.split("+")
    if len(node_texts) != OUTPUT_NODE:
        raise ValueError(
            f"{arch!r}: expected {OUTPUT_NODE} nodes joined by '+', found {len(node_texts)}"
        )
    ops: dict[tuple[int, int], str] = {}
    for node, text in enumerate(node_texts, start=1):
        where = f"{arch!r}, node {node} ({text!r})"
        if len(text) < 2 or text[0] != "|" or text[-1] != "|":
            raise ValueError(f"{where}: a node must be written '|op~input|...|'")
        tokens = text[1:-1].split("|")
        if len(tokens) != node:
            raise ValueError(
                f"{where}: node {node} takes {node} input(s), one from each of nodes "
                f"0..{node - 1}; found {len(tokens)}"
            )
        valid_sources = [str(source) for source in range(node)]
        for token in tokens:
            op, tilde, source = token.partition("~")
            if not tilde:
                raise ValueError(f"{where}: token {token!r} is not of the form 'op~input'")
            if op not in OPS:
                raise ValueError(f"{where}: unknown op {op!r} in token {token!r}; ops are {OPS}")
            if source not in valid_sources:
                raise ValueError(
                    f"{where}: token {token!r} has input {source!r}; node {node} takes inputs "
                    f"{', '.join(valid_sources)}"
                )
            if (int(source), node) in ops:
                raise ValueError(f"{where}: input {source} appears more than once")
            ops[(int(source), node)] = op
    return tuple(ops[edge] for edge in EDGES)


def format_arch(ops: Sequence[str]) -> str:
    """The canonical cell string of six edge ops given in ``EDGES`` order."""
    ops = tuple(ops)
    if len(ops) != len(EDGES):
        raise ValueError(f"a cell has {len(EDGES)} edges, got {len(ops)} ops: {ops}")
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise ValueError(f"unknown op(s) {unknown}; ops are {OPS}")
    nodes = []
    for target in range(1, OUTPUT_NODE + 1):
        tokens = [f"{op}~{source}" for (source, node), op in zip(EDGES, ops) if node == target]
        nodes.append("|" + "|".join(tokens) + "|")
    return "+".join(nodes)


def canonical(arch: str) -> str:
    """The canonical form of ``arch`` (inputs of each node in ascending order)."""
    return format_arch(parse(arch))


def is_live(arch: str) -> bool:
    """Whether the cell output depends on its input and every non-``none`` op lies on a path from
    the cell input to the cell output (the "unique" set: 9,444 cells).

    Requiring a path to exist excludes the all-``none`` cell, which satisfies the second condition
    vacuously; counting it gives the paper's 9,445.
    """
    ops = parse(arch)
    reached_from_input = {0}
    for (source, target), op in zip(EDGES, ops):  # EDGES is sorted by target node
        if op != "none" and source in reached_from_input:
            reached_from_input.add(target)
    reaches_output = {OUTPUT_NODE}
    for (source, target), op in zip(reversed(EDGES), reversed(ops)):  # ... so reversed by source
        if op != "none" and target in reaches_output:
            reaches_output.add(source)
    on_a_path = all(
        op == "none" or (source in reached_from_input and target in reaches_output)
        for (source, target), op in zip(EDGES, ops)
    )
    return OUTPUT_NODE in reached_from_input and on_a_path


# ---------------------------------------------------------------- the cells in NATS-Bench order


def _check_subset(subset: str) -> str:
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}; use one of {SUBSETS}")
    return subset


@functools.lru_cache(maxsize=None)
def _subset_indices(subset: str) -> np.ndarray:
    arch_column = nb201_table()["arch"]
    if subset == "all":
        indices = np.arange(NB201_SIZE)
    else:
        extra = {ALL_NONE} if subset == "paper" else set()
        indices = np.flatnonzero([is_live(arch) or arch in extra for arch in arch_column])
    indices.flags.writeable = False
    return indices


@functools.lru_cache(maxsize=None)
def _subset_archs(subset: str) -> tuple[str, ...]:
    return tuple(str(arch) for arch in nb201_table()["arch"][_subset_indices(subset)])


def subset_indices(subset: str = "all") -> np.ndarray:
    """NATS indices of the architectures in ``subset`` (ascending; read-only)."""
    return _subset_indices(_check_subset(subset))


def archs(subset: str = "all") -> list[str]:
    """Canonical cell strings of ``subset`` ("all": 15,625; "unique": 9,444; "paper": 9,445) in NATS
    index order."""
    return list(_subset_archs(_check_subset(subset)))


@functools.lru_cache(maxsize=1)
def _index_by_arch() -> dict[str, int]:
    return {arch: index for index, arch in enumerate(_subset_archs("all"))}


def index_of(arch: str) -> int:
    """The NATS-Bench index (0..15624) of ``arch``: its row in the bundled table and in the API."""
    index = _index_by_arch().get(arch)  # a canonical string, as the space hands out, needs no parse
    return _index_by_arch()[canonical(arch)] if index is None else index


# ---------------------------------------------------------------- size figures


def _conv_macs(c_in: int, c_out: int, kernel: int, out_side: int) -> int:
    return c_in * c_out * kernel * kernel * out_side * out_side


def _conv_bn_params(c_in: int, c_out: int, kernel: int) -> int:
    return c_in * c_out * kernel * kernel + 2 * c_out


def flops(arch: str, dataset: str) -> float:
    """Conv + linear multiply-accumulates of one forward pass at batch 1 (pooling, BN, ReLU and
    additions not counted), at the dataset's resolution (32 for CIFAR, 16 for ImageNet16-120)."""
    ops = parse(arch)
    (in_channels, side, _), num_classes = dataset_info(dataset)
    total = _conv_macs(in_channels, STEM_CHANNELS, 3, side)
    c_prev = STEM_CHANNELS
    for stage, channels in enumerate(STAGE_CHANNELS):
        stage_side = side >> stage
        if stage > 0:  # ResNet block: conv_a (stride 2), conv_b, 1x1 shortcut after the 2x2 pool
            total += _conv_macs(c_prev, channels, 3, stage_side)
            total += _conv_macs(channels, channels, 3, stage_side)
            total += _conv_macs(c_prev, channels, 1, stage_side)
        cell = sum(_conv_macs(channels, channels, CONV_KERNELS[op], stage_side) for op in ops if op in CONV_KERNELS)
        total += CELLS_PER_STAGE * cell
        c_prev = channels
    return float(total + c_prev * num_classes)


def params(arch: str, dataset: str) -> int:
    """Number of scalar parameters of the network (BN γ and β included, running statistics not)."""
    ops = parse(arch)
    (in_channels, _, _), num_classes = dataset_info(dataset)
    total = _conv_bn_params(in_channels, STEM_CHANNELS, 3)
    c_prev = STEM_CHANNELS
    for stage, channels in enumerate(STAGE_CHANNELS):
        if stage > 0:  # conv_a, conv_b with BN; the shortcut conv has no BN
            total += _conv_bn_params(c_prev, channels, 3) + _conv_bn_params(channels, channels, 3)
            total += c_prev * channels
        cell = sum(_conv_bn_params(channels, channels, CONV_KERNELS[op]) for op in ops if op in CONV_KERNELS)
        total += CELLS_PER_STAGE * cell
        c_prev = channels
    return total + 2 * c_prev + c_prev * num_classes + num_classes


def aleph(arch: str, kind: str = "layers") -> int:
    """The size term ℵ: ``layers`` counts conv/linear layers (8 + 15·#conv ops), ``parameter_tensors``
    counts parameter tensors (21 + 45·#conv ops), as ``len(list(model.parameters()))``."""
    conv_ops = sum(op in CONV_KERNELS for op in parse(arch))
    if kind == "layers":
        return _BASE_LAYERS + CELLS * conv_ops
    if kind == "parameter_tensors":
        return _BASE_PARAMETER_TENSORS + 3 * CELLS * conv_ops
    raise ValueError(f"unknown aleph kind {kind!r}; use one of {ALEPH_KINDS}")


# ---------------------------------------------------------------- the network


class ReLUConvBN(nn.Module):
    """ReLU → Conv (no bias) → BN, registered as ``op.1`` / ``op.2`` like xautodl's."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int):
        super().__init__()
        self.op = relu_conv_bn(c_in, c_out, kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op(x)


class Zero(nn.Module):
    """The ``none`` op, x·0. Registered (it has no parameters) so that layer indices, and so
    parameter names, match NATS-Bench."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mul(0.0)


def _make_op(name: str, channels: int) -> nn.Module:
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return nn.Identity()
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    return ReLUConvBN(channels, channels, CONV_KERNELS[name], stride=1)


class ResNetBasicBlock(nn.Module):
    """The stride-2 block between stages: conv_a, conv_b, and an AvgPool2d(2)+conv1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, stride=2)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, stride=1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201Cell(nn.Module):
    """A cell: node j = Σ_i op_ij(node i), output node 3. One layer per edge, in string order.

    ``none`` edges are left out of the sums instead of adding x·0 (about 15% less CPU time for a
    forward+backward when a cell has ``none`` edges). The values are the same, but skipping alone
    would cut nodes that feed only ``none`` edges out of the autograd graph: their upstream
    parameters would get no gradient (None) where NATS-Bench gives them zeros. So such dangling
    nodes are added to the output times 0, and a node whose inputs are all ``none`` is computed as
    in NATS. Outputs and gradients (every parameter in the graph) then equal NATS-Bench's exactly,
    for finite activations (NATS turns an infinite activation into NaN through x·0).
    """

    def __init__(self, ops: Sequence[str], channels: int):
        super().__init__()
        self.layers = nn.ModuleList(_make_op(op, channels) for op in ops)
        # (layer, source node) summed into each node: the non-`none` edges, or all if there are none.
        self._node_inputs: list[tuple[tuple[int, int], ...]] = []
        for target in range(1, OUTPUT_NODE + 1):
            edges = tuple((layer, source) for layer, (source, node) in enumerate(EDGES) if node == target)
            live = tuple((layer, source) for layer, source in edges if ops[layer] != "none")
            self._node_inputs.append(live or edges)
        feeds_a_node = {source for inputs in self._node_inputs for _, source in inputs}
        # A dangling node reaches no later node; anchor it through one of its `none` edges.
        self._dangling = tuple(
            (next(layer for layer, (source, _) in enumerate(EDGES) if source == node), node)
            for node in range(OUTPUT_NODE)
            if node not in feeds_a_node
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for inputs in self._node_inputs:
            terms = (self.layers[layer](nodes[source]) for layer, source in inputs)
            nodes.append(functools.reduce(operator.add, terms))
        output = nodes[-1]
        for layer, source in self._dangling:
            output = output + self.layers[layer](nodes[source])
        return output


class NB201Network(nn.Module):
    """NATS-Bench ``TinyNetwork`` (C=16, N=5): stem, 3 stages of 5 cells joined by 2 ResNet blocks,
    BN+ReLU, global average pool, linear classifier. ``forward`` returns logits."""

    def __init__(self, arch: str, num_classes: int = 10):
        super().__init__()
        ops = parse(arch)
        self.arch = format_arch(ops)
        self.stem = nn.Sequential(
            nn.Conv2d(3, STEM_CHANNELS, 3, padding=1, bias=False), nn.BatchNorm2d(STEM_CHANNELS)
        )
        cells: list[nn.Module] = []
        c_prev = STEM_CHANNELS
        for stage, channels in enumerate(STAGE_CHANNELS):
            if stage > 0:
                cells.append(ResNetBasicBlock(c_prev, channels))
            cells.extend(NB201Cell(ops, channels) for _ in range(CELLS_PER_STAGE))
            c_prev = channels
        self.cells = nn.ModuleList(cells)
        # Not in place (NATS's is): forward hooks on the BN may keep its output.
        self.lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_prev, num_classes)

    def feature_blocks(self) -> list[nn.Module]:
        """The stem, then every cell and ResNet block in forward order; their outputs are the
        feature maps the AZ-NAS proxies use."""
        return [self.stem, *self.cells]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feature = self.stem(x)
        for cell in self.cells:
            feature = cell(feature)
        return self.classifier(torch.flatten(self.global_pooling(self.lastact(feature)), 1))


def build_model(arch: str, num_classes: int = 10) -> NB201Network:
    """A freshly initialised (PyTorch default init) NATS-Bench network for ``arch``."""
    return NB201Network(arch, num_classes)


# ---------------------------------------------------------------- the search space


@register_space("nb201")
class NB201Space(SearchSpace):
    """NAS-Bench-201 for one dataset, over all 15,625 cells, the 9,444 "unique" (live) ones, or the
    paper's 9,445 (``SUBSETS``)."""

    def __init__(self, dataset: str = "cifar10", subset: str = "all"):
        self.dataset = canonical_dataset(dataset)
        self.subset = _check_subset(subset)
        self.input_shape, self.num_classes = dataset_info(self.dataset)

    def validate(self, arch: str) -> str:
        return canonical(arch)

    def sample(self, rng: np.random.Generator) -> str:
        """Uniform over the space's subset."""
        members = _subset_archs(self.subset)
        return members[rng.integers(len(members))]

    def mutate(self, arch: str, rng: np.random.Generator) -> str:
        """Change the op of one edge, drawn uniformly, to one of the other four ops, uniformly.

        (xautodl's regularised evolution draws a node first, then one of its edges.) In the
        "unique" subset the result may be outside it; see ``is_feasible``.
        """
        return format_arch(change_one(parse(arch), OPS, rng))

    def build_model(self, arch: str) -> NB201Network:
        return build_model(arch, self.num_classes)

    def cost(self, arch: str) -> dict[str, float]:
        return {
            "flops": flops(arch, self.dataset),
            "params": float(params(arch, self.dataset)),
            "layers": float(aleph(arch, "layers")),
        }

    def enumerate(self) -> Iterator[str]:
        return iter(_subset_archs(self.subset))

    def is_feasible(self, arch: str) -> tuple[bool, str]:
        if self.subset != "all" and not is_live(arch) and not (self.subset == "paper" and canonical(arch) == ALL_NONE):
            return False, (
                f"{canonical(arch)} is outside the {self.subset!r} subset: its output does not depend on "
                "its input, or an op lies on no input-to-output path"
            )
        return True, ""
